"""What every built-in kind's OpenAPI schema (api/schemas.py) does not allow, checked on the object to store.

Upstream decodes each write into Go structs before validating it, so a stored object always fits its
types: a JSON null leaves a struct field at its zero value (our dicts: the key is gone), a null list item
or map value becomes the element type's zero value (`[null]` in a list of structs is `[{}]`), numbers fit
their int32/int64 fields. `conform(rt, obj)` brings the same guarantees to the object in place and
returns what cannot be fixed that way as causes of a 422: wrong types, out-of-range integers, and the
required fields (the schema's `required` lists) of nested structs, which is how upstream's per-field
validation answers the zero value of such a field. Per-kind rules (validation_kinds) run as well and
speak first for a field they both name.
"""

from __future__ import annotations

from typing import Any

from kubelite.api import schemas
from kubelite.api import validation_names as vn
from kubelite.api.resources import ResourceType
from kubelite.api.structural import json_type

Causes = list[dict[str, str]]

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# Definitions Go keeps as raw JSON: anything goes below them.
FREE_FORM = frozenset({
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
})
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# Status is written by controllers and kubelets, whose Go structs always carry every required key; upstream
# validates little of it, and a missing key there is its zero value, not an error. Metadata's nested structs
# (owner references) have rules of their own, worded differently (validation_scheduling).
_NO_REQUIRED_BELOW = ("status", "metadata")


def conform(rt: ResourceType, obj: dict[str, Any]) -> Causes:
    """Normalise `obj` as Go decoding would and return every cause its schema finds (empty: it fits)."""
    definition = schemas.definitions().get(rt.schema_name)
    if definition is None or not isinstance(obj, dict):
        return []
    walker = _Walker()
    walker.struct(obj, definition, "", top=True, required=True)
    return walker.causes


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def contains_null(value: Any) -> bool:
    """Whether a null appears anywhere in `value` (the only thing `conform` changes)."""
    if value is None:
        return True
    if isinstance(value, dict):
        return any(contains_null(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_null(v) for v in value)
    return False


def conform_metadata(meta: dict[str, Any]) -> Causes:
    """`conform` for an ObjectMeta alone (custom resources: the rest is their structural schema's)."""
    definition = schemas.definitions().get(OBJECT_META)
    if definition is None or not isinstance(meta, dict):
        return []
    walker = _Walker()
    walker.struct(meta, definition, "metadata", top=False, required=False)
    return walker.causes


def zero_value(schema: dict[str, Any]) -> Any:
    """The JSON form of the Go zero value of the type `schema` describes (None: keep null)."""
    name = schemas.ref_name(schema)
    if name is not None:
        if name in FREE_FORM:
            return None
        if name == INT_OR_STRING:
            return 0
        if name == QUANTITY:
            return "0"
        return zero_value(schemas.definitions()[name])
    types = schemas.types_of(schema)
    if "object" in types or "properties" in schema:
        return {}
    for t, zero in (("array", []), ("string", ""), ("integer", 0), ("number", 0), ("boolean", False)):
        if t in types:
            return zero
    return None


class _Walker:
    def __init__(self) -> None:
        self.causes: Causes = []

    def type_error(self, path: str, value: Any, expected: str) -> None:
        actual = json_type(value)
        self.causes.append({"type": "FieldValueTypeInvalid", "field": path,
                            "message": f'Invalid value: "{actual}": {path or "body"} in body must be of type '
                                       f'{expected}: "{actual}"'})

    def value(self, value: Any, schema: dict[str, Any], path: str, required: bool) -> Any:
        """The value to keep (nulls below replaced by zero values)."""
        name = schemas.ref_name(schema)
        if name is not None:
            if name in FREE_FORM:
                return value
            if name == INT_OR_STRING:
                if isinstance(value, bool) or not isinstance(value, int | str):
                    self.type_error(path, value, "integer,string")
                elif isinstance(value, int):
                    self.int_range(value, "int32", path)
                return value
            if name == QUANTITY:
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    self.type_error(path, value, "string")
                return value
            schema = schemas.definitions()[name]
        types = schemas.types_of(schema)
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return value
        if "properties" in schema:
            if not isinstance(value, dict):
                self.type_error(path, value, "object")
                return value
            self.struct(value, schema, path, top=False, required=required)
            return value
        if "object" in types:
            if not isinstance(value, dict):
                self.type_error(path, value, "object")
                return value
            sub = schema.get("additionalProperties")
            if isinstance(sub, dict):
                for key, item in value.items():
                    if item is None:
                        item = value[key] = zero_value(sub)
                        if item is None:
                            continue
                    value[key] = self.value(item, sub, f"{path}[{key}]", required)
            return value
        if "array" in types:
            if not isinstance(value, list):
                self.type_error(path, value, "array")
                return value
            items = schema.get("items")
            if isinstance(items, dict):
                for i, item in enumerate(value):
                    if item is None:
                        item = value[i] = zero_value(items)
                        if item is None:
                            continue
                    value[i] = self.value(item, items, f"{path}[{i}]", required)
            return value
        if "string" in types:
            if not isinstance(value, str):
                self.type_error(path, value, "string")
            return value
        if "integer" in types:
            if isinstance(value, bool) or not isinstance(value, int):
                self.type_error(path, value, "integer")
            else:
                self.int_range(value, schema.get("format") or "int64", path)
            return value
        if "number" in types:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.type_error(path, value, "number")
            return value
        if "boolean" in types and not isinstance(value, bool):
            self.type_error(path, value, "boolean")
        return value

    def int_range(self, value: int, fmt: str, path: str) -> None:
        lo, hi = INT_RANGES.get(fmt, INT_RANGES["int64"])
        if value > hi:
            self.causes.append(vn.invalid(path, value, f"must be less than or equal to {hi}"))
        elif value < lo:
            self.causes.append(vn.invalid(path, value, f"must be greater than or equal to {lo}"))

    def struct(self, obj: dict[str, Any], schema: dict[str, Any], path: str, *, top: bool, required: bool) -> None:
        props = schema.get("properties") or {}
        for key in [k for k, v in obj.items() if v is None]:
            if key in props or not top:
                del obj[key]  # Go leaves the field at its zero value, which our dicts spell as no key
        for key, item in obj.items():
            sub = props.get(key)
            if sub is None:
                continue  # unknown fields are fieldcheck's (pruned on the way in)
            where = f"{path}.{key}" if path else key
            obj[key] = self.value(item, sub, where, required and not (top and key in _NO_REQUIRED_BELOW))
        if top or not required:
            return
        for key in schema.get("required") or ():
            if key not in obj and key in props:
                self.causes.append(vn.required(f"{path}.{key}" if path else key))
