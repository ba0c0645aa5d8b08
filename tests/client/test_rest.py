"""ApiClient against a real kubelite: verbs, errors, patch types, pagination, watch, subresources, speed."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

from client.client_objects import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, cm, pod
from kubelite.client.rest import ApiClient, ClientError


async def test_crud_roundtrip(api, ns):
    created = await api.create(CONFIGMAPS, cm("a", ns, {"app": "x"}, k="v"))
    assert created["metadata"]["uid"] and created["data"] == {"k": "v"}
    got = await api.get(CONFIGMAPS, ns, "a")
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    got["data"]["k"] = "w"
    updated = await api.update(CONFIGMAPS, got)
    assert updated["data"]["k"] == "w"
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    deleted = await api.delete(CONFIGMAPS, ns, "a")
    assert deleted.get("kind") in ("Status", "ConfigMap")
    with pytest.raises(ClientError) as ei:
        await api.get(CONFIGMAPS, ns, "a")
    assert ei.value.is_not_found and ei.value.code == 404 and ei.value.reason == "NotFound"
    assert ei.value.message == 'configmaps "a" not found'


async def test_cluster_scoped(api):
    got = await api.get(NAMESPACES, None, "default")
    assert got["metadata"]["name"] == "default"


async def test_errors(api, ns):
    await api.create(CONFIGMAPS, cm("e", ns))
    with pytest.raises(ClientError) as ei:
        await api.create(CONFIGMAPS, cm("e", ns))
    assert ei.value.is_already_exists and not ei.value.is_conflict and ei.value.code == 409
    first = await api.get(CONFIGMAPS, ns, "e")
    await api.update(CONFIGMAPS, {**first, "data": {"x": "1"}})
    with pytest.raises(ClientError) as ei:
        await api.update(CONFIGMAPS, {**first, "data": {"x": "2"}})  # stale resourceVersion
    assert ei.value.is_conflict and not ei.value.is_already_exists
    with pytest.raises(ClientError) as ei:
        await api.create(CONFIGMAPS, cm("Bad_Name", ns))
    assert ei.value.is_invalid and ei.value.status_body["kind"] == "Status"
    with pytest.raises(ClientError) as ei:
        await api.delete(CONFIGMAPS, ns, "e", preconditions={"uid": "not-the-uid"})
    assert ei.value.is_conflict


async def test_list_selectors_and_pagination(api, ns):
    for i in range(7):
        await api.create(CONFIGMAPS, cm(f"p{i}", ns, {"tier": "a" if i % 2 else "b"}))
    full = await api.list(CONFIGMAPS, ns)
    assert [o["metadata"]["name"] for o in full["items"]] == [f"p{i}" for i in range(7)]
    assert full["metadata"]["resourceVersion"]
    paged = await api.list(CONFIGMAPS, ns, limit=2)
    assert [o["metadata"]["name"] for o in paged["items"]] == [f"p{i}" for i in range(7)]
    assert not paged["metadata"].get("continue")
    page = await api.list(CONFIGMAPS, ns, limit=3, paginate=False)
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    rest = await api.list(CONFIGMAPS, ns, continue_=page["metadata"]["continue"])
    assert len(rest["items"]) == 4
    odd = await api.list(CONFIGMAPS, ns, label_selector="tier=a")
    assert [o["metadata"]["name"] for o in odd["items"]] == ["p1", "p3", "p5"]
    named = await api.list(CONFIGMAPS, ns, field_selector="metadata.name=p4")
    assert [o["metadata"]["name"] for o in named["items"]] == ["p4"]


async def test_patch_types(api, ns):
    await api.create(CONFIGMAPS, cm("pt", ns, {"a": "1"}, k="v"))
    out = await api.patch(CONFIGMAPS, ns, "pt", {"data": {"m": "1"}})
    assert out["data"] == {"k": "v", "m": "1"}
    out = await api.patch(CONFIGMAPS, ns, "pt", {"metadata": {"labels": {"b": "2"}}}, patch_type="strategic")
    assert out["metadata"]["labels"] == {"a": "1", "b": "2"}
    out = await api.patch(CONFIGMAPS, ns, "pt", [{"op": "remove", "path": "/data/k"}], patch_type="json")
    assert out["data"] == {"m": "1"}
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pt", "namespace": ns},
               "data": {"applied": "yes"}}
    out = await api.patch(CONFIGMAPS, ns, "pt", applied, patch_type="apply", field_manager="tester", force=True)
    assert out["data"]["applied"] == "yes"
    with pytest.raises(ValueError):
        await api.patch(CONFIGMAPS, ns, "pt", {}, patch_type="bogus")


async def test_scale_and_status(api, ns):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": ns},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    await api.create(DEPLOYMENTS, dep)
    scale = await api.set_scale(DEPLOYMENTS, ns, "d", 4)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert (await api.get_scale(DEPLOYMENTS, ns, "d"))["spec"]["replicas"] == 4
    current = await api.get(DEPLOYMENTS, ns, "d")
    current["status"] = {"replicas": 4, "observedGeneration": current["metadata"]["generation"]}
    current["spec"]["replicas"] = 9  # ignored by the status subresource
    out = await api.update_status(DEPLOYMENTS, current)
    assert out["status"]["replicas"] == 4 and out["spec"]["replicas"] == 4


async def test_bind(api, ns):
    await api.create(PODS, pod("tobind", ns))
    try:
        await api.bind(ns, "tobind", "node-1")
    except ClientError as e:
        if e.code == 503:
            pytest.skip("pods/binding not served by this API server yet")
        raise
    assert (await api.get(PODS, ns, "tobind"))["spec"]["nodeName"] == "node-1"


async def test_delete_options(api, ns):
    created = await api.create(CONFIGMAPS, cm("d1", ns))
    out = await api.delete(CONFIGMAPS, ns, "d1", propagation_policy="Foreground", grace_period_seconds=0,
                           preconditions={"uid": created["metadata"]["uid"]})
    assert out
    with pytest.raises(ClientError) as ei:
        await api.delete(CONFIGMAPS, ns, "x", propagation_policy="Sideways")
    assert ei.value.code in (404, 422)


async def test_watch_events(api, ns):
    start = (await api.list(CONFIGMAPS, ns))["metadata"]["resourceVersion"]
    seen: list[tuple[str, str, str]] = []

    async def consume():
        async with api.watch(CONFIGMAPS, ns, resource_version=start, timeout_seconds=10) as stream:
            async for kind, obj in stream:
                seen.append((kind, obj["metadata"]["name"], obj.get("data", {}).get("k", "")))
                if kind == "DELETED":
                    return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await api.create(CONFIGMAPS, cm("w", ns, k="1"))
    await api.patch(CONFIGMAPS, ns, "w", {"data": {"k": "2"}})
    await api.delete(CONFIGMAPS, ns, "w")
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]


async def test_watch_resume_and_timeout(api, ns):
    a = await api.create(CONFIGMAPS, cm("r1", ns))
    await api.create(CONFIGMAPS, cm("r2", ns))
    kinds = []
    t0 = time.monotonic()
    async for kind, obj in api.watch(CONFIGMAPS, ns, resource_version=a["metadata"]["resourceVersion"],
                                     timeout_seconds=1, allow_watch_bookmarks=False):
        kinds.append((kind, obj["metadata"]["name"]))
    assert kinds == [("ADDED", "r2")]  # only what came after the given resourceVersion
    assert 0.8 < time.monotonic() - t0 < 5  # the stream ended by itself at timeoutSeconds


async def test_watch_too_old_is_gone_or_ok(api, ns):
    # resourceVersion far in the future is an error, raised before any event
    with pytest.raises(ClientError) as ei:
        async for _ in api.watch(CONFIGMAPS, ns, resource_version="999999999", timeout_seconds=1):
            pass
    assert ei.value.code == 504 and ei.value.is_timeout


async def test_token_auth_rejected(cluster):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    no_cert = ssl.create_default_context()
    no_cert.check_hostname = False
    no_cert.verify_mode = ssl.CERT_NONE
    bogus = ApiClient(client.server_url, no_cert, token="not-a-token")
    try:
        with pytest.raises(ClientError) as ei:
            await bogus.get(NAMESPACES, None, "default")
        assert ei.value.is_unauthorized
    finally:
        await bogus.close()
        await client.close()


async def test_get_latency_and_concurrency(api, ns):
    await api.create(CONFIGMAPS, cm("fast", ns, k="v"))
    for _ in range(50):
        await api.get(CONFIGMAPS, ns, "fast")
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        await api.get(CONFIGMAPS, ns, "fast")
    per_get = (time.perf_counter() - t0) / n
    # measured ~0.33 ms on the dev machine; the bound leaves room for a loaded CI box
    assert per_get < 0.002, f"{per_get * 1e3:.3f} ms per GET"
    results = await asyncio.gather(*(api.get(CONFIGMAPS, ns, "fast") for _ in range(300)))
    assert all(r["data"] == {"k": "v"} for r in results)
