"""Lease-based leader election with two contenders on a real server."""

from __future__ import annotations

import asyncio
import uuid

from client.client_objects import LEASES
from kubelite.client.leaderelection import LeaderElector

FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


async def test_one_leads_and_the_other_takes_over_after_release(api):
    name = f"le-{uuid.uuid4().hex[:6]}"
    log: list[str] = []
    leading = {"a": asyncio.Event(), "b": asyncio.Event()}

    def contender(ident: str) -> LeaderElector:
        async def lead():
            log.append(f"start {ident}")
            leading[ident].set()
            await asyncio.sleep(3600)

        return LeaderElector(api, name, "default", ident, on_started_leading=lead,
                             on_stopped_leading=lambda: log.append(f"stop {ident}"), **FAST)

    a, b = contender("a"), contender("b")
    ta = asyncio.create_task(a.run())
    await asyncio.wait_for(leading["a"].wait(), 5)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(1.0)  # b keeps retrying while a renews
    assert a.is_leader and not b.is_leader and b.leader == "a"
    lease = await api.get(LEASES, "default", name)
    assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseDurationSeconds"] == 2
    assert lease["spec"]["leaseTransitions"] == 0 and lease["spec"]["renewTime"].endswith("Z")

    ta.cancel()  # a shuts down cleanly: releases the lease, b takes over without waiting for expiry
    await asyncio.gather(ta, return_exceptions=True)
    await asyncio.wait_for(leading["b"].wait(), 1.5)
    assert b.is_leader and not a.is_leader
    lease = await api.get(LEASES, "default", name)
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 0
    assert log == ["start a", "stop a", "start b"]
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)


async def test_takeover_after_expiry_when_leader_vanishes(api):
    name = f"le-{uuid.uuid4().hex[:6]}"
    a = LeaderElector(api, name, "default", "a", release_on_cancel=False, **FAST)
    async with a:
        assert a.is_leader
        a._renewer.cancel()  # a "crashes": it stops renewing without releasing
    b = LeaderElector(api, name, "default", "b", **FAST)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with b:
        waited = loop.time() - t0
        lease = await api.get(LEASES, "default", name)
        assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert 1.8 <= waited < 4.0  # about one lease duration


async def test_leader_steps_down_when_lease_is_taken(api):
    name = f"le-{uuid.uuid4().hex[:6]}"
    stopped = asyncio.Event()
    a = LeaderElector(api, name, "default", "a", on_stopped_leading=stopped.set, **FAST)
    task = asyncio.create_task(a.run())
    for _ in range(50):
        if a.is_leader:
            break
        await asyncio.sleep(0.05)
    lease = await api.get(LEASES, "default", name)
    lease["spec"]["holderIdentity"] = "intruder"
    await api.update(LEASES, lease)
    await asyncio.wait_for(stopped.wait(), 3)
    assert not a.is_leader and a.lost.is_set()
    await asyncio.wait_for(task, 1)


def test_a_waiting_contender_wakes_when_the_lease_runs_out():
    now = [100.0]
    e = LeaderElector(None, "x", "default", "b", lease_duration=15.0, renew_deadline=10.0, retry_period=2.0,
                      clock=lambda: now[0])
    e._observe({"holderIdentity": "a", "leaseDurationSeconds": 15})  # seen renewed at 100
    assert e._next_try() == 2.0  # far from expiry: the retry period
    now[0] = 114.5
    assert abs(e._next_try() - 0.51) < 1e-9  # expiry at 115: wake right after it, not at 116.5
    now[0] = 116.0
    assert e._next_try() == 2.0  # already expired (the attempt itself takes over)
