#!/usr/bin/env python3
"""Generate src/kubelite/api/proto_messages.py: field tables for decoding kubectl's protobuf bodies.

Where the message definitions come from
---------------------------------------
Upstream's `generated.proto` files (k8s.io/api and k8s.io/apimachinery, written by go-to-protobuf) are
compiled into every Go client as gzipped `FileDescriptorProto`s (gogo's `fileDescriptor_<hash>` blobs,
registered under names like `k8s.io/api/core/v1/generated.proto`). This script reads them straight out
of the kubectl binary we talk to, by default `/usr/lib/google-cloud-sdk/bin/kubectl.1.33`
(kubectl v1.33, i.e. k8s.io/api and k8s.io/apimachinery at tag v0.33.x / kubernetes v1.33).
The compiled descriptors are the `.proto` files' content plus the gogoproto options that go-to-protobuf
strips from the published `.proto`: `(gogoproto.nullable) = false` tells which Go fields are
values rather than pointers, which we need to reproduce Go's `omitempty` JSON output.

`--check-proto-dir DIR` cross-checks the table against plain `generated.proto` files laid out as
`DIR/k8s.io/api/core/v1/generated.proto`, … (e.g. fetched from github.com/kubernetes/kubernetes
`staging/src/k8s.io/...` at tag v1.33.0): every message and field number/name/type found there must match.
The `.proto` files are reference material and are not kept in this repository.

JSON names come from the proto field names, corrected where they differ (case only, e.g.
BoundObjectReference's `aPIVersion`/`uID`) against the OpenAPI definitions of v1.33
(`kubelite.api.schemas.definitions()`); a message field that the definition lacks but whose own fields
the definition has is a Go `json:",inline"` embedding (Volume.volumeSource, Probe.handler, …).
Field flags: REPEATED; POINTER (nullable Go field: emit whenever present on the wire); REQUIRED
(in the definition's `required` list, i.e. no `omitempty`: emit zero values too); INLINE.

Run: python scripts/gen_proto_messages.py [--kubectl PATH] [--check-proto-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import pprint
import re
import sys
import zlib

DEFAULT_KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "kubelite", "api", "proto_messages.py")

FILES = [
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/batch/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/discovery/v1/generated.proto",
    "k8s.io/api/storage/v1/generated.proto",
    "k8s.io/api/events/v1/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/scheduling/v1/generated.proto",
    "k8s.io/api/authentication/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/autoscaling/v2/generated.proto",
    "k8s.io/api/certificates/v1/generated.proto",
]

# Messages whose JSON form is not an object; the decoder has a converter for each.
SPECIAL = {
    "apis.meta.v1.Time", "apis.meta.v1.MicroTime", "apis.meta.v1.Duration", "apis.meta.v1.FieldsV1",
    "api.resource.Quantity", "api.resource.QuantityValue", "util.intstr.IntOrString",
    "runtime.RawExtension", "runtime.Unknown", "runtime.TypeMeta",
}

SCALARS = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
           8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
           17: "sint32", 18: "sint64"}
REPEATED, POINTER, REQUIRED, INLINE = 1, 2, 4, 8
GOGO_NULLABLE = 65001


def short(full: str) -> str:
    """`.k8s.io.api.core.v1.Pod` → `core.v1.Pod`; `.k8s.io.apimachinery.pkg.apis.meta.v1.Time` → `apis.meta.v1.Time`."""
    full = full.lstrip(".")
    for prefix in ("k8s.io.api.", "k8s.io.apimachinery.pkg."):
        if full.startswith(prefix):
            return full[len(prefix):]
    return full


def openapi_name(name: str) -> str:
    if name.startswith(("apis.", "api.resource.", "util.", "runtime.")):
        return "io.k8s.apimachinery.pkg." + name
    return "io.k8s.api." + name


# --- a minimal protobuf reader, enough for descriptor.proto ---

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, val


def descriptors_from_binary(path: str) -> dict[str, bytes]:
    """name → serialized FileDescriptorProto, for every gzipped descriptor in a Go binary."""
    with open(path, "rb") as f:
        data = f.read()
    found: dict[str, bytes] = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", data):
        try:
            raw = zlib.decompressobj(31).decompress(data[m.start():m.start() + 4_000_000])
        except zlib.error:
            continue
        if raw[:1] != b"\n":
            continue
        try:
            name = next(v for n, v in fields(raw) if n == 1).decode()
        except (StopIteration, UnicodeDecodeError, IndexError, ValueError):
            continue
        if name.endswith("generated.proto"):
            found[name] = raw
    return found


def parse_file(raw: bytes) -> dict[str, dict]:
    """message short name → {"fields": [...], "map_entry": bool} for all (nested) messages in a file."""
    package = ""
    tops = []
    for num, val in fields(raw):
        if num == 2:
            package = val.decode()
        elif num == 4:
            tops.append(val)
    out: dict[str, dict] = {}

    def walk(msg: bytes, scope: str) -> None:
        name, flds, nested, map_entry = "", [], [], False
        for num, val in fields(msg):
            if num == 1:
                name = val.decode()
            elif num == 2:
                flds.append(val)
            elif num == 3:
                nested.append(val)
            elif num == 7:
                map_entry = any(n == 7 and v == 1 for n, v in fields(val))
        full = f"{scope}.{name}"
        parsed = []
        for f in flds:
            d = {"nullable": True, "type_name": ""}
            for num, val in fields(f):
                if num == 1:
                    d["name"] = val.decode()
                elif num == 3:
                    d["number"] = val
                elif num == 4:
                    d["label"] = val
                elif num == 5:
                    d["type"] = val
                elif num == 6:
                    d["type_name"] = val.decode()
                elif num == 8:
                    for on, ov in fields(val):
                        if on == GOGO_NULLABLE:
                            d["nullable"] = bool(ov)
            parsed.append(d)
        out[short(full)] = {"fields": parsed, "map_entry": map_entry}
        for n in nested:
            walk(n, full)

    for t in tops:
        walk(t, package)
    return out


def field_kind(d: dict, messages: dict[str, dict]):
    if d["type"] != 11:
        if d["type"] not in SCALARS:
            raise SystemExit(f"unsupported field type {d['type']} for {d['name']}")
        return SCALARS[d["type"]]
    target = short(d["type_name"])
    entry = messages.get(target)
    if entry and entry["map_entry"]:
        kv = {f["number"]: f for f in entry["fields"]}
        return ("map", field_kind(kv[1], messages), field_kind(kv[2], messages))
    return target


def build(descs: dict[str, bytes]) -> tuple[dict, dict, list[str], list[str]]:
    from kubelite.api import schemas

    defs = schemas.definitions()
    messages: dict[str, dict] = {}
    for name in FILES:
        if name not in descs:
            raise SystemExit(f"{name} not found in the binary")
        messages.update(parse_file(descs[name]))

    table: dict[str, dict[int, tuple]] = {}
    wrappers: list[str] = []
    notes: list[str] = []
    for mname, entry in sorted(messages.items()):
        if entry["map_entry"] or mname in SPECIAL:
            continue
        definition = defs.get(openapi_name(mname))
        props = (definition or {}).get("properties", {})
        required = set((definition or {}).get("required", ()))
        if definition is None:
            flds = entry["fields"]
            if len(flds) == 1 and flds[0]["name"] == "items" and flds[0]["label"] == 3:
                wrappers.append(mname)  # e.g. ExtraValue: a Go []string type, a JSON array
                continue
        by_lower = {p.lower(): p for p in props}
        row: dict[int, tuple] = {}
        for d in entry["fields"]:
            kind = field_kind(d, messages)
            flags = 0
            if d.get("label") == 3 and not isinstance(kind, tuple):
                flags |= REPEATED
            json_name = d["name"]
            if definition is not None and json_name not in props:
                if json_name.lower() in by_lower:
                    json_name = by_lower[json_name.lower()]
                elif isinstance(kind, str) and kind in messages:
                    sub = {f["name"].lower() for f in messages[kind]["fields"]}
                    if sub and sub <= set(by_lower):
                        flags |= INLINE
                    else:
                        notes.append(f"{mname}.{d['name']}: not in {openapi_name(mname)}")
                else:
                    notes.append(f"{mname}.{d['name']}: not in {openapi_name(mname)}")
            if d["nullable"] and not flags & (INLINE | REPEATED) and not isinstance(kind, tuple):
                flags |= POINTER
            if json_name in required:
                flags |= REQUIRED
            row[d["number"]] = (json_name, kind, flags)
        table[mname] = row

    kinds: dict[tuple[str, str], str] = {}
    for mname in table:
        definition = defs.get(openapi_name(mname)) or {}
        for gvk in definition.get("x-kubernetes-group-version-kind", ()):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            # meta/v1 kinds (DeleteOptions, WatchEvent, …) are listed under every group; the decoder
            # maps DeleteOptions itself; a message serves the version of its own package only
            if not mname.startswith("apis.") and gvk["version"] == mname.split(".")[1]:
                kinds[(api_version, gvk["kind"])] = mname
    return table, kinds, sorted(wrappers), notes


def check_proto_dir(table: dict, wrappers: list[str], root: str) -> int:
    """Compare field numbers, names and types with plain .proto files; returns the number of mismatches."""
    scalar_names = set(SCALARS.values())
    bad = 0
    for name in FILES:
        path = os.path.join(root, name)
        if not os.path.exists(path):
            continue
        text = re.sub(r"//[^\n]*", "", open(path).read())
        package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
        for m in re.finditer(r"message\s+(\w+)\s*\{([^{}]*)\}", text):
            mname = short(f"{package}.{m.group(1)}")
            if mname in SPECIAL or mname in wrappers:
                continue
            row = table.get(mname)
            if row is None:
                print(f"{path}: message {mname} missing from table")
                bad += 1
                continue
            for fm in re.finditer(r"(optional|repeated)?\s*(map<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;",
                                  m.group(2)):
                num, fname = int(fm.group(6)), fm.group(5)
                got = row.get(num)
                typ = fm.group(2)
                if fm.group(3):
                    want = ("map", fm.group(3), fm.group(4))
                else:
                    want = typ
                if got is None:
                    print(f"{mname}.{fname} = {num}: missing")
                    bad += 1
                    continue
                kind = got[1]
                if isinstance(kind, tuple):
                    ok = isinstance(want, tuple) and kind[1] == want[1] and \
                        (kind[2] == want[2] or short(want[2]).endswith(kind[2].split(".")[-1]))
                elif want in scalar_names:
                    ok = kind == want
                else:
                    ok = kind.split(".")[-1] == want.split(".")[-1]
                if not ok or got[0].lower() != fname.lower():
                    print(f"{mname}.{fname} = {num}: table has {got}, proto has {want}")
                    bad += 1
    return bad


def render(table: dict, kinds: dict, wrappers: list[str], source: str) -> str:
    lines = [
        '"""Protobuf field tables for the Kubernetes kinds kubelite decodes. GENERATED, do not edit.',
        "",
        f"Generator: scripts/gen_proto_messages.py; source: {source}.",
        "MESSAGES: message → {field number: (json name, kind, flags)}; kind is a scalar type name, a message",
        'name, or ("map", key kind, value kind). KINDS: (apiVersion, kind) → message.',
        '"""',
        "",
        "# ruff: noqa: E501",
        "REPEATED, POINTER, REQUIRED, INLINE = 1, 2, 4, 8",
        "",
        f"LIST_WRAPPERS = {set(wrappers)!r}",
        "",
        "KINDS = " + pprint.pformat(dict(sorted(kinds.items())), width=110, compact=True),
        "",
        "MESSAGES = {",
    ]
    for mname, row in table.items():
        lines.append(f"    {mname!r}: {{")
        for num, spec in sorted(row.items()):
            lines.append(f"        {num}: {spec!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubectl", default=DEFAULT_KUBECTL)
    ap.add_argument("--check-proto-dir")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    table, kinds, wrappers, notes = build(descriptors_from_binary(args.kubectl))
    for n in notes:
        print("note:", n, file=sys.stderr)
    if args.check_proto_dir:
        bad = check_proto_dir(table, wrappers, args.check_proto_dir)
        print(f"proto check: {bad} mismatches", file=sys.stderr)
        if bad:
            return 1
    source = f"descriptors compiled into {os.path.basename(args.kubectl)} (k8s.io/api, apimachinery v0.33)"
    with open(args.out, "w") as f:
        f.write(render(table, kinds, wrappers, source))
    print(f"wrote {len(table)} messages, {len(kinds)} kinds to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
