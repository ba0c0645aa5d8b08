"""Go's zero values: the fields upstream serialises even when they are zero.

Go's JSON encoder writes every field whose struct tag lacks `omitempty`, zero or not, and every struct that is
not behind a pointer (`omitempty` never drops a struct). Clients with strict models rely on it: the official
Python client refuses a V1DaemonSetStatus without `numberReady`. The OpenAPI definitions cannot show Go tags,
but openapi-gen lists a field as `required` exactly when its tag has no `omitempty` and it carries no
`+optional` marker, and the few status fields of upstream's types that are `+optional` without `omitempty`
are listed below by hand (from k8s.io/api's types.go). So, for every object written:

- a missing required field of a present struct gets its Go zero: 0, false, "" or {} (a struct, then filled
  the same way). Lists, maps and types that encode as strings (Time, Quantity, IntOrString) are left out:
  their Go zero is `null`, which a missing field already means to every client.
- a top-level `spec`/`status` that names a struct is always present: upstream's kinds hold both by value.

The plan for each definition is compiled once, and the walk only descends where something can be filled.
"""

from __future__ import annotations

import functools
from typing import Any

from . import schemas

# status fields that upstream's types mark `+optional` but serialise without `omitempty`
_OPTIONAL_NOT_OMITTED: dict[str, dict[str, Any]] = {
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerStatus": {"currentReplicas": 0},
}
# optional status structs held by value (`omitempty` does not drop them): always written, as `{}` at least
_STRUCTS_BY_VALUE: dict[str, tuple[str, ...]] = {
    "io.k8s.api.core.v1.ServiceStatus": ("loadBalancer",),
    "io.k8s.api.networking.v1.IngressStatus": ("loadBalancer",),
}

_TOP_LEVEL_STRUCTS = ("spec", "status")
_SCALAR_ZERO = {"integer": 0, "number": 0, "boolean": False, "string": ""}


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else [x for x in t if x != "null"]


def _ref(schema: dict[str, Any]) -> str | None:
    name = schemas.ref_name(schema)
    if name is None and len(schema.get("allOf", ())) == 1:
        name = schemas.ref_name(schema["allOf"][0])
    return name


def _is_struct(name: str) -> bool:
    d = schemas.definitions().get(name)
    if d is None:
        return False
    types = _types(d)
    return bool(d.get("properties")) and (not types or types == ["object"])


class _Plan:
    """What to fill in one definition: zero scalars, required structs, and where to descend."""

    __slots__ = ("zeros", "structs", "children")

    def __init__(self) -> None:
        self.zeros: list[tuple[str, Any]] = []
        self.structs: list[tuple[str, str]] = []  # (field, definition) made {} when missing
        self.children: list[tuple[str, str, str]] = []  # (field, "one"|"list"|"map", definition)


@functools.cache
def _raw_plan(name: str) -> _Plan:
    d = schemas.definitions().get(name) or {}
    plan = _Plan()
    required = set(d.get("required") or ())
    for field, prop in (d.get("properties") or {}).items():
        ref = _ref(prop)
        if field in required:
            if ref is not None:
                if _is_struct(ref):
                    plan.structs.append((field, ref))
            else:
                types = _types(prop)
                if len(types) == 1 and types[0] in _SCALAR_ZERO:
                    plan.zeros.append((field, _SCALAR_ZERO[types[0]]))
        if ref is not None:
            if _is_struct(ref):
                plan.children.append((field, "one", ref))
            continue
        items = prop.get("items")
        if isinstance(items, dict) and (iref := _ref(items)) and _is_struct(iref):
            plan.children.append((field, "list", iref))
            continue
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and (mref := _ref(extra)) and _is_struct(mref):
            plan.children.append((field, "map", mref))
    for field, zero in _OPTIONAL_NOT_OMITTED.get(name, {}).items():
        plan.zeros.append((field, zero))
    for field in _STRUCTS_BY_VALUE.get(name, ()):
        plan.structs.append((field, name))
    return plan


@functools.cache
def _useful() -> frozenset[str]:
    """The definitions under which something can be filled (a fixed point over the reference graph)."""
    names = list(schemas.definitions())
    useful = {n for n in names if _raw_plan(n).zeros or _raw_plan(n).structs}
    changed = True
    while changed:
        changed = False
        for n in names:
            if n not in useful and any(ref in useful for _, _, ref in _raw_plan(n).children):
                useful.add(n)
                changed = True
    return frozenset(useful)


@functools.cache
def _plan(name: str) -> _Plan | None:
    if name not in _useful():
        return None
    raw = _raw_plan(name)
    useful = _useful()
    plan = _Plan()
    plan.zeros = raw.zeros
    plan.structs = raw.structs
    plan.children = [c for c in raw.children if c[2] in useful]
    return plan


def _fill(name: str, obj: dict[str, Any], depth: int = 0) -> None:
    plan = _plan(name)
    if plan is None or depth > 64:
        return
    for field, zero in plan.zeros:
        if obj.get(field) is None:
            obj[field] = zero
    for field, _ref_name in plan.structs:
        if obj.get(field) is None:
            obj[field] = {}
    for field, shape, ref in plan.children:
        value = obj.get(field)
        if value is None:
            continue
        if shape == "one":
            if isinstance(value, dict):
                _fill(ref, value, depth + 1)
        elif shape == "list":
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        _fill(ref, item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, dict):
                    _fill(ref, item, depth + 1)


@functools.cache
def _top_structs(name: str) -> tuple[str, ...]:
    props = (schemas.definitions().get(name) or {}).get("properties") or {}
    return tuple(f for f in _TOP_LEVEL_STRUCTS if f in props and (ref := _ref(props[f])) and _is_struct(ref))


def known(schema_name: str) -> bool:
    return bool(schema_name) and schema_name in schemas.definitions()


def fill(schema_name: str, obj: Any) -> Any:
    """`obj` (a whole object of definition `schema_name`) with Go's zero values filled in place; returned."""
    if not isinstance(obj, dict) or not known(schema_name):
        return obj
    for field in _top_structs(schema_name):
        if not isinstance(obj.get(field), dict):
            if field in obj and obj[field] is not None:
                continue  # not an object: left for validation to report
            obj[field] = {}
    _fill(schema_name, obj)
    return obj
