"""The generic REST verbs for every resource type: get, list, create, update, patch, delete, deletecollection.

Every write goes validate → default → admit → store, with optimistic concurrency on the store revision.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp import web

from ..api import apply as field_ownership
from ..api import errors, kind_warnings, selectors, tables, validation, zerovalues
from ..api.defaults import apply_defaults
from ..api.jsoncopy import deep_copy
from ..api.resources import ResourceType
from ..api.validation_schema import conform, contains_null
from ..heap import collector_paused
from ..storage.interface import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
)
from . import body as bodies
from . import codec, objectmeta, table_lists
from .admission import add_warnings
from .context import ApiContext
from .request_info import RequestInfo
from .responses import TABLE_TYPE, json_response, object_response, wants_table

_MAX_RETRIES = 16
_GENERATE_NAME_ATTEMPTS = 8


class Operation:
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


# ---------------------------------------------------------------- query parameters


_INT64 = (-(2**63), 2**63 - 1)


def go_int64(raw: str) -> int | None:
    """Go's strconv.ParseInt(raw, 10, 64): ASCII digits with an optional sign, within int64 (None: not one).
    Python's int() also takes spaces, underscores and other scripts' digits, and has no bound."""
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(raw)
    return value if _INT64[0] <= value <= _INT64[1] else None


def _int_param(request: web.Request, name: str, minimum: int = 0) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    value = go_int64(raw)
    if value is None:
        raise errors.bad_request(f'invalid value for {name}: "{raw}": must be an integer') from None
    if value < minimum:
        raise errors.bad_request(f"invalid value for {name}: {value}: must be at least {minimum}")
    return value


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid value: "{v}": supported values: "All"')
    return bool(values)


def field_validation(request: web.Request, options_kind: str) -> str:
    return validation.check_field_validation(request.query.get("fieldValidation"), options_kind)


def _resource_version(request: web.Request, name: str = "resourceVersion") -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return None
    value = go_int64(raw)
    if value is None or value < 0:
        raise errors.bad_request(f'Invalid value: "{raw}": resourceVersion must be an integer')
    return value


# ---------------------------------------------------------------- helpers


def decode_kv(rt: ResourceType, kv) -> dict[str, Any]:
    """A stored object as this resource serves it (`rt.extra["convert_out"]`: stored in another version)."""
    obj = codec.decode_kv(kv)
    convert_out = rt.extra.get("convert_out")
    return convert_out(obj) if convert_out is not None else obj


def kv_bytes(rt: ResourceType, kv) -> bytes:
    if rt.extra.get("convert_out") is not None:
        return orjson.dumps(decode_kv(rt, kv))
    return codec.kv_bytes(kv)


def check_path_names(info: RequestInfo) -> None:
    for value in (info.namespace, info.name):
        if value and (value in (".", "..") or "/" in value or "%" in value):
            raise errors.bad_request(f'invalid resource name "{value}": may not contain "/" or "%" or be "." or ".."')


def _kind_of(rt: ResourceType) -> str:
    return rt.kind


def _not_found(rt: ResourceType, name: str) -> errors.ApiError:
    return errors.not_found(rt.resource, rt.group, name)


def _check_type(rt: ResourceType, obj: dict[str, Any], expected_kind: str | None = None,
                expected_api_version: str | None = None) -> None:
    kind = expected_kind or rt.kind
    api_version = expected_api_version or rt.api_version
    got_version = obj.get("apiVersion")
    got_kind = obj.get("kind")
    if got_version in (None, ""):
        obj["apiVersion"] = api_version
    elif got_version != api_version:
        raise errors.bad_request(
            f"the API version in the data ({got_version}) does not match the expected API version ({api_version})")
    if got_kind in (None, ""):
        obj["kind"] = kind
    elif got_kind != kind:
        raise errors.bad_request(f"the kind in the data ({got_kind}) does not match the expected kind ({kind})")
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = {}
    elif not isinstance(meta, dict):
        raise errors.bad_request(
            f'{kind} in version "{rt.version}" cannot be handled as a {kind}: json: cannot unmarshal '
            f'{type(meta).__name__} into Go struct field {kind}.metadata of type v1.ObjectMeta')


def _set_namespace(rt: ResourceType, obj: dict[str, Any], namespace: str) -> None:
    meta = obj["metadata"]
    if rt.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)


_RBAC_GROUP = "rbac.authorization.k8s.io"


async def _committed(ctx: ApiContext, rt: ResourceType, key: str, obj: dict[str, Any] | None, revision: int) -> None:
    """Tell the parts that follow certain kinds of a committed write (obj None: deleted): the authorizer of
    roles and bindings, the metrics API of nodes."""
    if obj is not None and rt.group == "" and rt.resource == "nodes":
        from . import metrics_api

        metrics_api.node_written(ctx, obj)
    if rt.group == _RBAC_GROUP:
        observe = getattr(ctx.authorizer, "observe_write", None)
        if observe is not None:
            await observe(rt, key, obj, revision)


async def run_admission(ctx: ApiContext, op: str, rt: ResourceType, obj: dict[str, Any] | None,
                        old: dict[str, Any] | None, info: RequestInfo, dry: bool) -> None:
    if obj is not None and rt.group == _RBAC_GROUP:
        # RBAC escalation checks (apiserver/rbac_escalation.py) come before admission, as upstream's storage
        check = getattr(ctx.authorizer, "check_write", None)
        if check is not None:
            await check(ctx, rt, obj, old, info)
    # the validating phase of the admission chain (apiserver/admission); a plain list holds legacy plugins
    validate = getattr(ctx.admission, "validate", None)
    if validate is not None:
        await validate(ctx, op, rt, obj, old, info, dry)
        return
    for plugin in ctx.admission:
        await plugin(ctx, op, rt, obj, old, info, dry)


async def run_mutating_admission(ctx: ApiContext, op: str, rt: ResourceType, obj: dict[str, Any] | None,
                                 old: dict[str, Any] | None, info: RequestInfo, dry: bool) -> None:
    """The mutating phase, after defaulting and before validation, as upstream orders it."""
    mutate = getattr(ctx.admission, "mutate", None)
    if mutate is not None:
        await mutate(ctx, op, rt, obj, old, info, dry)


def _selectors(request: web.Request, rt: ResourceType):
    label_text = request.query.get("labelSelector", "")
    field_text = request.query.get("fieldSelector", "")
    label_sel = selectors.parse_label_selector(label_text) if label_text else None
    field_sel = selectors.parse_field_selector(field_text, rt) if field_text else None
    return label_sel, field_sel


def matcher(label_sel, field_sel):
    if label_sel is None and field_sel is None:
        return None

    def matches(obj: dict[str, Any]) -> bool:
        if label_sel is not None and not label_sel.matches((obj.get("metadata") or {}).get("labels") or {}):
            return False
        if field_sel is not None and not field_sel.matches(obj):
            return False
        return True

    return matches


def _encode_continue(revision: int, start_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start_key + "\x00"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        revision = int(data["rv"])
        start = str(data["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
    if data.get("v") != "meta.k8s.io/v1" or revision <= 0:
        raise errors.bad_request("continue key is not valid: server does not recognize this encoded version")
    start = start.removesuffix("\x00")
    if not start.startswith(prefix):
        raise errors.bad_request("continue key is not valid: the start key is outside the requested range")
    return revision, start


def include_object(request: web.Request) -> str:
    return tables.check_include_object(request.query.get("includeObject"))


# ---------------------------------------------------------------- read verbs


async def get(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    kv = await ctx.store.get(rt.key(info.namespace, info.name))
    if kv is None:
        raise _not_found(rt, info.name)
    accept = request.headers.get("Accept", "")
    if wants_table(accept):
        obj = decode_kv(rt, kv)
        table = tables.to_table(rt, [obj], include_object=include_object(request),
                                resource_version=str(kv.mod_revision))
        return json_response(table, content_type=TABLE_TYPE)
    return object_response(request, kv_bytes(rt, kv))


async def list_objects(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType, *,
                       page: tuple[int, str] | None = None) -> tuple[list[Any], int, str, int | None, bool]:
    """(items as bytes or dicts, revision, continue token, remaining count, items_are_dicts).

    `page`: (limit, continue token) instead of the request's."""
    label_sel, field_sel = _selectors(request, rt)
    match = matcher(label_sel, field_sel)
    limit = (_int_param(request, "limit") or 0) if page is None else page[0]
    prefix = rt.prefix(info.namespace or None)
    # a fieldSelector on metadata.name (kubectl's delete-wait, rollout status) reads one key
    exact_name = field_sel.name if field_sel is not None else None
    revision = 0
    start_key = ""
    token = request.query.get("continue", "") if page is None else page[1]
    rv = _resource_version(request)
    rv_match = request.query.get("resourceVersionMatch", "")
    if rv_match and rv_match not in ("Exact", "NotOlderThan"):
        raise errors.bad_request(
            f'resourceVersionMatch: Unsupported value: "{rv_match}": supported values: "Exact", "NotOlderThan"')
    if rv_match and rv is None:
        raise errors.bad_request("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                                 "resourceVersion is provided")
    if token:
        if rv:
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        revision, start_key = _decode_continue(token, prefix)
    elif rv and rv_match == "Exact":
        revision = rv
    elif rv and rv > ctx.store.current_revision:
        raise errors.too_large_resource_version(rv, ctx.store.current_revision)
    items: list[Any] = []
    # a selector decodes each object to test it, but what is kept is its bytes (a tenth of the memory of the
    # dict) unless a Table needs the objects
    as_dicts = wants_table(request.headers.get("Accept", ""))
    if exact_name is not None and (info.namespace or not rt.namespaced) and not token:
        # read the revision first: the state we return is then at least as new as the revision we report
        read_rev = revision or ctx.store.current_revision
        try:
            kv = await ctx.store.get(rt.key(info.namespace, exact_name), revision)
        except CompactedError:
            raise errors.gone("The resourceVersion for the provided list is too old.") from None
        except FutureRevisionError as e:
            raise errors.too_large_resource_version(e.requested, e.current) from None
        if kv is not None:
            obj = decode_kv(rt, kv)
            if match is None or match(obj):
                items.append(obj if as_dicts else kv_bytes(rt, kv))
        return items, read_rev, "", None, as_dicts
    last_key = start_key
    page = limit if (limit and match is None) else (max(limit, 500) if limit else 0)
    while True:
        try:
            result = await ctx.store.list(prefix, revision=revision, limit=page, start_key=last_key)
        except CompactedError:
            if token:
                raise errors.gone(_CONTINUE_TOO_OLD) from None
            raise errors.gone("The resourceVersion for the provided list is too old.") from None
        except FutureRevisionError as e:
            raise errors.too_large_resource_version(e.requested, e.current) from None
        revision = result.revision
        with collector_paused():
            for index, kv in enumerate(result.items):
                last_key = kv.key
                if match is None:
                    items.append(decode_kv(rt, kv) if as_dicts else kv_bytes(rt, kv))
                else:
                    obj = decode_kv(rt, kv)
                    if not match(obj):
                        continue
                    items.append(obj if as_dicts else kv_bytes(rt, kv))
                if limit and len(items) >= limit:
                    unread = len(result.items) - 1 - index
                    if unread == 0 and not result.more:
                        return items, revision, "", None, as_dicts
                    remaining = None if match is not None else unread + result.remaining
                    return items, revision, _encode_continue(revision, last_key), remaining, as_dicts
        if not result.more:
            return items, revision, "", None, as_dicts


_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list.")


async def list_(ctx: ApiContext, request: web.Request, info: RequestInfo,
                rt: ResourceType) -> web.StreamResponse:
    accept = request.headers.get("Accept", "")
    if wants_table(accept) and table_lists.wanted(request):
        async def read_page(limit: int, token: str) -> tuple[list[Any], int, str]:
            items, revision, cont, _, _ = await list_objects(ctx, request, info, rt, page=(limit, token))
            return items, revision, cont

        return await table_lists.whole_table(request, rt, include_object(request), read_page)
    items, revision, cont, remaining, as_dicts = await list_objects(ctx, request, info, rt)
    if wants_table(accept):
        with collector_paused():
            table = tables.to_table(rt, items, include_object=include_object(request),
                                    resource_version=str(revision), continue_token=cont, remaining=remaining)
            return json_response(table, content_type=TABLE_TYPE)
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if cont:
        meta["continue"] = cont
        if remaining is not None:
            meta["remainingItemCount"] = remaining
    if as_dicts:
        return object_response(request, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                         "metadata": meta, "items": items})
    head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
    data = head[:-1] + b',"items":[' + b",".join(items) + b"]}"
    return object_response(request, data)


# ---------------------------------------------------------------- write verbs


async def read_object(request: web.Request) -> tuple[dict[str, Any], list[str]]:
    """The decoded body and its duplicate fields (only visible in the raw JSON)."""
    raw = await bodies.read_raw(request)
    mtype = bodies.media_type(request)
    obj = bodies.decode_object(raw, mtype)
    duplicates = validation.find_duplicate_fields(raw) if mtype in ("", bodies.JSON) else []
    return obj, duplicates


def _strategy(rt: ResourceType):
    """The create/update rules a type brings of its own (custom resources, CRDs: apiserver/crds.py), or None."""
    return rt.extra.get("strategy") if rt.extra else None


def check_fields(rt: ResourceType, obj: Any, mode: str | None, duplicates: list[str] | None,
                 options_kind: str) -> list[str]:
    """Unknown/duplicate fields and fieldValidation, by the type's own strategy when it has one."""
    strategy = _strategy(rt)
    if strategy is not None:
        return strategy.check_fields(rt, obj, mode, duplicates, options_kind)
    warnings = validation.check_fields(rt, obj, mode, duplicates, options_kind)
    as_go_decodes(rt, obj)
    return warnings


def as_go_decodes(rt: ResourceType, obj: Any) -> None:
    """Nulls in a built-in object to the zero values Go decoding gives them, before defaulting and admission
    read it (upstream's plugins never see a null list item); what remains wrong is validation's to report."""
    # the schema walk only changes nulls: most bodies have none, and validation walks the object anyway
    if _strategy(rt) is None and isinstance(obj, dict) and contains_null(obj):
        conform(rt, obj)


def _finish_for_store(rt: ResourceType, obj: dict[str, Any]) -> bytes:
    zerovalues.fill(rt.schema_name, obj)  # Go's zero values, in the response as in the store
    return codec.encode(convert_in(obj) if (convert_in := rt.extra.get("convert_in")) else obj)


async def create(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType,
                 obj: dict[str, Any] | None = None) -> web.Response:
    mode = field_validation(request, "CreateOptions")
    dry = dry_run(request)
    duplicates: list[str] = []
    if obj is None:
        obj, duplicates = await read_object(request)
    _check_type(rt, obj)
    warnings = check_fields(rt, obj, mode, duplicates, "CreateOptions")
    manager = field_ownership.request_manager(request.query, request.headers, "CreateOptions")
    created, status = await create_object(ctx, rt, obj, info, dry, field_manager=manager)
    return object_response(request, created, status, warnings)


async def create_object(ctx: ApiContext, rt: ResourceType, obj: dict[str, Any], info: RequestInfo,
                        dry: bool, *, field_manager: str | None = None) -> tuple[dict[str, Any], int]:
    """With `field_manager`, the create is recorded in managedFields (an Update by that manager)."""
    _set_namespace(rt, obj, info.namespace)
    meta = obj["metadata"]
    generated = not meta.get("name") and bool(meta.get("generateName"))
    if generated:
        meta["name"] = objectmeta.generate_name(str(meta["generateName"]))
    strategy = _strategy(rt)
    if strategy is not None:
        strategy.default(rt, obj)
    else:
        apply_defaults(rt, obj)
    await run_mutating_admission(ctx, Operation.CREATE, rt, obj, None, info, dry)
    objectmeta.prepare_for_create(rt, obj)
    if strategy is not None:
        strategy.prepare_for_create(rt, obj)
        strategy.validate(rt, obj)
    else:
        validation.validate(rt, obj)
        add_warnings(kind_warnings.on_create(rt, obj))  # upstream's strategy WarningsOnCreate
    name = meta["name"]
    if field_manager is not None:
        field_ownership.record_update(rt, None, obj, field_manager)
    await run_admission(ctx, Operation.CREATE, rt, obj, None, info, dry)
    taken = _allocate(ctx, rt, obj, None)
    if dry:
        _free(ctx, taken)
        return obj, 201
    attempts = _GENERATE_NAME_ATTEMPTS if generated else 1
    while True:
        try:
            kv = await ctx.store.create(rt.key(info.namespace, name), _finish_for_store(rt, obj))
            break
        except KeyExistsError:
            attempts -= 1
            if attempts > 0:  # a generated name that collided: pick another, as upstream does since 1.32
                name = meta["name"] = objectmeta.generate_name(str(meta["generateName"]))
                continue
            _free(ctx, taken)
            raise errors.already_exists(rt.resource, rt.group, name) from None
        except BaseException:
            _free(ctx, taken)
            raise
    meta["resourceVersion"] = str(kv.mod_revision)
    await _committed(ctx, rt, kv.key, obj, kv.mod_revision)
    return obj, 201


def _is_service(rt: ResourceType) -> bool:
    return rt.kind == "Service" and rt.group == ""


def _allocate(ctx: ApiContext, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list:
    """Cluster IPs and node ports for Services, taken before the write and freed if it does not land."""
    if ctx.allocators is None or not _is_service(rt):
        return []
    return ctx.allocators.allocate(obj, old)


def _free(ctx: ApiContext, taken: list) -> None:
    if taken:
        ctx.allocators.free(taken)


async def update(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    mode = field_validation(request, "UpdateOptions")
    dry = dry_run(request)
    obj, duplicates = await read_object(request)
    _check_type(rt, obj)
    warnings = check_fields(rt, obj, mode, duplicates, "UpdateOptions")
    meta = obj["metadata"]
    body_name = meta.get("name")
    if body_name and body_name != info.name:
        raise errors.bad_request(
            f"the name of the object ({body_name}) does not match the name on the URL ({info.name})")
    meta["name"] = info.name
    _set_namespace(rt, obj, info.namespace)
    precondition = meta.get("resourceVersion") or None

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        new = deep_copy(obj)
        if info.subresource == "status":
            return objectmeta.status_update(rt, new, current)
        return new

    manager = field_ownership.request_manager(request.query, request.headers, "UpdateOptions")
    result, status = await update_object(ctx, rt, info, mutate, precondition=precondition, dry=dry,
                                         subresource=info.subresource, field_manager=manager)
    return object_response(request, result, status, warnings)


async def update_object(ctx: ApiContext, rt: ResourceType, info: RequestInfo, mutate, *,
                        precondition: str | None = None, dry: bool = False, subresource: str = "",
                        create_missing=None, field_manager: str | None = None,
                        managed_subresource: str | None = None) -> tuple[dict[str, Any], int]:
    """Read-modify-write with retries on concurrent change; `mutate(current) -> new` (may raise ApiError).

    With `create_missing(info) -> obj`, a missing object is created instead (server-side apply).
    With `field_manager`, the write is recorded in managedFields as an Update by that manager, through
    `managed_subresource` (default: `subresource`)."""
    key = rt.key(info.namespace, info.name)
    for _ in range(_MAX_RETRIES):
        kv = await ctx.store.get(key)
        if kv is None:
            if create_missing is not None:
                obj = create_missing()
                return await create_object(ctx, rt, obj, info, dry)
            raise _not_found(rt, info.name)
        current = decode_kv(rt, kv)
        if precondition is not None and precondition != current["metadata"]["resourceVersion"]:
            raise errors.stale(rt.resource, rt.group, info.name)
        new = mutate(decode_kv(rt, kv))  # a second decode: cheaper than a deep copy of `current`
        new.setdefault("metadata", {})
        new["metadata"]["name"] = info.name
        _set_namespace(rt, new, info.namespace)
        strategy = _strategy(rt)
        if strategy is not None:
            strategy.default(rt, new)
            await run_mutating_admission(ctx, Operation.UPDATE, rt, new, current, info, dry)
            strategy.prepare_for_update(rt, new, current, subresource)
            strategy.validate(rt, new, current)
        else:
            if not subresource:
                apply_defaults(rt, new)
            await run_mutating_admission(ctx, Operation.UPDATE, rt, new, current, info, dry)
            objectmeta.prepare_for_update(rt, new, current, subresource)
            if subresource != "binding":  # binding sets spec.nodeName, which pod updates may not change
                validation.validate(rt, new, current)
            if not subresource:
                add_warnings(kind_warnings.on_update(rt, new, current))  # the strategy's WarningsOnUpdate
        if field_manager is not None:
            field_ownership.record_update(rt, current, new, field_manager,
                                          subresource if managed_subresource is None else managed_subresource)
        await run_admission(ctx, Operation.UPDATE, rt, new, current, info, dry)
        taken = _allocate(ctx, rt, new, current)
        # an unchanged object is not written, unless its stored form is stale (encrypted with an old key)
        zerovalues.fill(rt.schema_name, new)  # before comparing: a zero the client left out is no change
        if objectmeta.same_object(new, current) and not getattr(ctx.store, "is_stale", lambda k: False)(key):
            _free(ctx, taken)
            return current, 200
        if dry:
            _free(ctx, taken)
            return new, 200
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and _deletion_due(rt, new) and not (
                rt.kind == "Namespace" and rt.group == "" and (new.get("spec") or {}).get("finalizers")):
            _free(ctx, taken)
            try:
                _, rev = await ctx.store.delete(key, kv.mod_revision)
            except (RevisionMismatchError, KeyNotFoundError):
                continue
            await _released(ctx, rt, current)
            await _committed(ctx, rt, key, None, rev)
            meta["resourceVersion"] = str(rev)
            return new, 200
        try:
            written = await ctx.store.update(key, _finish_for_store(rt, new), kv.mod_revision)
        except (RevisionMismatchError, KeyNotFoundError):
            _free(ctx, taken)
            if precondition is not None:
                raise errors.stale(rt.resource, rt.group, info.name) from None
            continue
        except BaseException:
            _free(ctx, taken)
            raise
        if ctx.allocators is not None and _is_service(rt):
            ctx.allocators.committed(new, current)
        meta["resourceVersion"] = str(written.mod_revision)
        await _committed(ctx, rt, key, new, written.mod_revision)
        return new, 200
    raise errors.ApiError(409, "Conflict", f'Operation cannot be fulfilled on {errors.qualified(rt.resource, rt.group)} '
                          f'"{info.name}": too many concurrent updates, please try again')


def _deletion_due(rt: ResourceType, obj: dict[str, Any]) -> bool:
    return int(obj["metadata"].get("deletionGracePeriodSeconds") or 0) == 0


async def _released(ctx: ApiContext, rt: ResourceType, obj: dict[str, Any]) -> None:
    if ctx.allocators is not None and _is_service(rt):
        ctx.allocators.release(obj)


# ---------------------------------------------------------------- delete


async def read_delete_options(request: web.Request) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if request.can_read_body:
        raw = await bodies.read_raw(request)
        if raw.strip():
            decoded = bodies.decode(raw, bodies.media_type(request))
            if not isinstance(decoded, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            opts = decoded
    for name in ("gracePeriodSeconds",):
        value = _int_param(request, name, minimum=-(2 ** 62))
        if value is not None:
            opts[name] = value
    if "propagationPolicy" in request.query:
        opts["propagationPolicy"] = request.query["propagationPolicy"]
    if "orphanDependents" in request.query:
        opts["orphanDependents"] = request.query["orphanDependents"].lower() == "true"
    policy = opts.get("propagationPolicy")
    if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
        raise errors.invalid("DeleteOptions", "", "", [{
            "type": "FieldValueNotSupported", "field": "propagationPolicy",
            "message": f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"'}])
    if policy is not None and opts.get("orphanDependents") is not None:
        raise errors.invalid("DeleteOptions", "", "", [{
            "type": "FieldValueInvalid", "field": "propagationPolicy",
            "message": f"Invalid value: \"{policy}\": orphanDependents and deletionPropagation cannot be both set"}])
    return opts




def _options_dry_run(opts: dict[str, Any]) -> bool:
    """kubectl sends `dryRun` for deletes in the DeleteOptions body rather than the query."""
    values = opts.get("dryRun") or []
    if not isinstance(values, list):
        raise errors.bad_request("DeleteOptions.dryRun must be a list of strings")
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid value: "{v}": supported values: "All"')
    return bool(values)


async def delete(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    opts = await read_delete_options(request)
    dry = dry_run(request) or _options_dry_run(opts)
    result, status = await delete_object(ctx, rt, info, opts, dry)
    return object_response(request, result, status)


def _default_orphan(rt: ResourceType) -> bool:
    return False


async def delete_object(ctx: ApiContext, rt: ResourceType, info: RequestInfo, opts: dict[str, Any],
                        dry: bool) -> tuple[dict[str, Any], int]:
    key = rt.key(info.namespace, info.name)
    pre = opts.get("preconditions") or {}
    for _ in range(_MAX_RETRIES):
        kv = await ctx.store.get(key)
        if kv is None:
            raise _not_found(rt, info.name)
        obj = decode_kv(rt, kv)
        meta = obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(rt.resource, rt.group, info.name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, "
                                  f"UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(rt.resource, rt.group, info.name,
                                  f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
        await run_mutating_admission(ctx, Operation.DELETE, rt, None, obj, info, dry)
        await run_admission(ctx, Operation.DELETE, rt, None, obj, info, dry)
        finalizers = list(meta.get("finalizers") or [])
        policy = opts.get("propagationPolicy")
        if policy is None and opts.get("orphanDependents") is not None:
            policy = "Orphan" if opts["orphanDependents"] else "Background"
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        grace = _grace_period(rt, obj, opts)
        if rt.kind == "Namespace" and rt.group == "":
            spec_finalizers = (obj.get("spec") or {}).get("finalizers") or []
            if spec_finalizers or finalizers:
                return await _mark_deleting(ctx, rt, key, kv.mod_revision, obj, finalizers, 0, dry,
                                            namespace_phase=True) or (obj, 200)
        if finalizers or grace > 0:
            if meta.get("deletionTimestamp"):
                # already terminating: a second delete may only shorten the grace period
                if grace >= int(meta.get("deletionGracePeriodSeconds") or 0) and finalizers == list(
                        meta.get("finalizers") or []):
                    return obj, 200
            result = await _mark_deleting(ctx, rt, key, kv.mod_revision, obj, finalizers, grace, dry)
            if result is None:
                continue
            if finalizers or grace > 0:
                return result
        if dry:
            return obj, 200
        try:
            _, rev = await ctx.store.delete(key, kv.mod_revision)
        except (RevisionMismatchError, KeyNotFoundError):
            continue
        await _released(ctx, rt, obj)
        await _committed(ctx, rt, key, None, rev)
        return obj, 200
    raise errors.ApiError(409, "Conflict", "too many concurrent updates during delete, please try again")


def _grace_period(rt: ResourceType, obj: dict[str, Any], opts: dict[str, Any]) -> int:
    """Graceful deletion applies to pods bound to a node (the kubelet finishes it); others go at once."""
    if rt.kind != "Pod" or rt.group != "":
        return 0
    spec = obj.get("spec") or {}
    if not spec.get("nodeName"):
        return 0
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = opts.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(int(grace), 0)


async def _mark_deleting(ctx: ApiContext, rt: ResourceType, key: str, revision: int, obj: dict[str, Any],
                         finalizers: list[str], grace: int, dry: bool,
                         namespace_phase: bool = False) -> tuple[dict[str, Any], int] | None:
    from datetime import UTC, datetime, timedelta

    meta = obj["metadata"]
    if not meta.get("deletionTimestamp"):
        when = datetime.now(UTC) + timedelta(seconds=grace)
        meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["deletionGracePeriodSeconds"] = grace
    if finalizers:
        meta["finalizers"] = finalizers
    if namespace_phase:
        obj.setdefault("status", {})["phase"] = "Terminating"
    if dry:
        return obj, 200
    try:
        written = await ctx.store.update(key, _finish_for_store(rt, obj), revision)
    except (RevisionMismatchError, KeyNotFoundError):
        return None
    meta["resourceVersion"] = str(written.mod_revision)
    return obj, 200


async def delete_collection(ctx: ApiContext, request: web.Request, info: RequestInfo,
                            rt: ResourceType) -> web.Response:
    opts = await read_delete_options(request)
    dry = dry_run(request) or _options_dry_run(opts)
    items, revision, _, _, _ = await list_objects(ctx, request, info, rt)
    deleted = []
    for item in items:
        obj = item if isinstance(item, dict) else orjson.loads(item)
        meta = obj["metadata"]
        sub = RequestInfo(is_resource=True, path=info.path, verb="delete", api_prefix=info.api_prefix,
                          group=info.group, version=info.version, namespace=meta.get("namespace", ""),
                          resource=info.resource, name=meta["name"])
        try:
            result, _ = await delete_object(ctx, rt, sub, opts, dry)
        except errors.ApiError as e:
            if e.code == 404:
                continue
            raise
        deleted.append(result)
    return object_response(request, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                     "metadata": {"resourceVersion": str(ctx.store.current_revision)},
                                     "items": deleted})
