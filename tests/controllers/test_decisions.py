"""Unit tests of the controllers' decisions: rolling-update step sizes, proportional scaling, the template
hash, revision annotations, pod ranking, slow start, expectations, namespace conditions, --controllers."""

from __future__ import annotations

import itertools
import time

import pytest

from kubelite.controllers import controller_utils as cu
from kubelite.controllers import deployment_util as du
from kubelite.controllers.manager import CONTROLLERS, ControllerManagerConfig, resolve_controllers
from kubelite.controllers.namespace import ContentTotals, content_conditions, merge_conditions


def _d(replicas, surge="25%", unavailable="25%", strategy="RollingUpdate", generation=1, status_replicas=0):
    status = {"replicas": status_replicas} if status_replicas else {}
    spec = {"replicas": replicas, "strategy": {"type": strategy}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "d", "generation": generation}, "spec": spec, "status": status}


_counter = itertools.count()


def _rs(name, replicas, available=None, created=None, **ann):
    t = created if created is not None else next(_counter)
    return {"metadata": {"name": name, "uid": name,
                         "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_600_000_000 + t)),
                         "annotations": {k.replace("_", "-"): str(v) for k, v in ann.items()}},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": replicas if available is None else available}}


# ------------------------------------------------------------------------------------ surge / unavailable


@pytest.mark.parametrize("surge,unavailable,replicas,expected", [
    ("25%", "25%", 10, (3, 2)),   # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    ("25%", "25%", 4, (1, 1)),
    (0, 0, 5, (0, 1)),            # both zero would deadlock: unavailable becomes 1
    ("0%", "0%", 5, (0, 1)),
    (2, 0, 5, (2, 0)),
    (0, 3, 5, (0, 3)),
    ("50%", "50%", 3, (2, 1)),
    ("100%", "100%", 3, (3, 3)),
    ("10%", 1, 7, (1, 1)),
    (1, "30%", 7, (1, 2)),
])
def test_fenceposts(surge, unavailable, replicas, expected):
    assert du.resolve_fenceposts(surge, unavailable, replicas) == expected


def test_max_unavailable_is_capped_and_zero_for_recreate():
    assert du.max_unavailable(_d(3, 0, 10)) == 3
    assert du.max_unavailable(_d(0, 1, 1)) == 0
    assert du.max_unavailable(_d(3, strategy="Recreate")) == 0
    assert du.max_surge(_d(3, strategy="Recreate")) == 0


def _simulate(replicas, surge, unavailable, ready_each_step=True):
    """Run rolling-update decisions to completion; pods become available between steps. Returns the steps
    [(new size, old size)] and the extremes seen."""
    d = _d(replicas, surge, unavailable)
    old = _rs("old", replicas, created=0)
    new = _rs("new", 0, created=1)
    steps = []
    peak, floor = replicas, replicas
    for _ in range(200):
        all_rss = [old, new]
        target = du.new_rs_new_replicas(d, all_rss, new) if du.spec_replicas(new) < replicas else replicas
        if target != du.spec_replicas(new):
            new = du.with_replicas(new, target)
        else:
            budget = du.max_scaled_down(d, [old, new], new)
            if budget > 0:
                for _unused, size in du.cleanup_unhealthy_plan([old], budget):
                    old = du.with_replicas(old, size)
                for _unused, size in du.scale_down_old_plan(d, [old, new], [old]):
                    old = du.with_replicas(old, size)
        # old pods go away at once; new ones become available
        old["status"] = {"replicas": du.spec_replicas(old), "availableReplicas": du.spec_replicas(old)}
        peak = max(peak, du.spec_replicas(old) + du.spec_replicas(new))
        floor = min(floor, du.spec_replicas(old) + du.status_int(new, "availableReplicas"))
        new["status"] = {"replicas": du.spec_replicas(new), "availableReplicas": du.spec_replicas(new)}
        steps.append((du.spec_replicas(new), du.spec_replicas(old)))
        if du.spec_replicas(new) == replicas and du.spec_replicas(old) == 0:
            return steps, peak, floor
    raise AssertionError(f"no progress: {steps[-5:]}")


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5, 10])
@pytest.mark.parametrize("surge,unavailable", list(itertools.product([0, 1, 2, "25%", "50%", "100%"],
                                                                      [0, 1, 2, "25%", "50%", "100%"])))
def test_rolling_update_stays_within_bounds(replicas, surge, unavailable):
    s, u = du.resolve_fenceposts(surge, unavailable, replicas)
    u = min(u, replicas)
    steps, peak, floor = _simulate(replicas, surge, unavailable)
    assert peak <= replicas + s
    assert floor >= replicas - u
    assert steps[-1] == (replicas, 0)


def test_rolling_update_steps_default_strategy():
    # 10 replicas, 25%/25%: surge 3 (new RS to 3), then old down to 8 (10+3-... keep 8 available), …
    steps, _, _ = _simulate(10, "25%", "25%")
    assert steps[0] == (3, 10)
    assert steps[1] == (3, 5)       # 13 available - 8 minimum = 5 removed from old
    assert steps[-1] == (10, 0)


def test_rolling_update_max_unavailable_only():
    steps, peak, floor = _simulate(4, 0, 1)
    assert steps[0] == (0, 3)       # no surge: first remove one old pod
    assert steps[1] == (1, 3)
    assert peak == 4 and floor == 3


def test_cleanup_unhealthy_first():
    old1 = _rs("a", 3, available=1, created=0)
    old2 = _rs("b", 2, available=0, created=5)
    plan = du.cleanup_unhealthy_plan([old2, old1], 3)
    assert [(rs["metadata"]["name"], n) for rs, n in plan] == [("a", 1), ("b", 1)]


# ---------------------------------------------------------------------------------------- proportional


def test_proportional_scaling_upstream_example():
    """The documented example: 10 replicas, maxSurge 3, maxUnavailable 2; a rollout is stuck with the old RS at
    8 and the new at 5; scaling to 15 adds 3 to the old and 2 to the new ReplicaSet."""
    d = _d(15, 3, 2, status_replicas=13)
    old = _rs("old", 8, created=0, **{"deployment.kubernetes.io/max_replicas": 13,
                                      "deployment.kubernetes.io/desired_replicas": 10})
    new = _rs("new", 5, available=0, created=1, **{"deployment.kubernetes.io/max_replicas": 13,
                                                   "deployment.kubernetes.io/desired_replicas": 10})
    plan = {rs["metadata"]["name"]: n for rs, n in du.scale_plan(d, new, [old])}
    assert plan == {"old": 11, "new": 7}


def test_proportional_scale_down_and_leftovers():
    d = _d(5, 1, 0, status_replicas=11)
    old = _rs("old", 6, created=0, **{"deployment.kubernetes.io/max_replicas": 11})
    new = _rs("new", 5, available=0, created=1, **{"deployment.kubernetes.io/max_replicas": 11})
    plan = {rs["metadata"]["name"]: n for rs, n in du.scale_plan(d, new, [old])}
    assert sum(plan.values()) == 6  # 5 + surge 1
    assert plan["old"] >= plan["new"]


def test_scale_only_active_or_latest():
    d = _d(7)
    old = _rs("old", 0, created=0)
    new = _rs("new", 3, created=1)
    assert [(rs["metadata"]["name"], n) for rs, n in du.scale_plan(d, new, [old])] == [("new", 7)]


def test_saturated_new_rs_scales_old_to_zero():
    d = _d(3)
    new = _rs("new", 3, created=1, **{"deployment.kubernetes.io/desired_replicas": 3})
    old = _rs("old", 2, created=0)
    assert [(rs["metadata"]["name"], n) for rs, n in du.scale_plan(d, new, [old])] == [("old", 0)]


# ------------------------------------------------------------------------------------- hash, revisions


def test_hash_alphabet_and_stability():
    t = {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2"}]}}
    h = du.compute_hash(t)
    assert h == du.compute_hash({"spec": t["spec"], "metadata": t["metadata"]})  # key order does not matter
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 6 <= len(h) <= 10
    assert du.compute_hash(t, 1) != h
    t2 = {**t, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.16.1"}]}}
    assert du.compute_hash(t2) != h
    assert du.safe_encode("0123456789") == "456789bcdf"
    assert du.fnv32a(b"") == 0x811C9DC5 and du.fnv32a(b"a") == 0xE40C292C


def test_equal_ignore_hash_and_nulls():
    a = {"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}, "spec": {"c": 1}}
    b = {"metadata": {"labels": {"app": "x"}, "creationTimestamp": None}, "spec": {"c": 1}}
    assert du.equal_ignore_hash(a, b)
    assert not du.equal_ignore_hash(a, {"metadata": {"labels": {"app": "y"}}, "spec": {"c": 1}})


def test_revision_annotations_and_history():
    d = {"metadata": {"annotations": {"kubernetes.io/change-cause": "why", du.LAST_APPLIED: "{}",
                                      du.REVISION: "9"}}, "spec": {"replicas": 3}}
    rs = {"metadata": {"annotations": {du.REVISION: "1"}}, "spec": {"replicas": 0}}
    assert du.set_new_rs_annotations(d, rs, 3, True, 2000)
    ann = rs["metadata"]["annotations"]
    assert ann[du.REVISION] == "3" and ann[du.REVISION_HISTORY] == "1"
    assert ann["kubernetes.io/change-cause"] == "why" and du.LAST_APPLIED not in ann
    assert du.DESIRED_REPLICAS not in ann  # only for new ReplicaSets
    assert du.set_new_rs_annotations(d, rs, 5, True, 2000)
    assert ann[du.REVISION_HISTORY] == "1,3"
    assert not du.set_new_rs_annotations(d, rs, 5, True, 2000)
    # the history is trimmed from the front to its length limit
    assert du.set_new_rs_annotations(d, rs, 7, True, 4)
    assert ann[du.REVISION_HISTORY] == "3,5"
    fresh = {"metadata": {}, "spec": {"replicas": 0}}
    du.set_new_rs_annotations(d, fresh, 1, False, 2000)
    assert fresh["metadata"]["annotations"][du.DESIRED_REPLICAS] == "3"
    assert fresh["metadata"]["annotations"][du.MAX_REPLICAS] == "4"


def test_conditions_keep_transition_time():
    status = {}
    du.set_condition(status, du.new_condition("Progressing", "True", "A", "m", now=100))
    du.set_condition(status, du.new_condition("Available", "False", "X", "m", now=100))
    du.set_condition(status, du.new_condition("Progressing", "True", "B", "m2", now=200))
    [c] = [c for c in status["conditions"] if c["type"] == "Progressing"]
    assert c["reason"] == "B" and c["lastTransitionTime"] == cu.now_rfc3339(100)
    assert c["lastUpdateTime"] == cu.now_rfc3339(200)
    assert [c["type"] for c in status["conditions"]] == ["Available", "Progressing"]


def test_status_and_completion():
    d = _d(3, generation=2)
    new = _rs("new", 3)
    old = _rs("old", 0)
    status = du.calculate_status([old, new], new, d)
    assert status["replicas"] == 3 and status["updatedReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["observedGeneration"] == 2 and "unavailableReplicas" not in status
    assert du.deployment_complete(d, status)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    status = du.calculate_status([_rs("new", 3, available=1)], None, d)
    assert {c["type"]: c for c in status["conditions"]}["Available"]["reason"] == "MinimumReplicasUnavailable"
    assert status["unavailableReplicas"] == 2


def test_timed_out():
    d = _d(1)
    d["spec"]["progressDeadlineSeconds"] = 10
    status = {"conditions": [du.new_condition("Progressing", "True", du.RS_UPDATED_REASON, "m", now=1000)]}
    assert not du.deployment_timed_out(d, status, 1005)
    assert du.deployment_timed_out(d, status, 1011)
    d["spec"]["progressDeadlineSeconds"] = du.MAX_INT32
    assert not du.deployment_timed_out(d, status, 10**9)


# ---------------------------------------------------------------------------------------- pods


def _pod(name, node="", phase="Pending", ready=None, created=0, restarts=0, cost=None, uid=None):
    meta = {"name": name, "uid": uid or name,
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000 + created))}
    if cost is not None:
        meta["annotations"] = {cu.POD_DELETION_COST: str(cost)}
    status = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True",
                                 "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                     time.gmtime(1_700_000_000 + ready))}]
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def _names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_ranking_unscheduled_pending_unready_first():
    now = 1_700_100_000
    pods = [_pod("running-ready", "n1", "Running", ready=10), _pod("unscheduled"),
            _pod("pending", "n1", "Pending"), _pod("unknown", "n1", "Unknown"),
            _pod("running-unready", "n1", "Running")]
    assert _names(cu.rank_pods_for_deletion(pods, pods, now)) == [
        "unscheduled", "pending", "unknown", "running-unready", "running-ready"]


def test_ranking_cost_doubled_up_ready_time_restarts_age():
    now = 1_700_100_000
    a = _pod("cheap", "n1", "Running", ready=10, cost=-5)
    b = _pod("dear", "n1", "Running", ready=10, cost=5)
    assert _names(cu.rank_pods_for_deletion([b, a], [a, b], now)) == ["cheap", "dear"]
    # more related pods on the same node go first
    c = _pod("crowded", "n1", "Running", ready=10)
    d = _pod("alone", "n2", "Running", ready=10)
    related = [c, d, _pod("x", "n1", "Running", ready=10), _pod("y", "n1", "Running", ready=10)]
    assert _names(cu.rank_pods_for_deletion([d, c], related, now)) == ["crowded", "alone"]
    # ready for less time first (logarithmic buckets: 1 minute vs ~a day differ)
    e = _pod("young", "n1", "Running", ready=100_000 - 60)
    f = _pod("old", "n2", "Running", ready=0)
    assert _names(cu.rank_pods_for_deletion([f, e], [], now)) == ["young", "old"]
    # more restarts first
    g = _pod("flappy", "n1", "Running", ready=10, restarts=5)
    h = _pod("steady", "n2", "Running", ready=10)
    assert _names(cu.rank_pods_for_deletion([h, g], [], now)) == ["flappy", "steady"]
    # newer first
    i = _pod("newer", "n1", "Pending", created=90_000)
    j = _pod("older", "n2", "Pending", created=0)
    assert _names(cu.rank_pods_for_deletion([j, i], [], now)) == ["newer", "older"]


def test_pod_availability():
    p = _pod("p", "n", "Running", ready=0)
    assert cu.is_pod_available(p, 0, 1_700_000_001)
    assert not cu.is_pod_available(p, 10, 1_700_000_005)
    assert cu.is_pod_available(p, 10, 1_700_000_011)
    assert not cu.is_pod_available(_pod("q", "n", "Running"), 0, 1_700_000_011)


def test_slow_start_batches():
    assert cu.slow_start_batches(0) == []
    assert cu.slow_start_batches(1) == [1]
    assert cu.slow_start_batches(10) == [1, 2, 4, 3]
    assert cu.slow_start_batches(500) == [1, 2, 4, 8, 16, 32, 64, 128, 245]
    assert sum(cu.slow_start_batches(3000)) == 3000


async def test_slow_start_stops_after_a_failed_batch():
    calls = []

    async def fn():
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("quota")

    ok, err = await cu.slow_start(20, fn)
    assert len(calls) == 7 and ok == 6 and str(err) == "quota"  # batches 1, 2, 4: the third fails, stop


def test_expectations():
    now = [0.0]
    e = cu.Expectations(timeout=300, clock=lambda: now[0])
    assert e.satisfied("k")
    e.expect_creations("k", 2)
    assert not e.satisfied("k")
    e.creation_observed("k")
    e.creation_observed("k")
    assert e.satisfied("k")
    e.expect_deletions("k", ["ns/a", "ns/b"])
    e.deletion_observed("k", "ns/a")
    e.deletion_observed("k", "ns/a")
    assert not e.satisfied("k")
    now[0] = 301
    assert e.satisfied("k")  # expired


# ------------------------------------------------------------------------------------------ namespace


def test_namespace_conditions():
    totals = ContentTotals()
    totals.remaining = {("", "pods"): 2, ("apps", "deployments"): 1}
    totals.finalizers = {"example.com/x": 3}
    conds = content_conditions(totals, None, now=0)
    by = {c["type"]: c for c in conds}
    assert by["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances")
    assert by["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    status = {}
    assert merge_conditions(status, conds, now=0)
    assert [c["type"] for c in status["conditions"]] == [
        "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure", "NamespaceContentRemaining", "NamespaceFinalizersRemaining"]
    ok = {c["type"]: c for c in status["conditions"]}
    assert ok["NamespaceDeletionDiscoveryFailure"]["reason"] == "ResourcesDiscovered"
    assert ok["NamespaceDeletionContentFailure"]["message"] == (
        "All content successfully deleted, may be waiting on finalization")
    assert not merge_conditions(status, conds, now=5)
    assert merge_conditions(status, [], now=10)
    assert {c["type"]: c for c in status["conditions"]}["NamespaceContentRemaining"]["reason"] == "ContentRemoved"
    errors = ContentTotals()
    errors.errors = ["b failed", "a failed"]
    [c] = content_conditions(errors, None)
    assert c["message"] == "Failed to delete all resource types, 2 remaining: a failed, b failed"


# ------------------------------------------------------------------------------------------ manager


def test_controllers_flag():
    config = ControllerManagerConfig()
    assert set(resolve_controllers(None, config)) == set(CONTROLLERS)
    assert resolve_controllers(["*", "-garbagecollector"], config) == [
        n for n in CONTROLLERS if n != "garbage-collector-controller"]
    assert resolve_controllers(["deployment", "replicaset"], config) == [
        "deployment-controller", "replicaset-controller"]
    with pytest.raises(ValueError):
        resolve_controllers(["nope"], config)
    assert "garbage-collector-controller" not in resolve_controllers(
        None, ControllerManagerConfig(enable_garbage_collector=False))
