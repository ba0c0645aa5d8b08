"""`kubelite doctor [--fix]`: what this machine needs for real containers, and installing it.

A real node needs root, runc (+ conmon for logs and exit codes), the cgroup filesystems runc looks for in this
process's /proc/self/mountinfo, the reference CNI plugins, iptables and conntrack, and the sysctls pods rely on. Without them `kubelite up` runs a simulated node instead, and says
which of these is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

CNI_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
# Debian package for each missing piece
PACKAGES = {
    "runc": "runc",
    "conmon": "conmon",
    "cni": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "etcd": "etcd-server",  # `init --cluster-init`, `join --control-plane`
    "etcdctl": "etcd-client",  # `etcd-snapshot` with etcd
}
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what --fix does about it, or "" when it can't
    warn: bool = False  # ok for a node, but not as it stands (the agent does something about it)


def _cni_dir() -> str | None:
    for d in CNI_DIRS:
        if all(os.path.exists(os.path.join(d, p)) for p in CNI_PLUGINS):
            return d
    return None


def _swap_on() -> bool:
    try:
        with open("/proc/swaps") as f:
            return len(f.read().strip().splitlines()) > 1
    except OSError:
        return False


def checks() -> list[Check]:
    result = [Check("root", os.geteuid() == 0, "running as root" if os.geteuid() == 0 else
                    "not root: containers, pod networks and iptables need root")]
    for tool in ("runc", "conmon", "iptables", "conntrack", "ip"):
        path = shutil.which(tool)
        result.append(Check(tool, path is not None, path or f"{tool} not found",
                            f"apt-get install {PACKAGES[tool]}"))
    result.append(_cgroups())
    cni = _cni_dir()
    result.append(Check("cni", cni is not None,
                        f"CNI plugins in {cni}" if cni else
                        f"CNI plugins {', '.join(CNI_PLUGINS)} not found in {' or '.join(CNI_DIRS)}",
                        f"apt-get install {PACKAGES['cni']}"))
    for key, want in SYSCTLS.items():
        path = "/proc/sys/" + key
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            value = "absent"
        name = key.replace("/", ".")
        result.append(Check(name, value == want, f"{name} = {value}",
                            f"sysctl -w {name}={want}" + (" (after modprobe br_netfilter)" if value == "absent" else "")))
    result += _etcd_checks()
    swap = _swap_on()
    result.append(Check("swap", not swap, "swap is on (the kubelet's memory accounting assumes it off)" if swap
                        else "swap is off", "swapoff -a"))
    return result


def _cgroups() -> Check:
    """What runc checks before creating a container: cgroup mounts in this process's mountinfo (in this mount
    namespace: under `ip netns exec` that is not the host's)."""
    from .kubelet.runtime.cgroupfs import inspect

    r = inspect()
    if r.ok:
        return Check("cgroups", True, f"{r.found} in /proc/self/mountinfo")
    if r.mountable:
        return Check("cgroups", True, f"{r.reason}; runc would fail with \"no cgroup mount found in mountinfo\": "
                                      "the node agent mounts the same hierarchies in its mount namespace at start",
                     warn=True)
    return Check("cgroups", False, f"{r.reason}; runc would fail with \"no cgroup mount found in mountinfo\"")


def _etcd_checks() -> list[Check]:
    """Where etcd comes from (not needed for a node; only for `--cluster-init` and control-plane joins)."""
    from .etcd.member import binary_origin

    found = []
    for tool in ("etcd", "etcdctl"):
        path = shutil.which(tool)
        origin = binary_origin(path) if path else ""
        detail = (f"{path} (Debian package {origin})" if origin else path) if path else \
            f"{tool} not found (needed by `kubelite init --cluster-init` and `join --control-plane`)"
        found.append(Check(tool, path is not None, detail, f"apt-get install {PACKAGES[tool]}"))
    return found


def real_node_possible(found: list[Check] | None = None) -> tuple[bool, list[str]]:
    """(possible, the missing pieces) for running a runc node here."""
    found = found if found is not None else checks()
    essential = {"root", "runc", "conmon", "iptables", "ip", "cni", "cgroups"}
    missing = [c.name for c in found if c.name in essential and not c.ok]
    return not missing, missing


def fix(found: list[Check]) -> list[str]:
    """Install the missing packages and set the sysctls; returns what it did (or failed to do)."""
    done = []
    packages = sorted({PACKAGES[c.name] for c in found if not c.ok and c.name in PACKAGES})
    if packages:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env,
                           capture_output=True, text=True)
        done.append(f"apt-get install {' '.join(packages)}: " + ("ok" if r.returncode == 0 else
                                                                 f"failed: {r.stderr.strip()[-300:]}"))
    for c in found:
        if c.ok or not c.name.startswith("net."):
            continue
        key = c.name.replace(".", "/")
        if not os.path.exists("/proc/sys/" + key) and "bridge" in key:
            subprocess.run(["modprobe", "br_netfilter"], check=False, capture_output=True)
        try:
            with open("/proc/sys/" + key, "w") as f:
                f.write(SYSCTLS[key])
            done.append(f"{c.name} = {SYSCTLS[key]}")
        except OSError as e:
            done.append(f"{c.name}: cannot set ({e.strerror})")
    return done


def run(do_fix: bool) -> int:
    found = checks()
    if do_fix:
        if os.geteuid() != 0:
            print("kubelite doctor: --fix needs root")
            return 1
        for line in fix(found):
            print(f"fixed: {line}")
        found = checks()
    width = max(len(c.name) for c in found) + 2
    for c in found:
        hint = f"   (fix: {c.fix})" if not c.ok and c.fix else ""
        mark = ("WARN" if c.warn else "ok  ") if c.ok else "MISS"
        print(f"{mark}  {c.name:<{width}}{c.detail}{hint}")
    possible, missing = real_node_possible(found)
    if possible:
        caveat = next((c for c in found if c.name == "cgroups" and c.warn), None)
        print("real containers: available (kubelite up runs a runc node" +
              ("; its agent mounts the cgroup filesystems runc needs in this mount namespace)" if caveat else ")"))
        return 0
    print(f"real containers: not available (missing: {', '.join(missing)}); kubelite up runs a simulated node. "
          f"`kubelite doctor --fix` installs what is missing.")
    return 1
