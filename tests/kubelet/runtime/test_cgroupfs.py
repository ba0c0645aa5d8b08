"""What runc will find in mountinfo, and the agent mounting the host's cgroup hierarchies where `ip netns exec`
hid them (in a network namespace made and removed by the test)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from kubelite.kubelet.runtime import cgroupfs

HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory,release_agent=/x
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
NETNS_EXEC = """\
48 47 254:0 / / rw,relatime - ext4 /dev/vda rw
50 48 0:21 / /proc rw,relatime - proc proc rw
51 48 0:40 / /sys rw,relatime - sysfs kltest rw
"""
V2 = "27 1 254:0 / / rw - ext4 /dev/vda rw\n30 27 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_parse_and_describe():
    mounts = cgroupfs.parse_mountinfo(HYBRID)
    cpu = next(m for m in mounts if m.mount_point.endswith("cpu,cpuacct"))
    assert cpu.fstype == "cgroup" and cpu.controllers == ["cpu", "cpuacct"] and cpu.optional == ("shared:5",)
    memory = next(m for m in mounts if m.mount_point.endswith("memory"))
    assert memory.controllers == ["memory"]  # release_agent is no part of the hierarchy's identity
    assert cgroupfs.describe(mounts) == ("cgroup v1 (cpu,cpuacct, memory, systemd) + cgroup2 at "
                                         "/sys/fs/cgroup/unified")
    assert cgroupfs.describe(cgroupfs.parse_mountinfo(V2)) == "cgroup v2 at /sys/fs/cgroup"
    assert cgroupfs.runc_finds_cgroups(cgroupfs.parse_mountinfo(V2))
    assert not cgroupfs.runc_finds_cgroups(cgroupfs.parse_mountinfo(NETNS_EXEC))
    # a cgroup2 somewhere other than /sys/fs/cgroup, without v1 hierarchies, is not what runc looks for
    assert not cgroupfs.runc_finds_cgroups(cgroupfs.parse_mountinfo(
        "1 0 0:1 / /mnt/cg rw - cgroup2 cgroup2 rw\n"))
    assert cgroupfs.parse_mountinfo(r"5 1 0:9 / /a\040b rw - tmpfs x rw")[0].mount_point == "/a b"


def test_inspect_says_what_is_missing_and_why(tmp_path):
    host = write(tmp_path, "host", HYBRID)
    mine = write(tmp_path, "mine", NETNS_EXEC)
    assert cgroupfs.inspect(host, host).ok
    r = cgroupfs.inspect(mine, host, own_ns=True)
    assert not r.ok and r.mountable
    assert "no cgroup mount found in mountinfo" in r.reason and "ip netns exec" in r.reason
    assert "cgroup2 at /sys/fs/cgroup/unified" in r.reason
    r = cgroupfs.inspect(mine, host, own_ns=False)
    assert not r.ok and not r.mountable and "host's own mount namespace" in r.reason
    r = cgroupfs.inspect(mine, host, own_ns=None)
    assert not r.ok and not r.mountable and "cannot be told" in r.reason
    r = cgroupfs.inspect(mine, mine, own_ns=True)
    assert not r.ok and not r.mountable and "mount the cgroup filesystems on the host first" in r.reason


def test_this_process_shares_the_hosts_view():
    assert cgroupfs.own_mount_namespace() in (False, None)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="network namespaces need root and iproute2")

PROBE = """
import json, sys
from kubelite.kubelet.runtime import cgroupfs
before = cgroupfs.inspect()
after = cgroupfs.ensure_cgroups()
again = cgroupfs.ensure_cgroups()
print(json.dumps({"own": cgroupfs.own_mount_namespace(), "before": before.ok, "mountable": before.mountable,
                  "reason": before.reason, "after": after.ok, "mounted": after.mounted, "found": after.found,
                  "again": again.mounted,
                  "mine": [[m.mount_point, m.fstype, m.source] for m in cgroupfs.read_mountinfo()
                           if m.fstype.startswith("cgroup")]}))
"""


@pytest.fixture
def netns():
    name = f"kltest-cg-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@needs_root
def test_mounts_the_hosts_hierarchies_under_ip_netns_exec(netns):
    host_before = [m for m in cgroupfs.read_mountinfo() if m.fstype.startswith("cgroup")]
    if not cgroupfs.runc_finds_cgroups(host_before):
        pytest.skip("the host itself has no cgroup mounts")
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", PROBE], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    r = json.loads(out)
    assert r["own"] is True and r["before"] is False and r["mountable"] is True
    assert "no cgroup mount found in mountinfo" in r["reason"]
    assert r["after"] is True and r["again"] == []  # idempotent
    # the same hierarchies at the same places as the host's
    host = {(m.mount_point, m.fstype) for m in host_before}
    assert {(mp, fs) for mp, fs, _ in r["mine"]} == host
    assert set(r["mounted"]) >= {mp for mp, _ in host}
    # the host's mount table is as it was
    assert [m for m in cgroupfs.read_mountinfo() if m.fstype.startswith("cgroup")] == host_before


@needs_root
def test_nsenter_net_keeps_the_hosts_mounts(netns):
    out = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", PROBE],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    r = json.loads(out)
    assert r["before"] is True and r["mounted"] == [] and r["own"] is False


@needs_root
def test_doctor_in_the_namespace_says_what_runc_will_find(netns):
    env = {k: v for k, v in os.environ.items()}
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                          "import sys; from kubelite import doctor; sys.exit(doctor.run(False))"],
                         capture_output=True, text=True, timeout=30, env=env).stdout
    line = next(x for x in out.splitlines() if " cgroups " in x)
    assert line.startswith("WARN") and "no cgroup mount found in mountinfo" in line
    assert "the node agent mounts the same hierarchies" in line
    out = subprocess.run([sys.executable, "-c", "import sys; from kubelite import doctor; sys.exit(doctor.run(False))"],
                         capture_output=True, text=True, timeout=30).stdout
    line = next(x for x in out.splitlines() if " cgroups " in x)
    assert line.startswith("ok") and "in /proc/self/mountinfo" in line
