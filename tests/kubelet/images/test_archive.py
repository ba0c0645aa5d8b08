"""`kubelite images import|ls|rm`: docker-save archives and OCI layouts, offline."""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tarfile

import pytest

from images.build_test_image import busybox_image, httpd_image, write_docker_save, write_oci_layout
from kubelite.kubelet.images import ImportError_, RootfsManager, import_archive
from kubelite.kubelet.images.cli import add_images_parser, images_import, images_ls, images_rm, store_dir
from kubelite.kubelet.images.store import ImageStore


def test_import_docker_save(store, tmp_path):
    img = httpd_image()
    path = write_docker_save(img, str(tmp_path / "httpd.tar"), ["httpd:latest", "example.com/web/httpd:2"])
    recs = import_archive(store, path)
    assert [r.name for r in recs] == ["docker.io/library/httpd:latest", "example.com/web/httpd:2"]
    rec = store.get_image("docker.io/library/httpd:latest")
    assert rec.id == img.config_digest and rec.layers == img.diff_ids
    assert rec.config["Entrypoint"] == ["httpd", "-f", "-v"] and rec.config["WorkingDir"] == "/var/www"
    r = RootfsManager(store, mode="copy").prepare(rec, "c1")
    assert open(os.path.join(r.path, "var/www/index.html")).read().startswith("<h1>hello")
    assert os.path.islink(os.path.join(r.path, "bin/sh"))


def test_import_gzipped_docker_save(store, tmp_path):
    path = write_docker_save(busybox_image(), str(tmp_path / "bb.tar"), ["busybox:1"])
    with open(path, "rb") as f, open(path + ".gz", "wb") as out:
        out.write(gzip.compress(f.read()))
    assert [r.name for r in import_archive(store, path + ".gz")] == ["docker.io/library/busybox:1"]


def test_import_oci_layout_dir_and_archive(store, tmp_path):
    img = busybox_image()
    layout = write_oci_layout({"docker.io/library/busybox:oci": img}, str(tmp_path / "layout"))
    recs = import_archive(store, layout)
    assert recs[0].name == "docker.io/library/busybox:oci"
    assert recs[0].repo_digest == f"docker.io/library/busybox@{img.manifest_digest}"
    archive = str(tmp_path / "layout.tar")
    with tarfile.open(archive, "w") as t:
        for name in sorted(os.listdir(layout)):
            t.add(os.path.join(layout, name), arcname=name)
    other = ImageStore(str(tmp_path / "other"))
    assert import_archive(other, archive)[0].layers == img.diff_ids


def test_import_needs_a_name_for_tag_only_layouts(store, tmp_path):
    layout = write_oci_layout({"docker.io/library/x:v1": busybox_image()}, str(tmp_path / "l"))
    import json
    idx = json.load(open(os.path.join(layout, "index.json")))
    del idx["manifests"][0]["annotations"]["io.containerd.image.name"]
    json.dump(idx, open(os.path.join(layout, "index.json"), "w"))
    with pytest.raises(ImportError_, match="only by the tag 'v1'; give it a name"):
        import_archive(store, layout)
    assert import_archive(store, layout, base_name="myorg/tool")[0].name == "docker.io/myorg/tool:v1"
    with pytest.raises(ImportError_, match="neither a docker-save archive"):
        import_archive(store, str(tmp_path))


def test_skopeo_oci_archive(store, tmp_path):
    """An archive written by skopeo (not by us) imports too."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    import subprocess

    layout = write_oci_layout({"docker.io/library/busybox:latest": busybox_image()}, str(tmp_path / "l"))
    out = tmp_path / "sk.tar"
    subprocess.run(["skopeo", "--insecure-policy", "copy", f"oci:{layout}:latest", f"oci-archive:{out}:v9"],
                   check=True, capture_output=True)
    assert import_archive(store, str(out), base_name="skopeo/busybox")[0].name == "docker.io/skopeo/busybox:v9"


def test_cli_import_ls_rm(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_images_parser(parser.add_subparsers(dest="command"), str(tmp_path / "data"))
    path = write_docker_save(busybox_image(), str(tmp_path / "bb.tar"), ["busybox:latest", "127.0.0.1:5000/a/b:c"])

    def run(*argv):
        args = parser.parse_args(["images", "--data-dir", str(tmp_path / "data"), *argv])
        return args.func(args)

    assert run("import", path) == 0
    assert "imported docker.io/library/busybox:latest" in capsys.readouterr().out
    assert run("ls") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert lines[1].split()[:2] == ["127.0.0.1:5000/a/b", "c"]
    assert lines[2].split()[:2] == ["docker.io/library/busybox", "latest"]
    assert run("rm", "busybox") == 0
    assert "Deleted: docker.io/library/busybox:latest" in capsys.readouterr().out
    assert run("rm", "nosuch") == 1
    assert "no such image: nosuch" in capsys.readouterr().err
    assert run("rm", "127.0.0.1:5000/a/b:c") == 0
    assert "freed" in capsys.readouterr().out
    assert os.listdir(os.path.join(store_dir(str(tmp_path / "data")), "layers")) == []
    assert images_ls and images_import and images_rm
