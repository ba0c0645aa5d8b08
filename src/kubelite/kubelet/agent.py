"""Many simulated nodes in one process: registration, Lease heartbeats, and every pod bound to them.

    stop = asyncio.Event()
    await run_simulated_nodes(client, count=100, stop=stop, config=SimulatedConfig(start_seconds=0.2))

One pod informer (indexed by spec.nodeName) and one node informer serve all nodes; one work queue keyed by
"namespace/name" de-duplicates work, so a pod that changes many times before a worker reaches it is synced
— and its status written — once.  Status goes out as a strategic-merge PATCH of pods/status carrying only
what changed.  Stopping ends heartbeats and syncing but leaves Nodes and Leases in place, so the node
lifecycle controller marks the nodes NotReady after its grace period, as for a crashed kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..api.resources import Registry
from ..api.timefmt import parse_rfc3339
from ..client import ApiClient, ClientError, EventRecorder, SharedInformerFactory, WorkQueue, run_workers
from ..client.workqueue import BucketRateLimiter, ItemExponentialFailureRateLimiter
from . import node as nodeapi
from .lifecycle import BackOff, field_path
from .podstatus import ContainerState, compute_pod_status, status_patch
from .runtime.base import Runtime
from .simulated import SimEvent, SimulatedConfig, SimulatedPod, SimulatedRuntime

log = logging.getLogger("kubelite.kubelet.simulated")

Obj = dict[str, Any]
_REG = Registry()
PODS = _REG.get("", "v1", "pods")
NODES = _REG.get("", "v1", "nodes")
COMPONENT = "kubelet"
SIMULATED_LABEL = "kubelite.io/simulated"


class IPPool:
    """host-local style addresses from one subnet: .1 is the gateway, pods get .2 upwards, freed ones reused."""

    def __init__(self, cidr: str) -> None:
        self.cidr = cidr
        net = ipaddress.ip_network(cidr, strict=False)
        self._base = int(net.network_address)
        self._size = net.num_addresses
        self._next = 2
        self._free: list[int] = []
        self._used: set[int] = set()

    def alloc(self) -> str | None:
        while self._free:
            off = self._free.pop()
            if off not in self._used:
                self._used.add(off)
                return str(ipaddress.ip_address(self._base + off))
        while self._next < self._size - 1:
            off = self._next
            self._next += 1
            if off not in self._used:
                self._used.add(off)
                return str(ipaddress.ip_address(self._base + off))
        return None

    def reserve(self, ip: str) -> bool:
        off = int(ipaddress.ip_address(ip)) - self._base
        if 0 < off < self._size:
            self._used.add(off)
            return True
        return False

    def release(self, ip: str) -> None:
        off = int(ipaddress.ip_address(ip)) - self._base
        if off in self._used:
            self._used.discard(off)
            self._free.append(off)


@dataclass
class _Node:
    spec: nodeapi.NodeSpec
    index: int
    uid: str = ""
    conditions: list[Obj] = field(default_factory=list)
    pools: dict[str, IPPool] = field(default_factory=dict)
    fallback_warned: bool = False
    images: set[str] = field(default_factory=set)
    recorder: EventRecorder | None = None
    active: bool = True
    next_renew: float = 0.0
    next_status: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name


def node_names(count: int, prefix: str = "sim-node-") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


class SimulatedNodes:
    """N simulated nodes served by one set of informers; `start()`, then `stop()` (or `stop_node(name)`)."""

    def __init__(self, client: ApiClient, names: Iterable[str], config: SimulatedConfig | None = None, *,
                 informers: SharedInformerFactory | None = None, runtime: Runtime | None = None,
                 node_specs: list[nodeapi.NodeSpec] | None = None) -> None:
        self.client = client
        self.cfg = config or SimulatedConfig()
        self.runtime: Runtime = runtime or SimulatedRuntime(self.cfg)
        self.factory = informers or SharedInformerFactory(client)
        self._own_factory = informers is None
        self._event_budget = (BucketRateLimiter(self.cfg.event_qps, self.cfg.event_burst)
                              if self.cfg.event_qps > 0 else None)
        self.nodes: dict[str, _Node] = {}
        net = ipaddress.ip_network(self.cfg.node_ip_cidr, strict=False)
        for i, name in enumerate(names):
            spec = nodeapi.NodeSpec(
                name=name, internal_ip=str(net.network_address + i + 2), capacity=dict(self.cfg.capacity),
                labels={SIMULATED_LABEL: "true", **self.cfg.labels}, taints=list(self.cfg.taints))
            self.nodes[name] = _Node(spec=spec, index=i)
        for i, spec in enumerate(node_specs or ()):  # real nodes describe themselves
            self.nodes[spec.name] = _Node(spec=spec, index=len(self.nodes) + i)
        self.pods: dict[str, SimulatedPod] = {}  # "ns/name" -> runtime state
        # the status last written per pod, until the informer shows that write (then the cache is as new)
        self._last_status: dict[str, Obj] = {}
        self._last_status_rv: dict[str, int] = {}
        self.backoff = BackOff(self.cfg.backoff_initial, self.cfg.backoff_max)
        self.image_backoff = BackOff(self.cfg.backoff_initial, self.cfg.backoff_max)
        self.queue = WorkQueue("simulated-pods", ItemExponentialFailureRateLimiter(0.05, 10.0))
        self._tasks: list[asyncio.Task] = []
        self._releases: set[asyncio.Future] = set()  # pods being torn down: finished, not cancelled, on stop
        self.status_writes = 0
        # A kubelet on its own watches only its node's pods, as upstream's (spec.nodeName=<node>): a joined node
        # of a big cluster does not cache every pod. Many simulated nodes, or components sharing the cache,
        # read all pods once instead.
        only = next(iter(self.nodes)) if self._own_factory and len(self.nodes) == 1 else None
        self.pod_informer = self.factory.informer(PODS, field_selector=f"spec.nodeName={only}" if only else None)
        self.node_informer = self.factory.informer(NODES)

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        now = time.time()
        sem = asyncio.Semaphore(32)

        async def register(n: _Node) -> None:
            async with sem:
                obj = await nodeapi.register_node(self.client, n.spec, now)
                n.uid = obj["metadata"].get("uid", "")
                n.conditions = (obj.get("status") or {}).get("conditions") or []
                await nodeapi.renew_lease(self.client, n.name, n.uid, now, self.cfg.lease_duration_seconds)
            n.recorder = (EventRecorder(self.client, COMPONENT, host=n.name, limiter=self._event_budget)
                          if self.cfg.events else None)
            if n.recorder is not None:
                n.recorder.event({"kind": "Node", "apiVersion": "v1", "name": n.name, "uid": n.name},
                                 "Normal", "Starting", "Starting kubelet.")
            interval = self.cfg.renew_interval
            # spread the heartbeats of many nodes over the interval
            n.next_renew = now + interval * (1 + n.index / max(1, len(self.nodes)))
            n.next_status = now + self.cfg.node_status_report_seconds

        await asyncio.gather(*(register(n) for n in self.nodes.values()))
        self._started_at = time.monotonic()
        if getattr(self.runtime, "needs_node_cidr", False):
            # a real pod network must use the node's own range: wait for it rather than guess
            self.runtime.attach(self.queue.add, self._node_cidr)
        else:
            self.runtime.attach(self.queue.add, lambda node: self._pool(self.nodes[node]).cidr)
        self.pod_informer.add_handler(self._on_add, self._on_update, self._on_delete)
        self.node_informer.add_handler(None, self._on_node_update, None)
        self.factory.start()
        await self.factory.wait_for_sync()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(run_workers(self.queue, self.cfg.workers, self._sync),
                                        name="simulated-pod-workers"),
                       loop.create_task(self._heartbeats(), name="simulated-node-heartbeats")]

    async def stop(self) -> None:
        """Stop everything; Nodes and Leases stay (the nodes go NotReady once their Leases expire)."""
        for n in self.nodes.values():
            n.active = False
        self.queue.shutdown()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self._releases:  # a teardown cut short would leave its network namespace and cgroups behind
            await asyncio.wait(set(self._releases), timeout=30.0)
        recorders = [n.recorder for n in self.nodes.values() if n.recorder is not None]
        await asyncio.gather(*(r.stop(2.0) for r in recorders), return_exceptions=True)
        if self._own_factory:
            await self.factory.stop()

    def stop_node(self, name: str) -> None:
        """`kubelite node stop NAME`: the node stops heartbeating and syncing pods, as if it crashed."""
        if name in self.nodes:
            self.nodes[name].active = False

    def start_node(self, name: str) -> None:
        if name in self.nodes:
            n = self.nodes[name]
            n.active = True
            n.next_renew = 0.0
            n.next_status = 0.0
            for key in self.pod_informer.index_keys("spec.nodeName", name):
                self.queue.add(key)

    # -- informer handlers (quick: enqueue only) ------------------------------------------------------------

    def _mine(self, pod: Obj) -> bool:
        n = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        return n is not None and n.active

    def _on_add(self, pod: Obj) -> None:
        if self._mine(pod):
            self.queue.add(_key(pod))

    def _on_update(self, old: Obj, new: Obj) -> None:
        if self._last_status:
            self._caught_up(_key(new), new)
        if not self._mine(new):
            return
        key = _key(new)
        om, nm = old["metadata"], new["metadata"]
        if (key not in self.pods or om.get("uid") != nm.get("uid")
                or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
                or om.get("annotations") != nm.get("annotations")
                or (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName")
                or ((new.get("spec") or {}).get("readinessGates")
                    and (old.get("status") or {}).get("conditions") != (new.get("status") or {}).get("conditions"))):
            self.queue.add(key)

    def _on_delete(self, pod: Obj) -> None:
        key = _key(pod)
        if key in self.pods:
            self._forget(key, pod)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        n = self.nodes.get(new["metadata"]["name"])
        if n is None:
            return
        if old.get("spec", {}).get("podCIDR") != new.get("spec", {}).get("podCIDR"):
            # pods waiting for an address can go on now
            for key in self.pod_informer.index_keys("spec.nodeName", n.name):
                if key in self.pods and not self.pods[key].rt.sandbox_ready:
                    self.queue.add(key)

    # -- pods -------------------------------------------------------------------------------------------

    def _node_cidr(self, node: str) -> str | None:
        obj = self.node_informer.get(None, node) or {}
        cidr = (obj.get("spec") or {}).get("podCIDR")
        if cidr:
            return cidr
        if time.monotonic() - self._started_at < self.cfg.pod_cidr_wait_seconds:
            return None  # the node IPAM controller usually assigns one within a second
        return self._pool(self.nodes[node]).cidr  # no IPAM running (e.g. an API server alone): a range of our own

    def _pool(self, n: _Node) -> IPPool:
        obj = self.node_informer.get(None, n.name) or {}
        cidr = (obj.get("spec") or {}).get("podCIDR")
        if not cidr:
            fb = ipaddress.ip_network(self.cfg.fallback_pod_cidr, strict=False)
            subnets = max(1, 2 ** (24 - fb.prefixlen))
            base = int(fb.network_address) + ((subnets - 1 - n.index % subnets) << 8)
            cidr = f"{ipaddress.ip_address(base)}/24"
            if not n.fallback_warned:
                n.fallback_warned = True
                log.warning("node %s has no spec.podCIDR yet; allocating its pod IPs from %s", n.name, cidr)
        pool = n.pools.get(cidr)
        if pool is None:
            pool = n.pools[cidr] = IPPool(cidr)
        return pool

    def _caught_up(self, key: str, pod: Obj) -> None:
        """Forget the status last written for `pod` once the cached pod includes that write: thousands of
        running pods would otherwise each keep a second copy of their status here."""
        written = self._last_status_rv.get(key)
        if written is not None and _rv(pod) >= written:
            del self._last_status_rv[key]
            self._last_status.pop(key, None)

    def _forget(self, key: str, pod: Obj | None = None) -> None:  # noqa: ARG002
        sp = self.pods.pop(key, None)
        self._last_status.pop(key, None)
        self._last_status_rv.pop(key, None)
        if sp is None:
            return
        released = self.runtime.release(sp)
        if inspect.isawaitable(released):
            fut = asyncio.ensure_future(released)
            self._releases.add(fut)
            fut.add_done_callback(self._releases.discard)
        n = self.nodes.get(sp.node_name)
        if sp.ip and n is not None:
            for pool in n.pools.values():
                pool.release(sp.ip)
        self.backoff.forget(sp.uid + "/")
        self.image_backoff.forget(sp.uid + "_")

    def _adopt(self, pod: Obj, sp: SimulatedPod, n: _Node) -> None:
        """A pod this node already ran (agent restarted): keep its IP and running containers."""
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if ip and not pod.get("spec", {}).get("hostNetwork"):
            self._pool(n).reserve(ip)
            sp.ip = ip
        start = status.get("startTime")
        if start:
            dt = parse_rfc3339(start)
            if dt is not None:
                sp.rt.start_time = dt.timestamp()
        for field_name, table in (("containerStatuses", sp.rt.containers),
                                  ("initContainerStatuses", sp.rt.init_containers)):
            for cs in status.get(field_name) or []:
                running = (cs.get("state") or {}).get("running")
                term = (cs.get("state") or {}).get("terminated")
                if running is None and term is None:
                    continue
                c = ContainerState(name=cs["name"], state="running" if running else "exited",
                                   container_id=cs.get("containerID", ""), image=cs.get("image", ""),
                                   image_id=cs.get("imageID", ""), restart_count=cs.get("restartCount", 0),
                                   ready=bool(cs.get("ready")), started=bool(cs.get("started")),
                                   last_terminated=(cs.get("lastState") or {}).get("terminated"))
                at = parse_rfc3339((running or term or {}).get("startedAt"))
                c.started_at = at.timestamp() if at else None
                if term:
                    c.exit_code = term.get("exitCode", 0)
                    c.reason = term.get("reason", "")
                    fin = parse_rfc3339(term.get("finishedAt"))
                    c.finished_at = fin.timestamp() if fin else None
                table[cs["name"]] = c
        if sp.ip or pod.get("spec", {}).get("hostNetwork"):
            if sp.rt.containers or sp.rt.init_containers:
                sp.rt.sandbox_ready = True
                sp.rt.pod_ips = [sp.ip] if sp.ip else []

    async def _sync(self, key: str) -> None:
        pod = self.pod_informer.get_by_key(key)
        if pod is None:
            if key in self.pods:
                self._forget(key)
            return
        n = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if n is None or not n.active:
            return
        meta = pod["metadata"]
        sp = self.pods.get(key)
        if sp is not None and sp.uid != meta.get("uid"):
            self._forget(key, pod)
            sp = None
        now = time.time()
        if sp is None:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and not meta.get("deletionTimestamp"):
                return  # finished before we got here (agent restart); nothing more will happen to it
            sp = self.pods[key] = self.runtime.new_pod(pod, now)
            if self.runtime.adopts_from_status:
                self._adopt(pod, sp, n)
        last = self._last_status.get(key)
        base = pod if last is None else {**pod, "status": last}
        stepped = sp.step(base, now, backoff=self.backoff, image_backoff=self.image_backoff,
                          images=n.images, alloc_ip=lambda: self._pool(n).alloc())
        events, wake = await stepped if inspect.isawaitable(stepped) else stepped
        self._emit(n, pod, events)
        if meta.get("deletionTimestamp") and sp.termination_done(now):
            try:
                await self.client.delete(PODS, meta.get("namespace"), meta["name"], grace_period_seconds=0,
                                         preconditions={"uid": meta.get("uid", "")})
            except ClientError as e:
                if e.code not in (404, 409):
                    raise
            self._forget(key, pod)
            return
        if not sp.rt.sandbox_ready and sp.ip is None and not pod.get("spec", {}).get("hostNetwork"):
            wake = now + 1.0  # no pod address available; try again
        status = compute_pod_status(base, sp.rt, host_ips=[n.spec.internal_ip], now=now,
                                    pod_is_terminal=sp.terminal)
        patch = status_patch(base.get("status") or {}, status)
        if (patch is not None and wake is not None and wake - now <= self.cfg.status_coalesce_seconds
                and not meta.get("deletionTimestamp")):
            patch = None  # the next step is moments away; write once then
        if patch is not None:
            try:
                written = await self.client.patch(PODS, meta.get("namespace"), meta["name"], patch,
                                                  patch_type="strategic", subresource="status")
                self.status_writes += 1
            except ClientError as e:
                if e.code == 404:
                    self._forget(key, pod)
                    return
                raise
            self._last_status[key] = status
            self._last_status_rv[key] = _rv(written) if isinstance(written, dict) else 1 << 62
            current = self.pod_informer.get_by_key(key)
            if current is not None:
                self._caught_up(key, current)  # the watch event may have come before the response
        if wake is not None:
            self.queue.add_after(key, max(0.0, wake - time.time()))

    def _emit(self, n: _Node, pod: Obj, events: list[SimEvent]) -> None:
        if n.recorder is None or not events:
            return
        meta = pod["metadata"]
        for ev in events:
            ref: Obj = {"kind": "Pod", "apiVersion": "v1", "namespace": meta.get("namespace"),
                        "name": meta["name"], "uid": meta.get("uid", "")}
            if meta.get("resourceVersion"):
                ref["resourceVersion"] = meta["resourceVersion"]
            if ev.container:
                ref["fieldPath"] = field_path(pod, ev.container)
            n.recorder.event(ref, ev.type, ev.reason, ev.message)

    # -- nodes ------------------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        sem = asyncio.Semaphore(16)

        async def beat(n: _Node, now: float) -> None:
            async with sem:
                try:
                    if now >= n.next_renew:
                        n.next_renew = now + self.cfg.renew_interval
                        await nodeapi.renew_lease(self.client, n.name, n.uid, now, self.cfg.lease_duration_seconds)
                    if now >= n.next_status:
                        n.next_status = now + self.cfg.node_status_report_seconds
                        obj = await nodeapi.report_node_status(self.client, n.spec, n.conditions, now)
                        n.conditions = (obj.get("status") or {}).get("conditions") or n.conditions
                except (ClientError, OSError, TimeoutError) as e:
                    log.warning("node %s heartbeat failed: %s", n.name, e)
                    n.next_renew = min(n.next_renew, now + 1.0)

        while True:
            now = time.time()
            due = [n for n in self.nodes.values() if n.active and (now >= n.next_renew or now >= n.next_status)]
            if due:
                await asyncio.gather(*(beat(n, now) for n in due))
            active = [n for n in self.nodes.values() if n.active]
            nxt = min((min(n.next_renew, n.next_status) for n in active), default=now + 1.0)
            await asyncio.sleep(min(1.0, max(0.05, nxt - time.time())))


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (KeyError, TypeError, ValueError):
        return 0


def _key(pod: Obj) -> str:
    meta = pod["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


async def run_simulated_nodes(client: ApiClient, *, names: Iterable[str] | None = None, count: int | None = None,
                              stop: asyncio.Event, config: SimulatedConfig | None = None,
                              informers: SharedInformerFactory | None = None,
                              prefix: str = "sim-node-", node_ips: dict[str, str] | None = None) -> SimulatedNodes:
    """Register the nodes (`names`, or `count` nodes named `<prefix>0…`), serve them until `stop` is set, then
    stop cleanly.  Returns the (stopped) `SimulatedNodes` for inspection. `node_ips`: InternalIPs of some of
    them (a machine's own simulated node shows the machine's address)."""
    if names is None:
        if count is None:
            raise ValueError("run_simulated_nodes needs names or count")
        names = node_names(count, prefix)
    nodes = SimulatedNodes(client, list(names), config, informers=informers)
    for name, ip in (node_ips or {}).items():
        if name in nodes.nodes and ip:
            nodes.nodes[name].spec.internal_ip = ip
    await nodes.start()
    try:
        await stop.wait()
    finally:
        await nodes.stop()
    return nodes
