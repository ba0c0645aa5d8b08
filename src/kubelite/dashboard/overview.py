"""The cluster overview (nodes Ready, pods by phase, recent warnings) and the objects of a CustomResource."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import yaml
from aiohttp import web

from ..client import ClientError
from .html import H, Html, join, labels, link, table, url
from .i18n import t
from .kinds import age, node_ready
from .server import ALL, NotFoundPage, _event_time, _kv, _name, _namespace, _page, authed
from .sessions import Session
from .userapi import UserApi, api_path

GROUP_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
VERSION_RE = re.compile(r"^v[0-9]+((alpha|beta)[0-9]+)?$")


async def _items(api: UserApi, path: str, params: dict[str, str] | None = None) -> list[dict] | str:
    try:
        return (await api.request("GET", path, params=params)).get("items") or []
    except ClientError as e:
        if e.code == 401:
            raise
        return e.message


@authed
async def overview(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    nodes, pods, events = await asyncio.gather(
        _items(api, "/api/v1/nodes"), _items(api, "/api/v1/pods"),
        _items(api, "/api/v1/events", {"fieldSelector": "type=Warning"}))
    cards = []
    if isinstance(nodes, list):
        ready = sum(1 for n in nodes if node_ready(n).startswith("Ready"))
        cards.append(H('<div class="card" id="nodes-ready">{}<b>{}/{}</b></div>', t("Nodes ready"), ready,
                       len(nodes)))
    if isinstance(pods, list):
        phases = Counter((p.get("status") or {}).get("phase") or "Unknown" for p in pods)
        cards.append(H('<div class="card" id="pods-by-phase">{}<br>{}</div>', t("Pods by phase"),
                       join(H("<b>{} {}</b>", n, phase) for phase, n in sorted(phases.items()))))
    body = H('<div class="cards">{}</div>', join(cards))
    for what, value in (("nodes", nodes), ("pods", pods)):
        if isinstance(value, str):
            body = H('{}<p class="error">{}: {}</p>', body, what, value)
    if isinstance(events, list):
        events = sorted(events, key=_event_time, reverse=True)[:20]
        rows = [[(e.get("metadata") or {}).get("namespace") or "", e.get("reason") or "",
                 f"{((e.get('involvedObject') or {}).get('kind') or '').lower()}/"
                 f"{(e.get('involvedObject') or {}).get('name')}", e.get("message") or "", age(_event_time(e))]
                for e in events]
        body = H('{}<h3>{}</h3>{}', body, t("Recent warnings"), table(
            [t("Namespace"), t("Reason"), t("Object"), t("Message"), t("Age")], rows, t("Nothing to show"),
            ["warning"] * len(rows)))
    else:
        body = H('{}<p class="error">events: {}</p>', body, events)
    return _page(s, t("Cluster overview"), body, live=url("live", "cluster", "nodes"))


async def _crd_resource(api: UserApi, group: str, version: str, plural: str) -> dict[str, Any]:
    if not GROUP_RE.match(group) or not VERSION_RE.match(version) or not GROUP_RE.match(plural):
        raise NotFoundPage("invalid resource")
    found = next((r for r in (await api.resources(f"{group}/{version}")).get("resources") or []
                  if r.get("name") == plural), None)
    if found is None:
        raise NotFoundPage(f"no resource {plural}.{group}/{version}")
    return found


@authed
async def crd_objects(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    group, version, plural = (request.match_info[k] for k in ("group", "version", "plural"))
    res = await _crd_resource(api, group, version, plural)
    ns = s.namespace if res.get("namespaced") else None
    ns = None if ns == ALL else ns
    items = (await api.request("GET", api_path(group, version, plural, ns))).get("items") or []
    rows = []
    for o in sorted(items, key=lambda o: ((o.get("metadata") or {}).get("namespace") or "",
                                          (o.get("metadata") or {}).get("name") or "")):
        meta = o.get("metadata") or {}
        target = url("crd", group, version, plural, meta.get("name") or "",
                     **({"namespace": meta["namespace"]} if meta.get("namespace") else {}))
        rows.append([link(target, meta.get("name")), meta.get("namespace") or "", age(meta.get("creationTimestamp")),
                     labels(meta.get("labels"))])
    where = f" · {t('Namespace')} {ns}" if ns else ""
    return _page(s, f"{res.get('kind')} ({plural}.{group}){where}",
                 table([t("Name"), t("Namespace"), t("Age"), t("Labels")], rows, t("Nothing to show")))


@authed
async def crd_object(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    group, version, plural = (request.match_info[k] for k in ("group", "version", "plural"))
    name = _name(request.match_info["name"])
    res = await _crd_resource(api, group, version, plural)
    ns = _namespace(request.query.get("namespace", "default")) if res.get("namespaced") else None
    obj = await api.request("GET", api_path(group, version, plural, ns, name))
    meta = obj.get("metadata") or {}
    shown = dict(obj)
    shown["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    body = H('{}<h3>YAML</h3><pre id="yaml">{}</pre>', _kv([(t("Name"), name), (t("Namespace"), ns or ""),
                                                            (t("Labels"), labels(meta.get("labels")))]),
             yaml.safe_dump(shown, sort_keys=False, allow_unicode=True))
    return _page(s, f"{res.get('kind')} {name}", body)


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/overview", overview)
    r.add_get("/crd/{group}/{version}/{plural}", crd_objects)
    r.add_get("/crd/{group}/{version}/{plural}/{name}", crd_object)


__all__ = ["routes", "Html"]
