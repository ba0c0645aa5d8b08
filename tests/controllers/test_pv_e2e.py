"""PersistentVolumes end to end: the default StorageClass, a claim used by a pod gets a local-path volume
provisioned on the pod's node and Bound; reclaim Delete removes it, Retain keeps it Released."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.controllers.manager import ControllerManager, ControllerManagerConfig
from kubelite.kubelet.agent import SimulatedNodes
from kubelite.kubelet.simulated import SimulatedConfig

REG = Registry()
PODS = REG.get("", "v1", "pods")
PVS = REG.get("", "v1", "persistentvolumes")
PVCS = REG.get("", "v1", "persistentvolumeclaims")
CLASSES = REG.get("storage.k8s.io", "v1", "storageclasses")
EVENTS = REG.get("", "v1", "events")
CONTROLLERS = ["persistentvolume-binder-controller", "local-path-provisioner"]


async def wait_for(fn, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last value: {last!r}")


@pytest.fixture
async def env(fresh_cluster):
    client = ApiClient.from_kubeconfig(fresh_cluster.kubeconfig)
    stop = asyncio.Event()
    manager = ControllerManager(client, ControllerManagerConfig(leader_elect=False), CONTROLLERS)
    task = asyncio.create_task(manager.run(stop))
    nodes = SimulatedNodes(client, ["sim-a", "sim-b"], SimulatedConfig(start_seconds=0.05))
    await nodes.start()
    yield fresh_cluster, client, manager
    await nodes.stop()
    stop.set()
    await asyncio.wait_for(task, 10)
    await client.close()


async def get(client, rt, ns, name):
    try:
        return await client.get(rt, ns, name)
    except ClientError as e:
        if e.is_not_found:
            return None
        raise


def claim(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **spec}}


async def test_claim_with_pod_is_provisioned_and_bound(env):
    cluster, client, manager = env
    sc = await wait_for(lambda: get(client, CLASSES, None, "local-path"))
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"]) == (
        "rancher.io/local-path", "WaitForFirstConsumer", "Delete")

    await client.create(PVCS, claim("data"), "default")

    async def waiting():
        c = await client.get(PVCS, "default", "data")
        return c if c["spec"].get("storageClassName") == "local-path" and c.get("status", {}).get("phase") == "Pending" \
            else None

    await wait_for(waiting)  # the default class was filled in; no consumer yet
    await asyncio.sleep(0.3)
    assert not (await client.get(PVCS, "default", "data"))["spec"].get("volumeName")

    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
                               "spec": {"nodeName": "sim-b", "containers": [{"name": "c", "image": "nginx"}],
                                        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}},
                        "default")

    async def bound():
        c = await client.get(PVCS, "default", "data")
        return c if c.get("status", {}).get("phase") == "Bound" else None

    pvc = await wait_for(bound)
    uid = pvc["metadata"]["uid"]
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    ann = pvc["metadata"]["annotations"]
    assert ann["volume.kubernetes.io/selected-node"] == "sim-b"
    assert ann["pv.kubernetes.io/bind-completed"] == "yes"
    assert ann["volume.kubernetes.io/storage-provisioner"] == "rancher.io/local-path"
    assert pvc["status"]["capacity"] == {"storage": "1Gi"}
    pv = await wait_for(lambda: _phase(client, f"pvc-{uid}", "Bound"))
    assert pv["spec"]["hostPath"]["path"] == f"/var/lib/kubelite/storage/pvc-{uid}_default_data"
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["sim-b"]
    assert pv["spec"]["claimRef"]["uid"] == uid
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"

    r = cluster.kubectl("get", "pvc", "data", check=True)
    row = dict(zip(header(r.stdout), rows(r.stdout)[0], strict=False))
    assert (row["STATUS"], row["VOLUME"], row["CAPACITY"], row["STORAGECLASS"]) == (
        "Bound", f"pvc-{uid}", "1Gi", "local-path")

    async def events():
        evs = (await client.list(EVENTS, "default"))["items"]
        return {e["reason"] for e in evs} >= {"WaitForFirstConsumer", "ExternalProvisioning", "Provisioning",
                                              "ProvisioningSucceeded"}

    await wait_for(events)

    # reclaim policy Delete: the claim goes, the volume goes; its directory is recorded for the node
    await client.delete(PODS, "default", "user", grace_period_seconds=0)
    await client.delete(PVCS, "default", "data")
    await wait_for(lambda: _gone(client, f"pvc-{uid}"))
    cleanups = manager.controller("local-path-provisioner").cleanups
    assert [(c.node, c.path) for c in cleanups] == [("sim-b", f"/var/lib/kubelite/storage/pvc-{uid}_default_data")]


async def test_static_volume_binding_and_retain(env):
    _, client, _ = env
    await client.create(PVS, {"apiVersion": "v1", "kind": "PersistentVolume",
                              "metadata": {"name": "static", "labels": {"tier": "gold"}},
                              "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                                       "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                                       "hostPath": {"path": "/srv/static"}}})
    await wait_for(lambda: _phase(client, "static", "Available"))
    await client.create(PVCS, claim("gold", storageClassName="", selector={"matchLabels": {"tier": "gold"}}),
                        "default")
    pv = await wait_for(lambda: _phase(client, "static", "Bound"))
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert pv["spec"]["claimRef"]["name"] == "gold"

    async def claim_bound():
        c = await client.get(PVCS, "default", "gold")
        return c if c.get("status", {}).get("phase") == "Bound" else None

    c = await wait_for(claim_bound)
    assert c["spec"]["volumeName"] == "static" and c["status"]["capacity"] == {"storage": "5Gi"}
    await client.delete(PVCS, "default", "gold")
    await wait_for(lambda: _phase(client, "static", "Released"))
    await asyncio.sleep(0.3)
    assert (await client.get(PVS, None, "static"))["status"]["phase"] == "Released"


async def _phase(client, name, phase):
    pv = await get(client, PVS, None, name)
    return pv if pv and (pv.get("status") or {}).get("phase") == phase else None


async def _gone(client, name):
    return await get(client, PVS, None, name) is None


async def test_a_deleted_volume_on_this_machines_node_loses_its_directory(fresh_cluster, tmp_path):
    """`kubelite up`: the controller-manager shares the machine with its node, so the directory of a deleted
    local-path volume on that node is removed at once (and only a pvc-… directory right in the base dir)."""
    base = tmp_path / "storage"
    base.mkdir()
    client = ApiClient.from_kubeconfig(fresh_cluster.kubeconfig)
    stop = asyncio.Event()
    config = ControllerManagerConfig(leader_elect=False, extra={
        "local-path-provisioner": {"storage_path": str(base), "local_node": "sim-a"}})
    manager = ControllerManager(client, config, CONTROLLERS)
    task = asyncio.create_task(manager.run(stop))
    nodes = SimulatedNodes(client, ["sim-a", "sim-b"], SimulatedConfig(start_seconds=0.05))
    await nodes.start()
    try:
        await wait_for(lambda: get(client, CLASSES, None, "local-path"))
        paths = {}
        for node in ("sim-a", "sim-b"):
            await client.create(PVCS, claim(f"d-{node}"), "default")
            await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"u-{node}"},
                                       "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}],
                                                "volumes": [{"name": "d", "persistentVolumeClaim": {
                                                    "claimName": f"d-{node}"}}]}}, "default")
            pvc = await wait_for(lambda n=node: _bound_claim(client, f"d-{n}"))
            pv = await client.get(PVS, None, pvc["spec"]["volumeName"])
            paths[node] = pv["spec"]["hostPath"]["path"]
            os.makedirs(paths[node])  # what the kubelet does on the node (simulated nodes have no disk)
            with open(os.path.join(paths[node], "data"), "w") as f:
                f.write("x")
        for node in ("sim-a", "sim-b"):
            await client.delete(PODS, "default", f"u-{node}", grace_period_seconds=0)
            await client.delete(PVCS, "default", f"d-{node}")
        await wait_for(lambda: _no_volumes(client))
        await wait_for(lambda: _false(os.path.exists(paths["sim-a"])))
        assert os.path.isdir(paths["sim-b"])  # another node's disk: left, and recorded
        cleanups = manager.controller("local-path-provisioner").cleanups
        assert [(c.node, c.path) for c in cleanups] == [("sim-b", paths["sim-b"])]
    finally:
        await nodes.stop()
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.close()


def test_only_volume_directories_right_in_the_base_are_removed(tmp_path):
    from kubelite.controllers.localpath import _within

    base = tmp_path / "storage"
    (base / "pvc-1_default_d").mkdir(parents=True)
    (tmp_path / "pvc-outside").mkdir()
    os.symlink(tmp_path / "pvc-outside", base / "pvc-link")
    assert _within(str(base / "pvc-1_default_d"), str(base))
    assert not _within(str(base / "pvc-link"), str(base))  # a link leading out of the base
    assert not _within(str(base), str(base))
    assert not _within(str(base / "pvc-1_default_d" / ".." / ".."), str(base))
    assert not _within(str(base / "other"), str(base))
    assert not _within("/etc", str(base)) and not _within("", str(base))


async def _bound_claim(client, name):
    c = await client.get(PVCS, "default", name)
    return c if c.get("status", {}).get("phase") == "Bound" else None


async def _no_volumes(client):
    return not (await client.list(PVS))["items"]


async def _false(value):
    return not value
