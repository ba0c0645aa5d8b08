"""runc driven from asyncio, with conmon as the per-container shim.

`runc --root <node data>/runc` keeps the containers of one node apart from anything else on the host.
conmon (Debian's 2.1.x) holds the container's stdio: it writes the CRI log format (`<RFC3339Nano> stdout F
line`) to the log file, writes the exit code to `<exit dir>/<id>` and outlives the agent, so a restarted agent
re-adopts running containers from `runc state` and their exit files.  conmon runs with `--sync` as our child:
its exit is the container's exit, no polling needed while the agent lives.

Timings on the 2-core CI machine (node-runtime.md §1): conmon + create ≈ 30 ms, start ≈ 5 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kubelite.kubelet.runc")

Obj = dict[str, Any]


class RuntimeError_(Exception):
    """A runc/conmon failure; the message is runc's."""


def find_runtime(name: str = "runc") -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)),
                                      None)


def runtime_version(binary: str) -> str:
    import subprocess
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5).stdout
        return out.split()[2] if out.startswith(("runc version", "crun version")) else "unknown"
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class Running:
    """One started container: the init's host pid and, when we started it, conmon's process."""

    cid: str
    pid: int
    conmon: asyncio.subprocess.Process | None = None


class Runc:
    def __init__(self, root: str, *, binary: str | None = None, conmon: str | None = None) -> None:
        self.root = root
        self.binary = binary or find_runtime() or "runc"
        self.conmon = conmon if conmon is not None else shutil.which("conmon")
        os.makedirs(root, mode=0o700, exist_ok=True)

    def _cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    async def _run(self, *args: str, check: bool = True, timeout: float = 30.0) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(*self._cmd(*args), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError_(f"runc {args[0]} timed out") from None
        if check and proc.returncode != 0:
            raise RuntimeError_(_runc_message(err) or f"runc {args[0]} exited with {proc.returncode}")
        return proc.returncode or 0, out, err

    async def create_and_start(self, cid: str, bundle: str, log_path: str, exit_dir: str) -> Running:
        """Create the container under conmon (which owns its stdio and log), then start it."""
        os.makedirs(exit_dir, exist_ok=True)
        sock_dir = os.path.join(bundle, "sock")
        os.makedirs(sock_dir, exist_ok=True)
        pidfile = os.path.join(bundle, "pid")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pidfile)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(exit_dir, cid))
        if not self.conmon:
            raise RuntimeError_("conmon is not installed (apt-get install conmon)")
        proc = await asyncio.create_subprocess_exec(
            self.conmon, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", self.binary, "-b", bundle,
            "-p", pidfile, "-l", f"k8s-file:{log_path}", "--exit-dir", exit_dir, "--runtime-arg", f"--root={self.root}",
            "--runtime-arg", f"--log={os.path.join(bundle, 'runc.log')}",
            "--socket-dir-path", sock_dir, "--sync", "--log-level", "error",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + 30
        delay = 0.002
        while not os.path.exists(pidfile):
            if proc.returncode is not None or time.monotonic() > deadline:
                err = b""
                if proc.stderr is not None:
                    with contextlib.suppress(Exception):
                        err = await asyncio.wait_for(proc.stderr.read(), 1)
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
                with contextlib.suppress(RuntimeError_):
                    await self.delete(cid, force=True)
                with contextlib.suppress(OSError), open(os.path.join(bundle, "runc.log"), "rb") as f:
                    err = _last_error(f.read()) or err
                raise RuntimeError_(_runc_message(err) or f"container {cid} could not be created")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.02)
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
        if proc.stderr is not None:
            asyncio.ensure_future(_drain(proc.stderr))
        await self._run("start", cid)
        return Running(cid, pid, proc)

    async def state(self, cid: str) -> Obj | None:
        rc, out, _ = await self._run("state", cid, check=False)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    async def list(self) -> list[Obj]:
        rc, out, _ = await self._run("list", "--format", "json", check=False)
        if rc != 0 or not out.strip():
            return []
        try:
            return json.loads(out) or []
        except ValueError:
            return []

    async def kill(self, cid: str, sig: int = signal.SIGTERM) -> None:
        await self._run("kill", cid, str(int(sig)), check=False)

    async def delete(self, cid: str, *, force: bool = False) -> None:
        args = ["delete"] + (["--force"] if force else []) + [cid]
        rc, _, err = await self._run(*args, check=False)
        if rc != 0 and b"does not exist" not in err and b"not exist" not in err:
            raise RuntimeError_(_runc_message(err))

    async def exec(self, cid: str, argv: list[str], *, tty: bool = False, env: list[str] | None = None,
                   console_socket: str | None = None, **kw: Any) -> asyncio.subprocess.Process:
        """`runc exec` with pipes (or a console socket for a tty); the caller wires its stdio."""
        args = ["exec"]
        if tty:
            args += ["--tty", "--console-socket", console_socket or ""]
        for e in env or ():
            args += ["--env", e]
        args += [cid, *argv]
        return await asyncio.create_subprocess_exec(*self._cmd(*args), **kw)


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(4096):
            pass


def _runc_message(err: bytes) -> str:
    """runc prints logrus lines (`time=… level=error msg="…"`); keep the message."""
    text = err.decode("utf-8", "replace").strip()
    msgs = []
    for line in text.splitlines():
        if 'msg="' in line:
            msg = line.split('msg="', 1)[1].rsplit('"', 1)[0]
            msgs.append(msg.replace('\\"', '"'))
        elif line.strip():
            msgs.append(line.strip())
    return "; ".join(msgs)


def _last_error(log: bytes) -> bytes:
    lines = [line for line in log.splitlines() if b"level=error" in line]
    return lines[-1] if lines else b""


def read_exit_code(exit_dir: str, cid: str) -> int | None:
    try:
        with open(os.path.join(exit_dir, cid)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def oom_killed(cgroups_path: str) -> bool:
    """Whether the memory cgroup saw an OOM kill (v1 memory.oom_control, or v2 memory.events)."""
    for path, key in ((f"/sys/fs/cgroup/memory{cgroups_path}/memory.oom_control", "oom_kill"),
                      (f"/sys/fs/cgroup{cgroups_path}/memory.events", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == key and int(v) > 0:
                        return True
        except (OSError, ValueError):
            continue
    return False


def _cgroup_roots() -> list[str]:
    base = "/sys/fs/cgroup"
    roots = [base]
    with contextlib.suppress(OSError):
        roots += [os.path.join(base, d) for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))
                  and not os.path.islink(os.path.join(base, d))]
    return roots


def remove_cgroup(cgroups_path: str) -> None:
    """rmdir the cgroup (and nothing above it) in every mounted hierarchy; leaves busy ones."""
    for root in _cgroup_roots():
        p = root + cgroups_path
        if os.path.isdir(p):
            _rmdir_tree(p)


def child_cgroups(parent: str) -> set[str]:
    """The names of the cgroups directly under `parent` (e.g. /kubelite/<node>) in any hierarchy."""
    names: set[str] = set()
    for root in _cgroup_roots():
        with contextlib.suppress(OSError):
            names.update(e.name for e in os.scandir(root + parent) if e.is_dir(follow_symlinks=False))
    return names


def _rmdir_tree(path: str) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _rmdir_tree(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(path)
