"""Garbage collection (background, foreground, orphan), namespace deletion, default ServiceAccounts,
kube-root-ca.crt, and leader election, against a real API server."""

from __future__ import annotations

import asyncio
import uuid

from controllers.conftest import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    SERVICEACCOUNTS,
    FakeKubelet,
    deployment,
    kubectl,
    wait_for,
)
from kubelite.api.resources import Registry
from kubelite.client import ClientError
from kubelite.controllers.manager import ControllerManagerConfig, run_controller_manager

LEASES = Registry().get("coordination.k8s.io", "v1", "leases")


async def _exists(api, rt, ns, name) -> bool:
    try:
        await api.get(rt, ns, name)
        return True
    except ClientError as e:
        if e.is_not_found:
            return False
        raise


async def _count(api, rt, ns) -> int:
    return len((await api.list(rt, ns))["items"])


async def _deployed(api, ns, name, n):
    return len((await api.list(PODS, ns))["items"]) == n and await _count(api, REPLICASETS, ns) == 1


async def test_default_serviceaccount_and_root_ca(api, ns, fresh_cluster):
    sa = await wait_for(lambda: _exists(api, SERVICEACCOUNTS, ns, "default"), 10, what="default SA")
    assert sa
    await wait_for(lambda: _exists(api, CONFIGMAPS, ns, "kube-root-ca.crt"), 10, what="root CA configmap")
    cm = await api.get(CONFIGMAPS, ns, "kube-root-ca.crt")
    with open(f"{fresh_cluster.data_dir}/pki/ca.crt") as f:
        assert cm["data"]["ca.crt"] == f.read()
    assert cm["metadata"]["annotations"]["kubernetes.io/description"].startswith("Contains a CA bundle")
    # deleted or edited: restored
    await api.delete(SERVICEACCOUNTS, ns, "default")
    await api.patch(CONFIGMAPS, ns, "kube-root-ca.crt", {"data": {"ca.crt": "tampered"}})

    async def restored():
        cm = await api.get(CONFIGMAPS, ns, "kube-root-ca.crt")
        return cm["data"]["ca.crt"] != "tampered" and await _exists(api, SERVICEACCOUNTS, ns, "default")

    await wait_for(restored, 10, what="restored")
    # also in namespaces that existed before the manager started
    assert await _exists(api, SERVICEACCOUNTS, "kube-public", "default")


async def test_background_deletion(api, ns, fresh_cluster):
    await api.create(DEPLOYMENTS, deployment("bg", replicas=2), ns)
    await wait_for(lambda: _deployed(api, ns, "bg", 2), 15, what="deployment")
    await kubectl(fresh_cluster, "delete", "deployment", "bg", "-n", ns, check=True)

    async def empty():
        return await _count(api, REPLICASETS, ns) == 0 and await _count(api, PODS, ns) == 0

    await wait_for(empty, 15, what="dependents collected")


async def test_foreground_deletion(api, ns, fresh_cluster):
    await api.create(DEPLOYMENTS, deployment("fg", replicas=2), ns)
    await wait_for(lambda: _deployed(api, ns, "fg", 2), 15, what="deployment")
    # a finalizer of ours on one pod holds the whole chain
    pod = (await api.list(PODS, ns))["items"][0]
    await api.patch(PODS, ns, pod["metadata"]["name"], {"metadata": {"finalizers": ["test/hold"]}})
    await api.delete(DEPLOYMENTS, ns, "fg", propagation_policy="Foreground")

    async def waiting():
        d = await api.get(DEPLOYMENTS, ns, "fg")
        rs = (await api.list(REPLICASETS, ns))["items"]
        pods = (await api.list(PODS, ns))["items"]
        return (d["metadata"].get("deletionTimestamp") and "foregroundDeletion" in d["metadata"]["finalizers"]
                and len(rs) == 1 and rs[0]["metadata"].get("deletionTimestamp") and len(pods) == 1)

    await wait_for(waiting, 15, what="foreground deletion blocked by the held pod")
    await asyncio.sleep(0.5)
    assert await _exists(api, DEPLOYMENTS, ns, "fg")
    await api.patch(PODS, ns, pod["metadata"]["name"], {"metadata": {"finalizers": None}})

    async def gone():
        return (not await _exists(api, DEPLOYMENTS, ns, "fg") and await _count(api, REPLICASETS, ns) == 0
                and await _count(api, PODS, ns) == 0)

    await wait_for(gone, 15, what="owner gone after its dependents")


async def test_orphan_deletion(api, ns, fresh_cluster):
    await api.create(DEPLOYMENTS, deployment("orph", replicas=2), ns)
    await wait_for(lambda: _deployed(api, ns, "orph", 2), 15, what="deployment")
    await kubectl(fresh_cluster, "delete", "deployment", "orph", "--cascade=orphan", "-n", ns, check=True)
    assert not await _exists(api, DEPLOYMENTS, ns, "orph")
    [rs] = (await api.list(REPLICASETS, ns))["items"]
    assert not rs["metadata"].get("ownerReferences")
    await asyncio.sleep(0.5)
    assert len((await api.list(PODS, ns))["items"]) == 2  # the ReplicaSet keeps its pods


async def test_namespace_deletion(api, manager, fresh_cluster):
    ns = f"doomed-{uuid.uuid4().hex[:6]}"
    await api.create(NAMESPACES, {"metadata": {"name": ns}})
    kubelet = FakeKubelet(api, ns).start()
    try:
        await api.create(DEPLOYMENTS, deployment("app", replicas=3), ns)
        await api.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"a": "b"}}, ns)
        await wait_for(lambda: _deployed(api, ns, "app", 3), 15, what="deployment")
        r = await kubectl(fresh_cluster, "delete", "namespace", ns, "--timeout=30s", check=True)
        assert f'namespace "{ns}" deleted' in r.stdout
        assert not await _exists(api, NAMESPACES, None, ns)
    finally:
        await kubelet.stop()


async def test_namespace_waits_for_finalizers(api, manager):
    ns = f"held-{uuid.uuid4().hex[:6]}"
    await api.create(NAMESPACES, {"metadata": {"name": ns}})
    await api.create(CONFIGMAPS, {"metadata": {"name": "held", "finalizers": ["test/hold"]}}, ns)
    await api.delete(NAMESPACES, None, ns)

    async def cm_terminating():
        cm = await api.get(CONFIGMAPS, ns, "held")
        return cm["metadata"].get("deletionTimestamp")

    await wait_for(cm_terminating, 10, what="content deleted")
    await asyncio.sleep(1.0)
    n = await api.get(NAMESPACES, None, ns)  # held while content remains
    assert n["status"]["phase"] == "Terminating" and n["spec"]["finalizers"] == ["kubernetes"]
    if manager.config.namespace_status_conditions:
        conds = {c["type"]: c for c in n["status"].get("conditions") or ()}
        assert conds["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    await api.patch(CONFIGMAPS, ns, "held", {"metadata": {"finalizers": None}})

    async def gone():
        return not await _exists(api, NAMESPACES, None, ns)

    # the controller looks again after its finalizer estimate (15 s upstream; shortened here)
    await wait_for(gone, 15, what="namespace gone")


async def test_leader_election(api, cm_client, fresh_cluster):
    stop = asyncio.Event()
    config = ControllerManagerConfig.for_data_dir(fresh_cluster.data_dir, identity="cm-test")
    task = asyncio.create_task(run_controller_manager(cm_client, stop=stop, config=config,
                                                      controllers=["serviceaccount", "namespace"]))
    try:
        async def held():
            try:
                lease = await api.get(LEASES, "kube-system", "kube-controller-manager")
            except ClientError:
                return None
            return lease if lease["spec"].get("holderIdentity") == "cm-test" else None

        lease = await wait_for(held, 15, what="lease")
        assert lease["spec"]["leaseDurationSeconds"] == 15
        ns = f"le-{uuid.uuid4().hex[:6]}"
        await api.create(NAMESPACES, {"metadata": {"name": ns}})
        await wait_for(lambda: _exists(api, SERVICEACCOUNTS, ns, "default"), 10, what="controllers run")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    lease = await api.get(LEASES, "kube-system", "kube-controller-manager")
    assert not lease["spec"].get("holderIdentity")  # released on the way out
