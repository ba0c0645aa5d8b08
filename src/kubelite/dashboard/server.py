"""The dashboard's HTTP routes: token login, browsing, events, logs, scale, delete and create from YAML.

Server-rendered HTML with plain forms; one script of our own (`assets.JS`, the CSP allows no other and no
inline script) makes lists, detail pages and logs live over server-sent events (`live`). Editing, restart,
cordon and drain are in `edit`. Every API call is made with the logged-in user's token (`userapi.UserApi`); an
API error is shown with the API server's own code, reason and message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from ..client import ClientError
from . import i18n
from . import sessions as sess
from .assets import JS
from .html import CSS, H, Html, esc, join, labels, link, table, url
from .i18n import t
from .kinds import CLUSTER_KEYS, KINDS, RESTARTABLE, WORKLOADS, Kind, age
from .sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, Sessions
from .userapi import MERGE_PATCH, ApiServer, UserApi, api_path

log = logging.getLogger("kubelite.dashboard")

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ALL = "_all"  # not a valid namespace name, so it cannot collide with one
MAX_TOKEN = 16 * 1024
MAX_YAML = 1024 * 1024
CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class State:
    api: ApiServer
    sessions: Sessions


STATE = web.AppKey("dashboard_state", State)
Handler = Callable[[web.Request, Session, UserApi], Awaitable[web.StreamResponse]]


class NotFoundPage(Exception):
    pass


# -- plumbing ----------------------------------------------------------------------------------------------


@web.middleware
async def _headers(request: web.Request, handler):
    i18n.current.set(i18n.choose(request.cookies.get(i18n.LANG_COOKIE), request.headers.get("Accept-Language")))
    if request.method == "POST" and not _same_origin(request):
        resp: web.StreamResponse = _plain_page("Forbidden", H('<p class="error">{}</p>',
                                               "cross-site request refused"), 403)
    else:
        try:
            resp = await handler(request)
        except NotFoundPage as e:
            resp = _plain_page("Not found", H('<p class="error">{}</p>', str(e) or "no such page"), 404)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make form posts send Origin: null
    resp.headers["Strict-Transport-Security"] = "max-age=31536000"
    resp.headers["Vary"] = "Accept-Language, Cookie"
    if not request.path.startswith("/static/"):
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _same_origin(request: web.Request) -> bool:
    """Browsers send Origin (and Sec-Fetch-Site) with form posts: one from another site is refused."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin in (f"https://{request.host}", f"{request.scheme}://{request.host}")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _state(request: web.Request) -> State:
    return request.app[STATE]


def authed(handler: Handler):
    """The session from the cookie (else to the login page), a UserApi with its token, and the API's errors
    shown as pages; a token the API server stopped accepting ends the session."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        state = _state(request)
        s = state.sessions.get(request.cookies.get(SESSION_COOKIE))
        if s is None:
            expired = SESSION_COOKIE in request.cookies
            return _redirect("/login?expired=1" if expired else "/login")
        if request.method == "POST":
            form = await request.post()
            if not sess.same(form.get("_csrf"), s.csrf):  # type: ignore[arg-type]
                return _page(s, "Forbidden", H('<p class="error">{}</p>',
                                               "invalid or missing CSRF token: reload the page and try again"), 403)
        try:
            return await handler(request, s, state.api.as_user(s.token))
        except ClientError as e:
            if e.code == 401:
                state.sessions.drop(s.id)
                return _redirect("/login?expired=1")
            return _error_page(s, e)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return _page(s, "API server unreachable",
                         H('<p class="error">{}</p>', f"could not reach the API server: {e}"), 502)

    return wrapper


def _error_page(s: Session, e: ClientError) -> web.Response:
    code = e.code if 400 <= e.code <= 599 else 502
    return _page(s, f"{e.code} {e.reason}", H('<div class="error" id="api-error">{}</div>', e.message), code)


def _languages() -> Html:
    here = i18n.current.get()
    return join(H('<a href="{}" class="lang" lang="{}">{}</a>', url("lang", code), code, name)
                if code != here else H('<span class="lang" aria-current="true">{}</span>', name)
                for code, name in i18n.LANGUAGES.items())


def _plain_page(title: str, body: Html, status: int = 200) -> web.Response:
    lang = "zh-CN" if i18n.current.get() == "zh" else "en"
    doc = H('<!DOCTYPE html><html lang="{}"><head><meta charset="utf-8"><title>{} - Kubernetes Dashboard</title>'
            '<link rel="stylesheet" href="/static/dashboard.css"><script src="/static/dashboard.js" defer></script>'
            '</head><body>{}</body></html>', lang, title, body)
    return web.Response(text=doc, status=status, content_type="text/html")


def _csrf_field(s: Session) -> Html:
    return H('<input type="hidden" name="_csrf" value="{}">', s.csrf)


def _nav(s: Session, current_kind: str = "") -> Html:
    ns = s.namespace
    items = [H("<h3>{}</h3>", t("Cluster")), link("/overview", t("Cluster overview"))]
    items += [link(url(k), t(KINDS[k].title)) for k in CLUSTER_KEYS]
    items += [H("<h3>{}</h3>", t("Workloads")), link(url("ns", ns, "workloads"), t("Overview"))]
    items += [link(url("ns", ns, k), t(KINDS[k].title)) for k in WORKLOADS]
    for section in ("Service", "Config", "Access"):
        items.append(H("<h3>{}</h3>", t(section)))
        items += [link(url("ns", ns, k.key), t(k.title)) for k in KINDS.values() if k.section == section]
    items += [link(url("ns", ns, "events"), t("Events")),
              H("<h3>{}</h3>", t("Create")), link("/create", t("Create from YAML"))]
    switch = H('<form method="get" action="/go"><h3>{}</h3>'
               '<input name="namespace" value="{}" size="14" aria-label="namespace">'
               '<input type="hidden" name="kind" value="{}"> <button type="submit">{}</button>'
               '<br><a href="{}" id="all-namespaces">{}</a></form>', t("Namespace"), "" if ns == ALL else ns,
               current_kind or "workloads", t("Go"), url("ns", ALL, current_kind or "workloads"),
               t("all namespaces"))
    return H("<nav>{}{}</nav>", switch, join(items))


def _page(s: Session, title: str, body: Html, status: int = 200, kind: str = "", live: str = "",
          before: Html | str = "") -> web.Response:
    """A signed-in page; with `live` (an SSE URL) the `body` part refreshes itself when that stream says so,
    while `before` (forms the user may be typing in) stays."""
    flashes = join(H('<div class="{}" role="status">{}</div>', "flash" if k == "ok" else "error", text)
                   for k, text in s.flash)
    s.flash.clear()
    top = H('<header><h1>Kubernetes Dashboard <small>(kubelite)</small></h1>'
            '<span class="langs">{}</span><span class="user" id="user">{}</span>'
            '<form method="post" action="/logout">{}<button type="submit" id="logout">{}</button></form>'
            '</header>', _languages(), s.username, _csrf_field(s), t("Sign out"))
    if live:
        main = H('<main data-live="{}"><h2>{}</h2>{}{}<div id="live">{}</div></main>', live, title, flashes, before,
                 body)
    else:
        main = H("<main><h2>{}</h2>{}{}{}</main>", title, flashes, before, body)
    return _plain_page(title, H("{}{}{}", top, _nav(s, kind), main), status)


def _kind(key: str, namespaced: bool) -> Kind:
    k = KINDS.get(key)
    if k is None or k.namespaced != namespaced:
        raise NotFoundPage(f"unknown resource {key!r}")
    return k


def _namespace(value: str, allow_all: bool = False) -> str:
    if (allow_all and value == ALL) or NAMESPACE_RE.match(value):
        return value
    raise NotFoundPage(f"invalid namespace {value!r}")


def _name(value: str) -> str:
    if NAME_RE.match(value):
        return value
    raise NotFoundPage(f"invalid name {value!r}")


def _detail_url(k: Kind, namespace: str | None, name: str) -> str:
    return url("ns", namespace, k.key, name) if k.namespaced and namespace else url("cluster", k.key, name)


# -- login -------------------------------------------------------------------------------------------------


async def _login_form(request: web.Request, message: Html | str = "", status: int = 200) -> web.Response:
    # one value per browser, kept across reloads: two open sign-in pages both stay valid
    csrf = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", csrf):
        csrf = secrets.token_urlsafe(32)
    notes = {"expired": "Your session has expired or the token is no longer valid: sign in again.",
             "logged_out": "You are signed out."}
    note = next((v for k, v in notes.items() if request.query.get(k)), "")
    body = H('<div class="login"><h2>Kubernetes Dashboard</h2>{}{}'
             '<form method="post" action="/login">'
             '<p><label for="token">{}</label></p>'
             '<p>{} {} <code>kubectl -n NAMESPACE create token NAME</code></p>'
             '<textarea id="token" name="token" rows="6" autocomplete="off" spellcheck="false" required></textarea>'
             '<input type="hidden" name="_csrf" value="{}">'
             '<p><button type="submit" id="signin">{}</button></p></form><p>{}</p></div>',
             H('<p class="flash">{}</p>', note) if note else "",
             H('<p class="error" id="login-error">{}</p>', message) if message else "", t("Bearer token"),
             t("Since Kubernetes 1.24 a ServiceAccount no longer gets a token Secret by itself."),
             t("Ask for a token with"), csrf, t("Sign in"), _languages())
    resp = _plain_page("Sign in", body, status)
    resp.set_cookie(LOGIN_COOKIE, csrf, httponly=True, secure=True, samesite="Strict", path="/")
    return resp


async def login_page(request: web.Request) -> web.StreamResponse:
    if _state(request).sessions.get(request.cookies.get(SESSION_COOKIE)) is not None:
        return _redirect("/")
    return await _login_form(request)


async def login(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    form = await request.post()
    if not sess.same(form.get("_csrf"), request.cookies.get(LOGIN_COOKIE)):  # type: ignore[arg-type]
        return await _login_form(request, "The sign-in form expired: please try again.", 403)
    token = str(form.get("token") or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        return await _login_form(request, "Enter a bearer token.", 400)
    if len(token) > MAX_TOKEN or any(c.isspace() for c in token):
        return await _login_form(request, "That is not a bearer token.", 400)
    try:
        user = await state.api.as_user(token).whoami()
    except ClientError as e:
        if e.code == 401:
            return await _login_form(request, f"Unauthorized (401): the API server did not accept this token "
                                              f"({e.message or 'invalid or expired'}).", 401)
        if e.code != 403:
            return await _login_form(request, f"{e.code} {e.reason}: {e.message}", e.code)
        user = {"username": "(unknown user)"}  # authenticated, only not allowed to ask who it is
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        return await _login_form(request, f"could not reach the API server: {e}", 502)
    username = str(user.get("username") or "")
    if username == "system:anonymous" or not username:
        return await _login_form(request, "Unauthorized (401): the token was not recognised.", 401)
    s = state.sessions.create(token, username, list(user.get("groups") or []))
    resp = _redirect("/")
    resp.set_cookie(SESSION_COOKIE, s.id, httponly=True, secure=True, samesite="Strict", path="/")
    resp.del_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    log.info("dashboard: %s signed in", username)
    return resp


@authed
async def logout(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    _state(request).sessions.drop(s.id)
    resp = _redirect("/login?logged_out=1")
    resp.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return resp


@authed
async def index(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    return _redirect(url("ns", s.namespace, "workloads"))


@authed
async def go(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = request.query.get("namespace", "").strip() or ALL
    kind = request.query.get("kind", "workloads")
    if kind != "workloads":
        _kind(kind, True)
    return _redirect(url("ns", _namespace(ns, allow_all=True), kind))


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.Response(text=CSS, content_type="text/css", headers={"Cache-Control": "max-age=3600"})


async def script(request: web.Request) -> web.StreamResponse:
    return web.Response(text=JS, content_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


async def set_language(request: web.Request) -> web.StreamResponse:
    """The switcher: a preference cookie (no server state changes), then back where the user was."""
    lang = request.match_info["lang"]
    if lang not in i18n.LANGUAGES:
        raise NotFoundPage(f"unknown language {lang!r}")
    back = request.headers.get("Referer", "")
    prefix = f"{request.scheme}://{request.host}/"
    resp = _redirect("/" + back[len(prefix):] if back.startswith(prefix) else "/")
    resp.set_cookie(i18n.LANG_COOKIE, lang, secure=True, samesite="Strict", path="/", max_age=365 * 86400)
    return resp


# -- browsing ----------------------------------------------------------------------------------------------


def _event_time(e: dict) -> str:
    return e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp") or ""


async def _list_table(api: UserApi, k: Kind, namespace: str | None) -> Html:
    result = await api.request("GET", api_path(k.group, k.version, k.key, namespace))
    items = sorted(result.get("items") or [], key=lambda o: ((o.get("metadata") or {}).get("namespace") or "",
                                                              (o.get("metadata") or {}).get("name") or ""))
    if k.key == "events":  # newest first, as one reads them
        items.sort(key=_event_time, reverse=True)
    headers = ["Name"] + (["Namespace"] if k.namespaced and not namespace else []) + list(k.columns)
    if k.key != "events":
        headers.append("Labels")
    rows, classes = [], []
    for o in items:
        meta = o.get("metadata") or {}
        name, ns = meta.get("name") or "", meta.get("namespace")
        if k.key == "namespaces":
            target = url("ns", name, "workloads")
        elif k.key == "customresourcedefinitions":
            target = _crd_objects_url(o)
        else:
            target = _detail_url(k, ns, name)
        row: list[Any] = [link(target, name)]
        if k.namespaced and not namespace:
            row.append(ns)
        row += k.row(o)
        if k.key != "events":
            row.append(labels(meta.get("labels")))
        rows.append(row)
        classes.append("warning" if k.key == "events" and o.get("type") == "Warning" else "")
    return table([t(h) for h in headers], rows, f"{t('There is nothing to display here')} ({t(k.title)}).",
                 classes)


def _crd_objects_url(crd: dict) -> str:
    spec = crd.get("spec") or {}
    version = next((v.get("name") for v in spec.get("versions") or [] if v.get("storage")), None) or \
        next((v.get("name") for v in spec.get("versions") or []), "v1")
    return url("crd", spec.get("group") or "", version or "v1", (spec.get("names") or {}).get("plural") or "")


@authed
async def cluster_list(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    return _page(s, t(k.title), await _list_table(api, k, None), live=url("live", "cluster", k.key))


@authed
async def namespaced_list(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"], allow_all=True)
    k = _kind(request.match_info["kind"], True)
    s.namespace = ns
    where = t("all namespaces") if ns == ALL else f"{t('Namespace')} {ns}"
    return _page(s, f"{t(k.title)} · {where}", await _list_table(api, k, None if ns == ALL else ns), kind=k.key,
                 live=url("live", "ns", ns, k.key))


@authed
async def workloads(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"], allow_all=True)
    s.namespace = ns
    sections = []
    for key in WORKLOADS:
        k = KINDS[key]
        try:
            part = await _list_table(api, k, None if ns == ALL else ns)
        except ClientError as e:
            if e.code == 401:
                raise
            part = H('<div class="error">{}</div>', e.message)
        sections.append(H("<h3>{}</h3>{}", link(url("ns", ns, key), k.title), part))
    where = "all namespaces" if ns == ALL else f"namespace {ns}"
    return _page(s, f"Workloads in {where}", join(sections))


def _kv(rows: list[tuple[str, object]]) -> Html:
    return H('<table class="kv">{}</table>', join(H("<tr><th>{}</th><td>{}</td></tr>", k, v) for k, v in rows))


def _owner_links(meta: dict, namespace: str | None) -> Html:
    out = []
    for ref in meta.get("ownerReferences") or []:
        k = next((x for x in KINDS.values() if x.kind == ref.get("kind")), None)
        text = f"{ref.get('kind')}/{ref.get('name')}"
        out.append(link(_detail_url(k, namespace, ref.get("name") or ""), text)
                   if k and NAME_RE.match(ref.get("name") or "") else esc(text))
    return join(out, ", ")


async def can(api: UserApi, verb: str, k: Kind, namespace: str | None, name: str = "",
              subresource: str = "") -> tuple[bool, str]:
    """(allowed, why not) from a SelfSubjectAccessReview with the user's token."""
    attrs: dict[str, str] = {"verb": verb, "group": k.group, "resource": k.key}
    if namespace:
        attrs["namespace"] = namespace
    if name:
        attrs["name"] = name
    if subresource:
        attrs["subresource"] = subresource
    try:
        review = await api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs}})
    except ClientError as e:
        if e.code == 401:
            raise
        return True, ""  # cannot ask: offer the action, the API server will decide
    status = (review or {}).get("status") or {}
    if status.get("allowed"):
        return True, ""
    what = f"{k.key}{'/' + subresource if subresource else ''}{'.' + k.group if k.group else ''}"
    where = f' in the namespace "{namespace}"' if namespace else ""
    return False, f"{t('You are not allowed to do this')}: RBAC does not allow {verb} on {what}{where}"


def action_button(label: str, allowed: tuple[bool, str], button_id: str) -> Html:
    ok, why = allowed
    if ok:
        return H('<button type="submit" id="{}">{}</button>', button_id, label)
    return H('<button type="submit" id="{}" disabled title="{}">{}</button><span class="why" id="{}-why">{}</span>',
             button_id, why, label, button_id, why)


async def _events_for(api: UserApi, obj: dict) -> Html:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    selector = f"involvedObject.uid={meta.get('uid')}" if meta.get("uid") else \
        f"involvedObject.name={meta.get('name')}"
    try:
        result = await api.request("GET", api_path("", "v1", "events", ns), params={"fieldSelector": selector})
    except ClientError as e:
        if e.code == 401:
            raise
        return H('<p class="error">{}</p>', e.message)
    items = sorted(result.get("items") or [], key=_event_time, reverse=True)
    rows = [[e.get("type") or "Normal", e.get("reason") or "", e.get("message") or "", e.get("count") or 1,
             age(_event_time(e))] for e in items]
    return table([t("Type"), t("Reason"), t("Message"), "Count", "Last seen"], rows, t("Nothing to show"),
                 ["warning" if e.get("type") == "Warning" else "" for e in items])


def _mask_secret(obj: dict, reveal: str) -> tuple[dict, Html]:
    """The Secret with every value hidden but the one asked for, and its keys with reveal links."""
    import base64

    data = obj.get("data") or {}
    meta = obj.get("metadata") or {}
    rows = []
    for key in sorted(data):
        if key == reveal:
            try:
                value: object = base64.b64decode(data[key]).decode("utf-8", "replace")
            except ValueError:
                value = data[key]
            rows.append([key, H('<pre class="revealed" id="revealed">{}</pre>', value)])
        else:
            rows.append([key, link(url("ns", meta.get("namespace") or "", "secrets", meta.get("name") or "",
                                       reveal=key), H("{} ({} bytes)", t("Reveal"), len(data[key]) * 3 // 4))])
    shown = dict(obj)
    shown["data"] = {key: f"({t('hidden')})" for key in data}
    shown.pop("stringData", None)
    return shown, table([t("Name"), ""], rows)


async def _detail(request: web.Request, s: Session, api: UserApi, k: Kind, obj: dict) -> web.Response:
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name") or ""
    rows: list[tuple[str, object]] = [(t("Name"), name)]
    if ns:
        rows.append((t("Namespace"), ns))
    rows += [("UID", meta.get("uid")),
             ("Created", f"{meta.get('creationTimestamp')} ({age(meta.get('creationTimestamp'))} ago)"),
             (t("Labels"), labels(meta.get("labels"))),
             ("Annotations", labels({a: v if len(v) < 200 else v[:200] + "…"
                                     for a, v in (meta.get("annotations") or {}).items()}))]
    if meta.get("ownerReferences"):
        rows.append(("Controlled by", _owner_links(meta, ns)))
    for header, value in zip(k.columns, k.row(obj), strict=False):
        rows.append((t(header), value))
    base = _detail_url(k, ns, name)
    checks = {"update": can(api, "update", k, ns, name), "delete": can(api, "delete", k, ns, name)}
    if k.scalable:
        checks["scale"] = can(api, "patch", k, ns, name, "scale")
    if k.key in RESTARTABLE or k.key == "nodes":
        checks["patch"] = can(api, "patch", k, ns, name)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    actions = [H('<form method="get" action="{}">{}</form>', base + "/edit",
                 action_button(t("Edit YAML"), results["update"], "edit"))]
    if k.scalable:
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        actions.append(H('<form method="post" action="{}">{}<label>{} <input type="number" min="0" '
                         'max="10000" name="replicas" id="replicas" value="{}"></label> {}</form>',
                         base + "/scale", _csrf_field(s), t("Replicas"), replicas,
                         action_button(t("Scale"), results["scale"], "scale")))
    if k.key in RESTARTABLE:
        actions.append(H('<form method="post" action="{}" class="confirm" data-question="{}">{}{}</form>',
                         base + "/restart", f"Restart {k.kind} {name}?", _csrf_field(s),
                         action_button(t("Restart"), results["patch"], "restart")))
    if k.key == "nodes":
        cordoned = bool((obj.get("spec") or {}).get("unschedulable"))
        actions.append(H('<form method="post" action="{}">{}<input type="hidden" name="unschedulable" value="{}">'
                         '{}</form>', base + "/cordon", _csrf_field(s), "false" if cordoned else "true",
                         action_button(t("Uncordon") if cordoned else t("Cordon"), results["patch"], "cordon")))
        actions.append(H('<form method="post" action="{}" class="confirm" data-question="{}">{}{}</form>',
                         base + "/drain", f"Drain node {name}: cordon it and evict its pods?", _csrf_field(s),
                         action_button(t("Drain"), results["patch"], "drain")))
    if k.key == "pods":
        for c in (obj.get("spec") or {}).get("containers") or []:
            cname = c.get("name") or ""
            actions.append(link(url("ns", ns, "pods", name, "logs", container=cname), f"{t('Logs of')} {cname}"))
    if k.key != "nodes":
        ok, why = results["delete"]
        actions.append(H('<a href="{}" id="delete">{}</a>', base + "/delete", t("Delete")) if ok else
                       H('<span class="why" id="delete-why">{}: {}</span>', t("Delete"), why))
    shown = dict(obj)
    shown["metadata"] = {key: v for key, v in meta.items() if key != "managedFields"}
    extra = Html("")
    if k.key == "secrets":
        shown, keys = _mask_secret(shown, request.query.get("reveal", ""))
        extra = H("<h3>Data</h3>{}", keys)
    if k.key == "pods":
        containers = [[c.get("name"), c.get("image"),
                       link(url("ns", ns, "pods", name, "logs", container=c.get("name") or ""), t("Logs"))]
                      for c in (obj.get("spec") or {}).get("containers") or []]
        extra = H("<h3>{}</h3>{}", t("Containers"), table([t("Name"), t("Image"), ""], containers))
    text = yaml.safe_dump(shown, sort_keys=False, default_flow_style=False, allow_unicode=True)
    events = await _events_for(api, obj) if k.key != "events" else Html("")
    body = H('{}{}<h3>{}</h3><div id="events">{}</div><h3>YAML</h3><pre id="yaml">{}</pre>', _kv(rows), extra,
             t("Events"), events, text)
    live = url("live", "ns", ns, k.key, name) if ns else url("live", "cluster", k.key, name)
    return _page(s, f"{k.kind} {name}", body, kind=k.key if ns else "", live=live,
                 before=H('<div class="actions">{}</div>', join(actions)))


@authed
async def cluster_detail(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    name = _name(request.match_info["name"])
    obj = await api.request("GET", api_path(k.group, k.version, k.key, None, name))
    return await _detail(request, s, api, k, obj)


@authed
async def namespaced_detail(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    k = _kind(request.match_info["kind"], True)
    name = _name(request.match_info["name"])
    obj = await api.request("GET", api_path(k.group, k.version, k.key, ns, name))
    return await _detail(request, s, api, k, obj)


SINCE = (("", "all"), ("60", "1m"), ("300", "5m"), ("900", "15m"), ("3600", "1h"), ("86400", "1d"))


def log_params(query) -> dict[str, str]:
    """The API's log parameters from the page's query: tailLines, sinceSeconds, container, previous."""
    params = {"tailLines": "1000"}
    try:
        params["tailLines"] = str(max(1, min(int(query.get("tail", "1000")), 100_000)))
    except ValueError:
        pass
    since = query.get("sinceSeconds", "")
    if since.isdigit() and 0 < int(since) <= 10 * 365 * 86400:
        params["sinceSeconds"] = since
    container = query.get("container", "")
    if container:
        params["container"] = _name(container)
    if query.get("previous") == "true":
        params["previous"] = "true"
    return params


@authed
async def pod_logs(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    name = _name(request.match_info["name"])
    params = log_params(request.query)
    container = params.get("container", "")
    follow = request.query.get("follow", "true") != "false" and "previous" not in params
    title = f"{t('Logs of pod')} {name}" + (f", {t('Container').lower()} {container}" if container else "")
    if i18n.current.get() == "en":
        title = f"Logs of pod {name}" + (f", container {container}" if container else "")
    status = 200
    pod: dict = {}
    try:
        pod = await api.request("GET", api_path("", "v1", "pods", ns, name))
    except ClientError as e:
        if e.code == 401:
            raise
    names = [c.get("name") or "" for kind in ("initContainers", "containers", "ephemeralContainers")
             for c in (pod.get("spec") or {}).get(kind) or []]
    query = {k: v for k, v in params.items() if k != "tailLines"}
    query["tail"] = params["tailLines"]
    if follow:  # a one-byte read first: a container without logs yet shows the API's error, not a silent stream
        try:
            await api.request("GET", api_path("", "v1", "pods", ns, name, "log"),
                              params={**params, "limitBytes": "1"}, raw=True)
        except ClientError as e:
            if e.code == 401:
                raise
            follow = False
    if follow:
        stream = url("ns", ns, "pods", name, "logs", "follow", **query)
        shown = H('<pre id="logs" data-follow="{}"></pre><p id="follow-state" class="empty">{}…</p>', stream,
                  t("Follow"))
    else:
        try:
            raw = await api.request("GET", api_path("", "v1", "pods", ns, name, "log"), params=params, raw=True)
            shown = H('<pre id="logs">{}</pre>', raw.decode("utf-8", "replace") or "(no log lines)")
        except ClientError as e:
            if e.code == 401:
                raise
            status = e.code if 400 <= e.code <= 599 else 502
            shown = H('<div class="error" id="api-error">{} {}: {}</div>', e.code, e.reason,
                      e.message or "the API server gave no log for this container")
    picker = join(H('<option value="{}"{}>{}</option>', c, Html(" selected") if c == container else "", c)
                  for c in names) if names else H('<option value="{}">{}</option>', container, container)
    since_opts = join(H('<option value="{}"{}>{}</option>', v, Html(" selected") if v == params.get(
        "sinceSeconds", "") else "", label) for v, label in SINCE)
    controls = H('<form method="get" class="logctl" action="{}">'
                 '<label>{} <select name="container" id="container">{}</select></label>'
                 '<label>{} <select name="sinceSeconds" id="since">{}</select></label>'
                 '<label>tail <input name="tail" type="number" min="1" value="{}" size="6"></label>'
                 '<label><input type="checkbox" name="previous" value="true" id="previous"{}> {}</label>'
                 '<label><input type="checkbox" name="follow" value="false" id="nofollow"{}> no follow</label>'
                 '<button type="submit" id="show-logs">{}</button> <a href="{}" id="download">{}</a></form>',
                 url("ns", ns, "pods", name, "logs"), t("Container"), picker, t("Since"), since_opts,
                 params["tailLines"], Html(" checked") if "previous" in params else "", t("Previous container"),
                 Html(" checked") if not follow else "", t("Show"),
                 url("ns", ns, "pods", name, "logs", "download", **query), t("Download"))
    body = H("<p>{}</p>{}{}", link(url("ns", ns, "pods", name), f"pod {name}"), controls, shown)
    return _page(s, title, body, status, kind="pods")


# -- changes -----------------------------------------------------------------------------------------------


@authed
async def scale(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    k = _kind(request.match_info["kind"], True)
    name = _name(request.match_info["name"])
    if not k.scalable:
        raise NotFoundPage(f"{k.title} cannot be scaled")
    form = await request.post()
    try:
        replicas = int(str(form.get("replicas", "")))
        if replicas < 0:
            raise ValueError
    except ValueError:
        return _page(s, "Invalid request", H('<p class="error">{}</p>', "replicas must be a whole number >= 0"),
                     400)
    await api.request("PATCH", api_path(k.group, k.version, k.key, ns, name, "scale"),
                      body={"spec": {"replicas": replicas}}, content_type=MERGE_PATCH)
    s.flash.append(("ok", f"{k.kind.lower()}.{k.group or 'core'}/{name} scaled to {replicas}"))
    return _redirect(url("ns", ns, k.key, name))


PROPAGATION = ("Background", "Foreground", "Orphan")


async def _delete(api: UserApi, s: Session, k: Kind, ns: str | None, name: str, propagation: str = "Background"
                  ) -> None:
    if propagation not in PROPAGATION:
        propagation = "Background"
    await api.request("DELETE", api_path(k.group, k.version, k.key, ns, name),
                      body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation})
    s.flash.append(("ok", f"{_ref(k.kind, k.group, name)} deleted"))


def _confirm_delete(s: Session, k: Kind, ns: str | None, name: str) -> web.Response:
    base = _detail_url(k, ns, name)
    body = H('<p>Delete {} <b>{}</b>{}?</p>'
             '<form method="post" action="{}">{}<p><label>{} <select name="propagationPolicy" id="propagation">'
             '<option value="Background" selected>Background: delete now, its dependents after</option>'
             '<option value="Foreground">Foreground: its dependents first, then it</option>'
             '<option value="Orphan">Orphan: keep its dependents</option></select></label></p>'
             '<button type="submit" id="confirm-delete">{}</button> <a href="{}">{}</a></form>', k.kind, name,
             f" in namespace {ns}" if ns else "", base + "/delete", _csrf_field(s), t("Propagation"), t("Delete"),
             base, t("Cancel"))
    return _page(s, f"Delete {k.kind} {name}", body, kind=k.key if ns else "")


@authed
async def namespaced_confirm_delete(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], True)
    return _confirm_delete(s, k, _namespace(request.match_info["ns"]), _name(request.match_info["name"]))


@authed
async def cluster_confirm_delete(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    if k.key == "nodes":
        raise NotFoundPage("nodes are not deleted from the dashboard")
    return _confirm_delete(s, k, None, _name(request.match_info["name"]))


@authed
async def namespaced_delete(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    k = _kind(request.match_info["kind"], True)
    name = _name(request.match_info["name"])
    form = await request.post()
    await _delete(api, s, k, ns, name, str(form.get("propagationPolicy") or "Background"))
    return _redirect(url("ns", ns, k.key))


@authed
async def cluster_delete(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    name = _name(request.match_info["name"])
    if k.key == "nodes":
        raise NotFoundPage("nodes are not deleted from the dashboard")
    form = await request.post()
    await _delete(api, s, k, None, name, str(form.get("propagationPolicy") or "Background"))
    return _redirect(url(k.key))


def _ref(kind: str, group: str, name: str) -> str:
    """kubectl's `<kind>.<group>/<name>`."""
    return f"{kind.lower()}{'.' + group if group else ''}/{name}"


def _create_form(s: Session, text: str = "", namespace: str = "") -> Html:
    ns = namespace or ("default" if s.namespace == ALL else s.namespace)
    return H('<form method="post" action="/create">{}<p>Enter YAML or JSON content specifying the resources to '
             'create (several documents separated by <code>---</code>), as <code>kubectl create -f</code>.</p>'
             '<p><label>Default namespace <input name="namespace" id="namespace" value="{}"></label></p>'
             '<textarea name="yaml" id="yaml-input" rows="20" spellcheck="false">{}</textarea>'
             '<p><button type="submit" id="upload">Upload</button></p></form>', _csrf_field(s), ns, text)


@authed
async def create_page(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    return _page(s, "Create from YAML", _create_form(s))


async def _create_one(api: UserApi, doc: dict, namespace: str) -> str:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        raise ValueError("error validating data: apiVersion and kind must be set")
    group, _, version = api_version.rpartition("/")
    try:
        resources = await api.resources(api_version)
    except ClientError as e:
        if e.code == 404:
            raise ValueError(f'no matches for kind "{kind}" in version "{api_version}"') from None
        raise
    res = next((r for r in resources.get("resources") or [] if r.get("kind") == kind and "/" not in r["name"]),
               None)
    if res is None:
        raise ValueError(f'no matches for kind "{kind}" in version "{api_version}"')
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    ns = None
    if res.get("namespaced"):
        ns = meta.get("namespace") or namespace
        if not isinstance(ns, str) or not NAMESPACE_RE.match(ns):
            raise ValueError(f"invalid namespace {ns!r}")
    created = await api.request("POST", api_path(group, version, res["name"], ns), body=doc)
    name = ((created or {}).get("metadata") or {}).get("name") or meta.get("name") or ""
    return f"{_ref(kind, group, name)} created"


@authed
async def create(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    form = await request.post()
    text = str(form.get("yaml") or "")
    namespace = str(form.get("namespace") or "").strip() or "default"
    if not NAMESPACE_RE.match(namespace):
        return _page(s, "Create from YAML", H('<div class="error">{}</div>{}', f"invalid namespace {namespace!r}",
                                              _create_form(s, text)), 400)
    if len(text) > MAX_YAML:
        return _page(s, "Create from YAML", H('<div class="error">{}</div>', "the content is too large"), 413)
    try:
        docs = [d for d in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                if d is not None]
    except yaml.YAMLError as e:
        return _page(s, "Create from YAML", H('<div class="error" id="api-error">{}</div>{}',
                                              f"error parsing YAML: {e}", _create_form(s, text, namespace)), 400)
    expanded: list[Any] = []
    for d in docs:  # a List (kubectl get -o yaml) is its items, as kubectl create -f reads it
        if isinstance(d, dict) and isinstance(d.get("kind"), str) and d["kind"].endswith("List") \
                and isinstance(d.get("items"), list):
            expanded.extend(d["items"])
        else:
            expanded.append(d)
    if not expanded:
        return _page(s, "Create from YAML", H('<div class="error">{}</div>{}', "no objects passed to create",
                                              _create_form(s, text, namespace)), 400)
    results: list[Html] = []
    status = 200
    for doc in expanded:
        try:
            if not isinstance(doc, dict):
                raise ValueError("error: each document must be an object")
            results.append(H('<div class="flash">{}</div>', await _create_one(api, doc, namespace)))
        except ValueError as e:
            status = status if status != 200 else 400
            results.append(H('<div class="error">{}</div>', str(e)))
        except ClientError as e:
            if e.code == 401:
                raise
            status = status if status != 200 else e.code
            results.append(H('<div class="error">Error from server ({}): {}</div>', e.reason, e.message))
    return _page(s, "Create from YAML", H('<div id="create-results">{}</div>{}', join(results),
                                          _create_form(s, "", namespace)), status)


# -- the application ---------------------------------------------------------------------------------------


def build_app(api: ApiServer, token_ttl: int = 900) -> web.Application:
    """The dashboard as an aiohttp application (serve it over HTTPS: the cookies are Secure)."""
    app = web.Application(middlewares=[_headers], client_max_size=MAX_YAML + 64 * 1024)
    app[STATE] = State(api=api, sessions=Sessions(token_ttl))
    r = app.router
    r.add_get("/static/dashboard.css", stylesheet)
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", index)
    r.add_get("/go", go)
    r.add_get("/create", create_page)
    r.add_post("/create", create)
    r.add_get("/cluster/{kind}/{name}", cluster_detail)
    r.add_get("/cluster/{kind}/{name}/delete", cluster_confirm_delete)
    r.add_post("/cluster/{kind}/{name}/delete", cluster_delete)
    r.add_get("/ns/{ns}/workloads", workloads)
    r.add_get("/ns/{ns}/pods/{name}/logs", pod_logs)
    r.add_get("/ns/{ns}/{kind}", namespaced_list)
    r.add_get("/ns/{ns}/{kind}/{name}", namespaced_detail)
    r.add_post("/ns/{ns}/{kind}/{name}/scale", scale)
    r.add_get("/ns/{ns}/{kind}/{name}/delete", namespaced_confirm_delete)
    r.add_post("/ns/{ns}/{kind}/{name}/delete", namespaced_delete)
    r.add_get("/static/dashboard.js", script)
    r.add_get("/lang/{lang}", set_language)
    from . import edit, live, overview  # they build on this module's helpers

    live.routes(r)
    edit.routes(r)
    overview.routes(r)
    r.add_get("/{kind:" + "|".join(CLUSTER_KEYS) + "}", cluster_list)

    async def close_api(_: web.Application) -> None:
        await api.close()

    app.on_cleanup.append(close_api)
    return app
