"""One node with real containers per network namespace.

Two such nodes in one network namespace would share the bridge `kubelite0`, the KUBE-* iptables chains and the
add-ons' ports (53, 80, 443) and silently undo each other's work. Each takes an exclusive lock named after its
network namespace (several "machines" made of network namespaces on one kernel each get their own) and holds it
for as long as it runs; a second one is refused with a message naming the first.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys

LOCK_DIR = "/run/kubelite"


class NodeLockError(Exception):
    pass


def _netns_id() -> str:
    try:
        return str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        return "host"


def lock_path(lock_dir: str = LOCK_DIR) -> str:
    return os.path.join(lock_dir, f"node-netns-{_netns_id()}.lock")


def _holder(path: str) -> str:
    with contextlib.suppress(OSError), open(path) as f:
        return f.read().strip()
    return ""


def acquire(data_dir: str, what: str, lock_dir: str = LOCK_DIR) -> int:
    """Take this network namespace's node lock for the life of the process; returns the open descriptor.
    NodeLockError names the process that holds it."""
    os.makedirs(lock_dir, mode=0o755, exist_ok=True)
    path = lock_path(lock_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _holder(path) or "another process"
        raise NodeLockError(
            f"another kubelite runs real containers in this network namespace ({holder}). Two would share the "
            f"bridge kubelite0, the KUBE-* iptables chains and ports 53/80/443 and undo each other's work: stop "
            f"it first (`kubelite reset` removes what it left), or start this one with --node-runtime simulated"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, `kubelite {what}`, data dir {data_dir}\n".encode())
    return fd


def holder_pid(lock_dir: str = LOCK_DIR) -> int | None:
    """The pid of the process holding this namespace's lock, or None when it is free."""
    path = lock_path(lock_dir)
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _holder(path)
            with contextlib.suppress(ValueError, IndexError):
                return int(text.split()[1].rstrip(","))
            return -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _real_node_wanted(runtime: str) -> bool:
    if runtime == "auto":
        from ..doctor import real_node_possible

        return real_node_possible()[0]
    return runtime in ("runc", "crun")


def hold_node_lock(args: argparse.Namespace, data_dir: str, what: str) -> bool:
    """This network namespace's real-node lock, held for the life of the process (profiles/lock.py); False,
    with the reason printed, when another kubelite holds it."""
    runtime = getattr(args, "node_runtime", None) or getattr(args, "runtime", "auto")
    if not _real_node_wanted(runtime):
        return True

    try:
        acquire(data_dir, what)
    except NodeLockError as e:
        print(f"kubelite {what}: error: {e}", file=sys.stderr)
        return False
    except OSError as e:
        print(f"kubelite {what}: warning: cannot take the node lock in {LOCK_DIR}: {e}", file=sys.stderr)
    return True
