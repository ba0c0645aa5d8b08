"""PATCH on resources and their status/scale subresources: JSON patch, merge patch, strategic merge, apply."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api import apply as field_ownership
from ..api import errors, patch, selectors, validation
from ..api.jsoncopy import deep_copy
from ..api.resources import ResourceType
from . import body as bodies
from . import objectmeta, rest
from .context import ApiContext
from .request_info import RequestInfo
from .responses import object_response

MAX_JSON_PATCH_OPS = 10000
_INT32_MAX = 2**31 - 1


def _decode_patch(raw: bytes, mtype: str) -> Any:
    if mtype == bodies.APPLY_PATCH:
        return bodies.loads_yaml(raw)
    if mtype in (bodies.JSON_PATCH, bodies.MERGE_PATCH, bodies.STRATEGIC_PATCH):
        return bodies.loads_json(raw)
    raise errors.ApiError(
        415, "UnsupportedMediaType",
        f'the body of the request was in an unknown format - accepted media types include: '
        f'{bodies.JSON_PATCH}, {bodies.MERGE_PATCH}, {bodies.STRATEGIC_PATCH}, {bodies.APPLY_PATCH}')


def _status_only(data: Any) -> bool:
    if not isinstance(data, dict) or not set(data) <= {"status", "metadata", "apiVersion", "kind"}:
        return False
    meta = data.get("metadata")
    return meta is None or (isinstance(meta, dict) and not any(k == "labels" or k.startswith("$") for k in meta))


def apply_patch(rt: ResourceType, doc: dict[str, Any], mtype: str, data: Any, schema_name: str, *,
                owned: bool = False) -> dict[str, Any]:
    """`owned`: the caller gives up `doc` and `data` (merges may then work in place)."""
    if mtype == bodies.JSON_PATCH:
        if not isinstance(data, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if len(data) > MAX_JSON_PATCH_OPS:
            raise errors.too_large(
                f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPS}, got {len(data)}")
        result = patch.json_patch(doc, data)
        if schema_name and isinstance(result, dict):
            # a typed object has no null fields: upstream's decoding into Go types drops them
            result = _without_nulls(result)
    elif not isinstance(data, dict):
        raise errors.bad_request("the body of the patch must be a JSON object")
    elif mtype == bodies.MERGE_PATCH:
        result = patch.merge_patch(doc, data, owned=owned)
    elif mtype == bodies.STRATEGIC_PATCH:
        if not schema_name:
            raise errors.ApiError(
                415, "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{bodies.JSON_PATCH}, {bodies.MERGE_PATCH}, {bodies.APPLY_PATCH}")
        result = patch.strategic_merge_patch(doc, data, schema_name, owned=owned)
    else:
        # apply to a subresource body (scale): no ownership is kept on it, a strategic merge will do
        result = patch.strategic_merge_patch(doc, data, schema_name) if schema_name else patch.merge_patch(doc, data)
    if not isinstance(result, dict):
        raise errors.bad_request("the patched object is not a JSON object")
    return result


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


async def patch_resource(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    mode = rest.field_validation(request, "PatchOptions")
    dry = rest.dry_run(request)
    mtype = bodies.media_type(request)
    raw = await bodies.read_raw(request)
    data = _decode_patch(raw, mtype)
    is_apply = mtype == bodies.APPLY_PATCH
    requested = request.query.get("fieldManager") or ""
    _validate_patch_options(requested, is_apply, "force" in request.query)
    manager = field_ownership.field_manager(requested, request.headers.get("User-Agent", ""))
    force = _force(request.query.get("force"))
    if is_apply and info.subresource != "scale":
        field_ownership.check_applied(rt, data)
        _check_applied_types(rt, data)
    warnings: list[str] = []
    precondition = None
    if isinstance(data, dict):
        precondition = (data.get("metadata") or {}).get("resourceVersion") if isinstance(
            data.get("metadata"), dict) else None

    if info.subresource == "scale":
        return await _patch_scale(ctx, request, info, rt, mtype, data, dry, manager)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        if is_apply:
            patched = _apply(rt, current, data, manager, force, info.subresource)
            _check_name(patched, info)
        else:
            # `current` is ours (a fresh decode), so the patch may merge into it in place; but a status write
            # takes spec and labels from the stored object, so then only when the patch cannot touch them
            owned = info.subresource != "status" or _status_only(data)
            patched = apply_patch(rt, current if owned else deep_copy(current), mtype, deep_copy(data),
                                  rt.schema_name, owned=True)
        rest._check_type(rt, patched)
        warnings[:] = validation.check_fields(rt, patched, mode, None, "PatchOptions")
        rest.as_go_decodes(rt, patched)
        if info.subresource == "status":
            return objectmeta.status_update(rt, patched, current)
        return patched

    def create_missing() -> dict[str, Any]:
        obj = _apply(rt, None, data, manager, force)
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if meta.get("uid"):
            raise errors.conflict(rt.resource, rt.group, info.name,
                                  f"uid mismatch: the provided object specified uid {meta['uid']}, "
                                  f"and no existing object was found")
        _check_name(obj, info)
        rest._check_type(rt, obj)
        warnings[:] = validation.check_fields(rt, obj, mode, None, "PatchOptions")
        rest.as_go_decodes(rt, obj)
        return obj

    result, status = await rest.update_object(
        ctx, rt, info, mutate, precondition=precondition, dry=dry, subresource=info.subresource,
        create_missing=create_missing if is_apply and not info.subresource else None,
        field_manager=None if is_apply else manager)
    return object_response(request, result, status, warnings)


def _check_applied_types(rt: ResourceType, data: dict[str, Any]) -> None:
    """An apply configuration whose values do not fit the schema's types is the client's error (400), found
    before merging: upstream's typed conversion of the patch object refuses it."""
    if not rt.schema_name or (rt.extra and rt.extra.get("strategy") is not None):
        return
    try:
        validation.check_fields(rt, deep_copy(data), "Ignore", None, "PatchOptions")
    except errors.ApiError as e:
        if e.code != 400:
            raise
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        where = f"{meta.get('namespace') or '<unknown>'}/{meta.get('name') or '<unknown>'}"
        detail = e.message.split(": ", 1)[-1] if "cannot be handled as" in e.message else e.message
        raise errors.bad_request(f"failed to create typed patch object ({where}; {rt.api_version}, "
                                 f"Kind={rt.kind}): {detail}") from None


def _apply(rt: ResourceType, live: dict[str, Any] | None, data: dict[str, Any], manager: str, force: bool,
           subresource: str = "") -> dict[str, Any]:
    """Server-side apply; a patch object that cannot be typed is a 400, as upstream answers since it stopped
    reporting it as an internal error (kubernetes#139253)."""
    try:
        return field_ownership.server_side_apply(rt, live, data, manager, force, subresource)
    except errors.ApiError as e:
        if e.code == 500 and "failed to create typed patch object" in e.message:
            raise errors.bad_request(e.message.removeprefix("Internal error occurred: ")) from None
        raise


def _validate_patch_options(manager: str, is_apply: bool, force_given: bool) -> None:
    """PatchOptions as upstream validates them: 422 naming each bad field."""
    if not is_apply and force_given:
        raise errors.invalid("PatchOptions", field_ownership.META_GROUP, "", [{
            "type": "FieldValueForbidden", "field": "force",
            "message": "Forbidden: may not be specified for non-apply patch"}])
    field_ownership.validate_field_manager(manager, "PatchOptions", required_for_apply=is_apply)


def _force(raw: str | None) -> bool:
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1", "t"):
        return True
    if raw.lower() in ("false", "0", "f"):
        return False
    raise errors.bad_request(f'invalid value for force: "{raw}": strconv.ParseBool: parsing "{raw}": invalid syntax')


def _check_name(obj: dict[str, Any], info: RequestInfo) -> None:
    """The applied object must name what the URL names (upstream's checkName)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") or ""
    if name != info.name:
        raise errors.bad_request(f"the name of the object ({name}) does not match the name on the URL ({info.name})")
    namespace = meta.get("namespace") or ""
    if info.namespace and namespace and namespace != info.namespace:
        raise errors.bad_request(
            f"the namespace of the object ({namespace}) does not match the namespace on the URL ({info.namespace})")


# ---------------------------------------------------------------- scale


def scale_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    selector = spec.get("selector")
    if rt.kind == "ReplicationController":
        text = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
    else:
        text = selectors.label_selector_to_string(selector) if selector else ""
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if k in meta}
    scale_status: dict[str, Any] = {"replicas": status.get("replicas", 0)}
    if text:
        scale_status["selector"] = text
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": spec.get("replicas", 0)}, "status": scale_status}


def _replicas_from(scale: dict[str, Any], rt: ResourceType, name: str) -> int:
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.bad_request('Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
                                 'into Go struct field ScaleSpec.spec.replicas of type int32')
    if replicas < 0:
        raise errors.invalid("Scale", "autoscaling", name, [{
            "type": "FieldValueInvalid", "field": "spec.replicas",
            "message": f"Invalid value: {replicas}: must be greater than or equal to 0"}])
    if replicas > _INT32_MAX:  # the Scale's replicas are an int32, as are every workload's
        raise errors.invalid("Scale", "autoscaling", name, [{
            "type": "FieldValueInvalid", "field": "spec.replicas",
            "message": f"Invalid value: {replicas}: must be less than or equal to {_INT32_MAX}"}])
    return replicas


async def get_scale(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    kv = await ctx.store.get(rt.key(info.namespace, info.name))
    if kv is None:
        raise errors.not_found(rt.resource, rt.group, info.name)
    from . import codec

    return object_response(request, scale_of(rt, codec.decode_kv(kv)))


async def update_scale(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    dry = rest.dry_run(request)
    body, _ = await rest.read_object(request)
    if body.get("kind") not in (None, "", "Scale"):
        raise errors.bad_request(f"the kind in the data ({body.get('kind')}) does not match the expected kind (Scale)")
    replicas = _replicas_from(body, rt, info.name)
    precondition = (body.get("metadata") or {}).get("resourceVersion") or None

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        current.setdefault("spec", {})["replicas"] = replicas
        return current

    manager = field_ownership.request_manager(request.query, request.headers, "UpdateOptions")
    result, _ = await rest.update_object(ctx, rt, info, mutate, precondition=precondition, dry=dry,
                                         field_manager=manager, managed_subresource="scale")
    return object_response(request, scale_of(rt, result))


async def _patch_scale(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType, mtype: str,
                       data: Any, dry: bool, manager: str) -> web.Response:
    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        scale = scale_of(rt, current)
        patched = apply_patch(rt, scale, mtype, deep_copy(data), "io.k8s.api.autoscaling.v1.Scale")
        current.setdefault("spec", {})["replicas"] = _replicas_from(patched, rt, info.name)
        return current

    result, _ = await rest.update_object(ctx, rt, info, mutate, dry=dry, field_manager=manager,
                                         managed_subresource="scale")
    return object_response(request, scale_of(rt, result))
