"""Field ownership on every write, and server-side apply: what upstream's fieldmanager does.

`record_update` is the Update operation: the fields a write changes become its manager's, and leave every
other entry. `server_side_apply` merges an applied configuration into the live object by the schema's list
and map types, drops what the manager applied before and no longer applies (unless someone else owns it),
and refuses to change a value another manager owns unless forced.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

import orjson

from . import errors
from . import managedfields as mf
from .managedfields import Entry, FieldSet, Managed, TypeNode
from .resources import ResourceType
from .timefmt import now_rfc3339

MAX_MANAGER_LENGTH = 128
MAX_UPDATE_MANAGERS = 10
ANCIENT_MANAGER = "ancient-changes"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
META_GROUP = "meta.k8s.io"

_MISSING: Any = object()


# ---------------------------------------------------------------- managers


def _printable(ch: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def manager_from_user_agent(user_agent: str) -> str:
    """The part of a User-Agent before the first '/', printable characters only, at most 128 bytes."""
    out: list[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not _printable(ch):
            continue
        width = len(ch.encode())
        if size + width > MAX_MANAGER_LENGTH:
            break
        out.append(ch)
        size += width
    return "".join(out)


def field_manager(requested: str | None, user_agent: str) -> str:
    """The manager a write is recorded under: `fieldManager`, else the User-Agent's product name."""
    name = requested or manager_from_user_agent(user_agent or "")
    return name or "unknown"


def validate_field_manager(name: str | None, options_kind: str, required_for_apply: bool = False) -> None:
    """422 as upstream's Create/Update/PatchOptions validation."""
    causes: list[dict[str, str]] = []
    if required_for_apply and not name:
        causes.append({"type": "FieldValueRequired", "field": "fieldManager",
                       "message": "Required value: is required for apply patch"})
    if name:
        if len(name.encode()) > MAX_MANAGER_LENGTH:
            causes.append({"type": "FieldValueTooLong", "field": "fieldManager",
                           "message": f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"})
        for i, ch in enumerate(name):
            if not _printable(ch):
                causes.append({"type": "FieldValueInvalid", "field": "fieldManager",
                               "message": f"Invalid value: {orjson.dumps(name).decode()}: invalid character "
                                          f"U+{ord(ch):04X} (at position {i})"})
    if causes:
        raise errors.invalid(options_kind, META_GROUP, "", causes)


def request_manager(query: Mapping[str, str], headers: Mapping[str, str], options_kind: str) -> str:
    """The validated manager of a create/update/patch request."""
    requested = query.get("fieldManager") or ""
    validate_field_manager(requested, options_kind)
    return field_manager(requested, headers.get("User-Agent", ""))


# ---------------------------------------------------------------- types and reset fields


def root_type(rt: ResourceType) -> TypeNode:
    schema = rt.extra.get("openapi_schema") if rt.extra else None
    if schema:
        return mf.type_from_schema(schema)
    return mf.type_named(rt.schema_name) if rt.schema_name else mf.type_from_schema(None)


def _scope(rt: ResourceType, subresource: str, s: FieldSet) -> FieldSet:
    """Only the fields a (sub)resource may write count: the main resource never owns status."""
    if subresource == "status":
        return mf.only_top(s, frozenset({"status"}))
    if subresource == "scale":
        return mf.only_top(s, frozenset({"spec"}))
    if subresource:
        return s
    if rt.subresource("status") is not None:
        return mf.without_top(s, frozenset({"status"}))
    return s


def _without_managed(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _finish(managed: Managed) -> list[dict[str, Any]] | None:
    for ident in list(managed):
        entry = managed[ident]
        entry.fields = mf.strip_meta(entry.fields)
        if not entry.fields:
            del managed[ident]
    _cap_update_managers(managed)
    return mf.encode_entries(managed) if managed else None


def _set_managed(obj: dict[str, Any], encoded: list[dict[str, Any]] | None) -> None:
    meta = obj.setdefault("metadata", {})
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def _cap_update_managers(managed: Managed) -> None:
    """At most ten Update entries: the oldest fold into `ancient-changes`, one bucket per version."""
    updaters = [i for i, e in managed.items() if e.operation == "Update"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda i: (managed[i].time or "", i))
    first_of_version: dict[str, tuple] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        entry = managed[ident]
        version = entry.api_version
        bucket = mf.manager_id(ANCIENT_MANAGER, "Update", version)
        if version not in first_of_version:
            first_of_version[version] = ident
            continue
        if bucket not in managed:
            first = managed.pop(first_of_version[version])
            managed[bucket] = Entry(ANCIENT_MANAGER, "Update", version, first.fields, first.time)
        target = managed[bucket]
        target.fields = mf.union(target.fields, entry.fields)
        target.time = entry.time
        if ident != bucket:
            del managed[ident]
        length -= 1


# ---------------------------------------------------------------- Update


def record_update(rt: ResourceType, live: dict[str, Any] | None, new: dict[str, Any], manager: str,
                  subresource: str = "") -> None:
    """Set `new`'s managedFields after a create (live None) or update by `manager`."""
    meta = new.setdefault("metadata", {})
    sent_present = "managedFields" in meta
    sent = meta.pop("managedFields", None)
    live_meta = (live or {}).get("metadata") or {}
    live_raw = live_meta.get("managedFields")
    if subresource:
        managed = mf.decode_stored(live_raw)
    elif sent_present and mf.is_reset(sent):
        managed = {}
    else:
        try:
            managed = mf.decode_entries(sent) if sent else {}
        except mf.FieldSetError:
            managed = {}
        if not managed:
            managed = mf.decode_stored(live_raw)
    try:
        diff = mf.compare(_without_managed(live), new, root_type(rt))
    except mf.FieldSetError:
        # upstream's UpdateNoErrors: keep what the live object had
        if live_raw:
            meta["managedFields"] = live_raw
        return
    changed = _scope(rt, subresource, diff.changed())
    removed = _scope(rt, subresource, diff.removed)
    me = mf.manager_id(manager, "Update", rt.api_version, subresource)
    for entry in managed.values():
        entry.fields = mf.difference(mf.difference(entry.fields, changed), removed)
    taken = mf.strip_meta(changed)
    if taken:
        previous = managed.get(me)
        fields = mf.union(previous.fields, taken) if previous else taken
        managed[me] = Entry(manager, "Update", rt.api_version, fields, now_rfc3339(), subresource)
    _set_managed(new, _finish(managed))


# ---------------------------------------------------------------- Apply


def _group_version(api_version: Any) -> tuple[str, str]:
    if not isinstance(api_version, str) or not api_version:
        return "", ""
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def check_applied(rt: ResourceType, config: Any) -> None:
    """What upstream refuses before merging: a wrong type, client-set managedFields."""
    if not isinstance(config, dict):
        raise errors.bad_request("error decoding YAML: the apply configuration must be an object")
    group, version = _group_version(config.get("apiVersion"))
    kind = config.get("kind") if isinstance(config.get("kind"), str) else ""
    if (group, version, kind) != (rt.group, rt.version, rt.kind):
        raise errors.bad_request(f"invalid object type: {group}/{version}, Kind={kind}")
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")


def _typed_error(rt: ResourceType, config: dict[str, Any], what: str, e: Exception) -> errors.ApiError:
    meta = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    where = f"{meta.get('namespace') or '<unknown>'}/{meta.get('name') or '<unknown>'}"
    return errors.internal(f"failed to create typed {what} object ({where}; {rt.api_version}, Kind={rt.kind}): {e}")


def server_side_apply(rt: ResourceType, live: dict[str, Any] | None, config: dict[str, Any], manager: str,
                      force: bool = False, subresource: str = "") -> dict[str, Any]:
    """The live object (None: absent) with `config` applied by `manager`, managedFields included.

    Raises a 409 naming the other managers when the config changes a value they own and `force` is off."""
    check_applied(rt, config)
    node = root_type(rt)
    live_clean = _without_managed(live) or {}
    managed = mf.decode_stored(((live or {}).get("metadata") or {}).get("managedFields"))
    try:
        applied = _scope(rt, subresource, mf.field_set(config, node))
    except mf.FieldSetError as e:
        raise _typed_error(rt, config, "patch", e) from None
    try:
        merged = merge(live_clean, config, node)
    except mf.FieldSetError as e:
        raise _typed_error(rt, config, "live", e) from None
    me = mf.manager_id(manager, "Apply", rt.api_version, subresource)
    previous = managed.get(me)
    managed[me] = Entry(manager, "Apply", rt.api_version, applied, previous.time if previous else None, subresource)
    if previous is not None and previous.fields:
        owned: FieldSet = {}
        for entry in managed.values():
            owned = mf.union(owned, entry.fields)
        dropped = mf.difference(previous.fields, owned)
        if dropped:
            merged = mf.remove_items(merged, dropped, node)
    diff = mf.compare(live_clean, merged, node)
    changed = _scope(rt, subresource, diff.changed())
    removed = _scope(rt, subresource, diff.removed)
    conflicts = {ident: c for ident, entry in managed.items()
                 if ident != me and (c := mf.intersection(entry.fields, changed))}
    if conflicts and not force:
        if manager == "kubectl":
            conflicts = _not_from_last_applied(rt, live_clean, node, conflicts)
        if conflicts:
            raise conflict_error(managed, conflicts)
    for ident, entry in managed.items():
        if ident != me:
            entry.fields = mf.difference(mf.difference(entry.fields, changed), removed)
    if not _equal(merged, live_clean):
        managed[me].time = now_rfc3339()
    if manager == "kubectl":
        _sync_last_applied(merged, config)
    _set_managed(merged, _finish(managed))
    return merged


def _equal(a: Any, b: Any) -> bool:
    return a is b or orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def _not_from_last_applied(rt: ResourceType, live: dict[str, Any], node: TypeNode,
                           conflicts: dict[tuple, FieldSet]) -> dict[tuple, FieldSet]:
    """kubectl moving from client-side to server-side apply: fields its last-applied annotation set, still
    at those values, are not conflicts (upstream's lastAppliedManager)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED) if isinstance(annotations, dict) else None
    if not text:
        return conflicts
    try:
        last = orjson.loads(text)
        if not isinstance(last, dict) or last.get("apiVersion") != rt.api_version:
            return conflicts
        allowed = mf.field_set(last, node)
        diff = mf.compare(last, live, node)
    except (orjson.JSONDecodeError, mf.FieldSetError):
        return conflicts
    allowed = mf.difference(mf.difference(mf.difference(allowed, diff.modified), diff.added), diff.removed)
    remaining = {ident: left for ident, c in conflicts.items() if (left := mf.difference(c, allowed))}
    return remaining


def _sync_last_applied(merged: dict[str, Any], config: dict[str, Any]) -> None:
    """kubectl's server-side apply keeps an existing client-side annotation current (lastAppliedUpdater)."""
    annotations = (merged.get("metadata") or {}).get("annotations")
    if not isinstance(annotations, dict) or not annotations.get(LAST_APPLIED):
        return
    body = dict(config)
    meta = dict(body.get("metadata") or {})
    applied_annotations = dict(meta.get("annotations") or {})
    applied_annotations.pop(LAST_APPLIED, None)
    if "annotations" in meta:
        meta["annotations"] = applied_annotations
    body["metadata"] = meta
    merged["metadata"]["annotations"] = dict(annotations)
    merged["metadata"]["annotations"][LAST_APPLIED] = orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode() + "\n"


def _print_manager(entry: Entry) -> str:
    text = orjson.dumps(entry.manager).decode()
    if entry.subresource:
        text += f" with subresource {orjson.dumps(entry.subresource).decode()}"
    if entry.operation == "Update":
        text += f" using {entry.api_version}"
    return text


def conflict_error(managed: Managed, conflicts: dict[tuple, FieldSet]) -> errors.ApiError:
    """409 Conflict worded as upstream, one FieldManagerConflict cause per field."""
    found: list[tuple[str, str]] = []
    for ident in sorted(conflicts, key=lambda i: _print_manager(managed[i])):
        who = _print_manager(managed[ident])
        found.extend((who, mf.path_string(p)) for p in mf.paths(conflicts[ident]))
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path}
              for who, path in found]
    if len(found) == 1:
        message = f"Apply failed with 1 conflict: conflict with {found[0][0]}: {found[0][1]}"
    else:
        lines: list[str] = []
        last = None
        for who, path in found:
            if who != last:
                lines.append(f"conflicts with {who}:")
                last = who
            lines.append(f"- {path}")
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return errors.ApiError(409, "Conflict", message, {"causes": causes})


# ---------------------------------------------------------------- merge


def merge(live: dict[str, Any], config: dict[str, Any], node: TypeNode) -> dict[str, Any]:
    """The applied configuration merged into the live object (config wins on leaves; null unsets)."""
    return _merge(live, config, node)


def _merge(lhs: Any, rhs: Any, node: TypeNode) -> Any:
    node = mf._effective(node, rhs)
    kind = node.kind
    if node.atomic or kind == mf.SCALAR or lhs is _MISSING:
        return _copy(rhs, node)
    if kind in (mf.STRUCT, mf.MAP):
        if not isinstance(rhs, dict) or not isinstance(lhs, dict):
            return _copy(rhs, node)
        out = dict(lhs)
        for key, value in rhs.items():
            if value is None:
                out.pop(key, None)
                continue
            out[key] = _merge(lhs.get(key, _MISSING), value, node.field(key))
        return out
    if kind == mf.LIST:
        if not isinstance(rhs, list) or not isinstance(lhs, list):
            return _copy(rhs, node)
        return _merge_list(lhs, rhs, node)
    return _copy(rhs, node)


def _copy(value: Any, node: TypeNode) -> Any:
    """A config value as stored: nulls inside maps dropped (they mean "unset")."""
    if isinstance(value, dict):
        return {k: _copy(v, node) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_copy(v, node) for v in value]
    return value


def _merge_list(lhs: list[Any], rhs: list[Any], node: TypeNode) -> list[Any]:
    """Associative lists merge by key; shared items follow the config's order, live-only items keep their
    place (upstream's merge order)."""
    elem = node.elem
    lkeys = [mf.item_element(node, item) for item in lhs]
    rkeys = [mf.item_element(node, item) for item in rhs]
    ritems: dict[str, Any] = {}
    for k, item in zip(rkeys, rhs, strict=True):
        if k in ritems:
            raise mf.FieldSetError(f"duplicate entries for key {mf.element_string(k)}")
        ritems[k] = item
    litems: dict[str, Any] = {}
    for k, item in zip(lkeys, lhs, strict=True):
        litems.setdefault(k, item)
    shared = [k for k in rkeys if k in litems]
    shared_at = 0
    next_shared = shared[0] if shared else None
    merged: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(lkeys) or ri < len(rkeys):
        if li < len(lkeys) and ri < len(rkeys):
            k = lkeys[li]
            if k == rkeys[ri]:
                merged.add(k)
                out.append(_merge(litems[k], ritems[k], elem))
                li += 1
                ri += 1
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
                continue
            if k in ritems and next_shared is not None and next_shared != k:
                li += 1
                continue
        if li < len(lkeys):
            k = lkeys[li]
            if k not in ritems:
                out.append(lhs[li])
                li += 1
                continue
            if k in merged:
                li += 1
                continue
        if ri < len(rkeys):
            k = rkeys[ri]
            merged.add(k)
            out.append(_merge(litems.get(k, _MISSING), ritems[k], elem))
            ri += 1
            if next_shared is not None and next_shared == k:
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
    return out
