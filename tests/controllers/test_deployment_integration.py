"""Deployments, ReplicaSets and ReplicationControllers against a real API server with the real kubectl."""

from __future__ import annotations

import asyncio

from controllers.conftest import (
    DEPLOYMENTS,
    EVENTS,
    PODS,
    RCS,
    REPLICASETS,
    FakeKubelet,
    deployment,
    kubectl,
    make_ready,
    wait_for,
)


async def _deploy_status(api, ns, name):
    return (await api.get(DEPLOYMENTS, ns, name)).get("status") or {}


async def _rss(api, ns):
    items = (await api.list(REPLICASETS, ns))["items"]
    return sorted(items, key=lambda r: int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


async def _active_pods(api, ns):
    return [p for p in (await api.list(PODS, ns))["items"] if not p["metadata"].get("deletionTimestamp")]


async def _rolled_out(api, ns, name, replicas):
    d = await api.get(DEPLOYMENTS, ns, name)
    s = d.get("status") or {}
    ok = (s.get("observedGeneration") == d["metadata"]["generation"] and s.get("updatedReplicas") == replicas
          and s.get("replicas") == replicas and s.get("availableReplicas") == replicas)
    return d if ok else None


async def test_deployment_creates_replicaset_and_pods(api, ns, fresh_cluster):
    kubelet = FakeKubelet(api, ns).start()
    try:
        await api.create(DEPLOYMENTS, deployment("nginx-deployment", replicas=3), ns)
        d = await wait_for(lambda: _rolled_out(api, ns, "nginx-deployment", 3), 20, what="rollout")
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        [rs] = (await api.list(REPLICASETS, ns))["items"]
        hash_ = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"nginx-deployment-{hash_}"
        assert set(hash_) <= set("bcdfghjklmnpqrstvwxz2456789")
        assert rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == hash_
        ref = rs["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "Deployment" and ref["controller"] and ref["blockOwnerDeletion"]
        ann = rs["metadata"]["annotations"]
        assert ann["deployment.kubernetes.io/desired-replicas"] == "3"
        assert ann["deployment.kubernetes.io/max-replicas"] == "4"
        pods = await _active_pods(api, ns)
        assert len(pods) == 3
        for p in pods:
            assert p["metadata"]["name"].startswith(rs["metadata"]["name"] + "-")
            assert len(p["metadata"]["name"]) == len(rs["metadata"]["name"]) + 6
            assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        # kubectl sees what the tutorial shows
        out = (await kubectl(fresh_cluster, "get", "deploy", "-n", ns, check=True)).stdout
        assert "3/3     3            3" in out, out
        r = await kubectl(fresh_cluster, "rollout", "status", "deployment/nginx-deployment", "-n", ns, "--timeout=20s",
                                  check=True)
        assert 'deployment "nginx-deployment" successfully rolled out' in r.stdout

        async def events():
            items = (await api.list(EVENTS, ns))["items"]
            return {(e["reason"], e["message"]) for e in items} or None

        desc = (await kubectl(fresh_cluster, "describe", "deployment", "nginx-deployment", "-n", ns,
                              check=True)).stdout
        assert f"NewReplicaSet:   {rs['metadata']['name']} (3/3 replicas created)" in desc, desc
        assert "Available      True    MinimumReplicasAvailable" in desc, desc
        assert "Progressing    True    NewReplicaSetAvailable" in desc, desc
        rs_out = (await kubectl(fresh_cluster, "get", "rs", "-n", ns, check=True)).stdout
        assert rs_out.split("\n")[1].split()[:4] == [rs["metadata"]["name"], "3", "3", "3"], rs_out
        evs = await wait_for(events, 10, what="events")
        assert ("ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} from 0 to 3") in evs
        assert any(r == "SuccessfulCreate" and m.startswith("Created pod: ") for r, m in evs)
    finally:
        await kubelet.stop()


async def test_rolling_update_undo_and_pod_replacement(api, ns, fresh_cluster):
    kubelet = FakeKubelet(api, ns).start()
    try:
        await api.create(DEPLOYMENTS, deployment("web", replicas=4), ns)
        await wait_for(lambda: _rolled_out(api, ns, "web", 4), 20, what="first rollout")
        first = (await api.list(REPLICASETS, ns))["items"][0]["metadata"]["name"]
        await kubectl(fresh_cluster, "set", "image", "deployment/web", "c=nginx:1.16.1", "-n", ns, check=True)
        r = await kubectl(fresh_cluster, "rollout", "status", "deployment/web", "-n", ns, "--timeout=30s", check=True)
        assert 'deployment "web" successfully rolled out' in r.stdout
        rss = await _rss(api, ns)
        assert len(rss) == 2
        old, new = rss
        assert old["metadata"]["name"] == first and old["spec"]["replicas"] == 0
        assert new["spec"]["replicas"] == 4 and new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        pods = await _active_pods(api, ns)
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.16.1"}
        hist = (await kubectl(fresh_cluster, "rollout", "history", "deployment/web", "-n", ns, check=True)).stdout
        assert "1 " in hist and "2 " in hist

        await kubectl(fresh_cluster, "rollout", "undo", "deployment/web", "-n", ns, check=True)
        d = await wait_for(lambda: _rolled_out(api, ns, "web", 4), 30, what="undo")
        rss = await _rss(api, ns)
        assert len(rss) == 2, [r["metadata"]["name"] for r in rss]
        back = rss[-1]
        assert back["metadata"]["name"] == first
        assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        await wait_for(lambda: _only_image(api, ns, "nginx:1.14.2"), 20, what="old pods gone")

        # a deleted pod is replaced by one with a new name
        victim = (await _active_pods(api, ns))[0]["metadata"]["name"]
        await kubectl(fresh_cluster, "delete", "pod", victim, "-n", ns, check=True)

        async def replaced():
            names = {p["metadata"]["name"] for p in await _active_pods(api, ns)}
            return names if len(names) == 4 and victim not in names else None

        await wait_for(replaced, 15, what="replacement pod")
    finally:
        await kubelet.stop()


async def _only_image(api, ns, image):
    pods = await _active_pods(api, ns)
    return len(pods) == 4 and {p["spec"]["containers"][0]["image"] for p in pods} == {image}


async def test_rolling_update_respects_surge_and_unavailability(api, ns):
    """maxSurge=1, maxUnavailable=0: never more than replicas+1 pods, never fewer than replicas available."""
    kubelet = FakeKubelet(api, ns, delay=0.2).start()
    try:
        spec = {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}
        await api.create(DEPLOYMENTS, deployment("surge", replicas=3, **spec), ns)
        await wait_for(lambda: _rolled_out(api, ns, "surge", 3), 20, what="first rollout")
        await api.patch(DEPLOYMENTS, ns, "surge", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, patch_type="strategic")
        peak = 0
        min_available = 99
        for _ in range(400):
            rss = (await api.list(REPLICASETS, ns))["items"]
            peak = max(peak, sum(r["spec"]["replicas"] for r in rss))
            min_available = min(min_available, sum((r.get("status") or {}).get("availableReplicas", 0) for r in rss))
            if await _rolled_out(api, ns, "surge", 3) and len(rss) == 2 and \
                    (await api.get(DEPLOYMENTS, ns, "surge"))["metadata"]["annotations"][
                        "deployment.kubernetes.io/revision"] == "2":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("rollout did not finish")
        assert peak == 4
        assert min_available >= 3
    finally:
        await kubelet.stop()


async def test_recreate_and_paused(api, ns, fresh_cluster):
    kubelet = FakeKubelet(api, ns).start()
    try:
        await api.create(DEPLOYMENTS, deployment("rec", replicas=2, strategy={"type": "Recreate"}), ns)
        await wait_for(lambda: _rolled_out(api, ns, "rec", 2), 20, what="first rollout")
        await kubectl(fresh_cluster, "rollout", "pause", "deployment/rec", "-n", ns, check=True)
        await kubectl(fresh_cluster, "set", "image", "deployment/rec", "c=nginx:2", "-n", ns, check=True)
        await asyncio.sleep(0.5)
        assert len((await api.list(REPLICASETS, ns))["items"]) == 1  # paused: no rollout
        d = await api.get(DEPLOYMENTS, ns, "rec")
        prog = [c for c in d["status"]["conditions"] if c["type"] == "Progressing"][0]
        assert (prog["status"], prog["reason"], prog["message"]) == ("Unknown", "DeploymentPaused", "Deployment is paused")
        await kubectl(fresh_cluster, "rollout", "resume", "deployment/rec", "-n", ns, check=True)
        await wait_for(lambda: _only_image2(api, ns, "nginx:2", 2), 20, what="recreate rollout")
        rss = await _rss(api, ns)
        assert [r["spec"]["replicas"] for r in rss] == [0, 2]
        # restart: a new template annotation, a new ReplicaSet
        await kubectl(fresh_cluster, "rollout", "restart", "deployment/rec", "-n", ns, check=True)
        await wait_for(lambda: _rs_count(api, ns, 3), 20, what="restart")
    finally:
        await kubelet.stop()


async def _rs_count(api, ns, n):
    return len((await api.list(REPLICASETS, ns))["items"]) == n


async def _only_image2(api, ns, image, n):
    pods = await _active_pods(api, ns)
    return len(pods) == n and {p["spec"]["containers"][0]["image"] for p in pods} == {image} and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])
        for p in pods)


async def test_progress_deadline_exceeded(api, ns, fresh_cluster):
    await api.create(DEPLOYMENTS, deployment("stuck", replicas=1, progressDeadlineSeconds=1), ns)

    async def timed_out():
        conds = (await _deploy_status(api, ns, "stuck")).get("conditions") or []
        return [c for c in conds if c["type"] == "Progressing" and c["reason"] == "ProgressDeadlineExceeded"]

    [cond] = await wait_for(timed_out, 15, what="ProgressDeadlineExceeded")
    assert cond["status"] == "False"
    assert cond["message"].startswith('ReplicaSet "stuck-') and cond["message"].endswith(
        '" has timed out progressing.')
    r = await kubectl(fresh_cluster, "rollout", "status", "deployment/stuck", "-n", ns, "--timeout=10s")
    assert r.returncode != 0 and "exceeded its progress deadline" in r.stderr


async def test_scale_deployment(api, ns, fresh_cluster):
    kubelet = FakeKubelet(api, ns).start()
    try:
        await api.create(DEPLOYMENTS, deployment("sc", replicas=2), ns)
        await wait_for(lambda: _rolled_out(api, ns, "sc", 2), 20, what="rollout")
        await kubectl(fresh_cluster, "scale", "deployment/sc", "--replicas=5", "-n", ns, check=True)
        await wait_for(lambda: _rolled_out(api, ns, "sc", 5), 20, what="scale up")
        await kubectl(fresh_cluster, "scale", "deployment/sc", "--replicas=1", "-n", ns, check=True)
        await wait_for(lambda: _rolled_out(api, ns, "sc", 1), 20, what="scale down")
        [rs] = (await api.list(REPLICASETS, ns))["items"]
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"

        async def one_pod():
            return len(await _active_pods(api, ns)) == 1

        await wait_for(one_pod, 10, what="pods deleted")
        evs = {(e["reason"], e["message"]) for e in (await api.list(EVENTS, ns))["items"]}
        assert ("ScalingReplicaSet", f"Scaled down replica set {rs['metadata']['name']} from 5 to 1") in evs
        assert any(r == "SuccessfulDelete" and m.startswith("Deleted pod: ") for r, m in evs)
    finally:
        await kubelet.stop()


async def test_replicaset_adopts_orphans_and_releases(api, ns):
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "rs1"}},
              "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await api.create(PODS, orphan, ns)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs1"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs1"}},
                   "template": {"metadata": {"labels": {"app": "rs1"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    created = await api.create(REPLICASETS, rs, ns)

    async def two_owned():
        pods = await _active_pods(api, ns)
        owned = [p for p in pods if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid")
                 == created["metadata"]["uid"]]
        return pods if len(owned) == 2 and len(pods) == 2 else None

    pods = await wait_for(two_owned, 15, what="adoption")
    assert "orphan" in {p["metadata"]["name"] for p in pods}
    # relabel: released, and replaced
    await api.patch(PODS, ns, "orphan", {"metadata": {"labels": {"app": "other"}}})

    async def released():
        p = await api.get(PODS, ns, "orphan")
        owned = [q for q in await _active_pods(api, ns) if q["metadata"].get("ownerReferences")]
        return not p["metadata"].get("ownerReferences") and len(owned) == 2

    await wait_for(released, 15, what="release")
    status = (await api.get(REPLICASETS, ns, "rs1"))["status"]
    assert status["replicas"] == 2 and status["fullyLabeledReplicas"] == 2 and status["observedGeneration"] == 1


async def test_replication_controller_scales_down_unready_first(api, ns):
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc1"},
          "spec": {"replicas": 3, "selector": {"app": "rc1"},
                   "template": {"metadata": {"labels": {"app": "rc1"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    await api.create(RCS, rc, ns)

    async def three():
        pods = await _active_pods(api, ns)
        return pods if len(pods) == 3 else None

    pods = await wait_for(three, 15, what="rc pods")
    for p in pods[:2]:
        await make_ready(api, p)
    unready = pods[2]["metadata"]["name"]

    async def ready_two():
        return (await api.get(RCS, ns, "rc1")).get("status", {}).get("readyReplicas") == 2

    await wait_for(ready_two, 10, what="rc status")
    await api.patch(RCS, ns, "rc1", {"spec": {"replicas": 2}})

    async def two():
        pods = await _active_pods(api, ns)
        return pods if len(pods) == 2 else None

    left = await wait_for(two, 15, what="scale down")
    assert unready not in {p["metadata"]["name"] for p in left}
    evs = {(e["reason"], e["message"], e["source"].get("component")) for e in (await api.list(EVENTS, ns))["items"]}
    assert ("SuccessfulDelete", f"Deleted pod: {unready}", "replication-controller") in evs
