"""The resource metrics API (`metrics.k8s.io/v1beta1`: NodeMetrics, PodMetrics), as metrics-server serves it,
computed from the kubelets' `/stats/summary`, so that `kubectl top nodes|pods` works.

Upstream serves this group through an APIService only once metrics-server runs.  We do the same in spirit: the
group joins the registry (and so discovery) once a node whose kubelet has real stats (a runc/crun runtime)
has registered; a cluster of simulated nodes keeps upstream's default set of groups.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from ..api import errors
from ..api.resources import ResourceType
from ..api.selectors import SelectorError, parse_label_selector
from . import codec
from .context import ApiContext
from .pod_proxy import _kubelet_ssl
from .request_info import RequestInfo
from .responses import json_response

log = logging.getLogger("kubelite.apiserver.metrics")

Obj = dict[str, Any]
GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
_REAL_RUNTIMES = ("runc://", "crun://", "containerd://", "cri-o://")
_CACHE_TTL = 5.0  # metrics-server's resolution is 15 s; kubectl top twice in a row reads one scrape

NODE_METRICS = ResourceType(GROUP, VERSION, "nodes", "NodeMetrics", False, "/registry/metrics.k8s.io/nodes/",
                            verbs=("get", "list"), schema_name="")
POD_METRICS = ResourceType(GROUP, VERSION, "pods", "PodMetrics", True, "/registry/metrics.k8s.io/pods/",
                           verbs=("get", "list"), schema_name="")

_state: dict[str, Any] = {"scrape": None}


async def _list(ctx: ApiContext, prefix: str) -> list[Obj]:
    res = await ctx.store.list(prefix)
    return [codec.decode_kv(kv) for kv in res.items]


def _real_node(node: Obj) -> bool:
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") or ""
    return version.startswith(_REAL_RUNTIMES)


def node_written(ctx: ApiContext, node: Obj) -> None:
    """Serve the group from the first write of a node with a real runtime on (simulated nodes have no
    kubelet to read metrics from, as a cluster without metrics-server has no metrics API)."""
    reg = ctx.registry
    if reg.get(GROUP, VERSION, "nodes") is None and _real_node(node):
        reg.add(NODE_METRICS)
        reg.add(POD_METRICS)


async def load(ctx: ApiContext) -> None:
    """At start: nodes registered before a restart count too."""
    nodes_rt = ctx.registry.get("", "v1", "nodes")
    if nodes_rt is not None:
        for node in await _list(ctx, nodes_rt.prefix()):
            node_written(ctx, node)


def _endpoint(node: Obj) -> str | None:
    status = node.get("status") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addrs.get("InternalIP") or addrs.get("ExternalIP") or addrs.get("Hostname")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not host or not port:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


async def _summary(session: aiohttp.ClientSession, base: str, sslctx: Any) -> Obj | None:
    try:
        async with session.get(f"{base}/stats/summary", ssl=sslctx) as r:
            if r.status != 200:
                return None
            return await r.json()
    except (TimeoutError, aiohttp.ClientError, ValueError) as e:
        log.debug("scraping %s: %s", base, e)
        return None


async def _scrape(ctx: ApiContext, request: web.Request) -> dict[str, tuple[Obj, float]]:
    """node name -> (its summary, when it was taken); cached for a few seconds."""
    cached = _state["scrape"]
    if cached is not None and time.monotonic() - cached[0] < _CACHE_TTL:
        return cached[1]
    nodes = [n for n in await _list(ctx, ctx.registry.get("", "v1", "nodes").prefix()) if _real_node(n)]
    sslctx = _kubelet_ssl(ctx, request.app)
    timeout = aiohttp.ClientTimeout(total=5, sock_connect=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        targets = [(n["metadata"]["name"], _endpoint(n)) for n in nodes]
        targets = [(name, base) for name, base in targets if base]
        got = await asyncio.gather(*(_summary(session, base, sslctx) for _, base in targets))
    now = time.time()
    out = {name: (s, now) for (name, _), s in zip(targets, got, strict=True) if s}
    _state["scrape"] = (time.monotonic(), out)
    return out


def _cpu(n: int) -> str:
    return f"{n}n"


def _mem(b: int) -> str:
    return f"{b // 1024}Ki" if b % 1024 == 0 else str(b)


def _ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(stats: Obj) -> Obj:
    cpu = (stats.get("cpu") or {}).get("usageNanoCores") or 0
    mem = (stats.get("memory") or {}).get("workingSetBytes") or 0
    return {"cpu": _cpu(int(cpu)), "memory": _mem(int(mem))}


def _meta(name: str, namespace: str | None, labels: Obj | None, now: float) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = _ts(now)
    if labels:
        meta["labels"] = labels
    return meta


async def _labels(ctx: ApiContext, resource: str, namespace: str | None) -> dict[tuple[str, str], Obj]:
    rt = ctx.registry.get("", "v1", resource)
    out = {}
    for obj in await _list(ctx, rt.prefix(namespace)):
        m = obj.get("metadata") or {}
        out[(m.get("namespace") or "", m.get("name") or "")] = m.get("labels") or {}
    return out


async def handle(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.StreamResponse:
    if info.verb not in ("get", "list"):
        raise errors.method_not_allowed(request.method, rt.kind)
    if info.subresource:
        raise errors.not_found(rt.resource, GROUP, info.name)
    try:
        selector = parse_label_selector(request.query.get("labelSelector"))
    except SelectorError as e:
        raise errors.bad_request(str(e)) from e
    scrape = await _scrape(ctx, request)
    items: list[Obj] = []
    if rt.resource == "nodes":
        labels = await _labels(ctx, "nodes", None)
        for name, (summary, at) in sorted(scrape.items()):
            node = summary.get("node") or {}
            if (("", name) not in labels or not node.get("cpu") or not node.get("memory")
                    or not selector.matches(labels[("", name)])):
                continue
            items.append({"metadata": _meta(name, None, labels[("", name)], at), "timestamp": _ts(at),
                          "window": "10s", "usage": _usage(node)})
    else:
        labels = await _labels(ctx, "pods", info.namespace)
        for _, (summary, at) in sorted(scrape.items()):
            for pod in summary.get("pods") or []:
                ref = pod.get("podRef") or {}
                key = (ref.get("namespace") or "", ref.get("name") or "")
                if key not in labels or not pod.get("containers") or not selector.matches(labels[key]):
                    continue
                containers = [{"name": c["name"], "usage": _usage(c)} for c in pod["containers"]]
                items.append({"metadata": _meta(key[1], key[0], labels[key], at), "timestamp": _ts(at),
                              "window": "10s", "containers": containers})
        items.sort(key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"]))
    if info.verb == "get":
        for item in items:
            if item["metadata"]["name"] == info.name:
                return json_response({"kind": rt.kind, "apiVersion": API_VERSION, **item})
        raise errors.not_found(rt.resource, GROUP, info.name)
    return json_response({"kind": rt.kind + "List", "apiVersion": API_VERSION, "metadata": {},
                          "items": [{"kind": rt.kind, "apiVersion": API_VERSION, **i} for i in items]})
