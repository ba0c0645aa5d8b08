"""The dashboard's routes over HTTPS against the session API server, with real ServiceAccount tokens."""

from __future__ import annotations

import html
import json
import re
import uuid

import aiohttp

from kubelite.dashboard.server import STATE
from kubelite.dashboard.sessions import LOGIN_COOKIE, SESSION_COOKIE


async def _csrf_of(page: str) -> str:
    m = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


async def login(b: aiohttp.ClientSession, token: str) -> aiohttp.ClientResponse:
    async with b.get("/login") as r:
        csrf = await _csrf_of(await r.text())
    return await b.post("/login", data={"token": token, "_csrf": csrf}, allow_redirects=False)


async def signed_in(b: aiohttp.ClientSession, token: str) -> str:
    """Log in; the CSRF token of the session's forms."""
    r = await login(b, token)
    assert r.status == 303, await r.text()
    async with b.get("/create") as page:
        assert page.status == 200
        return await _csrf_of(await page.text())


def _cookie_header(r: aiohttp.ClientResponse, name: str) -> str:
    return next(v for v in r.headers.getall("Set-Cookie") if v.startswith(name + "="))


async def test_login_page_and_cookie_flags(dashboard, tokens):
    async with dashboard.browser() as b:
        async with b.get("/login") as r:
            assert r.status == 200
            page = await r.text()
            assert 'name="token"' in page and "Sign in" in page
            assert "skip" not in page.lower() and 'type="password"' not in page  # token only, no basic auth
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert "<script>" not in page  # our one script is a file: no inline script at all
            assert r.headers["X-Frame-Options"] == "DENY"
            login_cookie = _cookie_header(r, LOGIN_COOKIE)
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert flag in login_cookie
        r = await login(b, tokens.admin)
        assert r.status == 303 and r.headers["Location"] == "/"
        cookie = _cookie_header(r, SESSION_COOKIE)
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert flag in cookie
        assert tokens.admin not in cookie  # the token stays on the server
        async with b.get("/ns/default/pods") as page:
            assert page.status == 200
            assert f"system:serviceaccount:{tokens.namespace}:admin-user" in await page.text()


async def test_bad_token_is_refused_with_a_clear_error(dashboard):
    async with dashboard.browser() as b:
        r = await login(b, "not-a-valid-token")
        assert r.status == 401
        page = await r.text()
        assert 'id="login-error"' in page and "Unauthorized (401)" in page
        assert SESSION_COOKIE not in r.cookies
        r = await login(b, "  ")
        assert r.status == 400 and "Enter a bearer token" in await r.text()


async def test_login_needs_the_forms_csrf_token(dashboard, tokens):
    async with dashboard.browser() as b:
        r = await b.post("/login", data={"token": tokens.admin, "_csrf": "forged"}, allow_redirects=False)
        assert r.status == 403 and SESSION_COOKIE not in r.cookies
    async with dashboard.browser() as b:  # a form posted from another site
        async with b.get("/login") as page:
            csrf = await _csrf_of(await page.text())
        r = await b.post("/login", data={"token": tokens.admin, "_csrf": csrf}, allow_redirects=False,
                         headers={"Origin": "https://evil.example"})
        assert r.status == 403


async def test_pages_need_a_session(dashboard):
    async with dashboard.browser() as b:
        for path in ("/", "/ns/default/pods", "/nodes", "/create"):
            async with b.get(path, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/login"), path
        async with b.post("/create", data={"yaml": "x"}, allow_redirects=False) as r:
            assert r.status == 303


async def test_browse_lists_and_details_escape_everything(dashboard, tokens, cluster):
    ns = tokens.namespace
    evil = "<script>alert(1)</script>"
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "evil", "namespace": ns, "labels": {"app": "x"}, "annotations": {"note": evil}},
          "data": {"k": evil}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(cm), check=True)
    cluster.kubectl("-n", ns, "run", "web", "--image=nginx", "--labels=app=web", check=True)
    async with dashboard.browser() as b:
        await signed_in(b, tokens.admin)
        async with b.get(f"/ns/{ns}/pods") as r:
            page = await r.text()
            assert r.status == 200 and f'href="/ns/{ns}/pods/web"' in page and "app=web" in page
        async with b.get(f"/ns/{ns}/configmaps/evil") as r:
            page = await r.text()
            assert r.status == 200
            assert evil not in page and html.escape(evil) in page
        async with b.get(f"/ns/{ns}/pods/web") as r:
            page = await r.text()
            assert "Logs of web" in page and 'id="yaml"' in page and "managedFields" not in page
        for path in ("/namespaces", "/nodes", f"/ns/{ns}/workloads", "/ns/_all/pods", f"/ns/{ns}/services",
                     f"/ns/{ns}/deployments", f"/ns/{ns}/cronjobs", f"/cluster/namespaces/{ns}"):
            async with b.get(path) as r:
                assert r.status == 200, (path, await r.text())
        async with b.get("/namespaces") as r:
            assert f'href="/ns/{ns}/workloads"' in await r.text()
        # names that are not Kubernetes names never reach the API server
        for path in ("/ns/default/pods/..%2F..%2Fsecrets", "/ns/Default/pods", "/ns/default/widgets",
                     "/ns/default/pods/" + "%3Cb%3E"):
            async with b.get(path) as r:
                assert r.status == 404, path
                assert "<b>" not in await r.text()


async def test_scale_delete_and_csrf(dashboard, tokens, cluster):
    ns = tokens.namespace
    cluster.kubectl("-n", ns, "create", "deployment", "web", "--image=nginx", check=True)
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.admin)
        r = await b.post(f"/ns/{ns}/deployments/web/scale", data={"replicas": "3"}, allow_redirects=False)
        assert r.status == 403 and "CSRF" in await r.text()
        r = await b.post(f"/ns/{ns}/deployments/web/scale", data={"replicas": "3", "_csrf": csrf},
                         allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == f"/ns/{ns}/deployments/web"
        out = cluster.kubectl("-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}", check=True)
        assert out.stdout == "3"
        async with b.get(r.headers["Location"]) as page:
            assert "scaled to 3" in await page.text()
        r = await b.post(f"/ns/{ns}/deployments/web/scale", data={"replicas": "-1", "_csrf": csrf})
        assert r.status == 400
        async with b.get(f"/ns/{ns}/deployments/web/delete") as page:  # a confirmation first
            text = await page.text()
            assert page.status == 200 and 'id="confirm-delete"' in text and f"in namespace {ns}" in text
        r = await b.post(f"/ns/{ns}/deployments/web/delete", data={"_csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        gone = cluster.kubectl("-n", ns, "get", "deployment", "web")
        assert gone.returncode != 0 or "Terminating" in gone.stdout or "deletionTimestamp" in gone.stdout


async def test_create_from_multi_document_yaml(dashboard, tokens, cluster):
    ns = tokens.namespace
    name = f"cm-{uuid.uuid4().hex[:6]}"
    text = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: '1'\n---\n"
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  selector:\n"
            f"    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n"
            f"    spec:\n      containers:\n      - name: c\n        image: nginx\n---\n"
            f"apiVersion: example.com/v1\nkind: Nope\nmetadata:\n  name: x\n")
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.admin)
        async with b.post("/create", data={"yaml": text, "namespace": ns, "_csrf": csrf}) as r:
            page = await r.text()
        assert f"configmap/{name} created" in page
        assert f"deployment.apps/{name} created" in page
        assert html.escape('no matches for kind "Nope" in version "example.com/v1"') in page
        assert cluster.kubectl("-n", ns, "get", "configmap", name, "-o", "jsonpath={.data.a}").stdout == "1"
        async with b.post("/create", data={"yaml": text.split("---")[0], "namespace": ns, "_csrf": csrf}) as r:
            assert r.status == 409 and "AlreadyExists" in await r.text()
        async with b.post("/create", data={"yaml": "a: [", "namespace": ns, "_csrf": csrf}) as r:
            assert r.status == 400 and "error parsing YAML" in await r.text()


async def test_rbac_of_the_token_applies(dashboard, tokens):
    ns = tokens.namespace
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.nobody)
        async with b.get(f"/ns/{ns}/pods") as r:
            page = html.unescape(await r.text())
            assert r.status == 403
            assert (f'pods is forbidden: User "{tokens.nobody_user}" cannot list resource "pods" in API group "" '
                    f'in the namespace "{ns}"') in page
        async with b.post("/create", data={"_csrf": csrf, "namespace": ns,
                                           "yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nope}\n"}) as r:
            page = html.unescape(await r.text())
            assert r.status == 403 and "Error from server (Forbidden): configmaps is forbidden" in page
        async with b.get(f"/ns/{ns}/workloads") as r:  # each section shows its own refusal
            assert r.status == 200 and "deployments.apps is forbidden" in html.unescape(await r.text())


async def test_logout_ends_the_session(dashboard, tokens):
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.admin)
        r = await b.post("/logout", data={"_csrf": csrf}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/login")
        assert len(dashboard.app[STATE].sessions) == 0
        async with b.get("/ns/default/pods", allow_redirects=False) as r:
            assert r.status == 303


async def test_a_revoked_token_ends_the_session(dashboard, tokens, cluster):
    ns = tokens.namespace
    cluster.kubectl("-n", ns, "create", "serviceaccount", "short-lived", check=True)
    token = cluster.kubectl("-n", ns, "create", "token", "short-lived", check=True).stdout.strip()
    async with dashboard.browser() as b:
        await signed_in(b, token)
        cluster.kubectl("-n", ns, "delete", "serviceaccount", "short-lived", check=True)
        async with b.get(f"/ns/{ns}/pods", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login?expired=1"


async def test_logs_page_shows_the_log_or_the_api_error(dashboard, tokens, cluster):
    ns = tokens.namespace
    cluster.kubectl("-n", ns, "run", "unscheduled", "--image=nginx", check=True)  # no scheduler here
    async with dashboard.browser() as b:
        await signed_in(b, tokens.admin)
        async with b.get(f"/ns/{ns}/pods/unscheduled/logs?container=unscheduled&tail=5") as r:
            page = html.unescape(await r.text())
            assert "Logs of pod unscheduled, container unscheduled" in page
            assert r.status >= 400 and 'id="api-error"' in page
        async with b.get(f"/ns/{ns}/pods/unscheduled/logs?container=%3Cx%3E") as r:
            assert r.status == 404


async def test_delete_a_namespace_needs_confirmation_and_csrf(dashboard, tokens, cluster):
    name = f"dash-del-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name, check=True)
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.admin)
        async with b.get(f"/cluster/namespaces/{name}/delete") as r:
            assert r.status == 200 and "Delete Namespace" in await r.text()
        async with b.get("/cluster/nodes/any/delete") as r:
            assert r.status == 404
        r = await b.post(f"/cluster/namespaces/{name}/delete", data={"_csrf": "x" + csrf}, allow_redirects=False)
        assert r.status == 403
        r = await b.post(f"/cluster/namespaces/{name}/delete", data={"_csrf": csrf}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/namespaces"
    out = cluster.kubectl("get", "namespace", name, "-o", "jsonpath={.status.phase}")
    assert out.returncode != 0 or out.stdout == "Terminating"
