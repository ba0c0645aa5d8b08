"""In-process fan-out of committed store events to watches, with catch-up from the store's history.

A backend publishes every committed event, in revision order, on its event loop (`WatchHub.publish`).
Each watch keeps its own bounded buffer of live events.  When a watch starts behind the published
revision, or when its buffer overflows because its consumer is slow, it stops trusting the buffer and
reads the missing events from the backend's history (`fetch`), chunk by chunk, then goes back to the
live buffer.  Writers and other watches never wait for a slow watch: publishing is one append per watch.

A watch ends with `CompactedError` when the history it needs is gone (it started, or fell, behind the
compacted revision); the API layer turns that into `410 Expired` and the client re-lists.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from kubelite.storage.interface import Event, Watch

# fetch(prefix, after_revision, limit) -> up to `limit` events under prefix with revision > after_revision,
# in revision order, read from one consistent snapshot.  Raises CompactedError when after_revision is below
# the compacted revision.
FetchHistory = Callable[[str, int, int], Awaitable[list[Event]]]

DEFAULT_QUEUE_SIZE = 10_000
CATCH_UP_CHUNK = 1_000


class HubWatch(Watch):
    """One watch: events under `prefix` with revision > `from_revision`, each exactly once, in order."""

    def __init__(self, hub: WatchHub, prefix: str, from_revision: int, queue_size: int) -> None:
        self.prefix = prefix
        self._hub = hub
        self._last = from_revision  # the revision of the last event handed out (or the start point)
        self._max = queue_size
        self._live: deque[Event] = deque()
        self._replay: deque[Event] = deque()
        # True while the live buffer cannot be trusted to hold every event after self._last.
        self._lagging = from_revision < hub.revision
        self._drops = 0  # bumped on every buffer overflow; a catch-up read checks it did not race one
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    # Called by the hub on its loop, for events under our prefix.
    def _push(self, event: Event) -> None:
        if len(self._live) >= self._max:
            # Slow consumer: forget the buffer and catch up from the history when it comes back.
            self._live.clear()
            self._drops += 1
            self._lagging = True
        self._live.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> HubWatch:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._replay:
                event = self._replay.popleft()
                if event.revision > self._last:
                    self._last = event.revision
                    return event
                continue
            if self._lagging:
                await self._catch_up()
                continue
            if self._live:
                event = self._live.popleft()
                if event.revision > self._last:
                    self._last = event.revision
                    return event
                continue  # already handed out by the history replay
            self._waiter = self._hub.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def _catch_up(self) -> None:
        drops = self._drops
        try:
            events = await self._hub.fetch(self.prefix, self._last, CATCH_UP_CHUNK)
        except BaseException:
            await self.close()
            raise
        self._replay.extend(events)
        # Fewer than a chunk: the snapshot held every event after self._last.  Anything committed after it was
        # published after we subscribed, so it is in the live buffer, unless an overflow dropped it meanwhile.
        if len(events) < CATCH_UP_CHUNK and drops == self._drops:
            self._lagging = False

    @property
    def last_revision(self) -> int:
        """The revision of the last event handed out (or the revision the watch started from)."""
        return self._last

    @property
    def overflows(self) -> int:
        """How often the live buffer overflowed and the watch fell back to reading the history."""
        return self._drops

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub._unsubscribe(self)
        self._live.clear()
        self._replay.clear()
        self._wake()


class WatchHub:
    """The set of live watches of one store.  Everything here runs on `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fetch: FetchHistory, revision: int,
                 queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.loop = loop
        self.fetch = fetch
        self.revision = revision  # the last published revision
        self.queue_size = queue_size
        # Grouped by prefix: an event is matched against each distinct prefix once, not once per watch.
        self._by_prefix: dict[str, set[HubWatch]] = {}

    def subscribe(self, prefix: str, from_revision: int) -> HubWatch:
        watch = HubWatch(self, prefix, from_revision, self.queue_size)
        self._by_prefix.setdefault(prefix, set()).add(watch)
        return watch

    def _unsubscribe(self, watch: HubWatch) -> None:
        watches = self._by_prefix.get(watch.prefix)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._by_prefix[watch.prefix]

    def publish(self, events: list[Event]) -> None:
        """Hand committed events (in revision order) to every matching watch."""
        if not events:
            return
        groups = list(self._by_prefix.items())
        for event in events:
            key = event.key
            for prefix, watches in groups:
                if key.startswith(prefix):
                    for watch in watches:
                        watch._push(event)
        self.revision = events[-1].revision

    @property
    def watch_count(self) -> int:
        return sum(len(w) for w in self._by_prefix.values())

    async def close(self) -> None:
        for watches in list(self._by_prefix.values()):
            for watch in list(watches):
                await watch.close()
