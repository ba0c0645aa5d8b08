"""The scheduler component: informer handlers → queue → scheduling cycle → binding, events and status.

The scheduling cycle (filter + score) is synchronous CPU work; binding runs as its own task per pod (as
upstream's binding goroutine) after the pod is assumed in the cache, so the next pod is scheduled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from ..api.resources import Registry
from ..client import ApiClient, ClientError, EventRecorder, LeaderElector, SharedInformerFactory
from ..client.informer import ScopedInformerFactory
from .algorithm import Algorithm, NoNodesAvailable
from .cache import Cache, is_terminal
from .config import SchedulerConfig
from .framework import FitError
from .podinfo import PodInfo
from .preemption import preempt
from .queue import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    NAMESPACE_CHANGE,
    NODE_ADD,
    NODE_UPDATE,
    QueuedPod,
    SchedulingQueue,
)

log = logging.getLogger("kubelite.scheduler")

_REG = Registry()
PODS = _REG.get("", "v1", "pods")
NODES = _REG.get("", "v1", "nodes")
NAMESPACES = _REG.get("", "v1", "namespaces")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_sched_props(node: dict[str, Any]) -> tuple:
    """What a node update must change to possibly help pending pods (heartbeats alone do not)."""
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    conds = tuple(sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or []))
    return (repr(spec.get("taints")), bool(spec.get("unschedulable")), repr((node.get("metadata") or {}).get("labels")),
            repr(status.get("allocatable")), conds)


def _pod_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return c
    return None


class Scheduler:
    def __init__(self, client: ApiClient, config: SchedulerConfig | None = None, *,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.config = config or SchedulerConfig()
        self.cache = Cache()
        self.queue = SchedulingQueue(self.config)
        self.algorithm = Algorithm(self.cache, self.config)
        self.recorder = recorder or EventRecorder(client, self.config.scheduler_name, max_queue=20000)
        self.active = True
        self._bind_slots = asyncio.Semaphore(self.config.max_inflight_bindings)
        self._tasks: set[asyncio.Task] = set()
        self.bound = 0
        self.failed = 0

    # -- informer handlers ----------------------------------------------------------------------------

    def _responsible(self, pod: dict[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or "default-scheduler") == self.config.scheduler_name

    def on_pod_add(self, pod: dict[str, Any]) -> None:
        if not self.active:
            return
        if (pod.get("spec") or {}).get("nodeName"):
            if self.cache.add_pod(pod) is not None and self.queue._unschedulable:
                self.queue.move_on_event(ASSIGNED_POD_ADD)
            return
        if is_terminal(pod) or (pod.get("metadata") or {}).get("deletionTimestamp") or not self._responsible(pod):
            return
        self.queue.add(PodInfo(pod))

    def on_pod_update(self, old: dict[str, Any], pod: dict[str, Any]) -> None:
        if not self.active:
            return
        key = f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"
        if (pod.get("spec") or {}).get("nodeName"):
            was_assigned = bool((old.get("spec") or {}).get("nodeName"))
            if not was_assigned:
                self.queue.delete(key)
            if is_terminal(pod):
                self.cache.remove_pod(pod)
                event = ASSIGNED_POD_DELETE
            else:
                self.cache.add_pod(pod)
                event = ASSIGNED_POD_UPDATE if was_assigned else ASSIGNED_POD_ADD
            if self.queue._unschedulable:
                self.queue.move_on_event(event)
            return
        uid = pod["metadata"].get("uid", "")
        if uid in self.cache.pod_nodes:
            return  # assumed: binding is on its way; our own status patches must not requeue it
        if pod["metadata"].get("deletionTimestamp") or is_terminal(pod) or not self._responsible(pod):
            self.queue.delete(key)
            return
        if _only_status_changed(old, pod):
            return
        self.queue.update(PodInfo(pod))

    def on_pod_delete(self, pod: dict[str, Any]) -> None:
        if not self.active:
            return
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        self.queue.delete(key)
        if meta.get("uid") in self.cache.pod_nodes:
            self.cache.remove_pod(pod)
            if self.queue._unschedulable:
                self.queue.move_on_event(ASSIGNED_POD_DELETE)
        else:
            self.cache.clear_nominated(meta.get("uid", ""))

    def on_node_add(self, node: dict[str, Any]) -> None:
        if not self.active:
            return
        self.cache.add_node(node)
        self.queue.move_on_event(NODE_ADD)

    def on_node_update(self, old: dict[str, Any], node: dict[str, Any]) -> None:
        if not self.active:
            return
        self.cache.update_node(node)
        if self.queue._unschedulable and _node_sched_props(old) != _node_sched_props(node):
            self.queue.move_on_event(NODE_UPDATE)

    def on_node_delete(self, node: dict[str, Any]) -> None:
        if self.active:
            self.cache.remove_node(node["metadata"]["name"])

    def on_namespace_update(self, old: dict[str, Any], ns: dict[str, Any]) -> None:
        self.on_namespace(ns)

    def on_namespace(self, ns: dict[str, Any]) -> None:
        if not self.active:
            return
        meta = ns.get("metadata") or {}
        self.cache.namespace_labels[meta.get("name", "")] = meta.get("labels") or {}
        if self.queue._unschedulable:
            self.queue.move_on_event(NAMESPACE_CHANGE)

    def register(self, informers: SharedInformerFactory) -> None:
        informers.informer(NODES).add_handler(self.on_node_add, self.on_node_update, self.on_node_delete)
        informers.informer(NAMESPACES).add_handler(self.on_namespace, self.on_namespace_update)
        informers.informer(PODS).add_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)

    # -- the scheduling cycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        flushers = asyncio.ensure_future(self.queue.run_flushers(stop))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                qp = self.queue.pop_nowait()
                if qp is None:
                    popper = asyncio.ensure_future(self.queue.pop())
                    done, _ = await asyncio.wait({popper, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if popper not in done:
                        popper.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await popper
                        break
                    qp = popper.result()
                await self._bind_slots.acquire()
                try:
                    self.schedule_one(qp)
                except Exception:
                    log.exception("scheduling %s failed", qp.info.key)
                    self._bind_slots.release()
                    self.queue.add_unschedulable(qp, error=True)
                await asyncio.sleep(0)  # let informers and bindings run between decisions
        finally:
            stopper.cancel()
            flushers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushers
            await self.drain()

    async def drain(self, timeout: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def schedule_one(self, qp: QueuedPod) -> None:
        """One scheduling cycle; holds one binding slot which the caller acquired."""
        p = qp.info
        if p.terminating or p.uid in self.cache.pod_nodes:
            self.queue.done(p.key)
            self._bind_slots.release()
            return
        try:
            node, _ = self.algorithm.schedule(p)
        except FitError as err:
            self._bind_slots.release()
            nominated = ""
            if self.config.preemption:
                result = preempt(self.algorithm, p, err)
                if result.node:
                    nominated = result.node
                    self._start_preemption(p, result.node, result.victims)
                else:
                    err.diagnosis.post_filter_msg = result.message
            plugins = set(err.diagnosis.unschedulable_plugins)
            if nominated:
                plugins.add("DefaultPreemption")
            self._failed(qp, str(err), plugins, nominated=nominated)
            return
        except NoNodesAvailable as err:
            self._bind_slots.release()
            self._failed(qp, str(err), set())
            return
        self.cache.assume_pod(p, node.name)
        self._spawn(self._bind(qp, node.name))

    def _failed(self, qp: QueuedPod, message: str, plugins: set[str], *, nominated: str = "",
                error: bool = False) -> None:
        p = qp.info
        self.failed += 1
        log.debug("unable to schedule %s: %s", p.key, message)
        self.recorder.event(p.pod, "Warning", "FailedScheduling", message)
        self.queue.add_unschedulable(qp, plugins, error=error)
        self._spawn(self._patch_condition(p, "Unschedulable" if not error else "SchedulerError", message,
                                          nominated))

    async def _patch_condition(self, p: PodInfo, reason: str, message: str, nominated: str) -> None:
        current = _pod_condition(p.pod)
        old_nominated = (p.pod.get("status") or {}).get("nominatedNodeName") or ""
        if (current is not None and current.get("status") == "False" and current.get("reason") == reason
                and current.get("message") == message and old_nominated == nominated):
            return
        cond: dict[str, Any] = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                                "lastProbeTime": None}
        if current is None or current.get("status") != "False":
            cond["lastTransitionTime"] = _now()
        status: dict[str, Any] = {"conditions": [cond]}
        if nominated or old_nominated:
            status["nominatedNodeName"] = nominated or None
        try:
            await self.client.patch(PODS, p.namespace, p.name, {"status": status}, patch_type="strategic",
                                    subresource="status")
        except ClientError as e:
            if not e.is_not_found:
                log.warning("updating the PodScheduled condition of %s: %s", p.key, e)
        except Exception as e:  # network trouble: the next attempt writes it again
            log.warning("updating the PodScheduled condition of %s: %s", p.key, e)

    async def _bind(self, qp: QueuedPod, node_name: str) -> None:
        p = qp.info
        try:
            await self.client.bind(p.namespace, p.name, node_name, uid=p.uid or None)
        except Exception as e:
            self.cache.forget_pod(p)
            if isinstance(e, ClientError) and e.is_not_found:
                self.queue.done(p.key)
                return
            if isinstance(e, ClientError) and e.is_conflict and "already assigned" in e.message:
                self.queue.done(p.key)
                return
            self._failed(qp, f"Binding rejected: {e.message if isinstance(e, ClientError) else e}", set(),
                         error=True)
            return
        finally:
            self._bind_slots.release()
        self.bound += 1
        self.queue.done(p.key)
        self.cache.clear_nominated(p.uid)
        self.recorder.event(p.pod, "Normal", "Scheduled", f"Successfully assigned {p.key} to {node_name}")

    # -- preemption -----------------------------------------------------------------------------------

    def _start_preemption(self, p: PodInfo, node: str, victims: list[PodInfo]) -> None:
        self.cache.nominate(p, node)
        # lower-priority pods nominated to the same node lose their claim
        ni = self.cache.nodes.get(node)
        if ni is not None:
            for other in list(ni.nominated.values()):
                if other.uid != p.uid and other.priority < p.priority:
                    self.cache.clear_nominated(other.uid)
        for v in victims:
            self.recorder.event(v.pod, "Normal", "Preempted", f"Preempted by pod {p.uid} on node {node}")
            self._spawn(self._delete_victim(v))

    async def _delete_victim(self, v: PodInfo) -> None:
        try:
            await self.client.delete(PODS, v.namespace, v.name, preconditions={"uid": v.uid} if v.uid else None)
        except ClientError as e:
            if not e.is_not_found and not e.is_conflict:
                log.warning("preempting %s: %s", v.key, e)
        except Exception as e:
            log.warning("preempting %s: %s", v.key, e)


def _only_status_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Upstream's skipPodUpdate: an update that changes only status / resourceVersion / managed fields."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if old.get("spec") != new.get("spec"):
        return False
    for k in set(om) | set(nm):
        if k in ("resourceVersion", "managedFields", "generation"):
            continue
        if om.get(k) != nm.get(k):
            return False
    return True


async def run_scheduler(client: ApiClient, *, stop: asyncio.Event, config: SchedulerConfig | None = None,
                        informers: SharedInformerFactory | None = None) -> None:
    """Run the scheduler until `stop` is set: leader election (if configured), informers, scheduling loop.

    With `informers` (a factory shared with other components of the process) the scheduler registers its
    handlers there and leaves starting/stopping it to the owner; otherwise it runs a factory of its own.
    Losing the lease stops scheduling; the scheduler then contends again with fresh state."""
    config = config or SchedulerConfig()
    while not stop.is_set():
        elector = None
        if config.leader_elect:
            elector = LeaderElector(client, config.lease_name, config.lease_namespace,
                                    identity=config.identity or None, lease_duration=config.lease_duration,
                                    renew_deadline=config.renew_deadline, retry_period=config.retry_period)
            acquire = asyncio.ensure_future(elector.acquire())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({acquire, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
                return
        lost = asyncio.Event()
        renewer = None
        if elector is not None:
            async def _renew(el: LeaderElector = elector, flag: asyncio.Event = lost) -> None:
                await el.renew_until_lost()
                flag.set()
            renewer = asyncio.ensure_future(_renew())
        try:
            await _run_once(client, config, stop, lost, informers)
        finally:
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
            if elector is not None and elector.is_leader:
                await elector.release()
        if not lost.is_set():
            return
        log.warning("leader election lost; contending again")


async def _run_once(client: ApiClient, config: SchedulerConfig, stop: asyncio.Event, lost: asyncio.Event,
                    shared: SharedInformerFactory | None) -> None:
    sched = Scheduler(client, config)
    factory = shared or SharedInformerFactory(client)
    sched.register(factory)
    if shared is None:
        factory.start()
    halt = asyncio.Event()

    async def _watch_flags() -> None:
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        halt.set()

    watcher = asyncio.ensure_future(_watch_flags())
    try:
        while not await factory.wait_for_sync(timeout=1.0):
            if halt.is_set():
                return
        log.info("scheduler %s started: %d nodes, %d pods pending", config.scheduler_name,
                 len(sched.cache.node_list), len(sched.queue))
        await sched.run(halt)
    finally:
        sched.active = False
        watcher.cancel()
        await sched.recorder.stop()
        if shared is None or isinstance(shared, ScopedInformerFactory):
            await factory.stop()  # a scoped view drops only this round's handlers; the process's caches stay


__all__ = ["Scheduler", "run_scheduler"]
