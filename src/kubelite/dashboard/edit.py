"""Changing objects: YAML edit with a server-side dry run and a diff before apply, restart of a workload,
cordon/drain of a node. Every change is a POST with the session's CSRF token, made with the user's token;
conflicts and refusals are shown as the API server words them."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Any

import yaml
from aiohttp import web

from ..client import ClientError
from .html import H, Html, join
from .i18n import t
from .kinds import RESTARTABLE, Kind
from .server import (
    MAX_YAML,
    NotFoundPage,
    _csrf_field,
    _detail_url,
    _kind,
    _name,
    _namespace,
    _page,
    _redirect,
    _ref,
    authed,
)
from .sessions import Session
from .userapi import MERGE_PATCH, UserApi, api_path

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _target(request: web.Request) -> tuple[Kind, str | None, str]:
    ns = request.match_info.get("ns")
    k = _kind(request.match_info["kind"], ns is not None)
    return k, _namespace(ns) if ns is not None else None, _name(request.match_info["name"])


def _editable(obj: dict) -> dict:
    shown = dict(obj)
    shown["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return shown


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _diff(before: str, after: str) -> Html:
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), "live", "after apply", lineterm=""))
    if not lines:
        return H('<p class="empty" id="diff">{}</p>', "no changes")
    cls = {"+": "add", "-": "del"}
    return H('<pre class="diff" id="diff">{}</pre>', join(
        H('<span class="{}">{}</span>', cls[ln[0]], ln) if ln[:1] in cls and ln[:3] not in ("+++", "---")
        else H("{}\n", ln) for ln in lines))


def _form(s: Session, action: str, text: str, can_apply: bool) -> Html:
    apply = H(' <button type="submit" name="op" value="apply" id="apply">{}</button>', t("Apply")) if can_apply \
        else ""
    return H('<form method="post" action="{}">{}<textarea name="yaml" id="edit-yaml" rows="28" spellcheck="false">'
             '{}</textarea><p><button type="submit" name="op" value="preview" id="preview">{}</button>{}</p></form>',
             action, _csrf_field(s), text, t("Preview (server dry run)"), apply)


@authed
async def edit_page(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k, ns, name = _target(request)
    obj = await api.request("GET", api_path(k.group, k.version, k.key, ns, name))
    body = _form(s, _detail_url(k, ns, name) + "/edit", _dump(_editable(obj)), False)
    return _page(s, f"{t('Edit')} {k.kind} {name}", body, kind=k.key if ns else "")


@authed
async def edit_submit(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k, ns, name = _target(request)
    form = await request.post()
    text = str(form.get("yaml") or "")
    op = str(form.get("op") or "preview")
    action = _detail_url(k, ns, name) + "/edit"
    title = f"{t('Edit')} {k.kind} {name}"

    def again(error: str, status: int, diff: Html | str = "", can_apply: bool = False) -> web.Response:
        err = H('<div class="error" id="api-error">{}</div>', error) if error else ""
        return _page(s, title, H("{}{}{}", err, diff, _form(s, action, text, can_apply)), status,
                     kind=k.key if ns else "")

    if len(text) > MAX_YAML:
        return again("the content is too large", 413)
    try:
        obj = yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as e:
        return again(f"error parsing YAML: {e}", 400)
    if not isinstance(obj, dict):
        return again("the YAML must be one object", 400)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if meta.get("name") != name or (ns and meta.get("namespace", ns) != ns):
        return again(f"the name and namespace cannot change here (it must stay {ns + '/' if ns else ''}{name})",
                     400)
    path = api_path(k.group, k.version, k.key, ns, name)
    try:
        if op == "apply":
            await api.request("PUT", path, body=obj, params={"fieldManager": "kubernetes-dashboard"})
            s.flash.append(("ok", f"{_ref(k.kind, k.group, name)} edited"))
            return _redirect(_detail_url(k, ns, name))
        live = await api.request("GET", path)
        after = await api.request("PUT", path, body=obj, params={"dryRun": "All",
                                                                 "fieldManager": "kubernetes-dashboard"})
    except ClientError as e:
        if e.code == 401:
            raise
        return again(f"Error from server ({e.reason}): {e.message}", e.code if 400 <= e.code < 600 else 502)
    diff = _diff(_dump(_editable(live)), _dump(_editable(after)))
    return again("", 200, H("<h3>{}</h3>{}", t("Diff"), diff), can_apply=True)


@authed
async def restart(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k, ns, name = _target(request)
    if k.key not in RESTARTABLE:
        raise NotFoundPage(f"{k.title} cannot be restarted")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await api.request("PATCH", api_path(k.group, k.version, k.key, ns, name), content_type=MERGE_PATCH, body={
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}})
    s.flash.append(("ok", f"{_ref(k.kind, k.group, name)} restarted"))
    return _redirect(_detail_url(k, ns, name))


async def _cordon(api: UserApi, name: str, on: bool) -> None:
    await api.request("PATCH", api_path("", "v1", "nodes", None, name), content_type=MERGE_PATCH,
                      body={"spec": {"unschedulable": True if on else None}})


@authed
async def cordon(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    name = _name(request.match_info["name"])
    on = str((await request.post()).get("unschedulable")) == "true"
    await _cordon(api, name, on)
    s.flash.append(("ok", f"node/{name} {'cordoned' if on else 'uncordoned'}"))
    return _redirect(f"/cluster/nodes/{name}")


@authed
async def drain(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    """kubectl drain's defaults: cordon, then evict every pod but DaemonSet-managed and mirror pods."""
    name = _name(request.match_info["name"])
    await _cordon(api, name, True)
    pods = await api.request("GET", "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={name}"})
    evicted, skipped, failed = [], [], []
    for p in pods.get("items") or []:
        meta = p.get("metadata") or {}
        if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []) or \
                "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            skipped.append(f"{meta.get('namespace')}/{meta.get('name')}")
            continue
        try:
            await api.request("POST", api_path("", "v1", "pods", meta.get("namespace"), meta.get("name"), "eviction"),
                              body={"apiVersion": "policy/v1", "kind": "Eviction",
                                    "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}})
            evicted.append(f"{meta.get('namespace')}/{meta.get('name')}")
        except ClientError as e:
            if e.code == 401:
                raise
            failed.append(f"{meta.get('namespace')}/{meta.get('name')}: {e.message}")
    s.flash.append(("ok", f"node/{name} cordoned; evicted {len(evicted)} pod(s)"
                          + (f"; ignored DaemonSet-managed pods: {', '.join(skipped)}" if skipped else "")))
    if failed:
        s.flash.append(("error", "could not evict: " + "; ".join(failed)))
    return _redirect(f"/cluster/nodes/{name}")


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/ns/{ns}/{kind}/{name}/edit", edit_page)
    r.add_post("/ns/{ns}/{kind}/{name}/edit", edit_submit)
    r.add_get("/cluster/{kind}/{name}/edit", edit_page)
    r.add_post("/cluster/{kind}/{name}/edit", edit_submit)
    r.add_post("/ns/{ns}/{kind}/{name}/restart", restart)
    r.add_post("/cluster/nodes/{name}/cordon", cordon)
    r.add_post("/cluster/nodes/{name}/drain", drain)
