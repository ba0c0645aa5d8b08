"""Two legacy core/v1 endpoints kubectl's discovery lists: `componentstatuses` (read-only) and `bindings`.

componentstatuses are computed, not stored, as upstream's (deprecated) REST does: one per control-plane
component, `Healthy` while the API server answers. `POST namespaces/<ns>/bindings` is the old form of
`pods/<name>/binding`: the pod's name comes from the Binding's metadata.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ..api import errors, tables
from ..api.resources import ResourceType
from . import body as bodies
from . import rest
from .context import ApiContext
from .pod_binding import create_binding
from .request_info import RequestInfo
from .responses import TABLE_TYPE, json_response, object_response, wants_table

DEPRECATION = "v1 ComponentStatus is deprecated in v1.19+"
COMPONENTS = ("controller-manager", "etcd-0", "scheduler")


def component_status(name: str) -> dict[str, Any]:
    return {"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name, "creationTimestamp": None},
            "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]}


async def component_statuses(ctx: ApiContext, request: web.Request, info: RequestInfo,
                             rt: ResourceType) -> web.StreamResponse:
    if info.verb not in ("get", "list"):
        raise errors.method_not_allowed(request.method, rt.kind)
    if info.name and info.name not in COMPONENTS:
        raise errors.not_found(rt.resource, rt.group, info.name)
    items = [component_status(n) for n in COMPONENTS if not info.name or n == info.name]
    label_sel, field_sel = rest._selectors(request, rt)
    match = rest.matcher(label_sel, field_sel)
    if match is not None:
        items = [i for i in items if match(i)]
    if wants_table(request.headers.get("Accept", "")):
        table = tables.to_table(rt, items, include_object=rest.include_object(request), resource_version="")
        return json_response(table, content_type=TABLE_TYPE, warnings=[DEPRECATION])
    body: dict[str, Any] = items[0] if info.name else {
        "kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items}
    return object_response(request, body, 200, [DEPRECATION])


class _Replay:
    """The request with its already-read body available once more (for the pods/binding handler)."""

    def __init__(self, request: web.Request, raw: bytes) -> None:
        self._request = request
        self._raw = raw
        self.content = self
        self.content_length = len(raw)

    async def read(self, n: int = -1) -> bytes:
        data, self._raw = self._raw, b""
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


async def create_legacy_binding(ctx: ApiContext, request: web.Request, info: RequestInfo,
                                rt: ResourceType) -> web.StreamResponse:
    raw = await bodies.read_raw(request)
    body = bodies.decode_object(raw, bodies.media_type(request))
    name = (body.get("metadata") or {}).get("name") if isinstance(body.get("metadata"), dict) else None
    if not name:
        raise errors.invalid("Binding", "", "", [{"type": "FieldValueRequired", "field": "metadata.name",
                                                  "message": "Required value: name or generateName is required"}])
    pods = ctx.registry.get("", "v1", "pods")
    if pods is None:
        raise errors.not_found("pods", "", name)
    pod_info = dataclasses.replace(info, resource="pods", name=name, subresource="binding")
    return await create_binding(ctx, _Replay(request, raw), pod_info, pods)  # type: ignore[arg-type]
