"""CustomResourceDefinitions: serving the resources they define, and their lifecycle.

A CRD write is followed by `sync`, which rebuilds the custom types in the registry from the stored CRDs,
so a new resource is served (discovery, OpenAPI, REST, watch) as soon as the create returns. Each custom
type carries a `CustomResourceStrategy` in `rt.extra["strategy"]`: the generic REST code calls it for
pruning, defaulting and structural-schema validation instead of the built-in kinds' rules. Deleting a CRD
adds upstream's cleanup finalizer, deletes every instance, then lets the CRD go.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import orjson
from aiohttp import web

from ..api import errors, schemas, selectors, structural, validation
from ..api import validation_crd as vcrd
from ..api import validation_names as vn
from ..api.resources import SCALE, STATUS, ResourceType, Subresource
from ..storage.interface import KeyNotFoundError
from . import body as bodies
from . import codec, objectmeta, patching, rest
from .context import ApiContext
from .request_info import RequestInfo
from .responses import object_response

log = logging.getLogger("kubelite.apiserver.crds")

GROUP = vcrd.GROUP
RESOURCE = "customresourcedefinitions"
CRD_PREFIX = f"/registry/{GROUP}/{RESOURCE}/"
# upstream's order for custom resources
CR_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
_CLEANUP_RETRY_SECONDS = 1.0

Obj = dict[str, Any]


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def is_crd_type(rt: ResourceType) -> bool:
    return rt.group == GROUP and rt.resource == RESOURCE


def is_custom(rt: ResourceType) -> bool:
    return isinstance(rt.extra.get("strategy"), CustomResourceStrategy)


def openapi_name(group: str, version: str, kind: str) -> str:
    """Upstream's definition name for a custom kind: the group reversed, e.g. com.example.stable.v1.CronTab."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


# ------------------------------------------------------------------------------------------------ strategies


def _metadata_causes(rt: ResourceType, obj: Obj, old: Obj | None) -> list[dict[str, str]]:
    meta = _d(obj.get("metadata"))
    causes = validation.validate_metadata(rt, meta)
    if old is not None:
        old_meta = _d(old.get("metadata"))
        for key in ("name", "namespace", "uid"):
            new_v, old_v = meta.get(key) or "", old_meta.get(key) or ""
            if old_v and new_v != old_v:
                causes.append(vn.immutable(f"metadata.{key}", new_v))
    return causes


def _raise(rt: ResourceType, obj: Obj, causes: list[dict[str, str]]) -> None:
    if causes:
        meta = _d(obj.get("metadata"))
        raise errors.invalid(rt.kind, rt.group, meta.get("name") or meta.get("generateName") or "", causes)


class CustomResourceStrategy:
    """Create/update rules of one served version of a CRD: prune, default, validate against its schema."""

    def __init__(self, crd: Obj, version: Obj) -> None:
        spec = _d(crd.get("spec"))
        self.crd_name = _d(crd.get("metadata")).get("name", "")
        self.schema: Obj = copy.deepcopy(_d(_d(version.get("schema")).get("openAPIV3Schema")))
        subs = _d(version.get("subresources"))
        self.status_enabled = "status" in subs
        self.scale: Obj | None = _d(subs.get("scale")) if "scale" in subs else None
        self.terminating = bool(_d(crd.get("metadata")).get("deletionTimestamp"))
        self.group = spec.get("group", "")

    def check_fields(self, rt: ResourceType, obj: Any, mode: str | None, duplicates: list[str] | None,
                     options_kind: str) -> list[str]:
        directive = validation.check_field_validation(mode, options_kind)
        if not isinstance(obj, dict):
            raise errors.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                     f"json: cannot unmarshal {structural.json_type(obj)} into Go value of type "
                                     "map[string]interface {}")
        unknown: list[str] = []
        structural.prune(obj, self.schema, unknown, root=True)
        problems = [f'duplicate field "{d}"' for d in duplicates or ()]
        problems += [f'unknown field "{u}"' for u in unknown]
        if problems and directive == "Strict":
            version = str(obj.get("apiVersion") or rt.api_version).rsplit("/", 1)[-1]
            raise errors.bad_request(f'{obj.get("kind") or rt.kind} in version "{version}" cannot be handled as a '
                                     f"{rt.kind}: strict decoding error: " + ", ".join(problems))
        return problems if directive == "Warn" else []

    def default(self, rt: ResourceType, obj: Obj) -> None:
        structural.prune(obj, self.schema, [], root=True)
        structural.apply_defaults(obj, self.schema)

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        if self.terminating:
            raise errors.ApiError(405, "MethodNotAllowed",
                                  "create not allowed while custom resource definition is terminating")
        if self.status_enabled:
            obj.pop("status", None)

    def prepare_for_update(self, rt: ResourceType, new: Obj, old: Obj, subresource: str) -> None:
        objectmeta.prepare_for_update(rt, new, old, subresource)
        if not subresource and not self.status_enabled:
            # without a status subresource the status is part of what generation counts
            if new.get("status") != old.get("status"):
                old_gen = _d(old.get("metadata")).get("generation", 1)
                if new["metadata"].get("generation", old_gen) == old_gen:
                    new["metadata"]["generation"] = old_gen + 1

    def validate(self, rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
        causes = _metadata_causes(rt, obj, old)
        causes += structural.validate(obj, self.schema, "", root=True)
        if self.scale:
            causes += self._scale_causes(obj)
        _raise(rt, obj, causes)

    def _scale_causes(self, obj: Obj) -> list[dict[str, str]]:
        causes = []
        for key in ("specReplicasPath", "statusReplicasPath"):
            path = _d(self.scale).get(key) or ""
            found = _get_path(obj, path)
            if found is not _MISSING and found is not None and (
                    not isinstance(found, int) or isinstance(found, bool) or found < 0 or found > 2**31 - 1):
                causes.append(vn.invalid(path.lstrip("."), found, "should be a non-negative integer"))
        return causes


class CRDStrategy:
    """Create/update rules of CustomResourceDefinition objects themselves."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def check_fields(self, rt: ResourceType, obj: Any, mode: str | None, duplicates: list[str] | None,
                     options_kind: str) -> list[str]:
        return validation.check_fields(rt, obj, mode, duplicates, options_kind)

    def default(self, rt: ResourceType, obj: Obj) -> None:
        vcrd.apply_defaults(obj)

    def prepare_for_create(self, rt: ResourceType, obj: Obj) -> None:
        obj["status"] = {}
        vcrd.establish(obj, name_conflicts(self.ctx, obj))

    def prepare_for_update(self, rt: ResourceType, new: Obj, old: Obj, subresource: str) -> None:
        objectmeta.prepare_for_update(rt, new, old, subresource)
        if subresource == "status":
            return
        if not _d(new.get("metadata")).get("deletionTimestamp"):
            vcrd.establish(new, name_conflicts(self.ctx, new))

    def validate(self, rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
        causes = _metadata_causes(rt, obj, old)
        causes += vcrd.validate(obj, old)
        _raise(rt, obj, causes)


def name_conflicts(ctx: ApiContext, crd: Obj) -> str:
    """Why the CRD's names cannot be accepted (another type of its group already uses one), or ""."""
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    group = spec.get("group", "")
    me = _d(crd.get("metadata")).get("name", "")
    for rt in ctx.registry:
        if rt.group != group or rt.extra.get("crd") == me:
            continue
        if rt.resource == names.get("plural"):
            return f'"{rt.resource}" is already in use'
        if rt.kind == names.get("kind"):
            return f'"{rt.kind}" is already in use'
        for short in names.get("shortNames") or ():
            if short in rt.short_names:
                return f'"{short}" is already in use'
    return ""


# ------------------------------------------------------------------------------------------------ types


def types_for(crd: Obj) -> list[ResourceType]:
    """One ResourceType per served version of an established CRD."""
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
    if not (group and plural and kind):
        return []
    out = []
    for version in spec.get("versions") or ():
        version = _d(version)
        if not version.get("served"):
            continue
        subs = _d(version.get("subresources"))
        subresources: tuple[Subresource, ...] = ()
        if "scale" in subs:
            subresources += (SCALE,)
        if "status" in subs:
            subresources += (STATUS,)
        strategy = CustomResourceStrategy(crd, version)
        schema = _published_schema(strategy.schema)
        extra: Obj = {"strategy": strategy, "crd": _d(crd.get("metadata")).get("name", ""),
                      "openapi_schema": schema,
                      "selectableFields": list(version.get("selectableFields") or ())}
        columns = version.get("additionalPrinterColumns")
        if columns:
            extra["additionalPrinterColumns"] = list(columns)
        else:
            # upstream's default columns for a CRD without printer columns: NAME and AGE
            extra["additionalPrinterColumns"] = [{"name": "Age", "type": "date",
                                                  "jsonPath": ".metadata.creationTimestamp"}]
        out.append(ResourceType(
            group, version.get("name", ""), plural, kind, spec.get("scope") == "Namespaced",
            f"/registry/{group}/{plural}/", short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()), verbs=CR_VERBS, subresources=subresources,
            schema_name=openapi_name(group, version.get("name", ""), kind), has_spec=True, extra=extra))
    return out


def _published_schema(schema: Obj) -> Obj:
    """The schema as OpenAPI publishes it: apiVersion and kind described as on every kind."""
    out = copy.deepcopy(schema)
    props = out.setdefault("properties", {})
    typemeta = _d(schemas.definitions().get("io.k8s.api.core.v1.Pod")).get("properties") or {}
    for name in ("apiVersion", "kind"):
        if name not in props and name in typemeta:
            props[name] = {"description": typemeta[name].get("description", ""), "type": "string"}
    return out


def install(ctx: ApiContext) -> None:
    """Attach the CRD strategy to the built-in CustomResourceDefinition type."""
    for rt in ctx.registry:
        if is_crd_type(rt):
            rt.extra["strategy"] = CRDStrategy(ctx)


async def _stored_crds(ctx: ApiContext) -> list[Obj]:
    out: list[Obj] = []
    start = ""
    while True:
        result = await ctx.store.list(CRD_PREFIX, limit=500, start_key=start)
        for kv in result.items:
            out.append(codec.decode_kv(kv))
            start = kv.key
        if not result.more:
            return out


async def sync(ctx: ApiContext) -> None:
    """Make the registry serve exactly the established CRDs in the store."""
    crds = await _stored_crds(ctx)
    for rt in [rt for rt in ctx.registry if rt.extra.get("crd")]:
        ctx.registry.remove(rt)
    for crd in crds:
        if vcrd.is_established(crd):
            for rt in types_for(crd):
                if ctx.registry.get(rt.group, rt.version, rt.resource) is None:
                    ctx.registry.add(rt)


async def load(ctx: ApiContext) -> None:
    """At start: serve the stored CRDs and resume the cleanup of those being deleted."""
    install(ctx)
    await sync(ctx)
    for crd in await _stored_crds(ctx):
        if _d(crd.get("metadata")).get("deletionTimestamp"):
            _schedule_cleanup(ctx, crd["metadata"]["name"])


# ------------------------------------------------------------------------------------------------ requests


def special_handler(rt: ResourceType, info: RequestInfo, request: web.Request):
    """The handler that replaces the generic one for this request, or None."""
    verb = info.verb
    if is_crd_type(rt):
        if info.subresource:
            if verb in ("update", "patch"):
                return _then_sync(patching.patch_resource if verb == "patch" else rest.update)
            return None
        if verb == "delete":
            return delete_crd
        if verb == "deletecollection":
            return delete_crd_collection
        if verb in ("create", "update", "patch"):
            return _then_sync({"create": rest.create, "update": rest.update,
                               "patch": patching.patch_resource}[verb])
        return None
    if not is_custom(rt):
        return None
    if verb == "patch" and bodies.media_type(request) == bodies.STRATEGIC_PATCH:
        return _refuse_strategic
    if info.subresource == "scale" and verb in ("get", "update", "patch"):
        return scale
    return None


def _then_sync(handler):
    async def run(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType):
        try:
            return await handler(ctx, request, info, rt)
        finally:
            await sync(ctx)
    return run


async def _refuse_strategic(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType):
    raise errors.ApiError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{bodies.JSON_PATCH}, {bodies.MERGE_PATCH}, {bodies.APPLY_PATCH}")


# ------------------------------------------------------------------------------------------------ deletion


async def delete_crd(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    dry = rest.dry_run(request)
    opts = await rest.read_delete_options(request)
    result, status = await _delete_one(ctx, rt, info, opts, dry)
    return object_response(request, result, status)


async def delete_crd_collection(ctx: ApiContext, request: web.Request, info: RequestInfo,
                                rt: ResourceType) -> web.Response:
    dry = rest.dry_run(request)
    opts = await rest.read_delete_options(request)
    items, _, _, _, _ = await rest.list_objects(ctx, request, info, rt)
    deleted = []
    for item in items:
        obj = item if isinstance(item, dict) else orjson.loads(item)
        sub = RequestInfo(is_resource=True, path=info.path, verb="delete", api_prefix=info.api_prefix,
                          group=info.group, version=info.version, resource=info.resource,
                          name=obj["metadata"]["name"])
        try:
            result, _ = await _delete_one(ctx, rt, sub, opts, dry)
        except errors.ApiError as e:
            if e.code == 404:
                continue
            raise
        deleted.append(result)
    return object_response(request, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                     "metadata": {"resourceVersion": str(ctx.store.current_revision)},
                                     "items": deleted})


async def _delete_one(ctx: ApiContext, rt: ResourceType, info: RequestInfo, opts: Obj,
                      dry: bool) -> tuple[Obj, int]:
    if dry:
        return await rest.delete_object(ctx, rt, info, opts, True)

    def mark(current: Obj) -> Obj:
        finalizers = current["metadata"].setdefault("finalizers", [])
        if vcrd.CLEANUP_FINALIZER not in finalizers:
            finalizers.append(vcrd.CLEANUP_FINALIZER)
        vcrd.set_condition(current, "Terminating", "True", "InstanceDeletionPending",
                           "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon")
        return current

    kv = await ctx.store.get(rt.key("", info.name))
    if kv is None:
        raise errors.not_found(rt.resource, rt.group, info.name)
    if not codec.decode_kv(kv)["metadata"].get("deletionTimestamp"):
        status_info = RequestInfo(is_resource=True, path=info.path, verb="update", api_prefix=info.api_prefix,
                                  group=info.group, version=info.version, resource=info.resource,
                                  name=info.name, subresource="status")
        await rest.update_object(ctx, rt, status_info, mark, subresource="status")
    result, status = await rest.delete_object(ctx, rt, info, opts, False)
    await sync(ctx)
    await cleanup(ctx, info.name)
    return result, status


def _schedule_cleanup(ctx: ApiContext, name: str) -> None:
    async def later() -> None:
        await asyncio.sleep(_CLEANUP_RETRY_SECONDS)
        try:
            await cleanup(ctx, name)
        except Exception:
            log.exception("cleanup of CustomResourceDefinition %s failed", name)
            _schedule_cleanup(ctx, name)

    task = asyncio.get_running_loop().create_task(later())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


_PENDING: set[asyncio.Task] = set()


async def cleanup(ctx: ApiContext, name: str) -> None:
    """Delete every instance of a terminating CRD; once none is left, drop the finalizer (the CRD goes)."""
    crd_rt = ctx.registry.get(GROUP, "v1", RESOURCE)
    if crd_rt is None:
        return
    kv = await ctx.store.get(crd_rt.key("", name))
    if kv is None:
        await sync(ctx)
        return
    crd = codec.decode_kv(kv)
    if not crd["metadata"].get("deletionTimestamp"):
        return
    types = types_for(crd) or types_for(_all_served(crd))
    remaining = 0
    if types:
        rt = types[0]
        result = await ctx.store.list(rt.storage_prefix)
        for item in result.items:
            obj = codec.decode_kv(item)
            meta = obj["metadata"]
            info = RequestInfo(is_resource=True, path="", verb="delete", api_prefix="apis", group=rt.group,
                               version=rt.version, namespace=meta.get("namespace", ""), resource=rt.resource,
                               name=meta["name"])
            try:
                await rest.delete_object(ctx, rt, info, {}, False)
            except errors.ApiError as e:
                if e.code != 404:
                    raise
            if await ctx.store.get(item.key) is not None:
                remaining += 1
    if remaining:
        _schedule_cleanup(ctx, name)
        return

    def release(current: Obj) -> Obj:
        current["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers") or []
                                             if f != vcrd.CLEANUP_FINALIZER]
        if not current["metadata"]["finalizers"]:
            current["metadata"].pop("finalizers")
        vcrd.set_condition(current, "Terminating", "True", "InstanceDeletionCompleted",
                           "removed all instances")
        return current

    info = RequestInfo(is_resource=True, path="", verb="update", api_prefix="apis", group=GROUP, version="v1",
                       resource=RESOURCE, name=name, subresource="status")
    try:
        await rest.update_object(ctx, crd_rt, info, release, subresource="status")
    except (errors.ApiError, KeyNotFoundError) as e:
        if not isinstance(e, errors.ApiError) or e.code != 404:
            raise
    await sync(ctx)


def _all_served(crd: Obj) -> Obj:
    crd = copy.deepcopy(crd)
    for v in _d(crd.get("spec")).get("versions") or ():
        if isinstance(v, dict):
            v["served"] = True
    return crd


# ------------------------------------------------------------------------------------------------ scale


_MISSING = object()


def _get_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in [p for p in path.lstrip(".").split(".") if p]:
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.lstrip(".").split(".") if p]
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[parts[-1]] = value


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    conf = _d(rt.extra["strategy"].scale)
    meta = obj["metadata"]
    spec_replicas = _get_path(obj, conf.get("specReplicasPath", ""))
    status_replicas = _get_path(obj, conf.get("statusReplicasPath", ""))
    scale: Obj = {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": spec_replicas if isinstance(spec_replicas, int) else 0},
        "status": {"replicas": status_replicas if isinstance(status_replicas, int) else 0},
    }
    if conf.get("labelSelectorPath"):
        selector = _get_path(obj, conf["labelSelectorPath"])
        if isinstance(selector, str) and selector:
            scale["status"]["selector"] = selector
        elif isinstance(selector, dict):
            scale["status"]["selector"] = selectors.label_selector_to_string(selector)
    return scale


async def scale(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.Response:
    conf = _d(rt.extra["strategy"].scale)
    if info.verb == "get":
        kv = await ctx.store.get(rt.key(info.namespace, info.name))
        if kv is None:
            raise errors.not_found(rt.resource, rt.group, info.name)
        return object_response(request, scale_of(rt, codec.decode_kv(kv)))
    dry = rest.dry_run(request)
    precondition = None
    if info.verb == "update":
        body, _ = await rest.read_object(request)
        if body.get("kind") not in (None, "", "Scale"):
            raise errors.bad_request(
                f"the kind in the data ({body.get('kind')}) does not match the expected kind (Scale)")
        precondition = _d(body.get("metadata")).get("resourceVersion") or None

        def new_scale(current: Obj) -> Obj:
            return body
    else:
        mtype = bodies.media_type(request)
        data = patching._decode_patch(await bodies.read_raw(request), mtype)

        def new_scale(current: Obj) -> Obj:
            return patching.apply_patch(rt, scale_of(rt, current), mtype, copy.deepcopy(data),
                                        "io.k8s.api.autoscaling.v1.Scale")

    def mutate(current: Obj) -> Obj:
        replicas = patching._replicas_from(new_scale(current), rt, info.name)
        _set_path(current, conf.get("specReplicasPath", ".spec.replicas"), replicas)
        return current

    result, _ = await rest.update_object(ctx, rt, info, mutate, precondition=precondition, dry=dry)
    return object_response(request, scale_of(rt, result))


__all__ = ["CRDStrategy", "CustomResourceStrategy", "GROUP", "RESOURCE", "cleanup", "delete_crd", "install",
           "is_crd_type", "is_custom", "load", "openapi_name", "scale", "special_handler", "sync", "types_for"]
