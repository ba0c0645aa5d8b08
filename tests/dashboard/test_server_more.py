"""Issue 14 routes: events, secrets hidden until revealed, YAML edit with dry run + diff, view-only refusals,
restart, cordon, delete propagation, live streams (SSE), log download, overview, CRDs, language."""

from __future__ import annotations

import asyncio
import html
import json
import re

from kubelite.dashboard.i18n import choose


async def signed_in(b, token: str) -> str:
    """Log in; the CSRF token of the session's forms."""
    async with b.get("/login") as r:
        csrf = re.search(r'name="_csrf" value="([^"]+)"', await r.text()).group(1)
    async with b.post("/login", data={"token": token, "_csrf": csrf}, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
    async with b.get("/create") as page:
        return re.search(r'name="_csrf" value="([^"]+)"', await page.text()).group(1)


def _view_token(cluster, ns: str) -> str:
    cluster.kubectl("-n", ns, "create", "serviceaccount", "viewer", check=False)
    cluster.kubectl("-n", ns, "create", "rolebinding", "viewer-view", "--clusterrole=view",
                    f"--serviceaccount={ns}:viewer", check=False)
    return cluster.kubectl("-n", ns, "create", "token", "viewer", check=True).stdout.strip()


def test_accept_language_choice():
    assert choose(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert choose(None, "fr, en;q=0.5, zh;q=0.7") == "zh"
    assert choose(None, "de") == "en"
    assert choose("en", "zh-CN") == "en"


async def test_events_secrets_and_chinese(dashboard, tokens, cluster):
    ns = tokens.namespace
    cluster.kubectl("-n", ns, "create", "secret", "generic", "creds", "--from-literal=password=s3cret-value",
                    check=True)
    cluster.kubectl("-n", ns, "create", "-f", "-", check=True, input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "creds.warn", "namespace": ns},
        "involvedObject": {"kind": "Secret", "name": "creds", "namespace": ns, "apiVersion": "v1",
                           "uid": json.loads(cluster.kubectl("-n", ns, "get", "secret", "creds", "-o", "json",
                                                             check=True).stdout)["metadata"]["uid"]},
        "type": "Warning", "reason": "BackOff", "message": "pulling image failed", "count": 3}))
    async with dashboard.browser() as b:
        await signed_in(b, tokens.admin)
        async with b.get(f"/ns/{ns}/secrets/creds") as r:
            page = await r.text()
            assert r.status == 200 and "s3cret-value" not in page and "czNjcmV0" not in page
            assert '<tr class="warning">' in page and "pulling image failed" in page
        async with b.get(f"/ns/{ns}/secrets/creds?reveal=password") as r:
            assert 'id="revealed">s3cret-value<' in await r.text()
        async with b.get(f"/ns/{ns}/events") as r:
            page = await r.text()
            assert '<tr class="warning">' in page and "BackOff" in page
        async with b.get("/overview") as r:
            page = await r.text()
            assert 'id="nodes-ready"' in page and "pulling image failed" in page
        for path in ("/persistentvolumes", "/storageclasses", "/clusterroles", "/customresourcedefinitions",
                     f"/ns/{ns}/ingresses", f"/ns/{ns}/persistentvolumeclaims", f"/ns/{ns}/roles",
                     f"/ns/{ns}/rolebindings", f"/ns/{ns}/serviceaccounts", "/ns/_all/pods"):
            async with b.get(path) as r:
                assert r.status == 200, path
        async with b.get(f"/ns/{ns}/pods", headers={"Accept-Language": "zh-CN,zh;q=0.9"}) as r:
            page = await r.text()
            assert '<html lang="zh-CN">' in page and "容器组" in page and "退出" in page
        async with b.get("/lang/en", headers={"Referer": f"{dashboard.url}/ns/{ns}/pods"},
                         allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/ns/{ns}/pods"
        async with b.get(f"/ns/{ns}/pods", headers={"Accept-Language": "zh-CN"}) as r:
            assert '<html lang="en">' in await r.text()  # the switcher's cookie wins


async def test_edit_with_dry_run_diff_apply_and_conflict(dashboard, tokens, cluster):
    ns = tokens.namespace
    cluster.kubectl("-n", ns, "create", "deployment", "editme", "--image=nginx", "--replicas=1", check=True)
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.admin)
        async with b.get(f"/ns/{ns}/deployments/editme/edit") as r:
            text = html.unescape(re.search(r'id="edit-yaml"[^>]*>(.*?)</textarea>', await r.text(), re.S).group(1))
        edited = text.replace("replicas: 1", "replicas: 3", 1)
        async with b.post(f"/ns/{ns}/deployments/editme/edit", data={"_csrf": csrf, "yaml": edited,
                                                                    "op": "preview"}) as r:
            page = await r.text()
            assert r.status == 200 and '<span class="add">+  replicas: 3</span>' in page and 'id="apply"' in page
        assert cluster.kubectl("-n", ns, "get", "deploy", "editme", "-o", "jsonpath={.spec.replicas}").stdout == "1"
        async with b.post(f"/ns/{ns}/deployments/editme/edit", data={"_csrf": csrf, "yaml": edited, "op": "apply"},
                          allow_redirects=False) as r:
            assert r.status == 303
        assert cluster.kubectl("-n", ns, "get", "deploy", "editme", "-o", "jsonpath={.spec.replicas}").stdout == "3"
        # the same (now stale) resourceVersion again: the API's conflict, word for word
        async with b.post(f"/ns/{ns}/deployments/editme/edit", data={"_csrf": csrf, "yaml": edited,
                                                                    "op": "apply"}) as r:
            page = html.unescape(await r.text())
            assert r.status == 409 and "Operation cannot be fulfilled on deployments.apps" in page
        async with b.post(f"/ns/{ns}/deployments/editme/edit", data={"yaml": edited, "op": "apply"}) as r:
            assert r.status == 403  # no CSRF token
        async with b.post(f"/ns/{ns}/deployments/editme/restart", data={"_csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
        restarted = cluster.kubectl("-n", ns, "get", "deploy", "editme", "-o",
                                    "jsonpath={.spec.template.metadata.annotations}").stdout
        assert "kubectl.kubernetes.io/restartedAt" in restarted
        async with b.post(f"/ns/{ns}/deployments/editme/delete", data={"_csrf": csrf, "propagationPolicy": "Orphan"},
                          allow_redirects=False) as r:
            assert r.status == 303


async def test_view_only_token_sees_why_it_cannot_edit(dashboard, tokens, cluster):
    ns = tokens.namespace
    cluster.kubectl("-n", ns, "create", "configmap", "ro", "--from-literal=a=b", check=True)
    async with dashboard.browser() as b:
        await signed_in(b, _view_token(cluster, ns))
        async with b.get(f"/ns/{ns}/configmaps/ro") as r:
            page = html.unescape(await r.text())
            assert r.status == 200
            assert re.search(r'<button type="submit" id="edit" disabled title="[^"]*RBAC does not allow update on '
                             r'configmaps in the namespace', page), page
            assert 'id="delete-why"' in page


async def test_cordon_and_live_stream(dashboard, tokens, cluster):
    ns = tokens.namespace
    async with dashboard.browser() as b:
        csrf = await signed_in(b, tokens.admin)
        async with b.get(f"/live/ns/{ns}/configmaps", timeout=None) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: cluster.kubectl("-n", ns, "create", "configmap", "appears", check=True))
            line = await asyncio.wait_for(stream.content.readline(), 10)
            assert line == b"event: change\n"
        node = json.loads(cluster.kubectl("get", "nodes", "-o", "json", check=True).stdout)["items"]
        if node:
            name = node[0]["metadata"]["name"]
            async with b.post(f"/cluster/nodes/{name}/cordon", data={"_csrf": csrf, "unschedulable": "true"},
                              allow_redirects=False) as r:
                assert r.status == 303
            assert cluster.kubectl("get", "node", name, "-o", "jsonpath={.spec.unschedulable}").stdout == "true"
            async with b.post(f"/cluster/nodes/{name}/cordon", data={"_csrf": csrf, "unschedulable": "false"},
                              allow_redirects=False) as r:
                assert r.status == 303
            assert cluster.kubectl("get", "node", name, "-o", "jsonpath={.spec.unschedulable}").stdout == ""
