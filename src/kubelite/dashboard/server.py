"""The dashboard's HTTP routes: token login, browsing, logs, scale, delete and create from YAML.

Server-rendered HTML with plain forms (no JavaScript at all, and a Content-Security-Policy that forbids it).
Every API call is made with the logged-in user's token (`userapi.UserApi`); an API error is shown with the
API server's own code, reason and message.
"""

from __future__ import annotations

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
from . import sessions as sess
from .html import CSS, H, Html, esc, join, labels, link, table, url
from .kinds import KINDS, WORKLOADS, Kind, age
from .sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, Sessions
from .userapi import MERGE_PATCH, ApiServer, UserApi, api_path

log = logging.getLogger("kubelite.dashboard")

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ALL = "_all"  # not a valid namespace name, so it cannot collide with one
MAX_TOKEN = 16 * 1024
MAX_YAML = 1024 * 1024
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


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


def _plain_page(title: str, body: Html, status: int = 200) -> web.Response:
    doc = H('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{} - Kubernetes Dashboard</title>'
            '<link rel="stylesheet" href="/static/dashboard.css"></head><body>{}</body></html>', title, body)
    return web.Response(text=doc, status=status, content_type="text/html")


def _csrf_field(s: Session) -> Html:
    return H('<input type="hidden" name="_csrf" value="{}">', s.csrf)


def _nav(s: Session, current_kind: str = "") -> Html:
    ns = s.namespace
    items = [H("<h3>Cluster</h3>"), link("/namespaces", "Namespaces"), link("/nodes", "Nodes"),
             H("<h3>Workloads</h3>"), link(url("ns", ns, "workloads"), "Overview")]
    items += [link(url("ns", ns, k), KINDS[k].title) for k in WORKLOADS]
    items += [H("<h3>Service</h3>"), link(url("ns", ns, "services"), "Services"),
              H("<h3>Config</h3>"), link(url("ns", ns, "configmaps"), "Config Maps"),
              H("<h3>Create</h3>"), link("/create", "Create from YAML")]
    switch = H('<form method="get" action="/go"><h3>Namespace</h3>'
               '<input name="namespace" value="{}" size="14" aria-label="namespace">'
               '<input type="hidden" name="kind" value="{}"> <button type="submit">Go</button>'
               '<br><a href="{}">all namespaces</a></form>', "" if ns == ALL else ns, current_kind or "workloads",
               url("ns", ALL, current_kind or "workloads"))
    return H("<nav>{}{}</nav>", switch, join(items))


def _page(s: Session, title: str, body: Html, status: int = 200, kind: str = "") -> web.Response:
    flashes = join(H('<div class="{}" role="status">{}</div>', "flash" if k == "ok" else "error", text)
                   for k, text in s.flash)
    s.flash.clear()
    top = H('<header><h1>Kubernetes Dashboard <small>(kubelite)</small></h1>'
            '<span class="user" id="user">{}</span>'
            '<form method="post" action="/logout">{}<button type="submit" id="logout">Sign out</button></form>'
            '</header>', s.username, _csrf_field(s))
    main = H("<main><h2>{}</h2>{}{}</main>", title, flashes, body)
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
             '<p><label for="token">Bearer token</label></p>'
             '<p>Every Service Account has a Secret with a valid Bearer Token that can be used to log in to the '
             'Dashboard (or ask for one with <code>kubectl -n NAMESPACE create token NAME</code>).</p>'
             '<textarea id="token" name="token" rows="6" autocomplete="off" spellcheck="false" required></textarea>'
             '<input type="hidden" name="_csrf" value="{}">'
             '<p><button type="submit" id="signin">Sign in</button></p></form></div>',
             H('<p class="flash">{}</p>', note) if note else "",
             H('<p class="error" id="login-error">{}</p>', message) if message else "", csrf)
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


# -- browsing ----------------------------------------------------------------------------------------------


async def _list_table(api: UserApi, k: Kind, namespace: str | None) -> Html:
    result = await api.request("GET", api_path(k.group, k.version, k.key, namespace))
    items = sorted(result.get("items") or [], key=lambda o: ((o.get("metadata") or {}).get("namespace") or "",
                                                              (o.get("metadata") or {}).get("name") or ""))
    headers = ["Name"] + (["Namespace"] if k.namespaced and not namespace else []) + list(k.columns) + ["Labels"]
    rows = []
    for o in items:
        meta = o.get("metadata") or {}
        name, ns = meta.get("name") or "", meta.get("namespace")
        target = url("ns", name, "workloads") if k.key == "namespaces" else _detail_url(k, ns, name)
        row: list[Any] = [link(target, name)]
        if k.namespaced and not namespace:
            row.append(ns)
        row += k.row(o)
        row.append(labels(meta.get("labels")))
        rows.append(row)
    return table(headers, rows, f"There is nothing to display here ({k.title.lower()}).")


@authed
async def cluster_list(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    return _page(s, k.title, await _list_table(api, k, None))


@authed
async def namespaced_list(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"], allow_all=True)
    k = _kind(request.match_info["kind"], True)
    s.namespace = ns
    where = "all namespaces" if ns == ALL else f"namespace {ns}"
    return _page(s, f"{k.title} in {where}", await _list_table(api, k, None if ns == ALL else ns), kind=k.key)


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


def _detail_body(s: Session, k: Kind, obj: dict) -> Html:
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name") or ""
    rows: list[tuple[str, object]] = [("Name", name)]
    if ns:
        rows.append(("Namespace", ns))
    rows += [("UID", meta.get("uid")),
             ("Created", f"{meta.get('creationTimestamp')} ({age(meta.get('creationTimestamp'))} ago)"),
             ("Labels", labels(meta.get("labels"))),
             ("Annotations", labels({a: v if len(v) < 200 else v[:200] + "…"
                                     for a, v in (meta.get("annotations") or {}).items()}))]
    if meta.get("ownerReferences"):
        rows.append(("Controlled by", _owner_links(meta, ns)))
    for header, value in zip(k.columns, k.row(obj), strict=False):
        rows.append((header, value))
    actions = []
    base = _detail_url(k, ns, name)
    if k.scalable:
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        actions.append(H('<form method="post" action="{}">{}<label>Replicas <input type="number" min="0" '
                         'max="10000" name="replicas" id="replicas" value="{}"></label> '
                         '<button type="submit" id="scale">Scale</button></form>',
                         base + "/scale", _csrf_field(s), replicas))
    if k.key == "pods":
        for c in (obj.get("spec") or {}).get("containers") or []:
            cname = c.get("name") or ""
            actions.append(link(url("ns", ns, "pods", name, "logs", container=cname), f"Logs of {cname}"))
    if k.key != "nodes":
        actions.append(H('<a href="{}" id="delete">Delete</a>', base + "/delete"))
    shown = dict(obj)
    shown["metadata"] = {key: v for key, v in meta.items() if key != "managedFields"}
    text = yaml.safe_dump(shown, sort_keys=False, default_flow_style=False, allow_unicode=True)
    extra = Html("")
    if k.key == "pods":
        containers = [[c.get("name"), c.get("image"),
                       link(url("ns", ns, "pods", name, "logs", container=c.get("name") or ""), "logs")]
                      for c in (obj.get("spec") or {}).get("containers") or []]
        extra = H("<h3>Containers</h3>{}", table(["Name", "Image", ""], containers))
    return H('{}<div class="actions">{}</div>{}<h3>YAML</h3><pre id="yaml">{}</pre>', _kv(rows), join(actions),
             extra, text)


@authed
async def cluster_detail(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    name = _name(request.match_info["name"])
    obj = await api.request("GET", api_path(k.group, k.version, k.key, None, name))
    return _page(s, f"{k.kind} {name}", _detail_body(s, k, obj))


@authed
async def namespaced_detail(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    k = _kind(request.match_info["kind"], True)
    name = _name(request.match_info["name"])
    obj = await api.request("GET", api_path(k.group, k.version, k.key, ns, name))
    return _page(s, f"{k.kind} {name}", _detail_body(s, k, obj), kind=k.key)


@authed
async def pod_logs(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    name = _name(request.match_info["name"])
    params = {"tailLines": "1000"}
    try:
        tail = int(request.query.get("tail", "1000"))
        params["tailLines"] = str(max(1, min(tail, 100_000)))
    except ValueError:
        pass
    container = request.query.get("container", "")
    if container:
        params["container"] = _name(container)
    if request.query.get("previous") == "true":
        params["previous"] = "true"
    title = f"Logs of pod {name}" + (f", container {container}" if container else "")
    status = 200
    try:
        raw = await api.request("GET", api_path("", "v1", "pods", ns, name, "log"), params=params, raw=True)
        shown = H('<pre id="logs">{}</pre>', raw.decode("utf-8", "replace") or "(no log lines)")
    except ClientError as e:
        if e.code == 401:
            raise
        status = e.code if 400 <= e.code <= 599 else 502
        shown = H('<div class="error" id="api-error">{} {}: {}</div>', e.code, e.reason,
                  e.message or "the API server gave no log for this container")
    body = H("<p>{} · {}</p>{}", link(url("ns", ns, "pods", name), f"pod {name}"),
             link(url("ns", ns, "pods", name, "logs", container=container, tail=params["tailLines"]), "refresh"),
             shown)
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


async def _delete(api: UserApi, s: Session, k: Kind, ns: str | None, name: str) -> None:
    await api.request("DELETE", api_path(k.group, k.version, k.key, ns, name),
                      body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
    s.flash.append(("ok", f"{_ref(k.kind, k.group, name)} deleted"))


def _confirm_delete(s: Session, k: Kind, ns: str | None, name: str) -> web.Response:
    base = _detail_url(k, ns, name)
    body = H('<p>Delete {} <b>{}</b>{}? Objects it owns are deleted with it.</p>'
             '<form method="post" action="{}">{}<button type="submit" id="confirm-delete">Delete</button> '
             '<a href="{}">Cancel</a></form>', k.kind, name, f" in namespace {ns}" if ns else "", base + "/delete",
             _csrf_field(s), base)
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
    await _delete(api, s, k, ns, name)
    return _redirect(url("ns", ns, k.key))


@authed
async def cluster_delete(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    name = _name(request.match_info["name"])
    if k.key == "nodes":
        raise NotFoundPage("nodes are not deleted from the dashboard")
    await _delete(api, s, k, None, name)
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
    r.add_get("/{kind:namespaces|nodes}", cluster_list)

    async def close_api(_: web.Application) -> None:
        await api.close()

    app.on_cleanup.append(close_api)
    return app
