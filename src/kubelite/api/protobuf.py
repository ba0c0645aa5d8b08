"""Decoding of `application/vnd.kubernetes.protobuf` request bodies into Kubernetes JSON-shaped dicts.

The body is the 4-byte magic `k8s\\0` and a `runtime.Unknown` envelope (typeMeta, raw object bytes).
The object is decoded with the field tables in `proto_messages` (generated from upstream's
generated.proto). The result equals what kubectl prints for the same object with `-o json`:
Go's encoding/json drops zero-valued `omitempty` value fields, but prints pointer fields whenever set,
value structs always (as `{}`), and fields without `omitempty` (the definition's `required`) always.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from kubelite.api.errors import ApiError, bad_request
from kubelite.api.proto_messages import INLINE, KINDS, LIST_WRAPPERS, MESSAGES, POINTER, REPEATED, REQUIRED

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAX_DEPTH = 64

_VARINT_KINDS = {"int32", "int64", "uint32", "uint64", "bool", "sint32", "sint64"}
_FIXED64_KINDS = {"double", "fixed64", "sfixed64"}
_FIXED32_KINDS = {"float", "fixed32", "sfixed32"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Malformed(Exception):
    """Raised inside the decoder; decode() turns it into a 400."""


def is_protobuf(content_type: str | None) -> bool:
    """Whether a Content-Type names the Kubernetes protobuf encoding (parameters ignored)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


# --- wire format ---

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if i >= end:
            raise _Malformed("unexpected EOF")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift >= 70:
            raise _Malformed("integer overflow")


def _fields(buf: bytes):
    """(field number, wire type, value): ints for varints, bytes for the rest."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise _Malformed("illegal tag 0")
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > end:
                raise _Malformed("unexpected EOF")
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            if i + 8 > end:
                raise _Malformed("unexpected EOF")
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            if i + 4 > end:
                raise _Malformed("unexpected EOF")
            val, i = buf[i:i + 4], i + 4
        else:
            raise _Malformed(f"illegal wireType {wt} for field {num}")
        yield num, wt, val


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _scalar(kind: str, wt: int, val: Any) -> Any:
    if kind == "string":
        if wt != 2:
            raise _Malformed("wrong wireType for string")
        try:
            return val.decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed("invalid UTF-8 in string field") from None
    if kind == "bytes":
        if wt != 2:
            raise _Malformed("wrong wireType for bytes")
        return base64.b64encode(val).decode("ascii")
    if kind in _VARINT_KINDS:
        if wt != 0:
            raise _Malformed(f"wrong wireType for {kind}")
        if kind == "bool":
            return val != 0
        if kind == "int32":
            return _signed(val, 32)
        if kind == "int64":
            return _signed(val, 64)
        if kind == "uint32":
            return val & 0xFFFFFFFF
        if kind in ("sint32", "sint64"):
            return (val >> 1) ^ -(val & 1)
        return val & 0xFFFFFFFFFFFFFFFF
    if kind in _FIXED64_KINDS:
        if wt != 1:
            raise _Malformed(f"wrong wireType for {kind}")
        return struct.unpack("<" + {"double": "d", "fixed64": "Q", "sfixed64": "q"}[kind], val)[0]
    if kind in _FIXED32_KINDS:
        if wt != 5:
            raise _Malformed(f"wrong wireType for {kind}")
        return struct.unpack("<" + {"float": "f", "fixed32": "I", "sfixed32": "i"}[kind], val)[0]
    raise _Malformed(f"unknown field kind {kind}")


def _packed(kind: str, data: bytes) -> list[Any]:
    """Elements of a packed repeated numeric field."""
    out: list[Any] = []
    i = 0
    if kind in _VARINT_KINDS:
        while i < len(data):
            v, i = _varint(data, i)
            out.append(_scalar(kind, 0, v))
    else:
        size, wt = (8, 1) if kind in _FIXED64_KINDS else (4, 5)
        if len(data) % size:
            raise _Malformed("unexpected EOF")
        for j in range(0, len(data), size):
            out.append(_scalar(kind, wt, data[j:j + size]))
    return out


# --- types whose JSON form is not an object ---

def _int_fields(data: bytes) -> dict[int, Any]:
    return {num: val for num, _, val in _fields(data)}


def _time(data: bytes, micro: bool) -> str | None:
    if not data:
        return None  # Go encodes the zero Time as an empty message; its JSON is null
    f = _int_fields(data)
    seconds, nanos = _signed(f.get(1, 0), 64), _signed(f.get(2, 0), 32)
    try:
        t = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise _Malformed("time out of range") from None
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{text}.{t.microsecond:06d}Z" if micro else text + "Z"


def go_duration(nanos: int) -> str:
    """Go's time.Duration.String(): 1h2m3.5s, 150ms, 0s."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    n = abs(nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _frac(n, size) + unit
    hours, rest = divmod(n, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _frac(rest, 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _frac(n: int, size: int) -> str:
    whole, part = divmod(n, size)
    if not part:
        return str(whole)
    digits = str(part).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _raw_json(data: bytes, depth: int) -> Any:
    if data.startswith(MAGIC):
        return _envelope(data, depth + 1)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _Malformed("embedded object is neither JSON nor protobuf") from None


def _special(name: str, data: bytes, depth: int) -> tuple[bool, Any]:
    if name == "apis.meta.v1.Time":
        return True, _time(data, micro=False)
    if name == "apis.meta.v1.MicroTime":
        return True, _time(data, micro=True)
    if name == "apis.meta.v1.Duration":
        return True, go_duration(_signed(_int_fields(data).get(1, 0), 64))
    if name in ("api.resource.Quantity", "api.resource.QuantityValue"):
        value = _int_fields(data).get(1, b"0")
        return True, _scalar("string", 2, value) if isinstance(value, bytes) else "0"
    if name == "util.intstr.IntOrString":
        f = _int_fields(data)
        if f.get(1, 0) == 1:
            s = f.get(3, b"")
            return True, _scalar("string", 2, s) if isinstance(s, bytes) else ""
        return True, _signed(f.get(2, 0), 32) if isinstance(f.get(2, 0), int) else 0
    if name in ("runtime.RawExtension", "apis.meta.v1.FieldsV1"):
        raw = _int_fields(data).get(1)
        if not isinstance(raw, bytes) or not raw:
            return True, None
        return True, _raw_json(raw, depth)
    if name in LIST_WRAPPERS:
        return True, [_scalar("string", wt, v) for num, wt, v in _fields(data) if num == 1]
    return False, None


# --- messages ---

def _zero(value: Any) -> bool:
    return value == "" or value is False or (value == 0 and not isinstance(value, bool))


def _value(kind: Any, wt: int, val: Any, depth: int) -> Any:
    if kind in MESSAGES or kind in LIST_WRAPPERS or "." in kind:
        if wt != 2:
            raise _Malformed(f"wrong wireType for {kind}")
        return _message(kind, val, depth + 1)
    return _scalar(kind, wt, val)


def _map_entry(key_kind: str, value_kind: str, data: bytes, depth: int) -> tuple[Any, Any]:
    key: Any = None
    value: Any = None
    for num, wt, val in _fields(data):
        if num == 1:
            key = _scalar(key_kind, wt, val)
        elif num == 2:
            value = _value(value_kind, wt, val, depth)
    if key is None:
        key = "" if key_kind == "string" else 0
    if value is None:
        value = _value(value_kind, 2, b"", depth) if "." in value_kind else (
            "" if value_kind in ("string", "bytes") else False if value_kind == "bool" else 0)
    return key, value


def _message(name: str, data: bytes, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Malformed("max depth exceeded")
    handled, value = _special(name, data, depth)
    if handled:
        return value
    table = MESSAGES.get(name)
    if table is None:
        raise _Malformed(f"no field table for message {name}")
    out: dict[str, Any] = {}
    inline: list[Any] = []
    for num, wt, val in _fields(data):
        spec = table.get(num)
        if spec is None:
            continue  # unknown fields are skipped, as Go's unmarshaler does
        json_name, kind, flags = spec
        if isinstance(kind, tuple):
            if wt != 2:
                raise _Malformed(f"wrong wireType for map field {json_name}")
            k, v = _map_entry(kind[1], kind[2], val, depth)
            out.setdefault(json_name, {})[k] = v
        elif flags & REPEATED:
            items = out.setdefault(json_name, [])
            if wt == 2 and kind not in ("string", "bytes") and "." not in kind:
                items.extend(_packed(kind, val))
            else:
                items.append(_value(kind, wt, val, depth))
        elif flags & INLINE:
            if wt != 2:
                raise _Malformed(f"wrong wireType for {json_name}")
            inline.append(_message(kind, val, depth + 1))
        else:
            value = _value(kind, wt, val, depth)
            if not flags & (POINTER | REQUIRED) and _zero(value):
                out.pop(json_name, None)
            else:
                out[json_name] = value
    for sub in inline:
        for k, v in sub.items():
            out.setdefault(k, v)
    for json_name, kind, flags in _always_printed(name):
        if json_name not in out:
            out[json_name] = _absent_value(kind, flags, depth)
    return out


_ALWAYS: dict[str, list[tuple[str, Any, int]]] = {}


def _always_printed(name: str) -> list[tuple[str, Any, int]]:
    """Fields Go's JSON prints even when unset: value structs, and fields without omitempty."""
    fields = _ALWAYS.get(name)
    if fields is None:
        fields = []
        for json_name, kind, flags in MESSAGES[name].values():
            if flags & INLINE:
                continue
            value_struct = isinstance(kind, str) and "." in kind and not flags & (POINTER | REPEATED)
            if flags & REQUIRED or value_struct:
                fields.append((json_name, kind, flags))
        _ALWAYS[name] = fields
    return fields


def _absent_value(kind: Any, flags: int, depth: int) -> Any:
    if flags & (POINTER | REPEATED) or isinstance(kind, tuple):
        return None  # nil pointer, slice or map
    if "." in kind:
        return _message(kind, b"", depth + 1)
    return _ZEROS.get(kind, 0)


_ZEROS: dict[str, Any] = {"string": "", "bytes": None, "bool": False, "double": 0.0, "float": 0.0}


def _envelope(body: bytes, depth: int = 0) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise _Malformed(f"provided data does not appear to be a protobuf message, expected prefix {list(MAGIC)}")
    api_version = kind = ""
    raw = b""
    content_encoding = ""
    for num, wt, val in _fields(body[len(MAGIC):]):
        if wt != 2:
            raise _Malformed(f"wrong wireType for runtime.Unknown field {num}")
        if num == 1:
            for tnum, twt, tval in _fields(val):
                if tnum in (1, 2):
                    text = _scalar("string", twt, tval)
                    api_version, kind = (text, kind) if tnum == 1 else (api_version, text)
        elif num == 2:
            raw = val
        elif num == 3:
            content_encoding = _scalar("string", wt, val)
    if content_encoding:
        raise _Malformed(f"unsupported contentEncoding {content_encoding!r}")
    if not kind:
        raise _Malformed("Object 'Kind' is missing in protobuf envelope")
    message = KINDS.get((api_version, kind))
    if message is None and kind == "DeleteOptions":
        message = "apis.meta.v1.DeleteOptions"
    if message is None:
        raise _Malformed(f'no kind "{kind}" is registered for version "{api_version}"')
    obj = _message(message, raw, depth)
    return {"kind": kind, "apiVersion": api_version, **obj}


def decode(body: bytes) -> dict[str, Any]:
    """The object a protobuf request body carries, as a JSON-shaped dict with kind and apiVersion."""
    try:
        return _envelope(bytes(body))
    except _Malformed as e:
        raise bad_request(f"unable to decode protobuf body: {e}") from None
    except ApiError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, RecursionError, struct.error) as e:
        raise bad_request(f"unable to decode protobuf body: {e}") from None
