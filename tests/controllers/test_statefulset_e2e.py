"""StatefulSets against a real API server with the controller-manager, scheduler and simulated nodes:
ordered start with stable names and hostnames, PVCs created per pod and kept across pod deletion, ordered
scale-down, a rolling update through a new ControllerRevision, and what kubectl shows."""

from __future__ import annotations

import asyncio
import contextlib
import time

from kubectl_output import rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.controllers import controllerhistory as ch
from kubelite.controllers import statefulset_util as su
from kubelite.controllers.manager import ControllerManagerConfig, run_controller_manager
from kubelite.kubelet.agent import run_simulated_nodes
from kubelite.kubelet.simulated import SimulatedConfig
from kubelite.scheduler import SchedulerConfig, run_scheduler

R = Registry()
PODS = R.get("", "v1", "pods")
PVCS = R.get("", "v1", "persistentvolumeclaims")
STS = R.get("apps", "v1", "statefulsets")
REVS = R.get("apps", "v1", "controllerrevisions")
EVENTS = R.get("", "v1", "events")

# pods take a noticeable while to become Ready, so the ordering is observable
SIM = SimulatedConfig(start_seconds=0.3, termination_seconds=0.2, status_coalesce_seconds=0.0)


@contextlib.asynccontextmanager
async def control_plane(cluster):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    stop = asyncio.Event()
    config = ControllerManagerConfig(leader_elect=False)
    tasks = [asyncio.ensure_future(run_controller_manager(client, stop=stop, config=config,
                                                          controllers=["statefulset-controller"])),
             asyncio.ensure_future(run_scheduler(client, stop=stop, config=SchedulerConfig(leader_elect=False))),
             asyncio.ensure_future(run_simulated_nodes(client, names=["sim-a", "sim-b"], stop=stop, config=SIM))]
    try:
        yield client
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()
        await client.close()


async def wait_for(fn, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


def web(replicas=3, image="nginx:1.25", **spec):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"serviceName": "nginx", "replicas": replicas, "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image,
                                                           "volumeMounts": [{"name": "www",
                                                                             "mountPath": "/usr/share/nginx/html"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "www"},
                                               "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "1Gi"}}}}],
                     **spec}}


def ready(p):
    return (p.get("status") or {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])


async def pods_by_name(client):
    return {p["metadata"]["name"]: p for p in (await client.list(PODS, "default"))["items"]}


async def test_ordered_start_stable_identity_and_claims_kept(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(STS, web(), "default")
        # observe the order: a pod is only created once every lower ordinal is Ready
        seen_order: list[str] = []
        violations: list[str] = []

        async def all_ready():
            pods = await pods_by_name(client)
            for name in sorted(pods):
                if name not in seen_order:
                    seen_order.append(name)
                    o = int(name.rsplit("-", 1)[1])
                    for lower in range(o):
                        lp = pods.get(f"web-{lower}")
                        if lp is None or not ready(lp):
                            violations.append(f"{name} created before web-{lower} was Ready")
            return len(pods) == 3 and all(ready(p) for p in pods.values()) and pods

        pods = await wait_for(all_ready, timeout=30)
        assert seen_order == ["web-0", "web-1", "web-2"]
        assert not violations
        sts = await client.get(STS, "default", "web")
        for o in range(3):
            p = pods[f"web-{o}"]
            labels = p["metadata"]["labels"]
            assert labels[su.POD_NAME_LABEL] == f"web-{o}" and labels[su.POD_INDEX_LABEL] == str(o)
            assert labels[ch.HASH_LABEL].startswith("web-")
            assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == (f"web-{o}", "nginx")
            vol = [v for v in p["spec"]["volumes"] if v["name"] == "www"][0]
            assert vol["persistentVolumeClaim"]["claimName"] == f"www-web-{o}"
            ref = p["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["uid"]) == ("StatefulSet", sts["metadata"]["uid"])
        claims = {c["metadata"]["name"]: c for c in (await client.list(PVCS, "default"))["items"]}
        assert sorted(claims) == ["www-web-0", "www-web-1", "www-web-2"]
        assert claims["www-web-0"]["metadata"]["labels"] == {"app": "nginx"}

        async def status_done():
            s = (await client.get(STS, "default", "web"))["status"]
            return s if s.get("readyReplicas") == 3 and s.get("availableReplicas") == 3 else None

        st = await wait_for(status_done)
        revs = (await client.list(REVS, "default"))["items"]
        assert len(revs) == 1 and revs[0]["revision"] == 1
        assert st["currentRevision"] == st["updateRevision"] == revs[0]["metadata"]["name"]
        assert (st["replicas"], st["currentReplicas"], st["updatedReplicas"], st["collisionCount"]) == (3, 3, 3, 0)
        assert st["observedGeneration"] == 1

        evs = [(e["reason"], e["message"]) for e in (await client.list(EVENTS, "default"))["items"]
               if e["involvedObject"]["name"] == "web"]
        assert ("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful") in evs
        assert ("SuccessfulCreate", "create Claim www-web-0 Pod web-0 in StatefulSet web success") in evs

        # deleting a pod: it comes back under the same name, on the same claim; the claim stays
        old_uid = pods["web-1"]["metadata"]["uid"]
        claim_uid = claims["www-web-1"]["metadata"]["uid"]
        await client.delete(PODS, "default", "web-1")

        async def replaced():
            p = (await pods_by_name(client)).get("web-1")
            return p if p and p["metadata"]["uid"] != old_uid and ready(p) else None

        p = await wait_for(replaced, timeout=30)
        assert p["spec"]["hostname"] == "web-1"
        c = await client.get(PVCS, "default", "www-web-1")
        assert c["metadata"]["uid"] == claim_uid

        out = fresh_cluster.kubectl("get", "statefulsets", check=True).stdout
        assert rows(out)[0][:2] == ["web", "3/3"]

        # scale down: highest ordinal first; claims are retained
        await client.set_scale(STS, "default", "web", 1)

        async def scaled():
            pods = await pods_by_name(client)
            return sorted(pods) == ["web-0"] and pods

        await wait_for(scaled, timeout=30)
        claims = sorted(c["metadata"]["name"] for c in (await client.list(PVCS, "default"))["items"])
        assert claims == ["www-web-0", "www-web-1", "www-web-2"]
        evs = [e["message"] for e in (await client.list(EVENTS, "default"))["items"]
               if e["reason"] == "SuccessfulDelete"]
        assert "delete Pod web-2 in StatefulSet web successful" in evs


async def test_rolling_update_and_parallel(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(STS, web(replicas=3, podManagementPolicy="Parallel"), "default")

        async def ready_n(n, image=None):
            pods = await pods_by_name(client)
            ok = len(pods) == n and all(ready(p) for p in pods.values())
            if image is not None:
                ok = ok and all(p["spec"]["containers"][0]["image"] == image for p in pods.values())
            return ok and pods

        pods = await wait_for(lambda: ready_n(3), timeout=30)
        old_rev = pods["web-0"]["metadata"]["labels"][ch.HASH_LABEL]
        await client.patch(STS, "default", "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.26"}]}}}}, patch_type="strategic")
        # record the order in which pods come back on the new template
        updated_order: list[str] = []

        async def rolled():
            pods = await pods_by_name(client)
            for name in sorted(pods):
                if pods[name]["spec"]["containers"][0]["image"] == "nginx:1.26" and name not in updated_order:
                    updated_order.append(name)
            return await ready_n(3, "nginx:1.26")

        pods = await wait_for(rolled, timeout=40)
        assert updated_order == ["web-2", "web-1", "web-0"]
        new_rev = pods["web-0"]["metadata"]["labels"][ch.HASH_LABEL]
        assert new_rev != old_rev and all(p["metadata"]["labels"][ch.HASH_LABEL] == new_rev for p in pods.values())

        async def converged():
            s = (await client.get(STS, "default", "web"))["status"]
            return s if s.get("currentRevision") == new_rev and s.get("updatedReplicas") == 3 else None

        st = await wait_for(converged)
        assert st["updateRevision"] == new_rev
        revs = sorted((r["revision"], r["metadata"]["name"]) for r in (await client.list(REVS, "default"))["items"])
        assert revs == [(1, old_rev), (2, new_rev)]

        out = fresh_cluster.kubectl("rollout", "status", "statefulset/web", "--timeout=10s", check=True).stdout
        assert "roll out complete" in out or "rolling update complete" in out


async def test_claims_deleted_with_retention_policy_delete(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(STS, web(replicas=1, persistentVolumeClaimRetentionPolicy={
            "whenDeleted": "Delete", "whenScaled": "Retain"}), "default")

        async def claim():
            try:
                return await client.get(PVCS, "default", "www-web-0")
            except ClientError:
                return None

        c = await wait_for(claim)
        sts = await client.get(STS, "default", "web")
        refs = c["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["uid"]) for r in refs] == [("StatefulSet", sts["metadata"]["uid"])]
