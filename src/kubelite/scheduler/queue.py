"""The scheduling queue, as upstream's PriorityQueue: activeQ, backoffQ and the unschedulable pods.

- activeQ pops the highest `spec.priority` first, then the oldest (creation time), then FIFO.
- A pod that failed waits its backoff (initial × 2^(attempts-1), capped) in backoffQ before activeQ.
- A pod found unschedulable waits in the unschedulable set until a cluster event that may help it (one its
  rejecting plugins cares about) moves it, or for at most `pod_max_in_unschedulable`.  If such an event
  arrived while the pod was being scheduled, the pod goes to backoffQ at once instead (upstream's
  moveRequestCycle), so no event is lost.
- Pods with scheduling gates wait aside until an update removes the gates.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable

from .config import SchedulerConfig
from .podinfo import PodInfo

# cluster events and the filter plugins that may stop rejecting a pod after them
NODE_ADD = "NodeAdd"
NODE_UPDATE = "NodeUpdate"
ASSIGNED_POD_ADD = "AssignedPodAdd"
ASSIGNED_POD_UPDATE = "AssignedPodUpdate"
ASSIGNED_POD_DELETE = "AssignedPodDelete"
NAMESPACE_CHANGE = "NamespaceChange"
UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"
_ALL = None
EVENT_PLUGINS: dict[str, frozenset[str] | None] = {
    NODE_ADD: _ALL,
    NODE_UPDATE: frozenset({"NodeUnschedulable", "TaintToleration", "NodeAffinity", "NodeResourcesFit",
                            "PodTopologySpread", "InterPodAffinity"}),
    ASSIGNED_POD_ADD: frozenset({"PodTopologySpread", "InterPodAffinity"}),
    ASSIGNED_POD_UPDATE: frozenset({"PodTopologySpread", "InterPodAffinity", "NodeResourcesFit"}),
    ASSIGNED_POD_DELETE: frozenset({"NodeResourcesFit", "NodePorts", "PodTopologySpread", "InterPodAffinity",
                                    "DefaultPreemption"}),
    NAMESPACE_CHANGE: frozenset({"InterPodAffinity"}),
}


class QueuedPod:
    __slots__ = ("info", "attempts", "added", "unschedulable_plugins", "backoff_until", "cycle", "seq",
                 "parked_at")

    def __init__(self, info: PodInfo, now: float) -> None:
        self.info = info
        self.attempts = 0
        self.added = now
        self.unschedulable_plugins: set[str] = set()
        self.backoff_until = 0.0
        self.cycle = 0
        self.seq = 0
        self.parked_at = 0.0


class SchedulingQueue:
    def __init__(self, config: SchedulerConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or SchedulerConfig()
        self.clock = clock
        self._seq = itertools.count()
        self._active: list[tuple[int, str, int, str]] = []
        self._active_map: dict[str, QueuedPod] = {}
        self._backoff: list[tuple[float, int, str]] = []
        self._backoff_map: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._gated: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, QueuedPod] = {}
        self._deleted_in_flight: set[str] = set()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup: asyncio.Event | None = None
        self._closed = False

    # -- bookkeeping ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._active_map) + len(self._backoff_map) + len(self._unschedulable) + len(self._gated)

    def stats(self) -> dict[str, int]:
        return {"active": len(self._active_map), "backoff": len(self._backoff_map),
                "unschedulable": len(self._unschedulable), "gated": len(self._gated),
                "in_flight": len(self._in_flight)}

    def where(self, key: str) -> str:
        for name, m in (("active", self._active_map), ("backoff", self._backoff_map),
                        ("unschedulable", self._unschedulable), ("gated", self._gated),
                        ("in_flight", self._in_flight)):
            if key in m:
                return name
        return ""

    def _signal(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _push_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        key = qp.info.key
        self._active_map[key] = qp
        heapq.heappush(self._active, (-qp.info.priority, qp.info.created, qp.seq, key))
        self._signal()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        key = qp.info.key
        self._backoff_map[key] = qp
        heapq.heappush(self._backoff, (qp.backoff_until, qp.seq, key))

    def _backoff_duration(self, qp: QueuedPod) -> float:
        d = self.config.pod_initial_backoff * (2 ** max(qp.attempts - 1, 0))
        return min(d, self.config.pod_max_backoff)

    def _remove(self, key: str) -> QueuedPod | None:
        for m in (self._active_map, self._backoff_map, self._unschedulable, self._gated):
            qp = m.pop(key, None)
            if qp is not None:
                return qp  # heap entries of a popped key are skipped lazily
        return None

    def _requeue(self, qp: QueuedPod) -> None:
        """To activeQ, or backoffQ while the pod's backoff lasts."""
        if qp.info.gated:
            self._gated[qp.info.key] = qp
        elif qp.backoff_until > self.clock():
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    # -- informer-driven changes ----------------------------------------------------------------------

    def add(self, info: PodInfo) -> None:
        key = info.key
        if key in self._in_flight:
            self._in_flight[key].info = info
            return
        existing = self._remove(key)
        qp = existing or QueuedPod(info, self.clock())
        qp.info = info
        if info.gated:
            self._gated[key] = qp
        else:
            self._push_active(qp) if existing is None else self._requeue(qp)

    def update(self, info: PodInfo) -> None:
        key = info.key
        if key in self._in_flight:
            self._in_flight[key].info = info
            return
        if key in self._active_map:
            qp = self._active_map[key]
            if qp.info.priority != info.priority:
                qp.info = info
                self._push_active(qp)  # the old heap entry is stale now
            else:
                qp.info = info
            return
        if key in self._backoff_map:
            self._backoff_map[key].info = info
            return
        qp = self._unschedulable.pop(key, None) or self._gated.pop(key, None)
        if qp is None:
            self.add(info)
            return
        qp.info = info
        # an update to the pod itself may make it schedulable: try again (after its backoff)
        self._requeue(qp)

    def delete(self, key: str) -> None:
        if key in self._in_flight:
            self._deleted_in_flight.add(key)
        self._remove(key)

    def __contains__(self, key: str) -> bool:
        return bool(self.where(key))

    # -- the scheduling loop's side -------------------------------------------------------------------

    def pop_nowait(self) -> QueuedPod | None:
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            qp = self._active_map.get(key)
            if qp is None or qp.seq != seq:
                continue
            del self._active_map[key]
            qp.attempts += 1
            self.scheduling_cycle += 1
            qp.cycle = self.scheduling_cycle
            self._in_flight[key] = qp
            return qp
        return None

    async def pop(self) -> QueuedPod:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self._closed:
                raise asyncio.CancelledError()
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The pod left the scheduling cycle (bound, assumed, or handed back)."""
        self._in_flight.pop(key, None)
        self._deleted_in_flight.discard(key)

    def add_unschedulable(self, qp: QueuedPod, plugins: Iterable[str] = (), *, error: bool = False) -> None:
        """Hand a pod back after a failed attempt."""
        key = qp.info.key
        self._in_flight.pop(key, None)
        if key in self._deleted_in_flight:
            self._deleted_in_flight.discard(key)
            return
        if self.where(key):
            return  # re-added by an informer event meanwhile
        now = self.clock()
        qp.unschedulable_plugins = set(plugins)
        qp.backoff_until = now + self._backoff_duration(qp)
        if error or self.move_request_cycle >= qp.cycle:
            self._push_backoff(qp)
        else:
            qp.parked_at = now
            self._unschedulable[key] = qp

    def move_on_event(self, event: str, pred: Callable[[PodInfo], bool] | None = None) -> int:
        """Move unschedulable pods an event may help to backoffQ/activeQ; returns how many moved."""
        interested = EVENT_PLUGINS.get(event, _ALL)
        moved = 0
        for key, qp in list(self._unschedulable.items()):
            if interested is not None and qp.unschedulable_plugins and not (qp.unschedulable_plugins & interested):
                continue
            if pred is not None and not pred(qp.info):
                continue
            del self._unschedulable[key]
            self._requeue(qp)
            moved += 1
        self.move_request_cycle = self.scheduling_cycle
        return moved

    def activate(self, keys: Iterable[str]) -> None:
        for key in keys:
            qp = self._unschedulable.pop(key, None) or self._backoff_map.pop(key, None)
            if qp is not None:
                self._push_active(qp)

    def flush_backoff(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            qp = self._backoff_map.get(key)
            if qp is None or qp.seq != seq:
                continue
            del self._backoff_map[key]
            self._push_active(qp)

    def flush_unschedulable(self) -> None:
        now = self.clock()
        limit = self.config.pod_max_in_unschedulable
        for key, qp in list(self._unschedulable.items()):
            if now - qp.parked_at >= limit:
                del self._unschedulable[key]
                self._requeue(qp)

    async def run_flushers(self, stop: asyncio.Event) -> None:
        """Upstream's two periodic flushes (backoff every second, leftovers every 30 s)."""
        last_leftover = self.clock()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.config.flush_backoff_interval)
            except TimeoutError:
                pass
            self.flush_backoff()
            if self.clock() - last_leftover >= self.config.flush_unschedulable_interval:
                last_leftover = self.clock()
                self.flush_unschedulable()

    def close(self) -> None:
        self._closed = True
        self._signal()
