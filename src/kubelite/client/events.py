"""Recording `core/v1` Events as client-go's `record.EventRecorder` does, with its correlator's rules.

`EventRecorder(client, component).event(obj, "Normal", "Scheduled", "…")` returns at once; a background task
writes.  Before writing, the `EventCorrelator` applies upstream's three rules (tools/record/events_cache.go):

1. aggregation: events that differ only in message (same source, object, type, reason) are counted per
   10-minute window; from the 10th distinct message on they are written as one event whose message is
   "(combined from similar events): <latest message>";
2. de-duplication: an event identical to one already written (same source, object, type, reason, message)
   is not created again: the existing Event's `count` and `lastTimestamp` are PATCHed;
3. spam filter: per source + object a token bucket (burst 25, one more every 5 minutes) drops the excess.

All limits are constructor parameters; the write queue is bounded (events beyond it are dropped and logged,
as upstream's broadcaster drops on a full channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api.resources import Registry
from .rest import ApiClient, ClientError
from .workqueue import BucketRateLimiter

log = logging.getLogger("kubelite.client.events")

EVENTS = Registry().get("", "v1", "events")
NORMAL = "Normal"
WARNING = "Warning"
AGGREGATE_PREFIX = "(combined from similar events): "


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_key(ev: dict[str, Any]) -> tuple:
    src, io = ev.get("source") or {}, ev["involvedObject"]
    return (src.get("component", ""), src.get("host", ""), io.get("kind", ""), io.get("namespace", ""),
            io.get("name", ""), io.get("fieldPath", ""), io.get("uid", ""), io.get("apiVersion", ""),
            ev.get("type", ""), ev.get("reason", ""), ev.get("message", ""))


def _spam_key(ev: dict[str, Any]) -> tuple:
    src, io = ev.get("source") or {}, ev["involvedObject"]
    return (src.get("component", ""), src.get("host", ""), io.get("kind", ""), io.get("namespace", ""),
            io.get("name", ""), io.get("uid", ""), io.get("apiVersion", ""))


def _aggregate_key(ev: dict[str, Any]) -> tuple:
    return _spam_key(ev) + (ev.get("type", ""), ev.get("reason", ""), ev.get("reportingComponent", ""),
                            ev.get("reportingInstance", ""))


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def lookup(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


@dataclass(slots=True)  # one per recent event: thousands of them
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last: float = 0.0


@dataclass(slots=True)
class _Observed:
    count: int
    first_timestamp: str
    name: str
    resource_version: str
    seen: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


@dataclass
class Correlation:
    event: dict[str, Any] | None  # what to write (None when skipped)
    patch: dict[str, Any] | None  # set when an existing Event is to be updated (count > 1)
    skip: bool = False


class EventCorrelator:
    """Aggregation, de-duplication and spam filtering of events before they are written (see module doc)."""

    def __init__(self, *, max_events: int = 10, max_interval: float = 600.0, spam_burst: int = 25,
                 spam_qps: float = 1.0 / 300.0, dedupe_window: float = 600.0, cache_size: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_events = max_events
        self.max_interval = max_interval
        self.spam_burst = spam_burst
        self.spam_qps = spam_qps
        self.dedupe_window = dedupe_window
        self.clock = clock
        self._aggregates = _LRU(cache_size)
        self._observed = _LRU(cache_size)
        self._spam = _LRU(cache_size)

    def correlate(self, event: dict[str, Any]) -> Correlation:
        now = self.clock()
        event, cache_key = self._aggregate(event, now)
        event, patch = self._observe(event, cache_key, now)
        if not self._allow(event, now):
            return Correlation(None, None, skip=True)
        return Correlation(event, patch)

    def _aggregate(self, event: dict[str, Any], now: float) -> tuple[dict[str, Any], tuple]:
        akey = _aggregate_key(event)
        record = self._aggregates.lookup(akey)
        if record is None or now - record.last > self.max_interval:
            record = _Aggregate()
        record.messages.add(event.get("message", ""))
        record.last = now
        self._aggregates.put(akey, record)
        if len(record.messages) < self.max_events:
            return event, _event_key(event)
        record.messages.pop()  # keep the set bounded
        combined = {
            **event,
            "metadata": {"name": _event_name(event["involvedObject"].get("name", ""), now),
                         "namespace": event["metadata"]["namespace"]},
            "message": AGGREGATE_PREFIX + event.get("message", ""),
            "count": 1,
            "firstTimestamp": _rfc3339(now),
            "lastTimestamp": _rfc3339(now),
        }
        return combined, ("aggregate",) + akey

    def _observe(self, event: dict[str, Any], key: tuple, now: float) -> tuple[dict[str, Any], dict | None]:
        last = self._observed.lookup(key)
        patch = None
        if last is not None and now - last.seen <= self.dedupe_window:
            event = {**event, "metadata": {**event["metadata"], "name": last.name},
                     "firstTimestamp": last.first_timestamp, "count": last.count + 1}
            if last.resource_version:
                event["metadata"]["resourceVersion"] = last.resource_version
            patch = {"count": event["count"], "lastTimestamp": event["lastTimestamp"], "message": event["message"]}
        self._observed.put(key, _Observed(event.get("count", 1), event["firstTimestamp"], event["metadata"]["name"],
                                          event["metadata"].get("resourceVersion", ""), now))
        return event, patch

    def _allow(self, event: dict[str, Any], now: float) -> bool:
        key = _spam_key(event)
        bucket = self._spam.lookup(key)
        if bucket is None:
            bucket = _Bucket(float(self.spam_burst), now)
        bucket.tokens = min(float(self.spam_burst), bucket.tokens + (now - bucket.last) * self.spam_qps)
        bucket.last = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._spam.put(key, bucket)
        return allowed

    def update_state(self, written: dict[str, Any]) -> None:
        """Remember the server's copy (name, count, resourceVersion) of an event just written."""
        key = _event_key(written)
        if written.get("message", "").startswith(AGGREGATE_PREFIX):
            # an aggregate is looked up by its aggregate key, not by its (changing) message
            key = ("aggregate",) + _aggregate_key(written)
        self._observed.put(key, _Observed(written.get("count") or 1, written.get("firstTimestamp") or "",
                                          written["metadata"]["name"],
                                          written["metadata"].get("resourceVersion", ""), self.clock()))

    def forget(self, event: dict[str, Any], key: tuple | None = None) -> None:
        self._observed.pop(key or _event_key(event), None)


def _event_name(obj_name: str, now: float) -> str:
    return f"{obj_name}.{int(now * 1e9):x}"


def object_reference(obj: dict[str, Any]) -> dict[str, Any]:
    """An ObjectReference to `obj` (kind, apiVersion, namespace, name, uid, resourceVersion)."""
    meta = obj.get("metadata") or {}
    ref: dict[str, Any] = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", "")}
    for src, dst in (("namespace", "namespace"), ("name", "name"), ("uid", "uid"),
                     ("resourceVersion", "resourceVersion")):
        if meta.get(src):
            ref[dst] = meta[src]
    return ref


class EventRecorder:
    """`event(obj, type, reason, message)`: a non-blocking write of a `core/v1` Event about `obj`.

    `obj` is the object (it needs kind/apiVersion and metadata; informer objects have them) or an
    ObjectReference dict (with top-level `name`). The writer task starts lazily on the first event; `await
    flush()` waits until everything queued is written; `await stop()` flushes (bounded) and ends it."""

    def __init__(self, client: ApiClient, component: str, *, host: str = "", reporting_instance: str = "",
                 correlator: EventCorrelator | None = None, max_queue: int = 1000, retries: int = 3,
                 retry_interval: float = 0.5, clock: Callable[[], float] = time.time,
                 limiter: BucketRateLimiter | None = None) -> None:
        self.client = client
        # a budget of events (may be shared by several recorders): past it, events are dropped, not queued
        self.limiter = limiter
        self.component = component
        self.host = host
        self.reporting_instance = reporting_instance or host
        self.correlator = correlator or EventCorrelator(clock=clock)
        self.retries = retries
        self.retry_interval = retry_interval
        self.clock = clock
        self.max_queue = max_queue
        self.dropped = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        """Queue an Event (type: "Normal" | "Warning"). Never blocks, never raises for API problems."""
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._writer(), name=f"events-{self.component}")
        if self.limiter is not None and not self.limiter.allow():
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(self._make(obj, type, reason, message))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event queue full; dropping %s %s: %s", type, reason, message)

    def eventf(self, obj: dict[str, Any], type: str, reason: str, fmt: str, *args: Any) -> None:
        self.event(obj, type, reason, fmt % args if args else fmt)

    def _make(self, obj: dict[str, Any], type: str, reason: str, message: str) -> dict[str, Any]:
        ref = object_reference(obj) if "metadata" in obj else dict(obj)
        now = self.clock()
        ts = _rfc3339(now)
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        return {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": _event_name(ref.get("name", ""), now),
                         "namespace": ref.get("namespace") or "default"},
            "involvedObject": ref, "reason": reason, "message": message, "type": type, "source": source,
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.reporting_instance,
        }

    async def flush(self) -> None:
        if self._queue is not None and self._task is not None and not self._task.done():
            await self._queue.join()

    async def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            event = await queue.get()
            try:
                result = self.correlator.correlate(event)
                if not result.skip and result.event is not None:
                    await self._write(result.event, result.patch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing event failed")
            finally:
                queue.task_done()

    async def _write(self, event: dict[str, Any], patch: dict[str, Any] | None) -> None:
        ns = event["metadata"]["namespace"]
        for attempt in range(self.retries + 1):
            try:
                if patch is not None:
                    try:
                        written = await self.client.patch(EVENTS, ns, event["metadata"]["name"], patch,
                                                          patch_type="strategic")
                    except ClientError as e:
                        if not e.is_not_found:
                            raise
                        # the Event expired or was deleted: start over with a fresh one
                        patch = None
                        event = {**event, "count": 1, "firstTimestamp": event["lastTimestamp"],
                                 "metadata": {"name": event["metadata"]["name"], "namespace": ns}}
                        written = await self.client.create(EVENTS, event, ns)
                else:
                    event["metadata"].pop("resourceVersion", None)
                    written = await self.client.create(EVENTS, event, ns)
                self.correlator.update_state(written)
                return
            except ClientError as e:
                if e.code < 500 and not e.is_too_many_requests:
                    log.warning("event %s/%s not written: %s", ns, event["metadata"]["name"], e)
                    return
                err: Exception = e
            except Exception as e:  # network trouble: retry a few times
                err = e
            if attempt < self.retries:
                await asyncio.sleep(self.retry_interval)
        log.warning("event %s/%s dropped after %d attempts: %s", ns, event["metadata"]["name"],
                    self.retries + 1, err)
