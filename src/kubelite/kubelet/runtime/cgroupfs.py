"""The cgroup filesystems runc needs, as this process sees them, and mounting them where they are hidden.

runc finds its hierarchies in /proc/self/mountinfo (cgroup v2 when /sys/fs/cgroup is a cgroup2 mount, else the
v1 `cgroup` mounts, plus a cgroup2 at /sys/fs/cgroup/unified on a hybrid host); without any it fails with
`no cgroup mount found in mountinfo`.  That is what happens under `ip netns exec NS …`: it unshares a mount
namespace and mounts a fresh sysfs on /sys, whose /sys/fs/cgroup is an empty directory.

In a mount namespace of its own the agent mounts the hierarchies the host (PID 1) has, at the same places and
with the same controllers.  Mounting a v1 hierarchy with the controllers of an existing one attaches that
hierarchy (no new one is created, nothing changes on the host), and the mounts live and die with the agent's
namespace.  In the host's own mount namespace it never mounts anything: it says what is missing instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger("kubelite.kubelet.cgroupfs")

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_FSTYPES = ("cgroup", "cgroup2")

# mount(2) flags for the per-mount options mountinfo shows
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_NOATIME, _MS_NODIRATIME, _MS_REC, _MS_SLAVE, _MS_RELATIME = 1024, 2048, 16384, 1 << 19, 1 << 21
_FLAGS = {"ro": _MS_RDONLY, "nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
          "noatime": _MS_NOATIME, "nodiratime": _MS_NODIRATIME, "relatime": _MS_RELATIME}
# superblock options that are not the hierarchy's identity (and would conflict when attaching it)
_DROP_SUPER = ("rw", "ro")
_DROP_SUPER_PREFIX = ("release_agent=",)


@dataclass(frozen=True)
class Mount:
    """One line of /proc/<pid>/mountinfo."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: str  # per-mount options (rw,nosuid,…)
    optional: tuple[str, ...]  # shared:N, master:N, …
    fstype: str
    source: str
    super_options: str

    @property
    def controllers(self) -> list[str]:
        """A v1 hierarchy's controllers (name=… included), from its superblock options."""
        return [o for o in self.super_options.split(",") if o and o not in _DROP_SUPER
                and not o.startswith(_DROP_SUPER_PREFIX)]


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 2:
            continue
        with contextlib.suppress(ValueError):
            mounts.append(Mount(int(fields[0]), int(fields[1]), _unescape(fields[3]), _unescape(fields[4]),
                                fields[5], tuple(fields[6:]), rest[0], _unescape(rest[1]),
                                rest[2] if len(rest) > 2 else ""))
    return mounts


def read_mountinfo(path: str = "/proc/self/mountinfo") -> list[Mount]:
    with open(path) as f:
        return parse_mountinfo(f.read())


def cgroup_mounts(mounts: list[Mount]) -> list[Mount]:
    return [m for m in mounts if m.fstype in CGROUP_FSTYPES]


def describe(mounts: list[Mount]) -> str:
    """`cgroup v1 (cpu, memory, …) + cgroup2 at /sys/fs/cgroup/unified` — what runc will find."""
    cg = cgroup_mounts(mounts)
    v2 = [m for m in cg if m.fstype == "cgroup2"]
    if any(m.mount_point == CGROUP_ROOT for m in v2):
        return f"cgroup v2 at {CGROUP_ROOT}"
    v1 = [m for m in cg if m.fstype == "cgroup"]
    if not v1:
        return ", ".join(f"cgroup2 at {m.mount_point}" for m in v2) or "none"
    text = "cgroup v1 (" + ", ".join(os.path.basename(m.mount_point) for m in v1) + ")"
    return text + "".join(f" + cgroup2 at {m.mount_point}" for m in v2)


def runc_finds_cgroups(mounts: list[Mount]) -> bool:
    """What runc checks: a cgroup2 at /sys/fs/cgroup, or at least one v1 hierarchy in this mountinfo."""
    cg = cgroup_mounts(mounts)
    return any(m.fstype == "cgroup" for m in cg) or any(m.mount_point == CGROUP_ROOT for m in cg)


def own_mount_namespace(self_pid: str = "self", host_pid: str = "1") -> bool | None:
    """Whether this process has a mount namespace other than PID 1's; None when that cannot be told.

    The namespace links are compared first; where /proc/1/ns is not readable (some sandboxes), the mount ids of
    "/" tell it: every mount of a new namespace gets a new id."""
    with contextlib.suppress(OSError):
        return os.stat(f"/proc/{self_pid}/ns/mnt").st_ino != os.stat(f"/proc/{host_pid}/ns/mnt").st_ino
    try:
        mine = next(m.mount_id for m in read_mountinfo(f"/proc/{self_pid}/mountinfo") if m.mount_point == "/")
        host = next(m.mount_id for m in read_mountinfo(f"/proc/{host_pid}/mountinfo") if m.mount_point == "/")
    except (OSError, StopIteration):
        return None
    return mine != host


@dataclass
class CgroupReport:
    ok: bool  # runc will find its cgroups
    found: str  # describe() of what this process sees (after mounting, if it did)
    mounted: list[str] = field(default_factory=list)  # mount points this call mounted
    reason: str = ""  # why runc will not find them, when not ok
    mountable: bool = False  # missing here, but ensure_cgroups() would mount them (for doctor)


def _host_cgroup_tree(host: list[Mount]) -> list[Mount]:
    """PID 1's mounts that make up /sys/fs/cgroup (the tmpfs holding the v1 hierarchies, the hierarchies)."""
    return [m for m in host if (m.mount_point == CGROUP_ROOT or m.mount_point.startswith(CGROUP_ROOT + "/"))
            and m.fstype in ("tmpfs", *CGROUP_FSTYPES)]


def inspect(self_path: str = "/proc/self/mountinfo", host_path: str = "/proc/1/mountinfo",
            own_ns: bool | None | str = "detect") -> CgroupReport:
    """What runc will find here, and — when it finds nothing — whether ensure_cgroups() can fix it, or why not."""
    try:
        mine = read_mountinfo(self_path)
    except OSError as e:
        return CgroupReport(False, "unknown", reason=f"cannot read {self_path}: {e.strerror}")
    if runc_finds_cgroups(mine):
        return CgroupReport(True, describe(mine))
    base = f"no cgroup mount found in mountinfo ({self_path})"
    try:
        host = _host_cgroup_tree(read_mountinfo(host_path))
    except OSError as e:
        return CgroupReport(False, "none", reason=f"{base}, and {host_path} is not readable ({e.strerror}), so "
                                                  "there is nothing to copy: mount the cgroup filesystems first")
    if not runc_finds_cgroups(host):
        return CgroupReport(False, "none", reason=f"{base}, nor in the host's ({host_path}): mount the cgroup "
                                                  f"filesystems on the host first (e.g. `mount -t cgroup2 none "
                                                  f"{CGROUP_ROOT}`)")
    own = own_mount_namespace() if own_ns == "detect" else own_ns
    if own is None:
        return CgroupReport(False, "none", reason=f"{base}; the host has {describe(host)}, but whether this "
                                                  "process has a mount namespace of its own cannot be told "
                                                  "(/proc/self/ns/mnt vs /proc/1/ns/mnt), so nothing is mounted")
    if not own:
        return CgroupReport(False, "none", reason=f"{base}, in the host's own mount namespace; the host has "
                                                  f"{describe(host)}; not mounting anything there")
    return CgroupReport(False, "none", mountable=True,
                        reason=f"{base}: /sys was remounted in a mount namespace of its own (as `ip netns exec` "
                               f"does); the host has {describe(host)}")


_libc: ctypes.CDLL | None = None


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} -o {data or '(none)'} {source} {target}: {os.strerror(err)}")


def _flags(options: str) -> int:
    flags = 0
    for o in options.split(","):
        flags |= _FLAGS.get(o, 0)
    return flags


def _parent_of(mounts: list[Mount], path: str) -> Mount | None:
    best = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        if (path == mp or path.startswith(mp + "/") or mp == "/") and (best is None
                                                                       or len(mp) >= len(best.mount_point)):
            best = m
    return best


def ensure_cgroups(self_path: str = "/proc/self/mountinfo", host_path: str = "/proc/1/mountinfo") -> CgroupReport:
    """Make runc find its cgroups: nothing to do when they are visible; in a mount namespace of its own, mount
    what PID 1 has under /sys/fs/cgroup at the same places; otherwise a report saying why not."""
    report = inspect(self_path, host_path)
    if report.ok or not report.mountable:
        return report
    mine = read_mountinfo(self_path)
    parent = _parent_of(mine, CGROUP_ROOT)
    if parent is not None and any(o.startswith("shared:") for o in parent.optional):
        # our mounts must not propagate to a peer (the host): receive only, in this namespace's copy
        _mount("none", parent.mount_point, None, _MS_REC | _MS_SLAVE, "")
    mounted: list[str] = []
    try:
        for m in _host_cgroup_tree(read_mountinfo(host_path)):
            os.makedirs(m.mount_point, exist_ok=True)
            if m.fstype == "tmpfs":
                data = ",".join(o for o in m.super_options.split(",") if o.startswith(("mode=", "size=")))
                _mount("tmpfs", m.mount_point, "tmpfs", _flags(m.options), data or "mode=755")
            elif m.fstype == "cgroup":
                _mount("cgroup", m.mount_point, "cgroup", _flags(m.options), ",".join(m.controllers))
                name = os.path.basename(m.mount_point)
                if "," in name:  # cpu,cpuacct: the per-controller symlinks systemd makes beside it
                    for alias in name.split(","):
                        link = os.path.join(os.path.dirname(m.mount_point), alias)
                        if not os.path.lexists(link):
                            with contextlib.suppress(OSError):
                                os.symlink(name, link)
            else:
                _mount("cgroup2", m.mount_point, "cgroup2", _flags(m.options), ",".join(m.controllers))
            mounted.append(m.mount_point)
    except OSError as e:
        found = describe(read_mountinfo(self_path))
        return CgroupReport(runc_finds_cgroups(read_mountinfo(self_path)), found, mounted,
                            f"{report.reason}; mounting them failed: {e.strerror or e}")
    after = read_mountinfo(self_path)
    ok = runc_finds_cgroups(after)
    return CgroupReport(ok, describe(after), mounted, "" if ok else f"{report.reason}; still none after mounting")
