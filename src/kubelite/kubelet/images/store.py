"""The node's image store: content-addressed blobs, layers unpacked once, and an index of named images.

    <root>/blobs/sha256/<hex>          manifests, configs and compressed layers, digest-checked on the way in
    <root>/layers/<hex of diff_id>/fs  one directory per unpacked layer (read-only lowers for overlayfs)
    <root>/containers/<id>/            per-container rootfs state (see rootfs.py); keeps its layers alive
    <root>/images.json                 name → image record
    <root>/tmp/                        downloads and extractions in progress (renamed into place when done)

Whiteouts: as root, a layer's `.wh.<name>` becomes an overlayfs whiteout (a 0/0 character device) and
`.wh..wh..opq` the `trusted.overlay.opaque` xattr on its directory, so the layer directories stack as
overlayfs lowers directly.  Without the privileges for that, the `.wh.` files are kept as they are and
only the copy fallback of rootfs.py (which understands both forms) can assemble them.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import tarfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

log = logging.getLogger("kubelite.kubelet.images")

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class StoreError(Exception):
    pass


@dataclass
class ImageRecord:
    name: str                       # "docker.io/library/nginx:latest" (or name@digest when pulled by digest)
    id: str                         # the config's digest, as containerd's image id
    repo_digest: str                # "docker.io/library/nginx@sha256:…" (what the tag pointed to)
    manifest_digest: str
    config_digest: str
    layers: list[str]               # diff_ids, base layer first
    layer_blobs: list[dict[str, Any]]   # the manifest's layer descriptors (digest, size, mediaType)
    size: int                       # compressed bytes, as `crictl images` shows
    created: str = ""
    pulled_at: float = field(default_factory=time.time)
    config: dict[str, Any] = field(default_factory=dict)   # the image config's "config" (Cmd, Env, …)

    @property
    def image_ref(self) -> str:
        """What a container status' imageID shows."""
        return self.repo_digest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _hex(digest: str) -> str:
    algo, _, h = digest.partition(":")
    if algo != "sha256" or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise StoreError(f"unsupported or malformed digest {digest!r}")
    return h


def can_make_overlay_whiteouts() -> bool:
    return os.geteuid() == 0


class _HashingReader(io.RawIOBase):
    """Reads a decompressed stream while hashing it, so a layer's diff_id is checked as it is unpacked."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.hash.update(data)
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _open_decompressed(f: IO[bytes]) -> IO[bytes]:
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise StoreError("zstd-compressed layers need the `zstandard` package") from None
        return zstandard.ZstdDecompressor().stream_reader(f)
    return f


def _safe_parts(name: str) -> list[str]:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise StoreError(f"refusing layer entry with '..': {name!r}")
    return parts


def _resolve_in_root(root: str, parts: list[str]) -> str:
    """The real directory for `parts` under `root`, following symlinks met on the way as if `root` were /."""
    resolved: list[str] = []
    todo = list(parts)
    hops = 0
    while todo:
        p = todo.pop(0)
        if p in ("", "."):
            continue
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        cur = os.path.join(root, *resolved, p)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            resolved.append(p)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise StoreError("too many levels of symbolic links in layer")
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            todo = [t for t in target.split("/") if t] + todo
            continue
        resolved.append(p)
    return os.path.join(root, *resolved)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def unpack_layer(stream: IO[bytes], dest: str, *, overlay_whiteouts: bool, privileged: bool) -> str:
    """Extract one layer tar (already decompressed) into `dest`; returns the sha256 diff_id it hashed."""
    reader = _HashingReader(stream)
    buffered = io.BufferedReader(reader, 1 << 20)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=buffered, mode="r|") as tar:
        for m in tar:
            parts = _safe_parts(m.name)
            if not parts:
                continue
            base = parts[-1]
            parent = _resolve_in_root(dest, parts[:-1]) if len(parts) > 1 else dest
            os.makedirs(parent, exist_ok=True)
            if base == OPAQUE_MARKER:
                if overlay_whiteouts:
                    os.setxattr(parent, OPAQUE_XATTR, b"y")
                else:
                    open(os.path.join(parent, OPAQUE_MARKER), "wb").close()
                continue
            if base.startswith(WHITEOUT_PREFIX):
                target = os.path.join(parent, base[len(WHITEOUT_PREFIX):])
                _remove(target)
                if overlay_whiteouts:
                    os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
                else:
                    open(os.path.join(parent, base), "wb").close()
                continue
            path = os.path.join(parent, base)
            if m.isdir():
                try:
                    st = os.lstat(path)
                    if not stat.S_ISDIR(st.st_mode):
                        os.unlink(path)
                        os.mkdir(path)
                except FileNotFoundError:
                    os.mkdir(path)
                dirs.append((path, m))
                continue
            _remove(path)
            if m.isreg():
                src = tar.extractfile(m)
                with open(path, "wb") as out:
                    if src is not None:
                        shutil.copyfileobj(src, out, 1 << 20)
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.islnk():
                target = _resolve_in_root(dest, _safe_parts(m.linkname))
                try:
                    os.link(target, path, follow_symlinks=False)
                except FileNotFoundError:
                    log.warning("layer hardlink %s → %s: target not in this layer; skipped", m.name, m.linkname)
                continue   # the inode's owner and mode are the target's
            elif m.ischr() or m.isblk():
                if not privileged:
                    continue
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
            elif m.isfifo():
                os.mkfifo(path, m.mode & 0o7777)
            else:
                continue
            _apply_meta(path, m, privileged)
        buffered.read()  # the tar's trailing blocks and padding count towards the diff_id
        reader.drain()
    for path, m in reversed(dirs):
        _apply_meta(path, m, privileged)
    return "sha256:" + reader.hash.hexdigest()


def _apply_meta(path: str, m: tarfile.TarInfo, privileged: bool) -> None:
    if privileged:
        with contextlib.suppress(OSError):
            os.lchown(path, m.uid, m.gid)
        for key, value in (m.pax_headers or {}).items():
            if key.startswith("SCHILY.xattr."):
                with contextlib.suppress(OSError):
                    os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
    if not m.issym():
        os.chmod(path, m.mode & 0o7777)
    with contextlib.suppress(OSError):
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


class ImageStore:
    """Thread-safe; several processes (the agent and `kubelite images …`) may share one root."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        for d in ("blobs/sha256", "layers", "containers", "tmp"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self._lock = threading.RLock()
        self._layer_locks: dict[str, threading.Lock] = {}
        self._index_cache: tuple[float, int, dict[str, ImageRecord]] | None = None
        self.overlay_whiteouts = can_make_overlay_whiteouts()
        self.privileged = os.geteuid() == 0

    # -- blobs

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.root, "blobs", "sha256", _hex(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def temp_path(self, hint: str = "") -> str:
        return os.path.join(self.root, "tmp", f"{hint}{uuid.uuid4().hex}")

    def commit_blob(self, tmp: str, digest: str, *, verify: bool = False) -> str:
        if verify:
            h = hashlib.sha256()
            with open(tmp, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if "sha256:" + h.hexdigest() != digest:
                os.unlink(tmp)
                raise StoreError(f"blob digest mismatch: expected {digest}, got sha256:{h.hexdigest()}")
        os.replace(tmp, self.blob_path(digest))
        return self.blob_path(digest)

    def write_blob(self, data: bytes, digest: str | None = None) -> str:
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest and digest != actual:
            raise StoreError(f"blob digest mismatch: expected {digest}, got {actual}")
        path = self.blob_path(actual)
        if not os.path.exists(path):
            tmp = self.temp_path("blob-")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return actual

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    # -- layers

    def layer_path(self, diff_id: str) -> str:
        """The directory holding the layer's files (an overlayfs lower)."""
        return os.path.join(self.root, "layers", _hex(diff_id), "fs")

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isdir(self.layer_path(diff_id))

    def layer_format(self, diff_id: str) -> str:
        """"overlay" (whiteouts as 0/0 devices and xattrs) or "aufs" (`.wh.` files)."""
        try:
            with open(os.path.join(self.root, "layers", _hex(diff_id), "format")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "overlay"

    def unpack(self, diff_id: str, blob: str | IO[bytes]) -> str:
        """Unpack a layer (a blob digest in the store, or an open stream) once; returns its directory.
        The uncompressed content must hash to `diff_id`."""
        with self._lock:
            lock = self._layer_locks.setdefault(diff_id, threading.Lock())
        with lock:
            final = os.path.join(self.root, "layers", _hex(diff_id))
            if os.path.isdir(os.path.join(final, "fs")):
                return os.path.join(final, "fs")
            work = self.temp_path("layer-")
            os.makedirs(os.path.join(work, "fs"))
            fmt = "overlay" if self.overlay_whiteouts else "aufs"
            try:
                with contextlib.ExitStack() as stack:
                    raw = stack.enter_context(open(self.blob_path(blob), "rb")) if isinstance(blob, str) else blob
                    stream = _open_decompressed(raw) if raw.seekable() else raw
                    got = unpack_layer(stream, os.path.join(work, "fs"), overlay_whiteouts=self.overlay_whiteouts,
                                       privileged=self.privileged)
                if got != diff_id:
                    raise StoreError(f"layer content does not match its diff_id: expected {diff_id}, got {got}")
                with open(os.path.join(work, "format"), "w") as f:
                    f.write(fmt)
                try:
                    os.rename(work, final)
                except OSError:
                    if not os.path.isdir(os.path.join(final, "fs")):
                        raise
                    shutil.rmtree(work, ignore_errors=True)
            except (OSError, tarfile.TarError, EOFError, zlib.error) as e:
                shutil.rmtree(work, ignore_errors=True)
                raise StoreError(f"failed to extract layer {diff_id}: {e}") from e
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            return os.path.join(final, "fs")

    # -- the index of named images

    @contextlib.contextmanager
    def _index_locked(self) -> Iterator[dict[str, ImageRecord]]:
        with self._lock, open(os.path.join(self.root, "lock"), "a+") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                index = self._load_index()
                yield index
                tmp = self.temp_path("index-")
                with open(tmp, "w") as f:
                    json.dump({k: v.to_dict() for k, v in sorted(index.items())}, f, indent=1)
                os.replace(tmp, os.path.join(self.root, "images.json"))
                self._index_cache = None
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    def _load_index(self) -> dict[str, ImageRecord]:
        path = os.path.join(self.root, "images.json")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        cached = self._index_cache
        if cached and cached[0] == st.st_mtime and cached[1] == st.st_ino:
            return dict(cached[2])
        with open(path) as f:
            index = {k: ImageRecord.from_dict(v) for k, v in json.load(f).items()}
        self._index_cache = (st.st_mtime, st.st_ino, index)
        return dict(index)

    def put_image(self, record: ImageRecord) -> None:
        with self._index_locked() as index:
            index[record.name] = record

    def images(self) -> list[ImageRecord]:
        with self._lock:
            return sorted(self._load_index().values(), key=lambda r: r.name)

    def get_image(self, name_or_id: str) -> ImageRecord | None:
        """By normalised name, by image id (full or a 12+ hex prefix) or by repo digest; None when absent
        or when one of its layers has gone."""
        with self._lock:
            index = self._load_index()
        rec = index.get(name_or_id)
        if rec is None:
            key = name_or_id.removeprefix("sha256:")
            for r in index.values():
                if (len(key) >= 12 and r.id.removeprefix("sha256:").startswith(key)) or r.repo_digest == name_or_id:
                    rec = r
                    break
        if rec is None or not all(self.has_layer(d) for d in rec.layers):
            return None
        return rec

    def remove_image(self, name: str) -> list[str]:
        """Untag `name` (or every name of an image id); returns the names removed.  Run gc() to free space."""
        with self._index_locked() as index:
            names = [name] if name in index else []
            if not names:
                key = name.removeprefix("sha256:")
                names = [n for n, r in index.items()
                         if (len(key) >= 12 and r.id.removeprefix("sha256:").startswith(key)) or r.repo_digest == name]
            for n in names:
                del index[n]
        return names

    # -- garbage collection

    def leased_layers(self) -> set[str]:
        out: set[str] = set()
        cdir = os.path.join(self.root, "containers")
        for cid in os.listdir(cdir):
            try:
                with open(os.path.join(cdir, cid, "lease.json")) as f:
                    out.update(json.load(f).get("layers") or [])
            except (OSError, ValueError):
                continue
        return out

    def gc(self, *, tmp_age: float = 3600.0) -> dict[str, int]:
        """Delete blobs and layers no image and no container uses; returns counts and bytes freed."""
        with self._index_locked() as index:
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set(self.leased_layers())
            for r in index.values():
                keep_blobs.update({r.manifest_digest, r.config_digest, r.repo_digest.rpartition("@")[2]})
                keep_blobs.update(b["digest"] for b in r.layer_blobs)
                keep_layers.update(r.layers)
            keep_blob_hex = {d.partition(":")[2] for d in keep_blobs}
            keep_layer_hex = {d.partition(":")[2] for d in keep_layers}
            freed = {"blobs": 0, "layers": 0, "bytes": 0}
            bdir = os.path.join(self.root, "blobs", "sha256")
            for h in os.listdir(bdir):
                if h not in keep_blob_hex:
                    p = os.path.join(bdir, h)
                    freed["bytes"] += os.path.getsize(p)
                    os.unlink(p)
                    freed["blobs"] += 1
            ldir = os.path.join(self.root, "layers")
            for h in os.listdir(ldir):
                if h not in keep_layer_hex:
                    freed["bytes"] += _du(os.path.join(ldir, h))
                    shutil.rmtree(os.path.join(ldir, h), ignore_errors=True)
                    freed["layers"] += 1
            tdir = os.path.join(self.root, "tmp")
            now = time.time()
            for name in os.listdir(tdir):
                p = os.path.join(tdir, name)
                with contextlib.suppress(OSError):
                    if now - os.lstat(p).st_mtime > tmp_age:
                        _remove(p)
        return freed


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total
