"""Structural schemas of CustomResourceDefinitions: checking a schema, and pruning, defaulting and
validating custom resources against one (apiextensions-apiserver v1.33 behaviour).

Schemas are plain dicts shaped like `JSONSchemaProps`. Field errors are causes as `validation_names`
builds them, worded as kube-openapi and apimachinery word them (`spec.replicas in body must be of type
integer: "string"`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
import uuid
from datetime import date, datetime
from typing import Any

from kubelite.api import schemas
from kubelite.api import validation_names as vn

Schema = dict[str, Any]
Causes = list[dict[str, str]]

OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"), ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"), ("description", "must be empty to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def object_meta_fields() -> frozenset[str]:
    meta = schemas.definitions().get(_OBJECT_META) or {}
    return frozenset(meta.get("properties") or ())


# ------------------------------------------------------------------------------------------------
# the schema itself (CRD validation)


def check_schema(schema: Any, path: str, status_enabled: bool = False) -> Causes:
    """Every reason `schema` (an openAPIV3Schema at `path`) is not an acceptable structural schema."""
    if not isinstance(schema, dict):
        return [vn.required(path)]
    causes: Causes = []
    if schema.get("nullable") is True:
        causes.append(vn.forbidden(_child(path, "nullable"), "nullable cannot be true at the root"))
    causes += _check_node(schema, path, "root")
    causes.sort(key=lambda c: f"{c['field']}: {c['message']}")
    return causes


def _check_node(s: Schema, path: str, level: str) -> Causes:
    causes: Causes = []
    stype = s.get("type")
    if stype is not None and stype not in OPENAPI_TYPES:
        causes.append(vn.not_supported(_child(path, "type"), stype, OPENAPI_TYPES))
    if s.get("uniqueItems") is True:
        causes.append(vn.forbidden(_child(path, "uniqueItems"),
                                   "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        causes.append(vn.invalid(_child(path, "x-kubernetes-preserve-unknown-fields"), False,
                                 "must be true or undefined"))
    if "$ref" in s:
        causes.append(vn.forbidden(_child(path, "$ref"), "$ref is not supported"))
    props = s.get("properties")
    addl = s.get("additionalProperties")
    if addl is not None and props:
        if addl is False or isinstance(addl, dict):
            causes.append(vn.forbidden(_child(path, "additionalProperties"),
                                       "additionalProperties and properties are mutual exclusive"))
    if stype == "array" and s.get("items") is None:
        causes.append(vn.required(_child(path, "items"), "must be specified"))
    items = s.get("items")
    if isinstance(items, dict):
        causes += _check_node(items, _child(path, "items"), "item")
    elif isinstance(items, list):
        causes.append(vn.forbidden(_child(path, "items"), "items must be a schema object and not an array"))
    for name, sub in (props or {}).items():
        if isinstance(sub, dict):
            causes += _check_node(sub, _key(_child(path, "properties"), name), "field")
    if addl is not None and level == "root":
        causes.append(vn.forbidden(_child(path, "additionalProperties"), "must not be used at the root"))
    if isinstance(addl, dict):
        causes += _check_node(addl, _child(path, "additionalProperties"), "field")
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = s.get("x-kubernetes-embedded-resource") is True
    if int_or_string and preserve:
        causes.append(vn.invalid(_child(path, "x-kubernetes-preserve-unknown-fields"), True,
                                 "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        causes.append(vn.invalid(_child(path, "x-kubernetes-embedded-resource"), True,
                                 "must be false if x-kubernetes-int-or-string is true"))
    if embedded and stype != "object":
        if not stype:
            causes.append(vn.required(_child(path, "type"), "must be object if x-kubernetes-embedded-resource is true"))
        else:
            causes.append(vn.invalid(_child(path, "type"), stype,
                                     "must be object if x-kubernetes-embedded-resource is true"))
    elif not stype and not int_or_string and not preserve:
        where = {"root": "at the root", "item": "for specified array items",
                 "field": "for specified object fields"}[level]
        causes.append(vn.required(_child(path, "type"), f"must not be empty {where}"))
    if embedded and addl is not None:
        causes.append(vn.forbidden(_child(path, "additionalProperties"),
                                   "must not be used if x-kubernetes-embedded-resource is set"))
    if level == "root" and stype and stype != "object":
        causes.append(vn.invalid(_child(path, "type"), stype, "must be object at the root"))
    check_meta = level == "root" or embedded
    for name in ("kind", "apiVersion"):
        sub = (props or {}).get(name)
        if check_meta and isinstance(sub, dict) and sub.get("type") != "string":
            causes.append(vn.invalid(_child(_key(_child(path, "properties"), name), "type"), sub.get("type") or "",
                                     "must be string"))
    meta = (props or {}).get("metadata")
    if isinstance(meta, dict):
        mpath = _key(_child(path, "properties"), "metadata")
        if check_meta and meta.get("type") != "object":
            causes.append(vn.invalid(_child(mpath, "type"), meta.get("type") or "", "must be object"))
        if level == "root":
            rest = {k: v for k, v in meta.items() if k not in ("type", "default")}
            mprops = rest.pop("properties", None) or {}
            if set(mprops) - {"name", "generateName"} or rest:
                causes.append(vn.forbidden(mpath, "must not specify anything other than name and generateName, "
                                                  "but metadata is implicitly specified"))
    if embedded and not preserve and not props:
        causes.append(vn.required(_child(path, "properties"), "must not be empty if x-kubernetes-embedded-resource "
                                                              "is true without x-kubernetes-preserve-unknown-fields"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as e:
            causes.append(vn.invalid(_child(path, "pattern"), pattern,
                                     f"must be a valid regular expression, but isn't: {e}"))
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(junctor) or ()):
            if isinstance(sub, dict) and not (junctor == "anyOf" and int_or_string):
                causes += _check_nested(sub, f"{_child(path, junctor)}[{i}]")
    if isinstance(s.get("not"), dict):
        causes += _check_nested(s["not"], _child(path, "not"))
    if "default" in s and level == "root":
        causes.append(vn.forbidden(_child(path, "default"), "must not be set at the root"))
    return causes


def _check_nested(s: Schema, path: str) -> Causes:
    causes: Causes = []
    for key, why in _NESTED_FORBIDDEN:
        if s.get(key) not in (None, False, "", [], {}):
            causes.append(vn.forbidden(_child(path, key), why))
    if s.get("nullable") is True:
        causes.append(vn.forbidden(_child(path, "nullable"), "must be false to be structural"))
    if "metadata" in (s.get("properties") or {}):
        causes.append(vn.forbidden(_key(_child(path, "properties"), "metadata"),
                                   "must not be specified in a nested context"))
    for name, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            causes += _check_nested(sub, _key(_child(path, "properties"), name))
    if isinstance(s.get("items"), dict):
        causes += _check_nested(s["items"], _child(path, "items"))
    return causes


def check_defaults(schema: Schema, path: str) -> Causes:
    """Each `default` must itself be valid for its schema (after pruning, as upstream requires)."""
    causes: Causes = []

    def walk(s: Any, p: str) -> None:
        if not isinstance(s, dict):
            return
        if "default" in s and s["default"] is not None:
            value = copy.deepcopy(s["default"])
            unknown: list[str] = []
            prune(value, s, unknown, path="")
            if unknown:
                causes.append(vn.invalid(_child(p, "default"), s["default"],
                                         f'must not have unknown fields, got "{unknown[0]}"'))
            for c in validate(value, s, "", root=False):
                causes.append(vn.invalid(_child(p, "default"), s["default"], c["message"]))
        for name, sub in (s.get("properties") or {}).items():
            walk(sub, _key(_child(p, "properties"), name))
        walk(s.get("items"), _child(p, "items"))
        walk(s.get("additionalProperties"), _child(p, "additionalProperties"))

    walk(schema, path)
    return causes


# ------------------------------------------------------------------------------------------------
# pruning


def prune(obj: Any, schema: Schema | None, unknown: list[str], path: str = "", root: bool = False) -> None:
    """Drop, in place, every field the schema does not specify; their paths are appended to `unknown`."""
    if schema is None or not isinstance(schema, dict):
        return
    if isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(obj):
                prune(item, items, unknown, f"{path}[{i}]")
        return
    if not isinstance(obj, dict):
        return
    embedded = root or schema.get("x-kubernetes-embedded-resource") is True
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    for key in list(obj):
        where = _child(path, key)
        if embedded and key in ("apiVersion", "kind"):
            continue
        if embedded and key == "metadata":
            _prune_meta(obj[key], unknown, where)
            continue
        if key in props:
            prune(obj[key], props[key], unknown, where)
        elif isinstance(addl, dict):
            prune(obj[key], addl, unknown, where)
        elif addl is True or preserve:
            continue
        else:
            del obj[key]
            unknown.append(where)


def _prune_meta(meta: Any, unknown: list[str], path: str) -> None:
    if not isinstance(meta, dict):
        return
    known = object_meta_fields()
    for key in list(meta):
        if key not in known:
            del meta[key]
            unknown.append(_child(path, key))


# ------------------------------------------------------------------------------------------------
# defaulting


def apply_defaults(obj: Any, schema: Schema | None) -> None:
    """Fill `default`s in place wherever a field is absent (or null without `nullable`), then drop the nulls
    of non-nullable fields that have no default, as upstream's structural defaulting does."""
    if schema is None or not isinstance(schema, dict):
        return
    if isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                apply_defaults(item, items)
        return
    if not isinstance(obj, dict):
        return
    props = schema.get("properties") or {}
    for key, sub in props.items():
        if not isinstance(sub, dict):
            continue
        if "default" in sub and (key not in obj or (obj[key] is None and not sub.get("nullable"))):
            obj[key] = copy.deepcopy(sub["default"])
    for key in list(obj):
        sub = props.get(key)
        if sub is None and isinstance(schema.get("additionalProperties"), dict):
            sub = schema["additionalProperties"]
        if not isinstance(sub, dict):
            continue
        if obj[key] is None and not sub.get("nullable") and "default" not in sub:
            del obj[key]
            continue
        apply_defaults(obj[key], sub)


# ------------------------------------------------------------------------------------------------
# validation


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, stype: str) -> bool:
    actual = json_type(value)
    return actual == stype or (stype == "number" and actual == "integer")


def go_float(v: float | int) -> str:
    """Go's %v of a float64 (shortest digits; exponent form from 1e+21 up and below 1e-4)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    digits = repr(v)
    mant, _, exp_text = digits.partition("e")
    if exp_text:
        exp = int(exp_text)
    else:
        intpart = mant.lstrip("-").split(".")[0]
        exp = len(intpart.lstrip("0")) - 1 if intpart.strip("0") else _frac_exp(mant)
    if exp < -4 or exp >= 21:
        m = float(mant) if exp_text else v / (10 ** exp)
        mtext = repr(m).removesuffix(".0")
        return f"{mtext}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if v == int(v):
        return str(int(v))
    return repr(v)


def _frac_exp(mant: str) -> int:
    frac = mant.lstrip("-").split(".")[1] if "." in mant else ""
    zeros = len(frac) - len(frac.lstrip("0"))
    return -(zeros + 1)


def _type_invalid(path: str, value: Any, message: str) -> dict[str, str]:
    return {"type": "FieldValueTypeInvalid", "field": path,
            "message": f"Invalid value: {vn.go_value(value)}: {message}"}


def _body(path: str) -> str:
    return f"{path} in body" if path else "body"


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date-time":
            if not _DATE_TIME.match(value):
                return False
            datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T").replace("t", "T"))
        elif fmt == "date":
            date.fromisoformat(value)
        elif fmt == "uuid":
            uuid.UUID(value)
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif fmt == "mac":
            return bool(_MAC.match(value))
        elif fmt == "hostname":
            return bool(_HOSTNAME.match(value)) and len(value) <= 255
        elif fmt == "email":
            return bool(_EMAIL.match(value))
        elif fmt == "byte":
            base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


def validate(obj: Any, schema: Schema | None, path: str = "", root: bool = True) -> Causes:
    """Every way `obj` breaks `schema`; `root` skips apiVersion/kind/metadata as upstream's validator does."""
    causes: Causes = []
    if isinstance(schema, dict):
        _validate(obj, schema, path, causes, root)
    return causes


def _validate(value: Any, s: Schema, path: str, causes: Causes, root: bool = False) -> None:
    if value is None:
        if s.get("nullable") or not s.get("type"):
            return
        causes.append(_type_invalid(path, "null", f'{_body(path)} must be of type {s["type"]}: "null"'))
        return
    stype = s.get("type")
    if s.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            causes.append(_type_invalid(path, json_type(value),
                                        f'{_body(path)} must be of type integer,string: "{json_type(value)}"'))
            return
    elif stype and not _type_ok(value, stype):
        actual = json_type(value)
        causes.append(_type_invalid(path, actual, f'{_body(path)} must be of type {stype}: "{actual}"'))
        return
    enum = s.get("enum")
    if isinstance(enum, list) and value not in enum:
        allowed = [e if isinstance(e, str) else json.dumps(e, separators=(",", ":")) for e in enum]
        causes.append(vn.not_supported(path, value, allowed))
    if isinstance(value, str):
        _validate_string(value, s, path, causes)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, s, path, causes)
    elif isinstance(value, list):
        _validate_array(value, s, path, causes)
    elif isinstance(value, dict):
        _validate_object(value, s, path, causes, root)
    for sub in s.get("allOf") or ():
        if isinstance(sub, dict):
            _validate(value, sub, path, causes, root)
    for junctor, word in (("anyOf", "at least one"), ("oneOf", "one and only one")):
        subs = [x for x in s.get(junctor) or () if isinstance(x, dict)]
        if not subs or (junctor == "anyOf" and s.get("x-kubernetes-int-or-string")):
            continue
        passing = sum(1 for x in subs if not validate(value, x, path, root))
        if (junctor == "anyOf" and passing == 0) or (junctor == "oneOf" and passing != 1):
            causes.append(vn.invalid(path, "", f"{_body(path)} must validate {word} schema ({junctor})"))
    if isinstance(s.get("not"), dict) and not validate(value, s["not"], path, root):
        causes.append(vn.invalid(path, "", f"{_body(path)} must not validate the schema (not)"))


def _validate_string(value: str, s: Schema, path: str, causes: Causes) -> None:
    max_len, min_len = s.get("maxLength"), s.get("minLength")
    if isinstance(max_len, int) and len(value) > max_len:
        causes.append(vn.too_long(path, max_len))
    if isinstance(min_len, int) and len(value) < min_len:
        causes.append(vn.invalid(path, value, f"{_body(path)} should be at least {min_len} chars long"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        try:
            ok = re.search(pattern, value) is not None
        except re.error:
            ok = True
        if not ok:
            causes.append(vn.invalid(path, value, f"{_body(path)} should match '{pattern}'"))
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt and not _format_ok(fmt, value):
        causes.append(_type_invalid(path, value, f"{_body(path)} must be of type {fmt}: {vn.go_quote(value)}"))


def _validate_number(value: int | float, s: Schema, path: str, causes: Causes) -> None:
    maximum, minimum = s.get("maximum"), s.get("minimum")
    if isinstance(maximum, int | float):
        exclusive = s.get("exclusiveMaximum") is True
        if value > maximum or (exclusive and value == maximum):
            how = "less than" if exclusive else "less than or equal to"
            causes.append(vn.invalid(path, value, f"{_body(path)} should be {how} {go_float(maximum)}"))
    if isinstance(minimum, int | float):
        exclusive = s.get("exclusiveMinimum") is True
        if value < minimum or (exclusive and value == minimum):
            how = "greater than" if exclusive else "greater than or equal to"
            causes.append(vn.invalid(path, value, f"{_body(path)} should be {how} {go_float(minimum)}"))
    factor = s.get("multipleOf")
    if isinstance(factor, int | float) and factor > 0:
        quotient = value / factor
        if abs(quotient - round(quotient)) > 1e-9:
            causes.append(vn.invalid(path, value, f"{_body(path)} should be a multiple of {go_float(factor)}"))


def _validate_array(value: list, s: Schema, path: str, causes: Causes) -> None:
    max_items, min_items = s.get("maxItems"), s.get("minItems")
    if isinstance(max_items, int) and len(value) > max_items:
        causes.append(vn.too_many(path, len(value), max_items))
    if isinstance(min_items, int) and len(value) < min_items:
        causes.append(vn.invalid(path, len(value), f"{_body(path)} should have at least {min_items} items"))
    items = s.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", causes)
    if s.get("x-kubernetes-list-type") == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                causes.append(vn.duplicate(f"{path}[{i}]", item))
            else:
                seen.append(item)


def _validate_object(value: dict, s: Schema, path: str, causes: Causes, root: bool) -> None:
    props = s.get("properties") or {}
    for name in s.get("required") or ():
        if name not in value and not (root and name in ("apiVersion", "kind", "metadata")):
            causes.append(vn.required(_child(path, name)))
    max_props, min_props = s.get("maxProperties"), s.get("minProperties")
    if isinstance(max_props, int) and len(value) > max_props:
        causes.append(vn.too_many(path, len(value), max_props))
    if isinstance(min_props, int) and len(value) < min_props:
        causes.append(vn.invalid(path, len(value), f"{_body(path)} should have at least {min_props} properties"))
    embedded = root or s.get("x-kubernetes-embedded-resource") is True
    if s.get("x-kubernetes-embedded-resource") is True:
        for name in ("apiVersion", "kind"):
            if not value.get(name):
                causes.append(vn.required(_child(path, name), "must not be empty"))
    addl = s.get("additionalProperties")
    for key, item in value.items():
        if embedded and key in ("apiVersion", "kind", "metadata"):
            continue
        sub = props.get(key)
        if sub is None and isinstance(addl, dict):
            sub = addl
        if isinstance(sub, dict):
            _validate(item, sub, _child(path, key), causes)


__all__ = ["OPENAPI_TYPES", "apply_defaults", "check_defaults", "check_schema", "go_float", "json_type",
           "prune", "validate"]
