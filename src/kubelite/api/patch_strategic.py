"""Strategic merge patch, as the API server applies it (apimachinery's strategicpatch, server-side options:
parallel lists are merged, nulls that match nothing are dropped).

Merge keys and strategies come from the OpenAPI definitions (`x-kubernetes-patch-merge-key`,
`x-kubernetes-patch-strategy`, the same struct tags upstream reads); where there is no schema (free-form
maps, unknown kinds) maps merge and lists are replaced. Upstream decodes the merged map into the typed
object, which drops leftover directives and null members; values copied from the patch are cleaned
the same way here so that neither is ever stored.
"""

from __future__ import annotations

from typing import Any

from kubelite.api import schemas
from kubelite.api.errors import ApiError, bad_request

from .gojson import json_kind as _json_kind
from .jsoncopy import deep_copy

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList"
_DIRECTIVE_PREFIXES = (RETAIN_KEYS, SET_ORDER + "/", DELETE_PRIMITIVE + "/")

_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_SET_ORDER = "invalid patch format of setElementOrder list"


class _Failure(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def _internal(message: str) -> _Failure:
    # Plain errors reach ErrorToAPIStatus, which answers 500 with an empty reason and the bare text.
    return _Failure(ApiError(500, "", message))


def _bad_request(message: str) -> _Failure:
    return _Failure(bad_request(message))


def _no_list_of_lists() -> _Failure:
    return _Failure(ApiError(422, "Invalid", "the server rejected our request due to an error in our request"))


def strategic_merge_patch(doc: dict, patch: dict, schema_name: str, version: str = "1.33", *,
                          owned: bool = False) -> dict:
    """Apply a strategic merge patch to `doc` (left untouched unless `owned`: the caller gives up `doc` and
    `patch`, which spares copying them); `schema_name` is the OpenAPI definition of the object's kind, e.g.
    `io.k8s.api.apps.v1.Deployment`."""
    if patch is None:  # a `null` body decodes to a nil map: nothing to merge
        return deep_copy(doc)
    if not isinstance(patch, dict):
        raise bad_request(f"json: cannot unmarshal {_json_kind(patch)} into Go value of type "
                          "map[string]interface {}")
    definitions = schemas.definitions(version) if schemas.available(version) else {}
    merger = _Merger(definitions)
    try:
        if not owned:
            doc, patch = deep_copy(doc), deep_copy(patch)
        return merger.merge_map(doc, patch, definitions.get(schema_name))
    except _Failure as failure:
        raise failure.error from None


# ---------------------------------------------------------------------------------------------------
# Go-compatible views of JSON values (for identity, comparisons and error texts)


def _go_type(value: Any) -> str:
    """reflect.TypeOf of a decoded JSON value, as `%s` prints it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "%!s(<nil>)"


def _go_v(value: Any) -> str:
    """fmt's `%v` of a decoded JSON value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    return str(value)


def _go_s(value: Any) -> str:
    return value if isinstance(value, str) else f"%!s({_go_type(value)}={_go_v(value)})"


def _identity(value: Any) -> Any:
    """A hashable key under which two values are equal exactly when Go's interface `==` says so."""
    if isinstance(value, dict | list):
        return ("ref", id(value))  # uncomparable in Go; never equal to anything else here
    return (type(value).__name__, value)


def _go_eq(a: Any, b: Any) -> bool:
    return _identity(a) == _identity(b)


def _bad_arg_type(expected: str, actual: Any) -> _Failure:
    return _internal(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: dict, key: str) -> _Failure:
    return _internal(f"map: {_go_v(item)} does not contain declared merge key: {key}")


def _clean(value: Any) -> tuple[Any, bool]:
    """A value taken from the patch as it would be stored: maps carrying `$patch` vanish, other directive
    keys and null members are dropped. Returns (value, keep)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out = {}
        for k, v in value.items():
            if v is None or k.startswith(_DIRECTIVE_PREFIXES):
                continue
            v, keep = _clean(v)
            if keep:
                out[k] = v
        return out, True
    if isinstance(value, list):
        out_list = []
        for v in value:
            v, keep = _clean(v)
            if keep:
                out_list.append(v)
        return out_list, True
    return value, True


def _cleaned(value: Any) -> Any:
    return _clean(value)[0]


def _stripped(value: Any) -> Any:
    """A value upstream stores verbatim, as its typed decoding leaves it: directive keys and null members
    gone, every element kept."""
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items()
                if v is not None and k != DIRECTIVE and not k.startswith(_DIRECTIVE_PREFIXES)}
    if isinstance(value, list):
        return [_stripped(v) for v in value]
    return value


def _extract_key(key: str, prefix: str) -> str:
    head, sep, tail = key.partition("/")
    if not sep or head != prefix:
        raise _bad_request(_BAD_PRIMITIVE_LIST if prefix == DELETE_PRIMITIVE else _BAD_SET_ORDER)
    return tail


def _split_strategies(strategies: str) -> str:
    """The merge strategy of a field once `retainKeys` is set aside (extractRetainKeysPatchStrategy)."""
    parts = strategies.split(",") if strategies else []
    if len(parts) == 1:
        return "" if parts[0] == "retainKeys" else parts[0]
    if len(parts) == 2 and "retainKeys" in parts:
        return parts[1] if parts[0] == "retainKeys" else parts[0]
    if parts:
        raise _internal(f"unexpected patch strategy: [{' '.join(parts)}]")
    return ""


# ---------------------------------------------------------------------------------------------------
# Ordering helpers (normalizeElementOrder and friends)


class _Positions:
    """First position of each element (or of its merge key value) in a list, like upstream's index()."""

    def __init__(self, items: list, merge_key: str, is_map: bool) -> None:
        self.merge_key = merge_key
        self.is_map = is_map
        self.first: dict[Any, int] = {}
        for i, item in enumerate(items):
            self.first.setdefault(_identity(self.value(item)), i)

    def value(self, item: Any) -> Any:
        if self.is_map:
            return item.get(self.merge_key) if isinstance(item, dict) else None
        return item

    def index(self, item: Any) -> int:
        return self.first.get(_identity(self.value(item)), -1)


def _sort_by_order(items: list, order: list, merge_key: str, is_map: bool) -> list:
    """normalizeSliceOrder: a stable sort by position in `order`, with `$patch: delete` items last."""
    to_delete: list = []
    if is_map:
        for item in [*items, *order]:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        to_delete = [i for i in items if i.get(DIRECTIVE) == "delete"]
        items = [i for i in items if i.get(DIRECTIVE) != "delete"]
    pos = _Positions(order, merge_key, is_map)
    if all(pos.index(i) >= 0 for i in items):
        return sorted(items, key=pos.index) + to_delete
    # Items missing from `order` make upstream's less() inconsistent; replay Go's insertion sort.
    items = list(items)
    for i in range(1, len(items)):
        j = i
        while j > 0:
            a, b = pos.index(items[j]), pos.index(items[j - 1])
            if a >= 0 and b >= 0 and a >= b:
                break
            items[j], items[j - 1] = items[j - 1], items[j]
            j -= 1
    return items + to_delete


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str, is_map: bool) -> list:
    """mergeSortedSlice: interleave server-only items (left) with patch items (right)."""
    pos = _Positions(server_order, merge_key, is_map)
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = pos.index(left[i]), pos.index(right[j])
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                     merge_key: str, is_map: bool) -> list:
    patch_items = _sort_by_order(patch_items, patch_order, merge_key, is_map)
    server_only = _sort_by_order(server_only, server_order, merge_key, is_map)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, is_map)


def _partition(merged: list, by: list, merge_key: str) -> tuple[list, list]:
    """Split `merged` into the items present in `by` and the server-only rest."""
    if not merge_key:
        present = {_identity(v) for v in by}
        inside = [v for v in merged if _identity(v) in present]
        return inside, [v for v in merged if _identity(v) not in present]
    inside, outside = [], []
    for item in merged:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        found = _find(by, merge_key, item[merge_key]) is not None
        (inside if found else outside).append(item)
    return inside, outside


def _find(items: list, merge_key: str, value: Any) -> int | None:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _internal(f"value for key {i} is not a map")
        if merge_key in item and _go_eq(item[merge_key], value):
            return i
    return None


def _element_kind(*lists: list) -> str:
    """sliceElementType: 'map' or 'scalar' for the shared element type of the lists."""
    seen: str | None = None
    for items in lists:
        for item in items:
            current = _go_type(item)
            if item is None and seen is None:
                continue
            if seen is None:
                seen = current
                if isinstance(item, list):
                    raise _no_list_of_lists()
            elif seen != current:
                raise _internal(f"list element types are not identical: {_go_v(list(lists))}")
    if seen is None:
        raise _internal("no elements in any of the given slices")
    return "map" if seen.startswith("map[") else "scalar"


def _dedupe_scalars(items: list) -> list:
    """deduplicateScalars, including its habit of moving the last element into a duplicate's slot."""
    s = list(items)
    last = len(s) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if _go_eq(s[i], s[j]):
                s[j] = s[last]
                s.pop()
                last -= 1
                j -= 1
            j += 1
        i += 1
    return s


# ---------------------------------------------------------------------------------------------------
# Schema lookups and the merge itself


class _Merger:
    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self.definitions = definitions

    def _resolve(self, schema: dict | None) -> dict | None:
        hops = 0
        while isinstance(schema, dict) and hops < 32:
            ref = schemas.ref_name(schema)
            if ref is None and len(schema.get("allOf", ())) == 1:
                ref = schemas.ref_name(schema["allOf"][0])
            if ref is None:
                return schema
            schema = self.definitions.get(ref)
            hops += 1
        return schema if isinstance(schema, dict) else None

    def _lookup(self, schema: dict | None, key: str) -> tuple[dict | None, str, str]:
        """(field schema, patch strategies, merge key) of `key` in an object schema."""
        if schema is None:
            return None, "", ""
        props = schema.get("properties")
        if isinstance(props, dict) and key in props:
            field = props[key]
            return (field, field.get("x-kubernetes-patch-strategy", ""),
                    field.get("x-kubernetes-patch-merge-key", ""))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return extra, "", ""
        return None, "", ""

    def _items(self, field: dict | None) -> dict | None:
        array = self._resolve(field)
        return self._resolve(array.get("items")) if array else None

    # mergeMap
    def merge_map(self, original: dict | None, patch: dict, schema: dict | None) -> dict:
        if DIRECTIVE in patch:
            directive = patch[DIRECTIVE]
            if directive == "replace":
                return _stripped(patch)
            if directive == "delete":
                return {}
            raise _internal(f"unknown patch type: {_go_s(directive)} in map: {_go_v(patch)}")
        if original is None:
            original = {}
        self._retain_keys(original, patch)
        self._ordered_lists(original, patch, schema)

        for key, value in list(patch.items()):
            delete_list = key.startswith(DELETE_PRIMITIVE)
            if delete_list:
                key = _extract_key(key, DELETE_PRIMITIVE)
            if value is None:
                original.pop(key, None)
                continue
            current = original.get(key, _MISSING)
            if current is _MISSING or _shape(current) != _shape(value):
                if not delete_list:
                    value, keep = _clean(value)
                    if keep:
                        original[key] = value
                    else:
                        original.pop(key, None)
                continue
            if isinstance(current, dict):
                field, strategies, _ = self._lookup(schema, key)
                if _split_strategies(strategies) == "replace":
                    original[key] = _stripped(value)
                else:
                    original[key] = self.merge_map(current, value, self._resolve(field))
            elif isinstance(current, list):
                field, strategies, merge_key = self._lookup(schema, key)
                original[key] = self._merge_list_field(current, value, self._items(field),
                                                       _split_strategies(strategies), merge_key, delete_list)
            else:
                original[key] = value
        return original

    def _retain_keys(self, original: dict, patch: dict) -> None:
        if RETAIN_KEYS not in patch:
            return
        retain = patch.pop(RETAIN_KEYS)
        if not isinstance(retain, list):
            raise _bad_request(_BAD_RETAIN_KEYS)
        keep = {k for k in retain if isinstance(k, str)}
        for key, value in patch.items():
            if value is None or key.startswith((DELETE_PRIMITIVE, SET_ORDER)):
                continue
            if key not in keep:
                raise _bad_request(_BAD_RETAIN_KEYS)
        for key in [k for k in original if k not in keep]:
            del original[key]

    # mergePatchIntoOriginal: the lists a `$setElementOrder/<list>` directive names
    def _ordered_lists(self, original: dict, patch: dict, schema: dict | None) -> None:
        for directive_key in [k for k in patch if k.startswith(SET_ORDER)]:
            order = patch.pop(directive_key)
            if not isinstance(order, list):
                raise _bad_arg_type("[]interface {}", order)
            key = _extract_key(directive_key, SET_ORDER)
            in_original, in_patch = key in original, key in patch
            original_list, patch_list = original.get(key), patch.get(key)
            if in_original and not isinstance(original_list, list):
                raise _bad_arg_type("[]interface {}", original_list)
            if in_patch and not isinstance(patch_list, list):
                raise _bad_arg_type("[]interface {}", patch_list)
            original_list = original_list or []
            patch_list = patch_list or []
            field, strategies, merge_key = self._lookup(schema, key)
            strategy = _split_strategies(strategies)
            _check_order(patch_list, order, merge_key)

            if in_original and not in_patch:
                merged = original_list
            elif in_patch and not in_original:
                merged = _cleaned(patch_list)
            elif in_original:
                merged = self._merge_list_field(original_list, patch_list, self._items(field), strategy,
                                                merge_key, False)
            else:
                continue
            patch_items, server_only = _partition(merged, order, merge_key)
            is_map = _element_kind(original_list, patch_list) == "map"
            original[key] = _normalize_order(patch_items, server_only, order, original_list, merge_key, is_map)
            patch.pop(key, None)

    # mergeSliceHandler
    def _merge_list_field(self, original: list, patch: list, item_schema: dict | None, strategy: str,
                          merge_key: str, delete_list: bool) -> list:
        if strategy == "merge" or delete_list:
            return self._merge_list(original, patch, item_schema, merge_key, delete_list)
        return _stripped(patch)

    # mergeSlice
    def _merge_list(self, original: list, patch: list, item_schema: dict | None, merge_key: str,
                    delete_list: bool) -> list:
        if not original and not patch:
            return original
        kind = _element_kind(original, patch)
        if kind != "map":
            if delete_list:
                gone = {_identity(v) for v in patch}
                return [v for v in original if _identity(v) not in gone]
            merged = _dedupe_scalars(original + patch)
        else:
            if not merge_key:
                raise _internal("cannot merge lists without merge key for struct")
            original, patch = _special_elements(original, patch, merge_key)
            merged = list(original)
            for item in patch:
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
                at = _find(merged, merge_key, item[merge_key])
                if at is None:
                    merged.append(_stripped(item))
                else:
                    merged[at] = self.merge_map(merged[at], item, item_schema)
        patch_items, server_only = _partition(merged, patch, merge_key)
        return _normalize_order(patch_items, server_only, patch, original, merge_key, kind == "map")


_MISSING = object()


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar:" + _go_type(value)


def _special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """mergeSliceWithSpecialElements: apply `$patch` elements of a merging list of maps."""
    plain: list = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            value = item[merge_key]
            original = [o for o in original if not (merge_key in o and _go_eq(o[merge_key], value))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {_go_s(directive)} in map: {_go_v(item)}")
    if replace:
        return [_stripped(i) for i in plain], []
    return original, plain


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: the patch list must follow the `$setElementOrder` order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
        items = [i for i in patch_list if i.get(DIRECTIVE) != "delete"]
    p = o = 0
    while p < len(items) and o < len(order):
        if isinstance(items[p], dict) and DIRECTIVE in items[p]:
            p += 1
            continue
        if _order_key_equal(items[p], order[o], merge_key):
            p += 1
        o += 1
    if p < len(items) and o >= len(order):
        raise _internal(f"The order in patch list:\n{_go_v(patch_list)}\n doesn't match {SET_ORDER} "
                        f"list:\n{_go_v(order)}\n")


def _order_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _go_eq(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return _go_eq(left[merge_key], right[merge_key])
