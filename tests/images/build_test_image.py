"""Small, reproducible test images built from busybox-static, and a local registry to push them to.

    python tests/images/build_test_image.py --out /tmp/layout                       # OCI layouts
    python tests/images/build_test_image.py --push 127.0.0.1:5000                    # push busybox + httpd
    python tests/images/build_test_image.py --serve /tmp/reg --port 5000 --push-all  # run a registry too

Images (each a single busybox layer, plus a page layer for httpd):
  busybox  — /bin/busybox + applet symlinks, /etc/passwd|group; Cmd ["sh"]
  httpd    — busybox + /var/www/index.html; Entrypoint ["httpd", "-f", "-v"], Cmd ["-p", "80", "-h", "/var/www"]
Everything is written with zero mtimes and owners and sorted entries, so digests never change.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

BUSYBOX = os.environ.get("BUSYBOX", "/bin/busybox")
APPLETS = ["sh", "ash", "ls", "cat", "sleep", "wget", "httpd", "nc", "echo", "env", "id", "true", "false",
           "mkdir", "rm", "ps", "hostname", "printenv", "pwd", "touch", "test", "grep", "head", "tail", "date",
           "kill", "uname", "cp", "mv", "ln", "chmod", "sed", "awk", "wc", "tee", "find", "stat", "whoami",
           "mount", "umount", "df", "du", "top", "vi", "xargs", "sort", "uniq", "tr", "cut", "seq", "yes",
           "dd", "ping", "ip", "ifconfig", "nslookup", "hexdump", "md5sum", "sha256sum", "tar", "gzip",
           "base64", "timeout", "watch", "free", "less", "more", "basename", "dirname", "readlink"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "2024-01-01T00:00:00Z"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- layers

@dataclass
class Entry:
    path: str
    kind: str = "file"          # file, dir, symlink, hardlink, whiteout, opaque
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


def make_tar(entries: list[Entry]) -> bytes:
    """An uncompressed layer tar; parents are added as directories, entries kept in the given order."""
    buf = io.BytesIO()
    seen: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(path: str, mode: int = 0o755) -> None:
            if path in seen or not path:
                return
            parent = os.path.dirname(path)
            add_dir(parent)
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
            tar.addfile(info)
            seen.add(path)

        for e in entries:
            path = e.path.strip("/")
            if e.kind == "dir":
                add_dir(path, e.mode)
                continue
            add_dir(os.path.dirname(path))
            if e.kind == "whiteout":
                path = os.path.join(os.path.dirname(path), ".wh." + os.path.basename(path))
            elif e.kind == "opaque":
                add_dir(path)
                path = os.path.join(path, ".wh..wh..opq")
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.mode = 0, e.uid, e.gid, e.mode
            if e.kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.link, 0o777
                tar.addfile(info)
            elif e.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e.link.strip("/")
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            seen.add(path)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        gz.write(data)
    return out.getvalue()


def busybox_entries() -> list[Entry]:
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    entries = [Entry("bin/busybox", data=binary, mode=0o755)]
    entries += [Entry(f"bin/{a}", "symlink", link="busybox") for a in sorted(APPLETS)]
    entries += [
        Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
        Entry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n"),
        Entry("root", "dir", mode=0o700), Entry("tmp", "dir", mode=0o1777), Entry("var/www", "dir"),
        Entry("usr/bin", "dir"), Entry("usr/sbin", "dir"), Entry("sbin", "dir"),
    ]
    return entries


# ---------------------------------------------------------------- images

@dataclass
class Image:
    config: bytes
    layers: list[bytes]                       # blobs as stored (gzip or not)
    diff_ids: list[str]
    manifest: bytes = b""
    media_type: str = OCI_MANIFEST
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)


def build_image(layer_tars: list[bytes], container_config: dict[str, Any], *, docker: bool = False,
                arch: str = "amd64", compress: bool = True) -> Image:
    """An image from uncompressed layer tars (gzip-compressed in the image unless `compress` is False)."""
    diff_ids = [digest_of(t) for t in layer_tars]
    config_doc = {"created": CREATED, "architecture": arch, "os": "linux", "config": container_config,
                  "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  "history": [{"created": CREATED, "created_by": "build_test_image.py"} for _ in layer_tars]}
    config = json.dumps(config_doc, sort_keys=True, separators=(",", ":")).encode()
    blobs = [gzip_bytes(t) if compress else t for t in layer_tars]
    layer_type = (DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP) if compress else \
        "application/vnd.oci.image.layer.v1.tar"
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": digest_of(config),
                   "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": digest_of(b), "size": len(b)} for b in blobs],
    }, separators=(",", ":")).encode()
    img = Image(config, blobs, diff_ids, manifest, media_type)
    img.blobs = {digest_of(b): b for b in [config, *blobs, manifest]}
    return img


def build_index(images: dict[str, Image]) -> bytes:
    """An OCI index over images keyed by "os/arch[/variant]"."""
    manifests = []
    for plat, img in images.items():
        os_, arch, *variant = plat.split("/")
        p = {"os": os_, "architecture": arch} | ({"variant": variant[0]} if variant else {})
        manifests.append({"mediaType": img.media_type, "digest": img.manifest_digest, "size": len(img.manifest),
                          "platform": p})
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests},
                      separators=(",", ":")).encode()


def busybox_image(**kw: Any) -> Image:
    return build_image([make_tar(busybox_entries())],
                       {"Env": [PATH_ENV, "IMAGE=busybox"], "Cmd": ["sh"], "WorkingDir": "/", "User": "root"}, **kw)


def httpd_image(page: bytes = b"<h1>hello from kubelite httpd</h1>\n", **kw: Any) -> Image:
    return build_image([make_tar(busybox_entries()), make_tar([Entry("var/www/index.html", data=page)])],
                       {"Env": [PATH_ENV, "IMAGE=httpd"], "Entrypoint": ["httpd", "-f", "-v"],
                        "Cmd": ["-p", "80", "-h", "/var/www"], "WorkingDir": "/var/www", "User": "0:0",
                        "ExposedPorts": {"80/tcp": {}}}, **kw)


def write_oci_layout(images: dict[str, Image], dest: str) -> str:
    """An OCI image layout with one index entry per name (full reference, e.g. docker.io/library/busybox:latest)."""
    os.makedirs(os.path.join(dest, "blobs", "sha256"), exist_ok=True)
    entries = []
    for name, img in images.items():
        for d, b in img.blobs.items():
            with open(os.path.join(dest, "blobs", "sha256", d.split(":")[1]), "wb") as f:
                f.write(b)
        entries.append({"mediaType": img.media_type, "digest": img.manifest_digest, "size": len(img.manifest),
                        "annotations": {"io.containerd.image.name": name,
                                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}})
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": entries}, f, separators=(",", ":"))
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return dest


def write_docker_save(img: Image, dest: str, repo_tags: list[str]) -> str:
    """A `docker save`-style tar (legacy layout: <id>/layer.tar uncompressed, <config hex>.json)."""
    buf = io.BytesIO()
    layer_tars = [gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b for b in img.layers]
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))

        layer_paths = []
        for t in layer_tars:
            lid = hashlib.sha256(t).hexdigest()
            add(f"{lid}/layer.tar", t)
            add(f"{lid}/VERSION", b"1.0")
            layer_paths.append(f"{lid}/layer.tar")
        config_name = img.config_digest.split(":")[1] + ".json"
        add(config_name, img.config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": repo_tags,
                                          "Layers": layer_paths}]).encode())
    with open(dest, "wb") as f:
        f.write(buf.getvalue())
    return dest


# ---------------------------------------------------------------- pushing

async def push_image(client: Any, ref: str, img: Image) -> str:
    """Push blobs and the manifest with kubelite's RegistryClient; returns the manifest digest."""
    for b in [img.config, *img.layers]:
        await client.push_blob(ref, b)
    return await client.push_manifest(ref, img.manifest, img.media_type)


async def push_index(client: Any, repo: str, tag: str, images: dict[str, Image]) -> str:
    """Push each platform's image by digest, then an index over them under `repo:tag`."""
    for img in images.values():
        await push_image(client, f"{repo}@{img.manifest_digest}", img)
    return await client.push_manifest(f"{repo}:{tag}", build_index(images), OCI_INDEX)


# ---------------------------------------------------------------- a local registry

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    """`docker-registry` on 127.0.0.1, storage in a temp dir; `stop()` ends it and removes the dir."""

    def __init__(self, root: str | None = None, port: int | None = None, binary: str = "docker-registry"):
        self.binary = shutil.which(binary) or binary
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="kubelite-registry-")
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 10.0) -> LocalRegistry:
        os.makedirs(os.path.join(self.root, "data"), exist_ok=True)
        config = os.path.join(self.root, "config.yml")
        with open(config, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.root}/data\n  delete:\n    enabled: true\n"
                    f"http:\n  addr: {self.host}\n")
        self.proc = subprocess.Popen([self.binary, "serve", config], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.root, "registry.log"), "wb"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {open(os.path.join(self.root, 'registry.log')).read()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("docker-registry did not come up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def push_standard_images(host: str, repo_prefix: str = "library") -> dict[str, str]:
    """Push busybox:latest and httpd:latest (and nginx:latest = httpd, for the tutorial) to `host`."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))
    from kubelite.kubelet.images.registry import RegistryClient

    out = {}
    async with RegistryClient() as client:
        for name, img in (("busybox", busybox_image()), ("httpd", httpd_image()), ("nginx", httpd_image())):
            ref = f"{host}/{repo_prefix}/{name}:latest"
            out[ref] = await push_image(client, ref, img)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write OCI layouts (busybox, httpd) under this directory")
    ap.add_argument("--push", metavar="HOST:PORT", help="push busybox, httpd and nginx(=httpd) to this registry")
    ap.add_argument("--serve", metavar="DIR", help="run docker-registry with storage in DIR until interrupted")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args(argv)
    if args.out:
        write_oci_layout({"docker.io/library/busybox:latest": busybox_image()}, os.path.join(args.out, "busybox"))
        write_oci_layout({"docker.io/library/httpd:latest": httpd_image()}, os.path.join(args.out, "httpd"))
        print(f"wrote {args.out}/busybox and {args.out}/httpd")
    reg = None
    if args.serve:
        reg = LocalRegistry(args.serve, args.port).start()
        print(f"registry at {reg.url} (storage {args.serve})", flush=True)
        args.push = args.push or reg.host
    if args.push:
        for ref, digest in asyncio.run(push_standard_images(args.push)).items():
            print(f"pushed {ref} {digest}")
    if reg is not None:
        try:
            reg.proc.wait()  # type: ignore[union-attr]
        except KeyboardInterrupt:
            reg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
