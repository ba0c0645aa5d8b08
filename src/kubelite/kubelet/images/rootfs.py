"""A container's root filesystem from an image's layers.

With root and overlayfs: one mount per container, the layer directories as read-only lowers and the
container's own upper/work directories, so a second pod from the same image costs a mkdir and a mount.
Otherwise the layers are merged into a private directory (copied, or hard-linked when the rootfs is
read-only, since hard links share the store's inodes), applying whiteouts on the way.

    <store>/containers/<id>/lease.json  the layers in use (the store's gc keeps them)
    <store>/containers/<id>/upper, work  overlayfs' writable layer
    <store>/containers/<id>/rootfs       what runc's config.json `root.path` points at
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass

from .store import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX, ImageRecord, ImageStore, StoreError

MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_overlay_ok: bool | None = None


class RootfsError(Exception):
    pass


@dataclass
class Rootfs:
    container_id: str
    path: str           # the directory to use as the container's root
    dir: str            # <store>/containers/<id>
    mode: str           # "overlay", "copy" or "hardlink"
    image_id: str

    @property
    def mounted(self) -> bool:
        return self.mode == "overlay" and os.path.ismount(self.path)


def _mount(source: str, target: str, fstype: str, options: str) -> None:
    if len(options) < 4000:
        if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode()) == 0:
            return
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")
    # Past a page of options the kernel refuses; relative lower paths from the layers dir keep it short.
    cwd = os.path.dirname(os.path.dirname(options.split("lowerdir=", 1)[1].split(":", 1)[0]))
    short = options.replace(cwd + "/", "")
    subprocess.run(["mount", "-t", fstype, "-o", short, source, target], cwd=cwd, check=True,
                   capture_output=True)


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):   # not mounted
        return
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def overlay_supported() -> bool:
    """Root, overlay in /proc/filesystems, and a probe mount that works (cached)."""
    global _overlay_ok
    if _overlay_ok is None:
        _overlay_ok = False
        if os.geteuid() == 0:
            try:
                with open("/proc/filesystems") as f:
                    listed = any(line.split()[-1] == "overlay" for line in f if line.strip())
            except OSError:
                listed = False
            _overlay_ok = listed
    return _overlay_ok


def _probe_overlay(base: str) -> bool:
    d = os.path.join(base, ".overlay-probe")
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("l", "u", "w", "m"):
        os.makedirs(os.path.join(d, sub))
    try:
        _mount("overlay", f"{d}/m", "overlay", f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w")
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            _umount(f"{d}/m")
        shutil.rmtree(d, ignore_errors=True)
    return True


class RootfsManager:
    """Makes and removes container root filesystems on top of an ImageStore."""

    def __init__(self, store: ImageStore, *, mode: str = "auto"):
        if mode not in ("auto", "overlay", "copy"):
            raise ValueError(f"rootfs mode must be auto, overlay or copy, not {mode!r}")
        self.store = store
        self._mode = mode
        self._overlay: bool | None = None

    @property
    def uses_overlay(self) -> bool:
        if self._overlay is None:
            if self._mode == "copy":
                self._overlay = False
            else:
                self._overlay = overlay_supported() and self.store.overlay_whiteouts and _probe_overlay(
                    os.path.join(self.store.root, "tmp"))
                if self._mode == "overlay" and not self._overlay:
                    raise RootfsError("overlayfs is not available here (needs root and the overlay filesystem)")
        return self._overlay

    def _dir(self, container_id: str) -> str:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise RootfsError(f"bad container id {container_id!r}")
        return os.path.join(self.store.root, "containers", container_id)

    def prepare(self, image: ImageRecord | str, container_id: str, *, read_only: bool = False) -> Rootfs:
        """A rootfs for `container_id` from `image` (a record, a name or an id).  Idempotent: preparing an
        existing container's rootfs again returns it (re-mounting it after a reboot)."""
        rec = image if isinstance(image, ImageRecord) else self.store.get_image(image)
        if rec is None:
            raise RootfsError(f"image {image!r} is not in the store")
        d = self._dir(container_id)
        existing = self.get(container_id)
        if existing is not None:
            if existing.mode == "overlay" and not existing.mounted:
                self._mount_overlay(rec, d)
            return existing
        missing = [x for x in rec.layers if not self.store.has_layer(x)]
        if missing:
            raise RootfsError(f"image {rec.name}: layer {missing[0]} is not unpacked")
        os.makedirs(d, exist_ok=True)
        overlay = self.uses_overlay and all(self.store.layer_format(x) == "overlay" for x in rec.layers)
        mode = "overlay" if overlay else ("hardlink" if read_only else "copy")
        self._write_lease(d, rec, mode)
        rootfs = os.path.join(d, "rootfs")
        try:
            if overlay:
                self._mount_overlay(rec, d)
            else:
                tmp = os.path.join(d, "rootfs.partial")
                shutil.rmtree(tmp, ignore_errors=True)
                os.mkdir(tmp)
                for diff_id in rec.layers:
                    _apply_layer(self.store.layer_path(diff_id), tmp, hardlink=read_only)
                os.rename(tmp, rootfs)
        except BaseException:
            self.remove(container_id)
            raise
        return Rootfs(container_id, rootfs, d, mode, rec.id)

    def _write_lease(self, d: str, rec: ImageRecord, mode: str) -> None:
        tmp = os.path.join(d, "lease.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"image": rec.id, "name": rec.name, "layers": rec.layers, "mode": mode}, f)
        os.replace(tmp, os.path.join(d, "lease.json"))

    def _mount_overlay(self, rec: ImageRecord, d: str) -> None:
        for sub in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        lowers = ":".join(self.store.layer_path(x) for x in reversed(rec.layers))
        _mount("overlay", os.path.join(d, "rootfs"), "overlay",
               f"lowerdir={lowers},upperdir={d}/upper,workdir={d}/work")

    def get(self, container_id: str) -> Rootfs | None:
        """The rootfs of a container prepared earlier (e.g. before an agent restart), or None."""
        d = self._dir(container_id)
        try:
            with open(os.path.join(d, "lease.json")) as f:
                lease = json.load(f)
        except (OSError, ValueError):
            return None
        return Rootfs(container_id, os.path.join(d, "rootfs"), d, lease.get("mode", "copy"), lease.get("image", ""))

    def remove(self, container_id: str) -> None:
        """Unmount and delete the container's rootfs and writable layer (a no-op when absent)."""
        d = self._dir(container_id)
        rootfs = os.path.join(d, "rootfs")
        if os.path.ismount(rootfs):
            _umount(rootfs)
        shutil.rmtree(d, ignore_errors=True)
        if os.path.exists(d):
            raise RootfsError(f"could not remove {d}")

    def list(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.store.root, "containers")))


def _is_whiteout_dev(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str, names: list[str]) -> bool:
    if OPAQUE_MARKER in names:
        return True
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _clear_dir(path: str) -> None:
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def _copy_meta(src_st: os.stat_result, dst: str, *, symlink: bool) -> None:
    with contextlib.suppress(OSError):
        os.lchown(dst, src_st.st_uid, src_st.st_gid)
    if not symlink:
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    with contextlib.suppress(OSError):
        os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _apply_layer(layer: str, target: str, *, hardlink: bool) -> None:
    """Lay one unpacked layer over `target`, honouring both whiteout forms."""
    dir_meta: list[tuple[os.stat_result, str]] = []
    for dirpath, dirnames, filenames in os.walk(layer):
        rel = os.path.relpath(dirpath, layer)
        tdir = target if rel == "." else os.path.join(target, rel)
        names = dirnames + filenames
        if rel != "." and _is_opaque(dirpath, names):
            _clear_dir(tdir)
        keep_dirs = []
        for name in names:
            src = os.path.join(dirpath, name)
            if name == OPAQUE_MARKER:
                continue
            if name.startswith(WHITEOUT_PREFIX):
                _remove_path(os.path.join(tdir, name[len(WHITEOUT_PREFIX):]))
                continue
            st = os.lstat(src)
            dst = os.path.join(tdir, name)
            if _is_whiteout_dev(st):
                _remove_path(dst)
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    dst_st = os.lstat(dst)
                    if not stat.S_ISDIR(dst_st.st_mode):
                        os.unlink(dst)
                        os.mkdir(dst)
                except FileNotFoundError:
                    os.mkdir(dst)
                dir_meta.append((st, dst))
                keep_dirs.append(name)
                continue
            _remove_path(dst)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
                _copy_meta(st, dst, symlink=True)
            elif stat.S_ISREG(st.st_mode):
                if hardlink:
                    os.link(src, dst)
                else:
                    shutil.copyfile(src, dst, follow_symlinks=False)
                    _copy_meta(st, dst, symlink=False)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(dst, stat.S_IMODE(st.st_mode))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                with contextlib.suppress(PermissionError):
                    os.mknod(dst, st.st_mode, st.st_rdev)
        dirnames[:] = [n for n in dirnames if n in keep_dirs]
    for st, dst in reversed(dir_meta):
        _copy_meta(st, dst, symlink=False)


def _remove_path(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


__all__ = ["Rootfs", "RootfsError", "RootfsManager", "StoreError", "overlay_supported"]
