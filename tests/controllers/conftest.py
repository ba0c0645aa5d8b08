"""Fixtures for the controller tests: a fresh cluster, an ApiClient on it, the controller-manager running in
the test's event loop, and a stand-in kubelet that marks pods Running and Ready."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.controllers.manager import ControllerManager, ControllerManagerConfig
from kubelite.pki.components import CONTROLLER_MANAGER, write_component_kubeconfig

R = Registry()
NAMESPACES = R.get("", "v1", "namespaces")
PODS = R.get("", "v1", "pods")
CONFIGMAPS = R.get("", "v1", "configmaps")
SERVICEACCOUNTS = R.get("", "v1", "serviceaccounts")
EVENTS = R.get("", "v1", "events")
DEPLOYMENTS = R.get("apps", "v1", "deployments")
REPLICASETS = R.get("apps", "v1", "replicasets")
RCS = R.get("", "v1", "replicationcontrollers")


async def wait_for(pred, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll `pred` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def kubectl(cluster, *args: str, **kwargs):
    """The real kubectl in a thread, so the controllers in this loop keep running meanwhile."""
    return await asyncio.to_thread(cluster.kubectl, *args, **kwargs)


def deployment(name: str, image: str = "nginx:1.14.2", replicas: int = 1, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


async def make_ready(api: ApiClient, pod: dict) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pod = dict(pod)
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}
    with contextlib.suppress(ClientError):
        await api.update_status(PODS, pod)


class FakeKubelet:
    """Marks every pod of one namespace Running + Ready a moment after it appears (no nodes needed)."""

    def __init__(self, api: ApiClient, namespace: str, delay: float = 0.0) -> None:
        self.api, self.namespace, self.delay = api, namespace, delay
        self.enabled = True
        self.task: asyncio.Task | None = None

    async def _loop(self) -> None:
        while True:
            if self.enabled:
                with contextlib.suppress(ClientError, OSError):
                    pods = (await self.api.list(PODS, self.namespace))["items"]
                    todo = [p for p in pods if not p["metadata"].get("deletionTimestamp") and not any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (p.get("status") or {}).get("conditions") or ())]
                    if todo and self.delay:
                        await asyncio.sleep(self.delay)
                    await asyncio.gather(*(make_ready(self.api, p) for p in todo))
            await asyncio.sleep(0.05)

    def start(self) -> FakeKubelet:
        self.task = asyncio.create_task(self._loop())
        return self

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@pytest.fixture
async def api(fresh_cluster):
    client = ApiClient.from_kubeconfig(fresh_cluster.kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def cm_client(fresh_cluster):
    """A client with the controller-manager's own identity (system:kube-controller-manager), as `kubelite up`
    gives it: RBAC must let the controllers do their work through their ServiceAccounts."""
    cn, orgs = CONTROLLER_MANAGER
    path = await asyncio.to_thread(write_component_kubeconfig, fresh_cluster.data_dir, "controller-manager", cn,
                                   list(orgs))
    client = ApiClient.from_kubeconfig(path)
    yield client
    await client.close()


@pytest.fixture
async def manager(fresh_cluster, cm_client):
    """The controller-manager (no leader election) running in this loop until the test ends."""
    config = ControllerManagerConfig.for_data_dir(fresh_cluster.data_dir, leader_elect=False,
                                                  namespace_finalizer_estimate=2.0)
    cm = ControllerManager(cm_client, config)
    stop = asyncio.Event()
    task = asyncio.create_task(cm.run(stop))
    yield cm
    stop.set()
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def ns(api, manager):
    name = f"t-{uuid.uuid4().hex[:6]}"
    await api.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
