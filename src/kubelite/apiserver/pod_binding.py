"""POST pods/<name>/binding: the scheduler's way to assign a pod to a node."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api import errors
from ..api.resources import ResourceType
from . import rest
from .context import ApiContext
from .request_info import RequestInfo
from .responses import json_response, status_success


async def create_binding(ctx: ApiContext, request: web.Request, info: RequestInfo,
                         rt: ResourceType) -> web.StreamResponse:
    if info.verb != "create":
        raise errors.method_not_allowed(request.method, "Binding")
    dry = rest.dry_run(request)
    binding, _ = await rest.read_object(request)
    if binding.get("kind") not in (None, "", "Binding"):
        raise errors.bad_request(f"the kind in the data ({binding.get('kind')}) does not match the expected kind "
                                 f"(Binding)")
    meta = binding.get("metadata") or {}
    if meta.get("name") and meta["name"] != info.name:
        raise errors.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({info.name})")
    target = binding.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.invalid("Binding", "", info.name, [{
            "type": "FieldValueRequired", "field": "target.name", "message": "Required value"}])
    if target.get("kind") not in (None, "", "Node"):
        raise errors.invalid("Binding", "", info.name, [{
            "type": "FieldValueNotSupported", "field": "target.kind",
            "message": f'Unsupported value: "{target.get("kind")}": supported values: "Node", ""'}])
    precondition_uid = meta.get("uid")
    annotations = meta.get("annotations") or {}

    def assign(pod: dict[str, Any]) -> dict[str, Any]:
        pmeta = pod["metadata"]
        if precondition_uid and pmeta.get("uid") != precondition_uid:
            raise errors.conflict("pods", "", info.name,
                                  f"Precondition failed: UID in precondition: {precondition_uid}, "
                                  f"UID in object meta: {pmeta.get('uid')}")
        if pmeta.get("deletionTimestamp"):
            raise errors.conflict("pods/binding", "", info.name, f"pod {info.name} is being deleted, cannot be assigned to a host")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise errors.conflict("pods/binding", "", info.name,
                                  f'pod {info.name} is already assigned to node "{current}"')
        pod["spec"]["nodeName"] = node
        if annotations:
            pmeta.setdefault("annotations", {}).update(annotations)
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": _now()})
        status["conditions"] = conditions
        return pod

    await rest.update_object(ctx, rt, info, assign, dry=dry, subresource="binding")
    return json_response(status_success(), 201)


def _now() -> str:
    from ..api.timefmt import now_rfc3339

    return now_rfc3339()
