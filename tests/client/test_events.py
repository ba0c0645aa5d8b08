"""Event recording: upstream's correlator rules (unit, fake clock) and the recorder against a real server."""

from __future__ import annotations

import asyncio

from client.client_objects import CONFIGMAPS, EVENTS, cm
from kubelite.client.events import AGGREGATE_PREFIX, EventCorrelator, EventRecorder


def _event(message: str, reason: str = "R", name: str = "obj") -> dict:
    return {"metadata": {"name": f"{name}.1", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "namespace": "ns", "name": name, "uid": "u", "apiVersion": "v1"},
            "reason": reason, "message": message, "type": "Normal", "source": {"component": "test"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z", "count": 1,
            "reportingComponent": "test", "reportingInstance": ""}


def test_identical_events_are_counted_then_expire():
    now = [1000.0]
    c = EventCorrelator(clock=lambda: now[0])
    first = c.correlate(_event("same"))
    assert first.patch is None and first.event["count"] == 1
    now[0] += 10
    second = c.correlate(_event("same"))
    assert second.patch == {"count": 2, "lastTimestamp": "2024-01-01T00:00:00Z", "message": "same"}
    assert second.event["metadata"]["name"] == first.event["metadata"]["name"]
    now[0] += 601  # beyond the 10-minute window: a new Event
    third = c.correlate(_event("same"))
    assert third.patch is None and third.event["count"] == 1


def test_similar_events_are_aggregated_from_the_tenth_message():
    now = [1000.0]
    c = EventCorrelator(clock=lambda: now[0])
    results = [c.correlate(_event(f"m{i}")) for i in range(12)]
    assert all(r.patch is None and not r.event["message"].startswith(AGGREGATE_PREFIX) for r in results[:9])
    assert results[9].event["message"] == AGGREGATE_PREFIX + "m9" and results[9].patch is None
    # later similar events update the same aggregate Event
    assert results[10].patch is not None and results[10].patch["message"] == AGGREGATE_PREFIX + "m10"
    assert results[10].event["metadata"]["name"] == results[9].event["metadata"]["name"]
    assert results[11].event["count"] == 3
    # a different reason is a different group
    other = c.correlate(_event("m0", reason="Other"))
    assert not other.event["message"].startswith(AGGREGATE_PREFIX)


def test_spam_filter_token_bucket():
    now = [1000.0]
    c = EventCorrelator(clock=lambda: now[0], max_events=1000)
    kept = [c.correlate(_event(f"x{i}")) for i in range(30)]
    assert sum(not r.skip for r in kept) == 25
    now[0] += 300  # one more token every 5 minutes
    assert not c.correlate(_event("y")).skip
    assert c.correlate(_event("z")).skip
    assert not c.correlate(_event("other", name="obj2")).skip  # per object


async def test_recorder_writes_counts_and_aggregates(api, ns):
    obj = await api.create(CONFIGMAPS, cm("subject", ns))
    rec = EventRecorder(api, "test-controller")
    for _ in range(3):
        rec.event(obj, "Normal", "Synced", "all good")
    rec.event(obj, "Warning", "Failed", "broken")
    await asyncio.wait_for(rec.flush(), 10)
    events = (await api.list(EVENTS, ns))["items"]
    by_reason = {e["reason"]: e for e in events}
    synced = by_reason["Synced"]
    assert len(events) == 2 and synced["count"] == 3 and synced["message"] == "all good"
    assert synced["metadata"]["name"].startswith("subject.")
    assert synced["involvedObject"] == {"kind": "ConfigMap", "apiVersion": "v1", "namespace": ns,
                                        "name": "subject", "uid": obj["metadata"]["uid"],
                                        "resourceVersion": obj["metadata"]["resourceVersion"]}
    assert synced["source"] == {"component": "test-controller"}
    assert synced["reportingComponent"] == "test-controller" and synced["type"] == "Normal"
    assert synced["firstTimestamp"] and synced["lastTimestamp"]
    assert by_reason["Failed"]["type"] == "Warning" and by_reason["Failed"]["count"] == 1

    for i in range(12):
        rec.event(obj, "Warning", "Retry", f"attempt {i}")
    await asyncio.wait_for(rec.flush(), 10)
    retry = [e for e in (await api.list(EVENTS, ns))["items"] if e["reason"] == "Retry"]
    combined = [e for e in retry if e["message"].startswith(AGGREGATE_PREFIX)]
    assert len(retry) == 10 and len(combined) == 1
    assert combined[0]["message"] == AGGREGATE_PREFIX + "attempt 11" and combined[0]["count"] == 3
    await rec.stop()


async def test_recorder_is_bounded_and_non_blocking(api, ns):
    obj = await api.create(CONFIGMAPS, cm("flood", ns))
    rec = EventRecorder(api, "flooder", max_queue=5)
    for i in range(20):
        rec.event(obj, "Normal", "Flood", f"m{i}")  # returns at once even though nothing is written yet
    assert rec.dropped == 15
    await rec.stop()


async def test_recorders_sharing_a_budget_drop_past_it(api, ns):
    """Simulated nodes share one budget (the kubelet's eventRecordQPS/eventBurst): past it events are dropped."""
    from kubelite.client.workqueue import BucketRateLimiter

    now = [0.0]
    budget = BucketRateLimiter(qps=2.0, burst=3, clock=lambda: now[0])
    obj = await api.create(CONFIGMAPS, cm("budget", ns))
    recs = [EventRecorder(api, "kubelet", host=f"node-{i}", limiter=budget) for i in range(2)]
    for i in range(4):
        for rec in recs:
            rec.event(obj, "Normal", "Pulled", f"m{i}")
    assert sum(r.dropped for r in recs) == 5  # 8 asked, a burst of 3 allowed
    now[0] += 1.0  # two more tokens a second later
    for rec in recs:
        rec.event(obj, "Normal", "Started", "again")
    assert sum(r.dropped for r in recs) == 5
    recs[0].event(obj, "Normal", "Started", "once more")
    assert sum(r.dropped for r in recs) == 6
    for rec in recs:
        await rec.flush()
    events = (await api.list(EVENTS, ns))["items"]
    assert sorted(e["source"]["host"] for e in events if e["involvedObject"]["name"] == "budget") == \
        ["node-0", "node-0", "node-0", "node-1", "node-1"]
    for rec in recs:
        await rec.stop()
