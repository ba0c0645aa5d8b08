"""A rate-limited, delaying work queue with per-key de-duplication, as client-go's `workqueue`.

Semantics (same as upstream):
- a key is queued at most once: `add` of a key already waiting does nothing;
- a key being processed (between `get` and `done`) is never handed to a second worker; if it is added
  meanwhile it is queued again once, when `done` is called;
- `add_after(key, delay)` queues it later (the earliest of several pending delays wins);
- `add_rate_limited(key)` queues it after the rate limiter's delay: per-key exponential backoff (5 ms doubling
  to 1000 s) combined with an overall token bucket (10 qps, burst 100); `forget(key)` resets the key's
  backoff (call it when the key was processed successfully).

Everything runs in one asyncio loop; all methods but `get` are plain sync calls (usable from informer
handlers).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol

log = logging.getLogger("kubelite.client.workqueue")


class ShutDown(Exception):
    """`get` on a queue that is shut down (and drained)."""


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float: ...
    def forget(self, item: Hashable) -> None: ...
    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    """base_delay * 2**failures, capped at max_delay, per item."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp > 62:
            return self.max_delay
        return min(self.base_delay * (2 ** exp), self.max_delay)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (qps refill, `burst` capacity); each call reserves one token."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
        self._last = now

    def when(self, item: Hashable) -> float:
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def allow(self) -> bool:
        """Take a token if one is there (never waits): for what is dropped rather than delayed."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay of several limiters (every one of them is consulted, so all keep their state)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(base_delay: float = 0.005, max_delay: float = 1000.0, qps: float = 10.0,
                                    burst: int = 100) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter, with its numbers as parameters."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(base_delay, max_delay), BucketRateLimiter(qps, burst))


class WorkQueue:
    """See the module docstring. Keys are any hashables (controllers use "namespace/name" strings)."""

    def __init__(self, name: str = "", rate_limiter: RateLimiter | None = None) -> None:
        self.name = name
        self.rate_limiter: RateLimiter = rate_limiter or default_controller_rate_limiter()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._waiters: deque[asyncio.Future] = deque()
        self._shutting_down = False
        # delayed adds: heap of (ready_at, seq, key) plus the earliest ready_at per key
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._ready_at: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- queue ----------------------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> Hashable:
        """The next key (marked processing until `done`). Raises ShutDown once shut down and drained."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # hand our wake-up to another waiter
                raise
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed or delayed)."""
        return len(self._queue)

    def shutdown(self) -> None:
        """New adds are ignored; waiting `get`s (and later ones, once the queue is empty) raise ShutDown."""
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._delayed.clear()
        self._ready_at.clear()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # -- delaying -------------------------------------------------------------------------------------

    def add_after(self, key: Hashable, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        current = self._ready_at.get(key)
        if current is not None and current <= ready:
            return
        self._ready_at[key] = ready
        heapq.heappush(self._delayed, (ready, next(self._seq), key))
        if self._timer is None or ready < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = ready
            self._timer = loop.call_at(ready, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._delayed
        while heap and heap[0][0] <= now:
            ready, _, key = heapq.heappop(heap)
            if self._ready_at.get(key) == ready:  # else superseded by an earlier add_after
                del self._ready_at[key]
                self.add(key)
        if heap:
            self._timer_at = heap[0][0]
            self._timer = loop.call_at(self._timer_at, self._fire)

    @property
    def delayed(self) -> int:
        """Keys waiting for their add_after / add_rate_limited delay."""
        return len(self._ready_at)

    # -- rate limiting --------------------------------------------------------------------------------

    def add_rate_limited(self, key: Hashable) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Hashable) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return self.rate_limiter.num_requeues(key)


Handler = Callable[[Any], Awaitable[Any] | Any]


async def run_workers(queue: WorkQueue, n: int, handler: Handler) -> None:
    """Run `n` workers until the queue shuts down. Each takes a key and calls `handler(key)` (sync or async).
    Success → `forget(key)`; an exception → logged and `add_rate_limited(key)`; always `done(key)`.
    Cancelling this coroutine cancels the workers."""

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                result = handler(key)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception:
                log.exception("%s: error processing %r (retry %d)", queue.name or "workqueue", key,
                              queue.num_requeues(key) + 1)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            queue.done(key)

    tasks = [asyncio.create_task(worker(), name=f"{queue.name or 'workqueue'}-worker-{i}") for i in range(n)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
