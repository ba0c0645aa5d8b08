"""`kubelite images import|ls|rm`: the node's image store from the command line.

The lead wires these into cli.py; each takes the parsed argparse namespace and returns an exit code.
`add_images_parser(sub)` builds the sub-commands with the flags these functions read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the commands: every `kubelite` command builds this parser, the agent too
    from .store import ImageStore


def store_dir(data_dir: str) -> str:
    """Where a node's image store lives under its data dir."""
    return os.path.join(os.path.abspath(os.path.expanduser(data_dir)), "images")


def _store(args: argparse.Namespace) -> ImageStore:
    from .store import ImageStore

    return ImageStore(store_dir(args.data_dir))


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


def images_import(args: argparse.Namespace) -> int:
    """`kubelite images import FILE… [--name NAME]`"""
    from .archive import ImportError_, import_archive

    store = _store(args)
    rc = 0
    for path in args.files:
        began = time.monotonic()
        try:
            records = import_archive(store, path, base_name=getattr(args, "name", None))
        except (ImportError_, OSError) as e:
            print(f"kubelite images import: error: {e}", file=sys.stderr)
            rc = 1
            continue
        for r in records:
            print(f"imported {r.name} ({r.id[:19]}) in {time.monotonic() - began:.2f}s")
    return rc


def images_ls(args: argparse.Namespace) -> int:
    """`kubelite images ls [-q]`: one line per name, as `crictl images` prints them."""
    records = _store(args).images()
    if getattr(args, "quiet", False):
        for r in records:
            print(r.id)
        return 0
    rows = [("IMAGE", "TAG", "IMAGE ID", "SIZE")]
    for r in records:
        repo, _, tag = r.name.rpartition(":") if "@" not in r.name else (r.name.split("@")[0], "", "")
        if "/" in tag:   # a registry port, not a tag
            repo, tag = r.name, "<none>"
        rows.append((repo, tag or "<none>", r.id.removeprefix("sha256:")[:13], _human(r.size)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def images_rm(args: argparse.Namespace) -> int:
    """`kubelite images rm NAME|ID…`: untag, then free what nothing uses any more."""
    from .reference import InvalidReference, normalize

    store = _store(args)
    rc = 0
    for name in args.images:
        candidates = [name]
        try:
            candidates.insert(0, normalize(name))
        except InvalidReference:
            pass
        removed: list[str] = []
        for c in candidates:
            removed = store.remove_image(c)
            if removed:
                break
        if not removed:
            print(f"kubelite images rm: error: no such image: {name}", file=sys.stderr)
            rc = 1
        for n in removed:
            print(f"Deleted: {n}")
    freed = store.gc()
    if freed["layers"] or freed["blobs"]:
        print(f"freed {_human(freed['bytes'])} ({freed['layers']} layers, {freed['blobs']} blobs)")
    return rc


def add_images_parser(sub: argparse._SubParsersAction, default_data_dir: str) -> argparse.ArgumentParser:
    """Add `images import|ls|rm` to the kubelite command; each sub-parser sets `func`."""
    p = sub.add_parser("images", help="manage the node's container images",
                       description="Manage the images in the node's image store.")
    p.add_argument("--data-dir", default=default_data_dir, help="data dir (default: %(default)s)")
    isub = p.add_subparsers(dest="images_command", metavar="COMMAND", required=True)
    imp = isub.add_parser("import", help="import docker-save or OCI archives")
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--name", default=None,
                     help="name for an image the archive names by tag only, or not at all")
    imp.set_defaults(func=images_import)
    ls = isub.add_parser("ls", help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    ls.set_defaults(func=images_ls)
    rm = isub.add_parser("rm", help="remove images")
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    rm.set_defaults(func=images_rm)
    for child in (imp, ls, rm):  # `kubelite images ls --data-dir D` works as well as `images --data-dir D ls`
        child.add_argument("--data-dir", default=argparse.SUPPRESS, help="data dir")
    return p
