import asyncio

from sched_helpers import pod

from kubelite.scheduler.config import SchedulerConfig
from kubelite.scheduler.podinfo import PodInfo
from kubelite.scheduler.queue import ASSIGNED_POD_ADD, ASSIGNED_POD_DELETE, NODE_ADD, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(config=None):
    clock = Clock()
    return SchedulingQueue(config or SchedulerConfig(), clock=clock), clock


def info(name, priority=None, created="2025-01-01T00:00:00Z", **kw):
    p = pod(name, priority=priority, **kw)
    p["metadata"]["creationTimestamp"] = created
    return PodInfo(p)


def test_priority_then_creation_order():
    q, _ = make()
    q.add(info("late", 0, "2025-01-01T00:00:05Z"))
    q.add(info("early", 0, "2025-01-01T00:00:01Z"))
    q.add(info("vip", 100, "2025-01-01T00:00:09Z"))
    assert [q.pop_nowait().info.name for _ in range(3)] == ["vip", "early", "late"]
    assert q.pop_nowait() is None


def test_unschedulable_waits_for_relevant_event():
    q, clock = make()
    q.add(info("p"))
    qp = q.pop_nowait()
    q.add_unschedulable(qp, {"NodeResourcesFit"})
    assert q.where("default/p") == "unschedulable"
    assert q.move_on_event(ASSIGNED_POD_ADD) == 0  # pod adds cannot free resources
    assert q.where("default/p") == "unschedulable"
    clock.t += 5  # past the 1 s backoff
    assert q.move_on_event(ASSIGNED_POD_DELETE) == 1
    assert q.where("default/p") == "active"


def test_moved_pod_waits_out_its_backoff():
    q, clock = make()
    q.add(info("p"))
    q.add_unschedulable(q.pop_nowait(), {"TaintToleration"})
    q.move_on_event(NODE_ADD)
    assert q.where("default/p") == "backoff"
    q.flush_backoff()
    assert q.where("default/p") == "backoff"
    clock.t += 1.0
    q.flush_backoff()
    assert q.where("default/p") == "active"


def test_backoff_doubles_up_to_max():
    q, clock = make(SchedulerConfig(pod_initial_backoff=1, pod_max_backoff=10))
    q.add(info("p"))
    waits = []
    for _ in range(6):
        qp = q.pop_nowait()
        q.add_unschedulable(qp, error=True)
        waits.append(qp.backoff_until - clock.t)
        clock.t = qp.backoff_until
        q.flush_backoff()
    assert waits == [1, 2, 4, 8, 10, 10]


def test_event_during_cycle_sends_pod_to_backoff():
    q, _ = make()
    q.add(info("p"))
    qp = q.pop_nowait()
    q.move_on_event(NODE_ADD)  # arrives while p is being scheduled
    q.add_unschedulable(qp, {"NodeResourcesFit"})
    assert q.where("default/p") == "backoff"


def test_max_stay_in_unschedulable():
    q, clock = make(SchedulerConfig(pod_max_in_unschedulable=300))
    q.add(info("p"))
    q.add_unschedulable(q.pop_nowait(), {"NodeAffinity"})
    clock.t += 299
    q.flush_unschedulable()
    assert q.where("default/p") == "unschedulable"
    clock.t += 1
    q.flush_unschedulable()
    assert q.where("default/p") == "active"


def test_scheduling_gates():
    q, _ = make()
    gated = info("g", schedulingGates=[{"name": "example.com/wait"}])
    q.add(gated)
    assert q.where("default/g") == "gated"
    assert q.pop_nowait() is None
    p = dict(gated.pod)
    p["spec"] = {k: v for k, v in p["spec"].items() if k != "schedulingGates"}
    q.update(PodInfo(p))
    assert q.pop_nowait().info.name == "g"


def test_update_of_unschedulable_pod_requeues_it():
    q, clock = make()
    q.add(info("p"))
    q.add_unschedulable(q.pop_nowait(), {"NodeAffinity"})
    clock.t += 2
    q.update(info("p"))
    assert q.where("default/p") == "active"


def test_delete_everywhere_and_in_flight():
    q, _ = make()
    q.add(info("a"))
    q.add(info("b"))
    q.delete("default/a")
    qp = q.pop_nowait()
    assert qp.info.name == "b"
    q.delete("default/b")  # deleted while being scheduled
    q.add_unschedulable(qp, {"NodeResourcesFit"})
    assert not q.where("default/b")
    assert len(q) == 0


async def test_pop_waits_for_a_pod():
    q, _ = make()
    task = asyncio.ensure_future(q.pop())
    await asyncio.sleep(0.01)
    assert not task.done()
    q.add(info("p"))
    qp = await asyncio.wait_for(task, 1)
    assert qp.info.name == "p"
