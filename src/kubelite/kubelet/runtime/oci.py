"""The OCI runtime config (config.json) of one container, from the pod spec and the image config.

Pure functions; the I/O-bound inputs (ConfigMaps and Secrets for env, the image's /etc/passwd) are passed in.
Errors a user can cause raise `ContainerConfigError` carrying upstream's message; the kubelet shows them as
the container's waiting reason CreateContainerConfigError.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ...api.quantity import parse_quantity
from ..lifecycle import format_pod

Obj = dict[str, Any]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's default capability set (what a pod gets without securityContext.capabilities)
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
ALL_CAPS = DEFAULT_CAPS + [
    "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE",
    "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]

CAP_NUMBERS = {name: i for i, name in enumerate([
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"])}


@functools.cache
def bounding_set(status_path: str = "/proc/self/status") -> int | None:
    """This process's capability bounding set (a mask), None when unknown."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def all_held_caps(bounding: int | None = None) -> list[str]:
    """Every capability, as far as this process may hand them on: a privileged container gets what its runtime
    holds, as containerd gives it (runc refuses a capability outside the bounding set: "unable to apply caps")."""
    mask = bounding_set() if bounding is None else bounding
    if mask is None:
        return list(ALL_CAPS)
    return [c for c in ALL_CAPS if mask >> CAP_NUMBERS[c] & 1]


# RuntimeDefault: allow everything except the syscalls every container runtime's default profile refuses
# (a deny list rather than containerd's allow list: the same effect for ordinary workloads)
SECCOMP_DENY = ["acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
                "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
                "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount", "move_pages",
                "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open", "personality",
                "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
                "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon",
                "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86",
                "vm86old"]

MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _nofile() -> int:
    """containerd's 1048576, capped by what this agent may hand out (runc cannot raise the hard limit)."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)


class ContainerConfigError(Exception):
    """CreateContainerConfigError with upstream's message."""

    reason = "CreateContainerConfigError"


@dataclass
class ImageConfig:
    """The parts of an OCI image config a container uses."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""

    @classmethod
    def from_oci(cls, config: Obj | None) -> ImageConfig:
        c = (config or {}).get("config") or config or {}
        return cls(entrypoint=list(c.get("Entrypoint") or []), cmd=list(c.get("Cmd") or []),
                   env=list(c.get("Env") or []), working_dir=c.get("WorkingDir") or "", user=c.get("User") or "")


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Upstream's $(VAR) expansion: known names are replaced, unknown ones stay, $$ escapes."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(sub, text)


def command_line(container: Obj, image: ImageConfig, env: dict[str, str]) -> list[str]:
    """command replaces ENTRYPOINT (and drops CMD); args alone replace CMD."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = list(command) + list(args or [])
    elif args is not None and args != []:
        argv = list(image.entrypoint) + list(args)
    else:
        argv = list(image.entrypoint) + list(image.cmd)
    return [expand(a, env) for a in argv]


# ---------------------------------------------------------------- env


Lookup = Callable[[str, str], Obj | None]  # (kind "configmaps"|"secrets", name) -> object or None


def _resource_value(pod: Obj, ref: Obj, container_name: str) -> str:
    cname = ref.get("containerName") or container_name
    c = next((c for c in pod["spec"].get("containers", []) + (pod["spec"].get("initContainers") or [])
              if c["name"] == cname), {})
    res = ref.get("resource", "")
    kind, _, what = res.partition(".")
    value = ((c.get("resources") or {}).get(kind) or {}).get(what)
    if value is None and kind == "limits":
        value = {"cpu": "2", "memory": str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))}.get(what, "0")
    q = _q(value or "0")
    divisor = _q(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = Decimal(1)
    return str(int((q / divisor).to_integral_value(rounding=ROUND_CEILING)))


def field_value(pod: Obj, path: str, *, node_ip: str = "") -> str:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    values = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP") or node_ip, "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []) or node_ip,
    }
    if path in ("metadata.labels", "metadata.annotations"):
        d = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(d.items()))
    return str(values.get(path, ""))


def container_env(pod: Obj, container: Obj, image: ImageConfig, lookup: Lookup, *, pod_ip: str = "",
                  node_ip: str = "", service_env: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment, in upstream's order: image env, service links, envFrom, env."""
    env: dict[str, str] = {}
    for kv in image.env:
        k, _, v = kv.partition("=")
        env[k] = v
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = pod_hostname(pod)
    env.update(service_env or {})
    pod = {**pod, "status": {**(pod.get("status") or {}), **({"podIP": pod_ip} if pod_ip else {})}}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = src.get(key)
            if not ref:
                continue
            obj = lookup(kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind[:-1]} "{ref.get("name")}" not found')
            data = dict(obj.get("data") or {})
            if kind == "configmaps":
                env.update({prefix + k: v for k, v in data.items()})
            else:
                env.update({prefix + k: _b64(v) for k, v in data.items()})
    for e in container.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = expand(e.get("value", ""), env)
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"].get("fieldPath", ""), node_ip=node_ip)
        elif "resourceFieldRef" in vf:
            env[name] = _resource_value(pod, vf["resourceFieldRef"], container["name"])
        else:
            for kind, key in (("configmaps", "configMapKeyRef"), ("secrets", "secretKeyRef")):
                ref = vf.get(key)
                if not ref:
                    continue
                obj = lookup(kind, ref.get("name", ""))
                data = (obj or {}).get("data") or {}
                if obj is None or ref.get("key") not in data:
                    if ref.get("optional"):
                        break
                    if obj is None:
                        raise ContainerConfigError(f'{kind[:-1]} "{ref.get("name")}" not found')
                    raise ContainerConfigError(
                        f"couldn't find key {ref.get('key')} in {'ConfigMap' if kind == 'configmaps' else 'Secret'} "
                        f"{pod['metadata'].get('namespace')}/{ref.get('name')}")
                v = data[ref["key"]]
                env[name] = v if kind == "configmaps" else _b64(v)
    return env


def _b64(v: str) -> str:
    import base64
    try:
        return base64.b64decode(v).decode("utf-8", "replace")
    except ValueError:
        return v


# ---------------------------------------------------------------- identity


def pod_hostname(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return os.uname().nodename
    return (spec.get("hostname") or pod["metadata"]["name"])[:63]


def _passwd_lookup(rootfs: str, name: str, file: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(rootfs, "etc", file)) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) > 3 and parts[0] == name:
                    return int(parts[2]), int(parts[3])
    except (OSError, ValueError):
        pass
    return None


def resolve_user(pod: Obj, container: Obj, image: ImageConfig, rootfs: str) -> Obj:
    """The OCI process.user; enforces runAsNonRoot with upstream's messages."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    image_user = image.user
    img_uid: int | None = 0
    img_gid: int | None = None
    if image_user:
        u, _, g = image_user.partition(":")
        if u.isdigit():
            img_uid = int(u)
        else:
            found = _passwd_lookup(rootfs, u, "passwd")
            img_uid, img_gid = found if found else (None, None)
        if g:
            if g.isdigit():
                img_gid = int(g)
            else:
                grp = _passwd_lookup(rootfs, g, "group")
                img_gid = grp[0] if grp else img_gid
    pod_ref = format_pod(pod).split("(")[0]
    if non_root:
        if uid is None:
            if img_uid is None:
                raise ContainerConfigError(
                    f"container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify user "
                    f'is non-root (pod: "{pod_ref}", container: {container["name"]})')
            if img_uid == 0:
                raise ContainerConfigError(
                    f'container has runAsNonRoot and image will run as root (pod: "{pod_ref}", '
                    f'container: {container["name"]})')
        elif uid == 0:
            raise ContainerConfigError(
                f'container\'s runAsUser breaks non-root policy (pod: "{pod_ref}", container: {container["name"]})')
    final_uid = uid if uid is not None else (img_uid or 0)
    final_gid = gid if gid is not None else (img_gid if img_gid is not None else 0)
    extra = [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        extra.append(int(psc["fsGroup"]))
    user: Obj = {"uid": int(final_uid), "gid": int(final_gid)}
    if extra:
        user["additionalGids"] = sorted(set(extra))
    return user


# ---------------------------------------------------------------- resources


def _q(v: Any) -> Decimal:
    return parse_quantity(str(v)) or Decimal(0)


def linux_resources(container: Obj) -> Obj:
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    out: Obj = {"devices": [{"allow": False, "access": "rwm"}]}
    cpu: Obj = {}
    req_cpu = requests.get("cpu", limits.get("cpu"))
    # upstream's MilliCPUToShares: 1024 per CPU, at least 2
    cpu["shares"] = max(2, int(_q(req_cpu) * 1024)) if req_cpu is not None else 2
    if "cpu" in limits:
        period = 100000
        cpu["period"] = period
        cpu["quota"] = max(1000, int(_q(limits["cpu"]) * period))
    out["cpu"] = cpu
    if "memory" in limits:
        mem = int(_q(limits["memory"]))
        out["memory"] = {"limit": mem, "swap": mem}
    return out


# ---------------------------------------------------------------- the whole config


@dataclass
class Mount:
    destination: str
    source: str
    read_only: bool = False
    type: str = "bind"
    options: list[str] = field(default_factory=list)

    def oci(self) -> Obj:
        if self.type == "bind":
            opts = ["rbind", "rprivate"] + (["ro"] if self.read_only else ["rw"])
            return {"destination": self.destination, "type": "bind", "source": self.source, "options": opts}
        return {"destination": self.destination, "type": self.type, "source": self.source,
                "options": self.options + (["ro"] if self.read_only else [])}


def capabilities(container: Obj) -> list[str]:
    sc = container.get("securityContext") or {}
    if sc.get("privileged"):
        return all_held_caps()
    caps = list(DEFAULT_CAPS)
    wanted = sc.get("capabilities") or {}

    def norm(c: str) -> str:
        c = c.upper()
        return c if c.startswith("CAP_") else "CAP_" + c
    drops = {norm(c) for c in wanted.get("drop") or []}
    if "CAP_ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    for c in wanted.get("add") or []:
        n = norm(c)
        if n == "CAP_ALL":
            caps = all_held_caps()
        elif n not in caps:
            caps.append(n)
    return caps


def seccomp_profile(pod: Obj, container: Obj) -> Obj | None:
    prof = ((container.get("securityContext") or {}).get("seccompProfile")
            or ((pod.get("spec") or {}).get("securityContext") or {}).get("seccompProfile") or {})
    if (container.get("securityContext") or {}).get("privileged"):
        return None
    if prof.get("type") != "RuntimeDefault":
        return None  # Unconfined, the kubelet's default
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": SECCOMP_DENY, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


def build_config(pod: Obj, container: Obj, image: ImageConfig, *, rootfs: str, env: dict[str, str],
                 user: Obj, mounts: list[Mount], netns: str | None, cgroups_path: str,
                 pid_ns: str | None = None, ipc_ns: str | None = None, tty: bool = False) -> Obj:
    """config.json for runc.  `netns`: path of the pod's network namespace (None: the host's).
    `pid_ns`/`ipc_ns`: join these (shareProcessNamespace / the pod's IPC); None for fresh ones, unless
    hostPID/hostIPC."""
    spec = pod.get("spec") or {}
    sc = container.get("securityContext") or {}
    privileged = bool(sc.get("privileged"))
    argv = command_line(container, image, env)
    if not argv:
        raise ContainerConfigError("no command specified")
    caps = capabilities(container)
    no_new_privs = sc.get("allowPrivilegeEscalation") is False
    process: Obj = {
        "terminal": tty,
        "user": user,
        "args": argv,
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": expand(container.get("workingDir") or image.working_dir or "/", env),
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": _nofile(), "soft": _nofile()}],
        "noNewPrivileges": bool(no_new_privs),
        "oomScoreAdj": 0,
    }
    if user.get("uid", 0) != 0:
        process["capabilities"]["effective"] = []
        process["capabilities"]["permitted"] = caps
    base_mounts: list[Obj] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755",
                                                                                 "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
    ]
    if not any(m.destination == "/dev/shm" for m in mounts):
        base_mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]})
    namespaces: list[Obj] = [{"type": "mount"}, {"type": "uts"}]
    if not spec.get("hostPID"):
        namespaces.append({"type": "pid", **({"path": pid_ns} if pid_ns else {})})
    if not spec.get("hostIPC"):
        namespaces.append({"type": "ipc", **({"path": ipc_ns} if ipc_ns else {})})
    if not spec.get("hostNetwork"):
        namespaces.append({"type": "network", **({"path": netns} if netns else {})})
    linux: Obj = {
        "namespaces": namespaces,
        "resources": linux_resources(container),
        "cgroupsPath": cgroups_path,
    }
    if privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    seccomp = seccomp_profile(pod, container)
    if seccomp:
        linux["seccomp"] = seccomp
    config: Obj = {
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": rootfs, "readonly": bool(sc.get("readOnlyRootFilesystem"))},
        "hostname": pod_hostname(pod),
        "mounts": base_mounts + [m.oci() for m in mounts],
        "linux": linux,
    }
    return config
