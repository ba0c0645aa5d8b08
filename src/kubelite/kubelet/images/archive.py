"""`kubelite images import`: images from a `docker save` tar or an OCI image layout (a directory, or a tar
of one — what `skopeo copy … oci-archive:` and `docker save` since 25 write), for machines without a
registry.  Compressed (gzip) archives are fine.

Names: docker-save archives carry them (`RepoTags`); OCI layouts carry them in the index's
`io.containerd.image.name` or `org.opencontainers.image.ref.name` annotation.  A ref.name that is only a
tag (`latest`, as skopeo writes) needs `base_name` (`--name busybox` → `docker.io/library/busybox:latest`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from .reference import InvalidReference, parse
from .registry import INDEX_TYPES, OCI_LAYER, OCI_MANIFEST, Platform, host_platform, select_platform
from .store import ImageRecord, ImageStore, StoreError

Opener = Callable[[str], IO[bytes]]


class ImportError_(Exception):
    """The archive cannot be imported (message says why)."""


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _source(path: str) -> Iterator[tuple[Opener, Callable[[str], bool]]]:
    if os.path.isdir(path):
        def open_dir(name: str) -> IO[bytes]:
            return open(os.path.join(path, name.lstrip("/")), "rb")

        yield open_dir, lambda name: os.path.exists(os.path.join(path, name.lstrip("/")))
        return
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise ImportError_(f"{path}: not a tar archive or OCI layout directory: {e}") from None
    with tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}

        def open_tar(name: str) -> IO[bytes]:
            m = members.get(name.removeprefix("./"))
            if m is None:
                raise FileNotFoundError(name)
            while m.islnk() or m.issym():
                m = members[os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
                            if m.issym() else m.linkname]
            f = tar.extractfile(m)
            if f is None:
                raise FileNotFoundError(name)
            return f

        yield open_tar, lambda name: name.removeprefix("./") in members


def _read(opener: Opener, name: str) -> bytes:
    with opener(name) as f:
        return f.read()


def _hash_stream(f: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
        n += len(chunk)
    return "sha256:" + h.hexdigest(), n


def _record(store: ImageStore, name: str, config_bytes: bytes, manifest_bytes: bytes, repo_digest: str,
            layer_descs: list[dict[str, Any]]) -> ImageRecord:
    config = json.loads(config_bytes)
    ref = parse(name)
    manifest_digest = _digest(manifest_bytes)
    return ImageRecord(
        name=str(ref), id=_digest(config_bytes), repo_digest=f"{ref.name}@{repo_digest or manifest_digest}",
        manifest_digest=manifest_digest, config_digest=_digest(config_bytes),
        layers=list(config["rootfs"]["diff_ids"]),
        layer_blobs=[{k: d[k] for k in ("digest", "size", "mediaType") if k in d} for d in layer_descs],
        size=len(config_bytes) + sum(int(d.get("size") or 0) for d in layer_descs),
        created=config.get("created") or "", pulled_at=time.time(), config=dict(config.get("config") or {}))


def _import_docker(store: ImageStore, opener: Opener, base_name: str | None) -> list[ImageRecord]:
    entries = json.loads(_read(opener, "manifest.json"))
    out = []
    for entry in entries:
        config_bytes = _read(opener, entry["Config"])
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(entry["Layers"]):
            raise ImportError_(f"{entry['Config']}: {len(diff_ids)} diff_ids for {len(entry['Layers'])} layers")
        descs = []
        for diff_id, layer in zip(diff_ids, entry["Layers"], strict=True):
            with opener(layer) as f:
                digest, size = _hash_stream(f)
            with opener(layer) as f:
                store.unpack(diff_id, f)
            descs.append({"mediaType": OCI_LAYER + ("" if digest == diff_id else "+gzip"),
                          "digest": digest, "size": size})
        store.write_blob(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": _digest(config_bytes), "size": len(config_bytes)},
                    "layers": descs}
        manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        store.write_blob(manifest_bytes)
        names = list(entry.get("RepoTags") or [])
        if not names:
            if not base_name:
                raise ImportError_("the archive's image has no RepoTags; give it a name (--name)")
            names = [base_name]
        for n in names:
            rec = _record(store, n, config_bytes, manifest_bytes, "", descs)
            store.put_image(rec)
            out.append(rec)
    return out


def _oci_name(desc: dict[str, Any], base_name: str | None) -> str:
    ann = desc.get("annotations") or {}
    full = ann.get("io.containerd.image.name")
    if full:
        return full
    ref_name = ann.get("org.opencontainers.image.ref.name")
    if ref_name and ("/" in ref_name or ref_name.count(":") >= 1 and "/" in ref_name.split(":")[0]):
        return ref_name
    if ref_name and base_name:
        return f"{parse(base_name, default_tag=False).name}:{ref_name}"
    if base_name:
        return base_name
    if ref_name:
        raise ImportError_(f"the OCI layout names its image only by the tag {ref_name!r}; give it a name (--name)")
    raise ImportError_("the OCI layout's image has no name annotation; give it a name (--name)")


def _import_oci(store: ImageStore, opener: Opener, base_name: str | None, platform: Platform) -> list[ImageRecord]:
    def blob(digest: str) -> bytes:
        algo, _, h = digest.partition(":")
        data = _read(opener, f"blobs/{algo}/{h}")
        if _digest(data) != digest:
            raise ImportError_(f"blob {digest} does not match its digest")
        return data

    index = json.loads(_read(opener, "index.json"))
    out = []
    for desc in index.get("manifests") or []:
        name = _oci_name(desc, base_name)
        top = blob(desc["digest"])
        doc = json.loads(top)
        manifest_bytes = top
        if (desc.get("mediaType") or doc.get("mediaType")) in INDEX_TYPES or "manifests" in doc:
            entry = select_platform(doc, platform)
            if entry is None:
                raise ImportError_(f"{name}: no image for platform {platform} in the archive")
            manifest_bytes = blob(entry["digest"])
            doc = json.loads(manifest_bytes)
        config_bytes = blob(doc["config"]["digest"])
        diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
        for diff_id, layer in zip(diff_ids, doc["layers"], strict=True):
            if store.has_layer(diff_id):
                continue
            algo, _, h = layer["digest"].partition(":")
            if not store.has_blob(layer["digest"]):
                tmp = store.temp_path("import-")
                with opener(f"blobs/{algo}/{h}") as src, open(tmp, "wb") as dst:
                    for chunk in iter(lambda src=src: src.read(1 << 20), b""):
                        dst.write(chunk)
                store.commit_blob(tmp, layer["digest"], verify=True)
            store.unpack(diff_id, layer["digest"])
        store.write_blob(config_bytes)
        store.write_blob(manifest_bytes)
        store.write_blob(top)
        rec = _record(store, name, config_bytes, manifest_bytes, desc["digest"], doc["layers"])
        store.put_image(rec)
        out.append(rec)
    return out


def import_archive(store: ImageStore, path: str, *, base_name: str | None = None,
                   platform: Platform | None = None) -> list[ImageRecord]:
    """Import every image of a docker-save tar or OCI layout/archive; returns their records."""
    if base_name:
        try:
            parse(base_name)
        except InvalidReference as e:
            raise ImportError_(f"--name {base_name!r}: {e}") from None
    with _source(path) as (opener, exists):
        try:
            if exists("manifest.json"):
                return _import_docker(store, opener, base_name)
            if exists("index.json"):
                return _import_oci(store, opener, base_name, platform or host_platform())
        except (KeyError, ValueError, FileNotFoundError, tarfile.TarError, StoreError) as e:
            if isinstance(e, InvalidReference):
                raise ImportError_(f"{path}: bad image name: {e}") from None
            raise ImportError_(f"{path}: {type(e).__name__}: {e}") from None
    raise ImportError_(f"{path}: neither a docker-save archive (manifest.json) nor an OCI layout (index.json)")
