"""Field sets as structured-merge-diff keeps them, and the managedFields entries that carry them.

A field set is held in its wire form, the FieldsV1 trie: a dict from path elements (`f:<field>`,
`k:{"name":"x"}` for an item of a map-list, `v:<json>` for an item of a set, `i:<n>`) to the set below
that element. A child `{}` is a member with nothing below it; a child with children is a member only when
it holds the `.` marker. The root of a set is never a member. Working directly on the wire form means
stored entries need no conversion, and encoding is a sort.

The type model comes from the OpenAPI definitions, read the way upstream's schema conversion reads them:
`x-kubernetes-list-type` (atomic | set | map with `x-kubernetes-list-map-keys`), else a `merge` patch
strategy (map keyed by the patch merge key, or set), else atomic; `x-kubernetes-map-type: atomic` makes a
struct or map a leaf; a schema without a type is "deduced" from the value (maps granular, lists atomic).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from . import schemas

MEMBER = "."
FieldSet = dict[str, Any]

SCALAR, STRUCT, MAP, LIST, DEDUCED = range(5)

# List-map key fields that upstream's schema gives a default, used when an item omits the key.
_KEY_DEFAULTS = {"protocol": "TCP"}

# Struct fields Go holds by value rather than by pointer: the typed zero object already has them, so
# gaining or losing one as a whole is not an addition or removal of that field (no `.` marker).
_VALUE_STRUCT_FIELDS = frozenset({"metadata", "spec", "status", "template", "strategy", "updateStrategy",
                                  "jobTemplate", "podTemplate"})


class FieldSetError(ValueError):
    """A value that cannot be typed: a map-list item without its key, duplicate keys, a bad FieldsV1."""


# ---------------------------------------------------------------- type model


class TypeNode:
    __slots__ = ("kind", "atomic", "list_type", "keys", "required", "_props", "_fields", "_elem_schema", "_elem",
                 "version")

    def __init__(self, kind: int, version: str, atomic: bool = False) -> None:
        self.kind = kind
        self.atomic = atomic
        self.version = version
        self.list_type = ""
        self.keys: tuple[str, ...] = ()
        self.required: frozenset[str] = frozenset()
        self._props: dict[str, Any] = {}
        self._fields: dict[str, TypeNode] = {}
        self._elem_schema: dict[str, Any] | None = None
        self._elem: TypeNode | None = None

    def declared(self, name: str) -> bool:
        return name in self._props

    def field(self, name: str) -> TypeNode:
        node = self._fields.get(name)
        if node is None:
            schema = self._props.get(name)
            if schema is None:
                node = self.elem
            else:
                node = _node(schema, self.version)
            self._fields[name] = node
        return node

    @property
    def elem(self) -> TypeNode:
        if self._elem is None:
            self._elem = _node(self._elem_schema, self.version) if self._elem_schema else _deduced(self.version)
        return self._elem

    def leaf(self) -> bool:
        return self.kind == SCALAR or self.atomic


@functools.cache
def _deduced(version: str) -> TypeNode:
    return TypeNode(DEDUCED, version)


@functools.cache
def _scalar(version: str) -> TypeNode:
    return TypeNode(SCALAR, version)


@functools.cache
def _deduced_map(version: str) -> TypeNode:
    return TypeNode(MAP, version)


@functools.cache
def _atomic_list(version: str) -> TypeNode:
    node = TypeNode(LIST, version, atomic=True)
    node.list_type = "atomic"
    return node


def type_named(name: str, version: str = schemas.DEFAULT_VERSION) -> TypeNode:
    """The type of an OpenAPI definition (deduced when the name is unknown)."""
    return _named(name, version)


@functools.cache
def _named(name: str, version: str) -> TypeNode:
    schema = schemas.definition(name, version)
    if schema is None:
        return _deduced(version)
    return _build(schema, version)


def _node(schema: dict[str, Any], version: str) -> TypeNode:
    name = schemas.ref_name(schema)
    if name is None and len(schema.get("allOf", ())) == 1:
        name = schemas.ref_name(schema["allOf"][0])
    if name is not None:
        return _named(name, version)
    return _build(schema, version)


def type_from_schema(schema: dict[str, Any] | None, version: str = schemas.DEFAULT_VERSION) -> TypeNode:
    """The type of an inline schema (a CRD's structural schema, for instance)."""
    return _node(schema, version) if schema else _deduced(version)


def _build(schema: dict[str, Any], version: str) -> TypeNode:
    if schema.get("x-kubernetes-int-or-string") or "oneOf" in schema or "anyOf" in schema:
        return _scalar(version)
    types = schemas.types_of(schema) - {"null"}
    if "array" in types:
        node = TypeNode(LIST, version)
        node._elem_schema = schema.get("items") if isinstance(schema.get("items"), dict) else None
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or ()
        if list_type is None:
            strategy = schema.get("x-kubernetes-patch-strategy", "")
            if "merge" in strategy.split(","):
                merge_key = schema.get("x-kubernetes-patch-merge-key")
                list_type, keys = ("map", (merge_key,)) if merge_key else ("set", ())
            else:
                list_type = "atomic"
        if list_type == "map" and not keys:
            list_type = "atomic"
        node.list_type = list_type
        node.keys = tuple(keys) if list_type == "map" else ()
        node.atomic = list_type == "atomic"
        return node
    props = schema.get("properties")
    additional = schema.get("additionalProperties")
    atomic = schema.get("x-kubernetes-map-type") == "atomic"
    if props:
        node = TypeNode(STRUCT, version, atomic)
        node._props = props
        node.required = frozenset(schema.get("required") or ())
        node._elem_schema = additional if isinstance(additional, dict) else None
        return node
    if isinstance(additional, dict):
        node = TypeNode(MAP, version, atomic)
        node._elem_schema = additional
        return node
    if "object" in types or not types:
        if atomic:
            return TypeNode(DEDUCED, version, atomic=True)
        return _deduced(version)
    return _scalar(version)


def _effective(node: TypeNode, value: Any) -> TypeNode:
    """A deduced type takes the shape of its value."""
    if node.kind != DEDUCED or node.atomic:
        return node
    if isinstance(value, dict):
        return _deduced_map(node.version)
    if isinstance(value, list):
        return _atomic_list(node.version)
    return _scalar(node.version)


# ---------------------------------------------------------------- path elements


def _dumps(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    # Go's encoder escapes these (HTML-safe JSON); keys must serialize as upstream's do
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def key_element(item: Any, keys: tuple[str, ...]) -> str:
    if not isinstance(item, dict):
        raise FieldSetError(f"expected map-list item to be a map, not {type(item).__name__}")
    parts: dict[str, Any] = {}
    for k in keys:
        v = item.get(k)
        if v is None:
            if k not in _KEY_DEFAULTS:
                raise FieldSetError(
                    f'associative list with keys has an element that omits key field "{k}" '
                    f"(and doesn't have default value)")
            v = _KEY_DEFAULTS[k]
        parts[k] = v
    return "k:" + _dumps(parts)


def value_element(item: Any) -> str:
    return "v:" + _dumps(item)


def item_element(node: TypeNode, item: Any) -> str:
    return key_element(item, node.keys) if node.list_type == "map" else value_element(item)


def _value_order(v: Any) -> tuple:
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_order(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple((k, _value_order(v[k])) for k in sorted(v)))
    return (5,)


@functools.lru_cache(maxsize=65536)
def _element_order(pe: str) -> tuple:
    kind = pe[0]
    if kind == "f":
        return (0, pe[2:])
    if kind == "k":
        fields = orjson.loads(pe[2:])
        return (1, tuple((k, _value_order(fields[k])) for k in sorted(fields)))
    if kind == "v":
        return (2, _value_order(orjson.loads(pe[2:])))
    return (3, int(pe[2:]))


def _go_quote(s: str) -> str:
    return orjson.dumps(s).decode()


def _value_string(v: Any) -> str:
    if isinstance(v, str):
        return _go_quote(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return _dumps(v)


def element_string(pe: str) -> str:
    """How upstream prints one path element: `.name`, `[name="x"]`, `[="v"]`, `[0]`."""
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return "." + body
    if kind == "k":
        fields = orjson.loads(body)
        return "[" + ",".join(f"{k}={_value_string(fields[k])}" for k in sorted(fields)) + "]"
    if kind == "v":
        return "[=" + _value_string(orjson.loads(body)) + "]"
    return f"[{body}]"


def path_string(path: tuple[str, ...] | list[str]) -> str:
    return "".join(element_string(pe) for pe in path)


# ---------------------------------------------------------------- set algebra


def _is_member(node: FieldSet) -> bool:
    return not node or MEMBER in node


def _make(member: bool, kids: FieldSet) -> FieldSet | None:
    if not kids:
        return {} if member else None
    if member:
        kids[MEMBER] = {}
    return kids


def _with_member(node: FieldSet | None) -> FieldSet:
    if not node:
        return {}
    if MEMBER not in node:
        node[MEMBER] = {}
    return node


def union(a: FieldSet, b: FieldSet) -> FieldSet:
    """Union of two root sets."""
    if not a:
        return b
    if not b:
        return a
    return _union_kids(a, b)


def _union_kids(a: FieldSet, b: FieldSet) -> FieldSet:
    kids = {k: v for k, v in a.items() if k != MEMBER}
    for k, v in b.items():
        if k == MEMBER:
            continue
        mine = kids.get(k)
        kids[k] = v if mine is None else _union_node(mine, v)
    return kids


def _union_node(a: FieldSet, b: FieldSet) -> FieldSet:
    if a is b:
        return a
    member = _is_member(a) or _is_member(b)
    return _make(member, _union_kids(a, b)) or {}


def difference(a: FieldSet, b: FieldSet) -> FieldSet:
    """Members of root set `a` that are not members of `b`."""
    if not a or not b:
        return a
    return _difference_kids(a, b)


def _difference_kids(a: FieldSet, b: FieldSet) -> FieldSet:
    kids: FieldSet = {}
    for k, v in a.items():
        if k == MEMBER:
            continue
        other = b.get(k)
        if other is None:
            kids[k] = v
        else:
            d = _make(_is_member(v) and not _is_member(other), _difference_kids(v, other))
            if d is not None:
                kids[k] = d
    return kids


def intersection(a: FieldSet, b: FieldSet) -> FieldSet:
    """Members of both root sets."""
    if not a or not b:
        return {}
    return _intersection_kids(a, b)


def _intersection_kids(a: FieldSet, b: FieldSet) -> FieldSet:
    kids: FieldSet = {}
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for k, v in small.items():
        if k == MEMBER:
            continue
        other = large.get(k)
        if other is None:
            continue
        i = _make(_is_member(v) and _is_member(other), _intersection_kids(v, other))
        if i is not None:
            kids[k] = i
    return kids


def has(s: FieldSet, path: tuple[str, ...] | list[str]) -> bool:
    node = s
    for pe in path:
        if MEMBER == pe:
            return False
        node = node.get(pe)
        if node is None:
            return False
    return bool(path) and _is_member(node)


def paths(s: FieldSet) -> Iterator[tuple[str, ...]]:
    """Every member path, in upstream's order."""
    yield from _paths(s, ())


def _paths(node: FieldSet, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for pe in sorted((k for k in node if k != MEMBER), key=_element_order):
        child = node[pe]
        path = prefix + (pe,)
        if _is_member(child):
            yield path
        if child:
            yield from _paths(child, path)


def without_top(s: FieldSet, names: frozenset[str]) -> FieldSet:
    """The set with whole top-level fields (and everything below them) taken out."""
    if not s or not names:
        return s
    return {k: v for k, v in s.items() if k[2:] not in names or k[0] != "f"}


def only_top(s: FieldSet, names: frozenset[str]) -> FieldSet:
    return {k: v for k, v in s.items() if k[0] == "f" and k[2:] in names}


# ---------------------------------------------------------------- wire form


def encode(s: FieldSet) -> dict[str, Any]:
    """A set as FieldsV1, ordered as upstream writes it."""
    return _encode_node(s)


def _encode_node(node: FieldSet) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if MEMBER in node:
        out[MEMBER] = {}
    keys = [k for k in node if k != MEMBER]
    if len(keys) > 1:
        keys.sort(key=_element_order)
    for k in keys:
        child = node[k]
        out[k] = _encode_node(child) if child else {}
    return out


def decode(fields: Any) -> FieldSet:
    """FieldsV1 from a client: validated, key elements canonicalized, unknown element kinds dropped."""
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise FieldSetError("FieldsV1 must be a JSON object")
    out = _decode_node(fields)
    out.pop(MEMBER, None)
    return out


def _decode_node(node: dict[str, Any]) -> FieldSet:
    out: FieldSet = {}
    for key, child in node.items():
        if not isinstance(child, dict):
            raise FieldSetError(f"FieldsV1 entry {key!r} must be an object")
        if key == MEMBER:
            out[MEMBER] = {}
            continue
        pe = _canonical_element(key)
        if pe is None:
            continue
        decoded = _decode_node(child) if child else {}
        if decoded.keys() == {MEMBER}:
            decoded = {}
        elif not decoded and child:
            continue  # only unknown element kinds below: nothing we can hold
        out[pe] = decoded
    return out


def _canonical_element(key: str) -> str | None:
    if len(key) < 2 or key[1] != ":":
        raise FieldSetError(f"missing colon: {key}")
    kind, body = key[0], key[2:]
    if kind == "f":
        return key
    try:
        if kind == "k":
            fields = orjson.loads(body)
            if not isinstance(fields, dict):
                raise FieldSetError(f"key element must be an object: {key}")
            return "k:" + _dumps(fields)
        if kind == "v":
            return "v:" + _dumps(orjson.loads(body))
        if kind == "i":
            return f"i:{int(body)}"
    except (orjson.JSONDecodeError, ValueError) as e:
        raise FieldSetError(f"parsing key as path element: {e}") from None
    return None  # a kind a later version may know


# ---------------------------------------------------------------- sets of objects


def field_set(value: dict[str, Any], node: TypeNode) -> FieldSet:
    """Every field an object sets, as upstream's ToFieldSet."""
    s = _collect(value, node)
    if not s:
        return {}
    s.pop(MEMBER, None)
    return s


def _collect(value: Any, node: TypeNode) -> FieldSet | None:
    node = _effective(node, value)
    kind = node.kind
    if kind == SCALAR or node.atomic or value is None:
        return {}
    if kind == LIST:
        if not isinstance(value, list):
            return {}
        kids: FieldSet = {}
        elem = node.elem
        for item in value:
            pe = item_element(node, item)
            if pe in kids:
                raise FieldSetError(f"duplicate entries for key {element_string(pe)}")
            kids[pe] = _with_member(_collect(item, elem))
        return kids or None
    if not isinstance(value, dict):
        return {}
    kids = {}
    is_map = kind == MAP
    for key, val in value.items():
        child = _collect(val, node.field(key))
        if val is None or (not val and isinstance(val, dict)) or is_map or not node.declared(key):
            child = _with_member(child)
        if child is not None:
            kids["f:" + key] = child
    return kids or None


@dataclass(slots=True)
class Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def changed(self) -> FieldSet:
        return union(self.added, self.modified)


_MISSING: Any = object()


def compare(lhs: dict[str, Any] | None, rhs: dict[str, Any], node: TypeNode) -> Comparison:
    """What changed from lhs to rhs, path by path (lhs None: a create)."""
    a, m, r = _compare(lhs if lhs is not None else {}, rhs, node)
    for s in (a, m, r):
        if s is not None:
            s.pop(MEMBER, None)
    return Comparison(a or {}, m or {}, r or {})


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            return False
    return a == b


def _compare(lhs: Any, rhs: Any, node: TypeNode) -> tuple[FieldSet | None, FieldSet | None, FieldSet | None]:
    node = _effective(node, rhs if rhs is not _MISSING else lhs)
    kind = node.kind
    container = dict if kind in (STRUCT, MAP) else list if kind == LIST else None
    if (container is None or node.atomic
            or (lhs is not _MISSING and not isinstance(lhs, container))
            or (rhs is not _MISSING and not isinstance(rhs, container))):
        if lhs is _MISSING:
            return {}, None, None
        if rhs is _MISSING:
            return None, None, {}
        if not _same(lhs, rhs):
            return None, {}, None
        return None, None, None
    added: FieldSet = {}
    modified: FieldSet = {}
    removed: FieldSet = {}
    if container is dict:
        left = lhs if lhs is not _MISSING else None
        right = rhs if rhs is not _MISSING else None
        keys = list(right or ())
        if left:
            keys.extend(k for k in left if right is None or k not in right)
        for key in keys:
            child = node.field(key)
            lv = left.get(key, _MISSING) if left is not None else _MISSING
            rv = right.get(key, _MISSING) if right is not None else _MISSING
            if (lv is _MISSING) != (rv is _MISSING) and not child.leaf() and (
                    key in node.required or (key in _VALUE_STRUCT_FIELDS and child.kind == STRUCT)):
                # by-value structs and required fields are always there in the typed object (zero or null):
                # gaining or losing one is a change below it, not an addition of the field itself
                empty: Any = [] if child.kind == LIST else {}
                if lv is _MISSING and left is not None:
                    lv = empty
                elif rv is _MISSING and right is not None:
                    rv = empty
            if lv is rv or (lv is None and rv is _MISSING) or (rv is None and lv is _MISSING):
                continue  # null and absent are the same field value in a typed object
            a, m, r = _compare(lv, rv, child)
            pe = "f:" + key
            if a is not None:
                added[pe] = a
            if m is not None:
                modified[pe] = m
            if r is not None:
                removed[pe] = r
    else:
        elem = node.elem
        litems = _index(node, lhs) if lhs is not _MISSING else {}
        ritems = _index(node, rhs) if rhs is not _MISSING else {}
        for pe, rv in ritems.items():
            a, m, r = _compare(litems.get(pe, _MISSING), rv, elem)
            if a is not None:
                added[pe] = a
            if m is not None:
                modified[pe] = m
            if r is not None:
                removed[pe] = r
        for pe, lv in litems.items():
            if pe not in ritems:
                removed[pe] = _with_member(_compare(lv, _MISSING, elem)[2])
    return (_make(lhs is _MISSING, added), _make(False, modified), _make(rhs is _MISSING, removed))


def _index(node: TypeNode, items: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        pe = item_element(node, item)
        out.setdefault(pe, item)  # upstream tolerates duplicates in a live object: the first one counts
    return out


def remove_items(value: dict[str, Any], s: FieldSet, node: TypeNode) -> dict[str, Any]:
    """The object without the member paths of `s` (each with everything below it)."""
    if not s:
        return value
    return _remove(value, s, node)


def _remove(value: Any, s: FieldSet, node: TypeNode) -> Any:
    node = _effective(node, value)
    if node.leaf():
        return value
    if node.kind == LIST and isinstance(value, list):
        out = []
        for item in value:
            pe = item_element(node, item)
            sub = s.get(pe)
            if sub is None:
                out.append(item)
            elif _is_member(sub):
                continue
            else:
                out.append(_remove(item, sub, node.elem))
        return out
    if isinstance(value, dict):
        out_map = {}
        for key, val in value.items():
            sub = s.get("f:" + key)
            if sub is None:
                out_map[key] = val
            elif _is_member(sub):
                continue
            else:
                out_map[key] = _remove(val, sub, node.field(key))
        return out_map
    return value


# ---------------------------------------------------------------- managedFields entries


@dataclass(slots=True)
class Entry:
    manager: str
    operation: str  # Apply | Update
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str, str]:
        return manager_id(self.manager, self.operation, self.api_version, self.subresource)


def manager_id(manager: str, operation: str, api_version: str, subresource: str = "") -> tuple[str, str, str, str]:
    """Who an entry belongs to: appliers are one entry whatever version they apply in."""
    return (manager, operation, "" if operation == "Apply" else api_version, subresource)


Managed = dict[tuple[str, str, str, str], Entry]


def decode_entries(raw: Any) -> Managed:
    """managedFields as stored or sent; raises FieldSetError where upstream's decoder fails."""
    out: Managed = {}
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise FieldSetError("managedFields must be a list")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise FieldSetError("managed fields entry must be an object")
        operation = item.get("operation")
        if operation not in ("Apply", "Update"):
            raise FieldSetError("operation must be `Apply` or `Update`")
        api_version = item.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise FieldSetError("apiVersion must not be empty")
        fields_type = item.get("fieldsType")
        if not fields_type:
            raise FieldSetError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise FieldSetError(f'invalid fieldsType "{fields_type}" in managed fields entry {i}')
        manager = item.get("manager") or ""
        subresource = item.get("subresource") or ""
        if not isinstance(manager, str) or not isinstance(subresource, str):
            raise FieldSetError("manager and subresource must be strings")
        time = item.get("time")
        entry = Entry(manager, operation, api_version, decode(item.get("fieldsV1")),
                      time if isinstance(time, str) and time else None, subresource)
        out[entry.ident] = entry
    return out


def decode_stored(raw: Any) -> Managed:
    """Entries of a live object (written by us): no validation beyond what decoding needs."""
    try:
        return decode_entries(raw)
    except FieldSetError:
        return {}


def is_reset(raw: Any) -> bool:
    """A client clearing managedFields: an empty list, or a list of one empty entry."""
    return isinstance(raw, list) and (not raw or (len(raw) == 1 and raw[0] == {}))


def _entry_order(e: Entry) -> tuple:
    return (e.operation, e.time or "", e.manager, e.api_version, e.subresource)


def encode_entries(managed: Managed) -> list[dict[str, Any]]:
    out = []
    for e in sorted(managed.values(), key=_entry_order):
        item: dict[str, Any] = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version}
        if e.time:
            item["time"] = e.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = encode(e.fields)
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


def strip_meta(s: FieldSet) -> FieldSet:
    """Fields nobody owns: type meta and the server-managed parts of metadata."""
    if not s:
        return s
    out = {k: v for k, v in s.items() if k not in ("f:apiVersion", "f:kind") or v}
    for k in ("f:apiVersion", "f:kind"):
        v = out.get(k)
        if v is not None and MEMBER in v:
            v = {x: y for x, y in v.items() if x != MEMBER}
            if v:
                out[k] = v
            else:
                del out[k]
    meta = out.get("f:metadata")
    if meta is not None:
        kept = {}
        for k, v in meta.items():
            if k == MEMBER:
                continue
            if k in _STRIPPED_META:
                if not v:
                    continue
                v = {x: y for x, y in v.items() if x != MEMBER}
            kept[k] = v
        if kept:
            out["f:metadata"] = kept
        else:
            del out["f:metadata"]
    return out


_STRIPPED_META = frozenset("f:" + n for n in (
    "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation", "managedFields",
    "resourceVersion"))
