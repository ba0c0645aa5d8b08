"""Layer unpacking (whiteouts, digests, unsafe paths), root filesystems (overlayfs and copies), gc."""

from __future__ import annotations

import io
import os
import time

import pytest

from images.build_test_image import Entry, digest_of, make_tar
from kubelite.kubelet.images import ImageRecord, ImageStore, RootfsManager, StoreError, overlay_supported

LAYERS = [
    [Entry("data/a.txt", data=b"a"), Entry("data/b.txt", data=b"b"), Entry("data/sub/deep.txt", data=b"d"),
     Entry("var/www/index.html", data=b"old"), Entry("keep.txt", data=b"keep"), Entry("gone/x", data=b"x"),
     Entry("bin/tool", data=b"#!/bin/sh\n", mode=0o755), Entry("bin/alias", "symlink", link="tool")],
    [Entry("data", "opaque"), Entry("data/c.txt", data=b"c"), Entry("var/www/index.html", "whiteout"),
     Entry("var/www/new.html", data=b"new"), Entry("gone", "whiteout")],
    [Entry("gone/back.txt", data=b"back"), Entry("bin/tool2", data=b"t2", mode=0o700),
     Entry("bin/hard", "hardlink", link="bin/tool2")],
]


def _tree(root: str) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    out[rel] = f.read().decode()
    return out


WANT = {"data": "dir", "data/c.txt": "c", "var": "dir", "var/www": "dir", "var/www/new.html": "new",
        "keep.txt": "keep", "gone": "dir", "gone/back.txt": "back", "bin": "dir", "bin/tool": "#!/bin/sh\n",
        "bin/alias": "-> tool", "bin/tool2": "t2", "bin/hard": "t2"}


def _image(store: ImageStore, layers=LAYERS, name="test/whiteouts:1") -> ImageRecord:
    tars = [make_tar(layer) for layer in layers]
    diff_ids = []
    for t in tars:
        d = digest_of(t)
        store.unpack(d, io.BytesIO(t))
        diff_ids.append(d)
    rec = ImageRecord(name=name, id="sha256:" + "1" * 64, repo_digest=f"{name}@sha256:" + "2" * 64,
                      manifest_digest="sha256:" + "2" * 64, config_digest="sha256:" + "1" * 64, layers=diff_ids,
                      layer_blobs=[], size=sum(map(len, tars)))
    store.put_image(rec)
    return rec


def test_whiteouts_copy_mode(store):
    rec = _image(store)
    rm = RootfsManager(store, mode="copy")
    r = rm.prepare(rec, "c1")
    assert r.mode == "copy"
    assert _tree(r.path) == WANT
    assert os.stat(os.path.join(r.path, "bin/tool2")).st_mode & 0o777 == 0o700
    ro = rm.prepare(rec, "c2", read_only=True)
    assert ro.mode == "hardlink" and _tree(ro.path) == WANT
    rm.remove("c1")
    rm.remove("c2")
    assert not os.path.exists(r.dir) and rm.list() == []


def test_whiteouts_without_privileges(tmp_path):
    """Stored as `.wh.` files (no mknod/xattrs), assembled by the copy fallback."""
    store = ImageStore(str(tmp_path / "s"))
    store.overlay_whiteouts = False
    rec = _image(store)
    assert store.layer_format(rec.layers[1]) == "aufs"
    assert os.path.exists(os.path.join(store.layer_path(rec.layers[1]), "var/www/.wh.index.html"))
    r = RootfsManager(store).prepare(rec, "c1")
    assert r.mode == "copy" and _tree(r.path) == WANT


@pytest.mark.skipif(not overlay_supported(), reason="needs root and overlayfs")
def test_whiteouts_overlay_mode(store):
    rec = _image(store)
    rm = RootfsManager(store, mode="overlay")
    r = rm.prepare(rec, "c1")
    try:
        assert r.mode == "overlay" and r.mounted
        assert _tree(r.path) == WANT
        # writes land in the container's upper dir, never in the shared layers
        with open(os.path.join(r.path, "keep.txt"), "w") as f:
            f.write("changed")
        os.unlink(os.path.join(r.path, "data/c.txt"))
        r2 = rm.prepare(rec, "c2")
        assert _tree(r2.path) == WANT
        assert open(os.path.join(store.layer_path(rec.layers[0]), "keep.txt")).read() == "keep"
        assert rm.get("c1").mounted
    finally:
        rm.remove("c1")
        rm.remove("c2")
    assert not os.path.exists(r.dir)


def test_layer_digest_checked_and_paths_confined(store):
    t = make_tar([Entry("a", data=b"a")])
    with pytest.raises(StoreError, match="does not match its diff_id"):
        store.unpack("sha256:" + "0" * 64, io.BytesIO(t))
    assert not store.has_layer("sha256:" + "0" * 64)
    evil = make_tar([Entry("../escape", data=b"x")])
    with pytest.raises(StoreError, match="'..'"):
        store.unpack(digest_of(evil), io.BytesIO(evil))
    # a symlink in the layer pointing outside stays inside the layer when written through
    sneaky = make_tar([Entry("link", "symlink", link="/etc"), Entry("link/passwd-owned", data=b"x")])
    d = store.unpack(digest_of(sneaky), io.BytesIO(sneaky))
    assert os.path.isfile(os.path.join(d, "etc/passwd-owned"))
    assert not os.path.exists("/etc/passwd-owned")


def test_gc_keeps_what_is_used(store):
    rec = _image(store)
    other = make_tar([Entry("orphan", data=b"o")])
    store.unpack(digest_of(other), io.BytesIO(other))
    store.write_blob(b"unreferenced")
    rm = RootfsManager(store, mode="copy")
    rm.prepare(rec, "c1")
    freed = store.gc()
    assert freed["layers"] == 1 and freed["blobs"] == 1
    assert store.remove_image(rec.name) == [rec.name]
    assert store.gc()["layers"] == 0          # container c1 still holds its layers
    rm.remove("c1")
    assert store.gc()["layers"] == len(rec.layers)
    assert store.images() == []


def test_index_lookup(store):
    rec = _image(store)
    assert store.get_image(rec.name) == rec
    assert store.get_image(rec.id).name == rec.name
    assert store.get_image(rec.id.removeprefix("sha256:")[:12]).name == rec.name
    assert store.get_image(rec.repo_digest).name == rec.name
    assert store.get_image("nope") is None
    # another process's write is seen (the index is re-read when the file changes)
    time.sleep(0.01)
    ImageStore(store.root).remove_image(rec.name)
    assert store.get_image(rec.name) is None
