"""WorkQueue semantics as client-go's: de-duplication, processing exclusivity, delays, backoff, shutdown."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubelite.client.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)


async def test_dedupe_and_order():
    q = WorkQueue()
    for k in ("a", "b", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_readd_while_processing_runs_again_once_after_done():
    q = WorkQueue()
    q.add("k")
    key = await q.get()
    q.add("k")
    q.add("k")
    assert len(q) == 0  # not handed to a second worker while processing
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "k"
    q.done("k")
    assert len(q) == 0


async def test_get_waits_for_add():
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_add_after_timing_and_earliest_wins():
    q = WorkQueue()
    t0 = time.monotonic()
    q.add_after("late", 0.2)
    q.add_after("soon", 0.05)
    q.add_after("late", 0.1)  # an earlier time replaces the later one
    q.add_after("soon", 1.0)  # a later time does not postpone
    assert len(q) == 0 and q.delayed == 2
    assert await q.get() == "soon"
    assert 0.045 <= time.monotonic() - t0 < 0.5  # upper bounds are loose: CI machines are busy
    assert await q.get() == "late"
    assert 0.095 <= time.monotonic() - t0 < 0.6
    assert q.delayed == 0


async def test_add_after_dedupes_with_queued():
    q = WorkQueue()
    q.add("a")
    q.add_after("a", 0.01)
    await asyncio.sleep(0.03)
    assert len(q) == 1


def test_exponential_backoff_defaults():
    rl = ItemExponentialFailureRateLimiter()
    delays = [rl.when("x") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert rl.num_requeues("x") == 5
    for _ in range(30):
        rl.when("x")
    assert rl.when("x") == 1000.0
    rl.forget("x")
    assert rl.when("x") == 0.005 and rl.when("y") == 0.005


def test_token_bucket():
    now = [0.0]
    rl = BucketRateLimiter(qps=10, burst=3, clock=lambda: now[0])
    assert [rl.when(i) for i in range(3)] == [0, 0, 0]
    assert rl.when(3) == pytest.approx(0.1)
    assert rl.when(4) == pytest.approx(0.2)
    now[0] = 10.0  # refilled, capped at burst
    assert [rl.when(i) for i in range(3)] == [0, 0, 0]
    assert rl.when(9) == pytest.approx(0.1)


async def test_add_rate_limited_backoff_and_forget():
    q = WorkQueue(rate_limiter=default_controller_rate_limiter(base_delay=0.02, max_delay=1.0))
    delays = []
    for _ in range(3):
        t0 = time.monotonic()
        q.add_rate_limited("k")
        assert await q.get() == "k"
        delays.append(time.monotonic() - t0)
        q.done("k")
    assert delays[0] >= 0.019 and delays[1] >= 0.039 and delays[2] >= 0.079
    assert delays[2] < 0.5
    assert q.num_requeues("k") == 3
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_shutdown_wakes_getters_and_drains():
    q = WorkQueue()
    q.add("left")
    q.shutdown()
    q.add("ignored")
    assert await q.get() == "left"
    with pytest.raises(ShutDown):
        await q.get()
    q2 = WorkQueue()
    waiting = asyncio.create_task(q2.get())
    await asyncio.sleep(0.01)
    q2.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 1)


async def test_cancelled_getter_does_not_lose_wakeup():
    q = WorkQueue()
    g1 = asyncio.create_task(q.get())
    g2 = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.add("only")
    g1.cancel()
    done = await asyncio.gather(g1, g2, return_exceptions=True)
    assert "only" in done


async def test_run_workers_retries_failures_and_never_runs_a_key_twice_at_once():
    q = WorkQueue(rate_limiter=ItemExponentialFailureRateLimiter(0.001, 0.01))
    attempts: dict[str, int] = {}
    running: set[str] = set()
    overlap = []

    async def handler(key: str) -> None:
        if key in running:
            overlap.append(key)
        running.add(key)
        await asyncio.sleep(0.005)
        running.discard(key)
        attempts[key] = attempts.get(key, 0) + 1
        if key == "flaky" and attempts[key] < 3:
            raise RuntimeError("try again")

    runner = asyncio.create_task(run_workers(q, 4, handler))
    for k in ("a", "b", "flaky", "a", "a"):
        q.add(k)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if attempts.get("flaky") == 3:
            break
    assert attempts["flaky"] == 3 and attempts["b"] == 1 and 1 <= attempts["a"] <= 2
    assert q.num_requeues("flaky") == 0  # forgotten after the success
    assert not overlap
    q.shutdown()
    await asyncio.wait_for(runner, 1)


async def test_run_workers_sync_handler():
    q = WorkQueue()
    seen = []
    runner = asyncio.create_task(run_workers(q, 2, seen.append))
    for k in range(10):
        q.add(k)
    await asyncio.sleep(0.02)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert sorted(seen) == list(range(10))
