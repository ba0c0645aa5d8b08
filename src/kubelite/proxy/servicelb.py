"""The built-in service load balancer: LoadBalancer Services get an address without a cloud (as k3s's servicelb).

    await run_servicelb(client, stop=stop_event, config=ServiceLBConfig())

Every Service of type LoadBalancer (without a `spec.loadBalancerClass`, or with `config.load_balancer_class`)
gets `status.loadBalancer.ingress`: its `spec.externalIPs` when it has any, else the configured
`address_pool`, else the InternalIP addresses of the Ready nodes (nodes labelled
`node.kubernetes.io/exclude-from-external-load-balancers` are left out, as upstream), restricted to the
Service's IP families, each with `ipMode: VIP`.  The service proxy serves the Service's ports on those
addresses; this controller only writes status.  When a Service stops being a LoadBalancer its ingress list
is cleared.  Events follow upstream's service controller: `EnsuringLoadBalancer` / `EnsuredLoadBalancer`,
`DeletingLoadBalancer` / `DeletedLoadBalancer`, and `Type` ("ClusterIP -> LoadBalancer").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from kubelite.client import (
    ApiClient,
    EventRecorder,
    LeaderElector,
    SharedInformerFactory,
    WorkQueue,
    key_of,
    run_workers,
)

from .catalog import NODES, SERVICES

log = logging.getLogger("kubelite.proxy.servicelb")

Obj = dict[str, Any]

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


@dataclass
class ServiceLBConfig:
    address_pool: list[str] | None = None  # addresses every LoadBalancer Service gets; None: node addresses
    address_types: tuple[str, ...] = ("InternalIP",)  # node address types used, in order of preference
    load_balancer_class: str | None = None  # also serve Services that ask for this class
    use_external_ips: bool = True  # a Service's spec.externalIPs become its ingress addresses
    workers: int = 2
    component: str = "service-lb-controller"
    leader_elect: bool = False  # several servers: only the holder of the Lease writes
    lease_name: str = "kubelite-servicelb"
    informer_sync_timeout: float = 60.0


def _node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_addresses(nodes: list[Obj], types: tuple[str, ...] = ("InternalIP",)) -> list[str]:
    """Addresses of the ready, not excluded nodes (every node if none is ready), sorted, each once."""
    eligible = [n for n in nodes if EXCLUDE_LABEL not in ((n.get("metadata") or {}).get("labels") or {})]
    ready = [n for n in eligible if _node_ready(n)] or eligible
    found: set[str] = set()
    for node in ready:
        addrs = (node.get("status") or {}).get("addresses") or []
        for kind in types:
            picked = [a["address"] for a in addrs if a.get("type") == kind and a.get("address")]
            if picked:
                found.update(picked)
                break
    return sorted(found)


def is_ours(svc: Obj, config: ServiceLBConfig) -> bool:
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    cls = spec.get("loadBalancerClass")
    return cls is None or cls == config.load_balancer_class


def desired_ingress(svc: Obj, pool: list[str], config: ServiceLBConfig) -> list[Obj]:
    spec = svc.get("spec") or {}
    addresses = list(spec.get("externalIPs") or []) if config.use_external_ips else []
    if not addresses:
        families = set(spec.get("ipFamilies") or ["IPv4"])
        addresses = [a for a in pool if ("IPv6" if ":" in a else "IPv4") in families]
    return [{"ip": a, "ipMode": "VIP"} for a in addresses]


class ServiceLBController:
    def __init__(self, client: ApiClient, config: ServiceLBConfig | None = None,
                 informers: SharedInformerFactory | None = None) -> None:
        self.client = client
        self.config = config or ServiceLBConfig()
        self.informers = informers or SharedInformerFactory(client)
        self._own_informers = informers is None
        self.queue = WorkQueue("service-lb")
        self.recorder = EventRecorder(client, self.config.component)
        self.services = self.informers.informer(SERVICES)
        self.nodes = self.informers.informer(NODES)
        self.services.add_handler(self._enqueue, self._service_updated, None)
        self.nodes.add_handler(lambda _n: self._enqueue_all(), self._node_updated, lambda _n: self._enqueue_all())
        self._written: dict[str, tuple[str, list[Obj]]] = {}

    # -- handlers -----------------------------------------------------------------------------------------

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def _service_updated(self, old: Obj, new: Obj) -> None:
        old_type = (old.get("spec") or {}).get("type") or "ClusterIP"
        new_type = (new.get("spec") or {}).get("type") or "ClusterIP"
        if old_type != new_type and "LoadBalancer" in (old_type, new_type):
            self.recorder.event(new, "Normal", "Type", f"{old_type} -> {new_type}")
        self.queue.add(key_of(new))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (_node_ready(old) != _node_ready(new)
                or (old.get("status") or {}).get("addresses") != (new.get("status") or {}).get("addresses")
                or ((old.get("metadata") or {}).get("labels") or {}).get(EXCLUDE_LABEL)
                != ((new.get("metadata") or {}).get("labels") or {}).get(EXCLUDE_LABEL)):
            self._enqueue_all()

    def _enqueue_all(self) -> None:
        if self.config.address_pool is not None:
            return
        for svc in self.services.list():
            if is_ours(svc, self.config):
                self.queue.add(key_of(svc))

    # -- reconciling --------------------------------------------------------------------------------------

    def pool(self) -> list[str]:
        if self.config.address_pool is not None:
            return list(self.config.address_pool)
        return node_addresses(self.nodes.list(), self.config.address_types)

    async def sync(self, key: str) -> None:
        svc = self.services.get_by_key(key)
        if svc is None:
            self._written.pop(key, None)
            return
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ours = is_ours(svc, self.config)
        if not ours and (svc.get("spec") or {}).get("type") == "LoadBalancer":
            return  # another load balancer's Service
        want = desired_ingress(svc, self.pool(), self.config) if ours else []
        if want == current:
            return
        rv = (svc.get("metadata") or {}).get("resourceVersion") or ""
        if self._written.get(key) == (rv, want):
            return  # our own write is not in the informer yet
        ns, name = svc["metadata"].get("namespace"), svc["metadata"]["name"]
        if ours:
            self.recorder.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        else:
            self.recorder.event(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        body = {"status": {"loadBalancer": {"ingress": want or None}}}
        await self.client.patch(SERVICES, ns, name, body, subresource="status")
        self._written[key] = (rv, want)
        if ours:
            self.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        else:
            self.recorder.event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")

    # -- running ------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.informers.start()
        for inf in (self.services, self.nodes):
            if not await inf.wait_for_sync(self.config.informer_sync_timeout):
                log.warning("servicelb: informer for %s did not sync in time", inf.rt.resource)
        workers = asyncio.create_task(run_workers(self.queue, self.config.workers, self.sync))
        try:
            await stop.wait()
        finally:
            self.queue.shutdown()
            workers.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await workers
            with contextlib.suppress(Exception):
                await self.recorder.stop(timeout=2.0)
            if self._own_informers:
                await self.informers.stop()


async def run_servicelb(client: ApiClient, *, stop: asyncio.Event, config: ServiceLBConfig | None = None,
                        informers: SharedInformerFactory | None = None) -> None:
    """Run the service load balancer until `stop` is set (while holding its Lease, with leader_elect)."""
    config = config or ServiceLBConfig()
    if not config.leader_elect:
        await ServiceLBController(client, config, informers).run(stop)
        return

    async def lead() -> None:
        await ServiceLBController(client, config, informers).run(stop)

    while not stop.is_set():
        elector = LeaderElector(client, config.lease_name, on_started_leading=lead)
        task = asyncio.ensure_future(elector.run())
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not task.done():
            await asyncio.wait({task}, timeout=5.0)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
