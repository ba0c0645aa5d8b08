"""The lab's one container image, built on this machine from the host's static busybox, so no scenario needs
a registry or the network: `kubelite-lab/busybox:1` in the node's image store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile

IMAGE = "docker.io/kubelite-lab/busybox:1"
APPLETS = ("sh", "cat", "ls", "id", "echo", "env", "printenv", "sleep", "wget", "nc", "httpd", "chroot", "nsenter",
           "head", "grep", "hostname", "ps", "mount", "test", "true", "timeout", "base64", "tr", "cut", "stat",
           "sed", "awk", "wc", "find", "touch", "mkdir", "whoami", "uname", "ip")


def find_busybox() -> str | None:
    for path in (os.environ.get("BUSYBOX", ""), "/bin/busybox", "/usr/bin/busybox"):
        if path and os.path.exists(path):
            return path
    return None


def _layer(busybox: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "tmp", "var", "var/www", "host"):
            add_dir(d)
        with open(busybox, "rb") as f:
            add_file("bin/busybox", f.read(), 0o755)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_file("var/www/index.html", b"customer database: 4242 rows\n")
    return buf.getvalue()


def build_archive(dest_dir: str, busybox: str) -> str:
    """A docker-save directory (manifest.json, config, one layer) holding IMAGE; returns its path."""
    layer = _layer(busybox)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    os.makedirs(dest_dir, exist_ok=True)
    with open(os.path.join(dest_dir, "layer.tar"), "wb") as f:
        f.write(layer)
    with open(os.path.join(dest_dir, config_name), "wb") as f:
        f.write(config)
    with open(os.path.join(dest_dir, "manifest.json"), "w") as f:
        json.dump([{"Config": config_name, "RepoTags": [IMAGE], "Layers": ["layer.tar"]}], f)
    return dest_dir


def ensure_image(node_data_dir: str) -> str:
    """Import IMAGE into the node's store under `node_data_dir` (`<data-dir>/agent`) unless it is there."""
    from ..kubelet.images.archive import import_archive
    from ..kubelet.images.store import ImageStore

    store = ImageStore(os.path.join(node_data_dir, "images"))
    if store.get_image(IMAGE) is not None:
        return IMAGE
    busybox = find_busybox()
    if busybox is None:
        raise RuntimeError("no static busybox on this machine (apt-get install busybox-static) for the lab image")
    tmp = tempfile.mkdtemp(prefix="kubelite-lab-image-")
    try:
        import_archive(store, build_archive(tmp, busybox))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return IMAGE
