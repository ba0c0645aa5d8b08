"""The scheduler's informer handlers decide what reaches the queue and the cache (no API server needed)."""

import asyncio

from sched_helpers import node, pod

from kubelite.scheduler import Scheduler, SchedulerConfig


class NoClient:
    """Handlers must not call the API."""

    def __getattr__(self, name):
        raise AssertionError(f"unexpected API call {name}")


def make():
    return Scheduler(NoClient(), SchedulerConfig(leader_elect=False))


async def test_only_our_pending_pods_are_queued():
    s = make()
    s.on_pod_add(pod("mine"))
    s.on_pod_add(pod("theirs", schedulerName="other-scheduler"))
    terminating = pod("going")
    terminating["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    s.on_pod_add(terminating)
    done = pod("done")
    done["status"]["phase"] = "Succeeded"
    s.on_pod_add(done)
    s.on_pod_add(pod("gated", schedulingGates=[{"name": "wait"}]))
    assert s.queue.where("default/mine") == "active"
    assert s.queue.where("default/gated") == "gated"
    assert not s.queue.where("default/theirs")
    assert not s.queue.where("default/going")
    assert not s.queue.where("default/done")


async def test_bound_pods_go_to_the_cache_and_leave_the_queue():
    s = make()
    s.on_node_add(node("a"))
    p = pod("p", "500m")
    s.on_pod_add(p)
    bound = {**p, "spec": {**p["spec"], "nodeName": "a"}}
    s.on_pod_update(p, bound)
    assert not s.queue.where("default/p")
    assert s.cache.nodes["a"].req.cpu == 500
    finished = {**bound, "status": {"phase": "Succeeded"}}
    s.on_pod_update(bound, finished)
    assert s.cache.nodes["a"].req.cpu == 0
    s.on_pod_delete(finished)
    assert not s.cache.nodes["a"].pods


async def test_assumed_pod_is_not_requeued_by_its_own_status_patch():
    s = make()
    s.on_node_add(node("a"))
    p = pod("p")
    s.on_pod_add(p)
    qp = s.queue.pop_nowait()
    s.cache.assume_pod(qp.info, "a")
    patched = {**p, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]}}
    s.on_pod_update(p, patched)
    assert s.queue.where("default/p") == "in_flight"


async def test_node_add_and_relevant_update_move_unschedulable_pods():
    s = make()
    s.on_pod_add(pod("p"))
    qp = s.queue.pop_nowait()
    s.queue.add_unschedulable(qp, {"NodeResourcesFit"})
    qp.backoff_until = 0
    n = node("a")
    s.on_node_add(n)
    assert s.queue.where("default/p") == "active"
    qp = s.queue.pop_nowait()
    s.queue.scheduling_cycle += 1
    s.queue.move_request_cycle = -1
    s.queue.add_unschedulable(qp, {"NodeResourcesFit"})
    qp.backoff_until = 0
    heartbeat = {**n, "status": {**n["status"], "conditions": [{"type": "Ready", "status": "True",
                                                                 "lastHeartbeatTime": "later"}]}}
    s.on_node_update(n, heartbeat)
    assert s.queue.where("default/p") == "unschedulable"
    bigger = {**n, "status": {**n["status"], "allocatable": {"cpu": "64", "memory": "8Gi", "pods": "110"}}}
    s.on_node_update(heartbeat, bigger)
    assert s.queue.where("default/p") == "active"
    await asyncio.sleep(0)
