"""Objects in the store: JSON without metadata.resourceVersion; the resourceVersion is the key's mod revision.

Stored values always begin with apiVersion, kind, metadata, so the first `"metadata":{` in the bytes is the
object's own metadata and the resourceVersion can be spliced in without parsing (fast GET and LIST).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..storage.interface import KeyValue

_META = b'"metadata":{'


def encode(obj: dict[str, Any]) -> bytes:
    """Bytes to store: key order apiVersion, kind, metadata, rest; resourceVersion left out."""
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        meta = {k: v for k, v in meta.items() if k != "resourceVersion"}
    ordered: dict[str, Any] = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta}
    for k, v in obj.items():
        if k not in ordered:
            ordered[k] = v
    return orjson.dumps(ordered)


def with_revision(value: bytes, revision: int) -> bytes:
    """The stored bytes with metadata.resourceVersion set, without a parse."""
    i = value.find(_META)
    if i < 0:
        return value
    j = i + len(_META)
    rv = b'"resourceVersion":"%d"' % revision
    if value[j:j + 1] == b"}":
        return value[:j] + rv + value[j:]
    return value[:j] + rv + b"," + value[j:]


def decode(value: bytes, revision: int) -> dict[str, Any]:
    obj = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def decode_kv(kv: KeyValue) -> dict[str, Any]:
    return decode(kv.value, kv.mod_revision)


def kv_bytes(kv: KeyValue) -> bytes:
    return with_revision(kv.value, kv.mod_revision)
