"""Container log rotation, by the rule of the kubelet's container log manager.

Every `monitor_interval` seconds, the log of each running container is checked; once it reaches
`containerLogMaxSize` it is rotated:

1. among the rotated files `<log>.*`, leftovers of an interrupted rotation go (`*.tmp`, and an uncompressed
   file whose `.gz` exists);
2. the oldest are removed so that at most `containerLogMaxFiles - 2` rotated files stay (the current file and
   the one about to be rotated make up the rest);
3. every rotated file not compressed yet is gzip-compressed (`<log>.<stamp>.gz`);
4. the current file is renamed to `<log>.<YYYYMMDD-HHMMSS>` (local time) and the runtime is asked to reopen
   the container's log, which makes it write a fresh `<log>` (conmon: the `reopen` message on its ctl FIFO).

So after rotation the newest rotated file stays plain (a reader following the log can finish it) and older
ones are compressed.  `kubectl logs` reads the current file.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("kubelite.kubelet.logrotation")

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"
DEFAULT_MAX_SIZE = "10Mi"
DEFAULT_MAX_FILES = 5
DEFAULT_MONITOR_INTERVAL = 10.0  # containerLogMonitorInterval


@dataclass(frozen=True)
class LogRotatePolicy:
    max_size: int  # bytes; negative disables rotation
    max_files: int

    @classmethod
    def parse(cls, max_size: str | int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES) -> LogRotatePolicy:
        """containerLogMaxSize (a quantity: 10Mi, 500Ki, 1G, or bytes) and containerLogMaxFiles (> 1)."""
        if max_files <= 1:
            raise ValueError(f"invalid MaxFiles {max_files}, must be > 1")
        return cls(parse_max_size(max_size), max_files)

    @property
    def enabled(self) -> bool:
        return self.max_size >= 0


def parse_max_size(size: str | int) -> int:
    if isinstance(size, int):
        return size
    from ..api.quantity import parse_quantity

    text = str(size).strip()
    value = parse_quantity(text) if text else None
    if value is None:
        raise ValueError(f'failed to parse container log max size "{size}"')
    if value != int(value):
        raise ValueError(f'failed to parse container log max size "{size}": invalid max log size')
    return int(value)


def is_in_use(path: str, logs: Iterable[str]) -> bool:
    """Temporary files are not; compressed ones are; a plain file whose `.gz` exists is not."""
    if path.endswith(TMP_SUFFIX):
        return False
    if path.endswith(COMPRESS_SUFFIX):
        return True
    return path + COMPRESS_SUFFIX not in set(logs)


def split_unused(logs: list[str]) -> tuple[list[str], list[str]]:
    inuse = [p for p in logs if is_in_use(p, logs)]
    unused = [p for p in logs if not is_in_use(p, logs)]
    return inuse, unused


def excess(logs: list[str], max_files: int) -> tuple[list[str], list[str]]:
    """(to remove, to keep) so that at most `max_files - 2` rotated files stay; oldest go first."""
    ordered = sorted(logs)
    keep = max(max_files - 2, 0)
    cut = max(len(ordered) - keep, 0)
    return ordered[:cut], ordered[cut:]


def rotated_name(path: str, now: float | None = None) -> str:
    return f"{path}.{time.strftime(TIMESTAMP_FORMAT, time.localtime(now))}"


def all_logs(path: str) -> list[str]:
    """The container's log files in use, oldest first, the current one last (upstream's GetAllLogs)."""
    inuse, _ = split_unused(glob.glob(glob.escape(path) + ".*"))
    return sorted(inuse) + [path]


def compress(path: str) -> str:
    mode = os.stat(path).st_mode & 0o777
    tmp = path + TMP_SUFFIX
    try:
        with open(path, "rb") as src, open(tmp, "wb") as raw:
            os.fchmod(raw.fileno(), mode)
            with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
                shutil.copyfileobj(src, gz, 1 << 16)
        os.replace(tmp, path + COMPRESS_SUFFIX)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    os.unlink(path)
    return path + COMPRESS_SUFFIX


def prepare_rotation(path: str, policy: LogRotatePolicy) -> list[str]:
    """Steps 1–3 of the rule (cleanup, trim, compress); returns the rotated files kept."""
    logs = glob.glob(glob.escape(path) + ".*")
    logs, unused = split_unused(logs)
    for p in unused:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    remove, logs = excess(logs, policy.max_files)
    for p in remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    return [p if p.endswith(COMPRESS_SUFFIX) else compress(p) for p in logs]


def needs_rotation(path: str, policy: LogRotatePolicy) -> bool:
    if not policy.enabled:
        return False
    try:
        return os.stat(path).st_size >= policy.max_size
    except FileNotFoundError:
        return False


async def rotate_log(path: str, policy: LogRotatePolicy, reopen: Callable[[], Awaitable[None]],
                     now: float | None = None) -> str:
    """Rotate `path` (the caller checked it is due); `reopen()` makes the runtime write a fresh file.
    Returns the rotated file's name."""
    await asyncio.to_thread(prepare_rotation, path, policy)
    rotated = rotated_name(path, now)
    os.rename(path, rotated)
    try:
        await reopen()
    except Exception:
        # put it back so that the next round tries again, as upstream does
        with contextlib.suppress(OSError):
            os.rename(rotated, path)
        raise
    return rotated


def remove_logs(path: str) -> None:
    """A container's log and its rotated files (upstream's Clean)."""
    for p in glob.glob(glob.escape(path) + "*"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


async def reopen_conmon_log(bundle: str, path: str, timeout: float = 2.0) -> None:
    """Ask conmon (through `<bundle>/ctl`) to reopen its k8s-file log, and wait for the fresh file."""
    ctl = os.path.join(bundle, "ctl")
    fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO when conmon no longer listens
    try:
        os.write(fd, b"2 0 0\n")  # conmon's REOPEN_LOGS_EVENT
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise OSError(f"conmon did not reopen {path}")
        await asyncio.sleep(0.02)
