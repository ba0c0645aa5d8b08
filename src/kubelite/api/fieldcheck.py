"""Schema-driven unknown/duplicate field detection and Go-decoder type checks (`fieldValidation`).

Upstream decodes a request body into Go structs with sigs.k8s.io/json: a value of the wrong JSON
type fails the whole request (400, whatever fieldValidation says), unknown and duplicate fields are
"strict decoding errors" that fieldValidation turns into a 400 (Strict), a warning (Warn, the default)
or nothing (Ignore). In every mode the unknown fields are gone from the decoded object.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from kubelite.api import schemas
from kubelite.api.errors import bad_request, invalid
from kubelite.api.gojson import json_kind as _json_kind
from kubelite.api.resources import ResourceType
from kubelite.api.validation_names import not_supported

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
QUANTITY_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY_RX = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
# Definitions Go decodes as raw JSON: anything goes below them.
_FREE_FORM = {
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
}
_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
FIELD_VALIDATION_VALUES = ("", "Ignore", "Strict", "Warn")


class _TypeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _go_package_type(name: str) -> str:
    parts = name.split(".")
    return f"{parts[-2]}.{parts[-1]}"


def _go_type(schema: dict[str, Any]) -> str:
    """reflect.Type.String() of the Go field a schema describes (pointers already dereferenced)."""
    name = _ref(schema)
    if name:
        return _go_package_type(name)
    types = schemas.types_of(schema)
    if "array" in types:
        return "[]" + _go_type(schema.get("items", {}))
    if "object" in types:
        if "additionalProperties" in schema:
            return "map[string]" + _go_type(schema["additionalProperties"])
        return "map[string]interface {}"
    if "string" in types:
        return "[]uint8" if schema.get("format") == "byte" else "string"
    if "integer" in types:
        return schema.get("format") or "int64"
    if "number" in types:
        return "float64"
    if "boolean" in types:
        return "bool"
    return "interface {}"


def _ref(schema: dict[str, Any]) -> str | None:
    name = schemas.ref_name(schema)
    if name is None and len(schema.get("allOf", ())) == 1:
        name = schemas.ref_name(schema["allOf"][0])
    return name


class _Walker:
    def __init__(self, drop: bool) -> None:
        self.unknown: list[str] = []
        self.drop = drop

    def fail(self, value: Any, struct: str, stack: list[str], gotype: str, literal: bool = False) -> None:
        what = _json_kind(value)
        if literal and what == "number":
            what = f"number {value!r}" if not isinstance(value, float) else f"number {_go_float(value)}"
        if struct or stack:
            raise _TypeError(f"json: cannot unmarshal {what} into Go struct field {struct}."
                             f"{'.'.join(stack)} of type {gotype}")
        raise _TypeError(f"json: cannot unmarshal {what} into Go value of type {gotype}")

    def value(self, value: Any, schema: dict[str, Any], path: str, struct: str, stack: list[str]) -> Any:
        if value is None:
            return value
        name = _ref(schema)
        if name is not None:
            if name in _FREE_FORM:
                return value
            if name == INT_OR_STRING:
                if isinstance(value, bool) or not isinstance(value, int | str):
                    self.fail(value, struct, stack, "int32")
                return value
            if name == QUANTITY:
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    raise _TypeError(QUANTITY_ERROR)
                if isinstance(value, str) and not _QUANTITY_RX.match(value.strip()):
                    raise _TypeError(QUANTITY_ERROR)
                return value
            definition = schemas.definitions()[name]
            if "properties" in definition or "object" in schemas.types_of(definition):
                if not isinstance(value, dict):
                    self.fail(value, struct, stack, _go_package_type(name))
                return self.struct(value, definition, path, name.rsplit(".", 1)[-1], stack)
            return self.value(value, definition, path, struct, stack)
        types = schemas.types_of(schema)
        if schema.get("x-kubernetes-preserve-unknown-fields") or not types:
            return value
        if "array" in types:
            if not isinstance(value, list):
                self.fail(value, struct, stack, _go_type(schema))
            items = schema.get("items", {})
            return [self.value(v, items, f"{path}[{i}]", struct, stack) for i, v in enumerate(value)]
        if "object" in types:
            if not isinstance(value, dict):
                self.fail(value, struct, stack, _go_type(schema))
            if "properties" in schema:
                return self.struct(value, schema, path, struct, stack)
            sub = schema.get("additionalProperties")
            if not isinstance(sub, dict):
                return value
            return {k: self.value(v, sub, f"{path}[{k}]", struct, stack) for k, v in value.items()}
        if "string" in types:
            if not isinstance(value, str):
                self.fail(value, struct, stack, _go_type(schema))
            if schema.get("format") == "byte":
                _check_base64(value)
            return value
        if "integer" in types:
            fmt = schema.get("format") or "int64"
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(value, struct, stack, fmt)
            lo, hi = _RANGES.get(fmt, _RANGES["int64"])
            if isinstance(value, float) or not lo <= value <= hi:
                self.fail(value, struct, stack, fmt, literal=True)
            return value
        if "number" in types:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(value, struct, stack, "float64")
            return value
        if "boolean" in types and not isinstance(value, bool):
            self.fail(value, struct, stack, "bool")
        return value

    def struct(self, obj: dict[str, Any], schema: dict[str, Any], path: str, struct: str,
               stack: list[str], top: bool = False) -> dict[str, Any]:
        props = schema.get("properties") or {}
        out: dict[str, Any] = {}
        for key, val in obj.items():
            sub = props.get(key)
            if sub is None and top and key in ("apiVersion", "kind"):
                sub = {"type": "string"}
            where = f"{path}.{key}" if path else key
            if sub is None:
                if schema.get("x-kubernetes-preserve-unknown-fields") or (
                        not props and isinstance(schema.get("additionalProperties"), dict | bool)):
                    out[key] = val
                    continue
                if not props and "additionalProperties" not in schema:
                    out[key] = val  # an object Go keeps as raw JSON
                    continue
                self.unknown.append(where)
                if not self.drop:
                    out[key] = val
                continue
            out[key] = self.value(val, sub, where, struct, [*stack, key])
        return out


def _go_float(v: float) -> str:
    text = repr(v)
    return text[:-2] if text.endswith(".0") and "e" not in text else text


def _check_base64(value: str) -> None:
    """Go's encoding/base64 StdEncoding (padding required; CR and LF ignored)."""
    cleaned = value.replace("\r", "").replace("\n", "")
    try:
        base64.b64decode(cleaned, validate=True)
        return
    except (binascii.Error, ValueError):
        pass
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, ch in enumerate(cleaned):
        if ch == "=":
            break
        if ch not in alphabet:
            raise _TypeError(f"illegal base64 data at input byte {i}")
    # bad length or padding: Go reports the offset of the first incomplete quantum
    at = (len(cleaned.rstrip("=")) // 4) * 4
    raise _TypeError(f"illegal base64 data at input byte {min(at, len(cleaned))}")


def _body_gvk(rt: ResourceType, obj: dict[str, Any]) -> tuple[str, str]:
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) and obj.get("kind") else rt.kind
    api_version = obj.get("apiVersion") if isinstance(obj.get("apiVersion"), str) else ""
    version = api_version.rsplit("/", 1)[-1] if api_version else rt.version
    return kind, version


def check_field_validation(mode: str | None, options_kind: str = "CreateOptions") -> str:
    """The effective directive; an unsupported one is upstream's 422 on the *Options object."""
    if mode is None or mode == "":
        return "Warn"
    if mode not in FIELD_VALIDATION_VALUES:
        raise invalid(options_kind, "meta.k8s.io", "",
                      [not_supported("fieldValidation", mode, FIELD_VALIDATION_VALUES)])
    return mode


def check_fields(rt: ResourceType, obj: dict[str, Any], mode: str | None = "Warn",
                 duplicates: list[str] | None = None, options_kind: str = "CreateOptions") -> list[str]:
    """Check obj against rt's schema; drop unknown fields; return the warnings for `Warn`.

    `duplicates` are field paths a raw-body scan found twice (see `find_duplicate_fields`); a dict
    cannot hold them any more. Raises ApiError 400 for a type error or, with Strict, for any
    unknown/duplicate field; 422 for an unsupported `fieldValidation` value.
    """
    directive = check_field_validation(mode, options_kind)
    kind, version = _body_gvk(rt, obj)
    prefix = f'{kind} in version "{version}" cannot be handled as a {rt.kind}: '
    if not isinstance(obj, dict):
        raise bad_request(prefix + f"json: cannot unmarshal {_json_kind(obj)} into Go value of type "
                                   f"{_go_package_type(rt.schema_name)}")
    definition = schemas.definitions().get(rt.schema_name)
    if definition is None:
        return []
    if _clean(definition, obj):
        # nothing to drop or report (the common case): the walk below only rebuilds what we already have
        problems = [f'duplicate field "{d}"' for d in duplicates or ()]
        if problems and directive == "Strict":
            raise bad_request(prefix + "strict decoding error: " + ", ".join(problems))
        return problems if directive == "Warn" else []
    walker = _Walker(drop=True)
    try:
        cleaned = walker.struct(obj, definition, "", rt.schema_name.rsplit(".", 1)[-1], [], top=True)
    except _TypeError as e:
        raise bad_request(prefix + e.message) from None
    problems = [f'duplicate field "{d}"' for d in duplicates or ()]
    problems += [f'unknown field "{u}"' for u in walker.unknown]
    if problems and directive == "Strict":
        raise bad_request(prefix + "strict decoding error: " + ", ".join(problems))
    if walker.unknown:
        obj.clear()
        obj.update(cleaned)
    return problems if directive == "Warn" else []


# ---------------------------------------------------------------- the fast path
#
# Schemas compiled once into predicates answering "would the walker find nothing to report or drop?".
# They build no paths and no copies; any doubt (unknown field, wrong type, bad base64) sends the request
# to the walker above, which produces the exact error or drops the fields.

_Check = Any  # Callable[[Any], bool]
_compiled: dict[int, tuple[dict[str, Any], _Check]] = {}
_compiled_top: dict[int, tuple[dict[str, Any], _Check]] = {}
_STRING_SCHEMA = {"type": "string"}


def _ok(value: Any) -> bool:
    return True


def _clean(definition: dict[str, Any], obj: dict[str, Any]) -> bool:
    hit = _compiled_top.get(id(definition))
    if hit is None:
        hit = _compiled_top[id(definition)] = (definition, _compile_struct(definition, top=True))
    return hit[1](obj)


def _checker(schema: dict[str, Any]) -> _Check:
    hit = _compiled.get(id(schema))
    if hit is None:
        # placeholder first: a recursive definition finds itself while being compiled
        cell: list[_Check] = []
        _compiled[id(schema)] = (schema, lambda v: cell[0](v))
        check = _compile_value(schema)
        cell.append(check)
        _compiled[id(schema)] = (schema, check)
        return check
    return hit[1]


def _compile_value(schema: dict[str, Any]) -> _Check:
    name = _ref(schema)
    if name is not None:
        if name in _FREE_FORM:
            return _ok
        if name == INT_OR_STRING:
            return lambda v: v is None or (isinstance(v, int | str) and not isinstance(v, bool))

        if name == QUANTITY:
            def quantity(v: Any) -> bool:
                if v is None:
                    return True
                if isinstance(v, bool) or not isinstance(v, int | float | str):
                    return False
                return not isinstance(v, str) or _QUANTITY_RX.match(v.strip()) is not None
            return quantity
        definition = schemas.definitions()[name]
        if "properties" in definition or "object" in schemas.types_of(definition):
            inner = _checker_struct(definition)
            return lambda v: v is None or (isinstance(v, dict) and inner(v))
        return _checker(definition)
    types = schemas.types_of(schema)
    if schema.get("x-kubernetes-preserve-unknown-fields") or not types:
        return _ok
    if "array" in types:
        item = _checker(schema.get("items", {}))
        if item is _ok:
            return lambda v: v is None or isinstance(v, list)
        return lambda v: v is None or (isinstance(v, list) and all(item(x) for x in v))
    if "object" in types:
        if "properties" in schema:
            inner = _compile_struct(schema, top=False)
            return lambda v: v is None or (isinstance(v, dict) and inner(v))
        sub = schema.get("additionalProperties")
        if not isinstance(sub, dict):
            return lambda v: v is None or isinstance(v, dict)
        each = _checker(sub)
        return lambda v: v is None or (isinstance(v, dict) and all(each(x) for x in v.values()))
    if "string" in types:
        if schema.get("format") == "byte":
            def byte_string(v: Any) -> bool:
                if v is None:
                    return True
                if not isinstance(v, str):
                    return False
                try:
                    _check_base64(v)
                except _TypeError:
                    return False
                return True
            return byte_string
        return lambda v: v is None or isinstance(v, str)
    if "integer" in types:
        lo, hi = _RANGES.get(schema.get("format") or "int64", _RANGES["int64"])
        return lambda v: v is None or (type(v) is int and lo <= v <= hi) or (
            isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi)
    if "number" in types:
        return lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    if "boolean" in types:
        return lambda v: v is None or isinstance(v, bool)
    return _ok


def _checker_struct(definition: dict[str, Any]) -> _Check:
    key = ("struct", id(definition))
    hit = _compiled.get(key)  # type: ignore[call-overload]
    if hit is None:
        cell: list[_Check] = []
        _compiled[key] = (definition, lambda v: cell[0](v))  # type: ignore[index]
        check = _compile_struct(definition, top=False)
        cell.append(check)
        _compiled[key] = (definition, check)  # type: ignore[index]
        return check
    return hit[1]


def _compile_struct(schema: dict[str, Any], top: bool) -> _Check:
    props: dict[str, Any] = schema.get("properties") or {}
    checks: dict[str, _Check] = {k: _checker(v) for k, v in props.items()}
    if top:
        for k in ("apiVersion", "kind"):
            checks.setdefault(k, _checker(_STRING_SCHEMA))
    additional = schema.get("additionalProperties")
    open_ended = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or (
        not props and (isinstance(additional, dict | bool) or "additionalProperties" not in schema))

    def struct(obj: dict[str, Any]) -> bool:
        for key, val in obj.items():
            check = checks.get(key)
            if check is None:
                if open_ended:
                    continue
                return False
            if check is not _ok and not check(val):
                return False
        return True

    return struct


def find_duplicate_fields(raw: bytes | str) -> list[str]:
    """Paths of object keys that appear more than once in a JSON document, as sigs.k8s.io/json names them."""
    import json

    try:
        json.loads(raw, object_pairs_hook=_dict_without_duplicates)
        return []  # the usual case, found without building paths
    except _Duplicate:
        pass
    except (ValueError, RecursionError):
        return []
    dups: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> _Pairs:
        return _Pairs(items)

    try:
        tree = json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for k, v in node.items:
                where = f"{path}.{k}" if path else k
                if k in seen:
                    dups.append(where)
                seen.add(k)
                walk(v, where)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(tree, "")
    return dups


class _Duplicate(Exception):
    pass


def _dict_without_duplicates(items: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(items)
    if len(d) != len(items):
        raise _Duplicate
    return d


class _Pairs:
    __slots__ = ("items",)

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self.items = items

