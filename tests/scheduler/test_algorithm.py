import random

import pytest
from sched_helpers import cache_with, node, pod

from kubelite.scheduler.algorithm import Algorithm, NoNodesAvailable
from kubelite.scheduler.config import SchedulerConfig
from kubelite.scheduler.framework import Diagnosis, FitError, num_feasible_nodes_to_find
from kubelite.scheduler.podinfo import PodInfo
from kubelite.scheduler.preemption import preempt

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def test_num_feasible_nodes_to_find():
    assert num_feasible_nodes_to_find(50, 0) == 50
    assert num_feasible_nodes_to_find(100, 0) == 100  # at least 100
    assert num_feasible_nodes_to_find(1000, 0) == 420  # 50 - 1000/125 = 42%
    assert num_feasible_nodes_to_find(5000, 0) == 500  # 10%
    assert num_feasible_nodes_to_find(10000, 0) == 500  # floor of 5%
    assert num_feasible_nodes_to_find(300, 0) == 144  # 50 - 300//125 = 48%
    assert num_feasible_nodes_to_find(300, 10) == 100  # never below 100
    assert num_feasible_nodes_to_find(1000, 100) == 1000


def test_fit_error_message_like_upstream():
    c = cache_with([node("cp", taints=[CP_TAINT]), node("w1", cpu="1"), node("w2", cpu="1")])
    alg = Algorithm(c)
    p = PodInfo(pod("big", "800m"))
    c.add_pod(pod("x", "500m", node_name="w1"))
    c.add_pod(pod("y", "500m", node_name="w2"))
    with pytest.raises(FitError) as ei:
        alg.schedule(p)
    err = ei.value
    assert str(err) == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.")
    result = preempt(alg, p, err)
    err.diagnosis.post_filter_msg = result.message
    assert str(err) == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes "
                        "are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
                        "found for incoming pod.")


def test_unresolvable_everywhere_message():
    c = cache_with([node("a", cpu="1"), node("b", cpu="1"), node("c", cpu="1")])
    alg = Algorithm(c)
    p = PodInfo(pod("huge", "2"))
    with pytest.raises(FitError) as ei:
        alg.schedule(p)
    err = ei.value
    err.diagnosis.post_filter_msg = preempt(alg, p, err).message
    assert str(err) == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                        "3 Preemption is not helpful for scheduling.")


def test_no_nodes():
    with pytest.raises(NoNodesAvailable) as ei:
        Algorithm(cache_with([])).schedule(PodInfo(pod("p")))
    assert str(ei.value) == "no nodes available to schedule pods"


def test_picks_least_allocated_and_spreads():
    nodes = [node(f"n{i}") for i in range(3)]
    c = cache_with(nodes, [pod("x", "2", "4Gi", node_name="n0"), pod("y", "1", "2Gi", node_name="n1")])
    alg = Algorithm(c, rng=random.Random(1))
    chosen, _ = alg.schedule(PodInfo(pod("p", "500m", "1Gi")))
    assert chosen.name == "n2"
    # assume onto nodes as the scheduler does: 30 equal pods end up evenly spread
    c2 = cache_with([node(f"m{i}") for i in range(3)])
    alg2 = Algorithm(c2, rng=random.Random(2))
    for i in range(30):
        info = PodInfo(pod(f"p{i}", "100m", "128Mi"))
        ni, _ = alg2.schedule(info)
        c2.assume_pod(info, ni.name)
    assert sorted(len(n.pods) for n in c2.node_list) == [10, 10, 10]


def test_generic_and_fast_paths_agree():
    rng = random.Random(7)
    nodes = [node(f"n{i}", cpu=str(rng.choice([2, 4, 8])), memory=f"{rng.choice([4, 8, 16])}Gi") for i in range(20)]
    c = cache_with(nodes)
    for i in range(40):
        c.add_pod(pod(f"e{i}", f"{rng.randint(1, 9) * 100}m", f"{rng.randint(1, 9) * 128}Mi",
                      node_name=f"n{rng.randrange(20)}"))
    alg = Algorithm(c)
    p = PodInfo(pod("p", "300m", "256Mi"))
    state = {}
    feasible, fast = alg.find_feasible(state, p, alg.pre_filter(state, p, Diagnosis()), Diagnosis())
    assert fast
    quick = alg.score(state, p, feasible, True)
    slow = alg.score(state, p, feasible, False)
    # the generic path adds constant scores (taints, affinity: same for every node); ranking is the same
    diffs = {s - q for q, s in zip(quick, slow, strict=True)}
    assert len(diffs) == 1


def test_sampling_stops_at_enough_feasible_nodes_and_rotates():
    c = cache_with([node(f"n{i:03d}") for i in range(200)])
    alg = Algorithm(c, SchedulerConfig(percentage_of_nodes_to_score=0))
    state = {}
    p = PodInfo(pod("p"))
    feasible, _ = alg.find_feasible(state, p, alg.pre_filter(state, p, Diagnosis()), Diagnosis())
    assert len(feasible) == 100  # 50 - 200/125 = 49% of 200 = 98 -> at least 100
    assert feasible[0].name == "n000"
    feasible2, _ = alg.find_feasible(state, p, alg.pre_filter(state, p, Diagnosis()), Diagnosis())
    assert feasible2[0].name == "n100"


def test_nominated_node_tried_first():
    c = cache_with([node("a"), node("b")], [pod("x", "3", node_name="b")])
    p = pod("p", "500m")
    p["status"]["nominatedNodeName"] = "b"
    chosen, _ = Algorithm(c).schedule(PodInfo(p))
    assert chosen.name == "b"


def test_preemption_picks_lowest_priority_victims():
    c = cache_with([node("a", cpu="2"), node("b", cpu="2")],
                   [pod("a-low", "1500m", node_name="a", priority=10),
                    pod("b-mid", "1500m", node_name="b", priority=100),
                    pod("a-small", "200m", node_name="a", priority=5)])
    alg = Algorithm(c)
    p = PodInfo(pod("vip", "1", priority=1000))
    with pytest.raises(FitError) as ei:
        alg.schedule(p)
    result = preempt(alg, p, ei.value)
    assert result.node == "a"
    # the small pod is reprieved: removing a-low alone makes room
    assert [v.name for v in result.victims] == ["a-low"]


def test_preemption_only_of_lower_priority():
    c = cache_with([node("a", cpu="1")], [pod("x", "1", node_name="a", priority=100)])
    alg = Algorithm(c)
    p = PodInfo(pod("p", "1", priority=100))
    with pytest.raises(FitError) as ei:
        alg.schedule(p)
    result = preempt(alg, p, ei.value)
    assert not result.node
    assert result.message == ("preemption: 0/1 nodes are available: 1 No preemption victims found for "
                              "incoming pod.")
    never = pod("q", "1", priority=1000, preemptionPolicy="Never")
    assert preempt(alg, PodInfo(never), ei.value).message == (
        "preemption: not eligible due to preemptionPolicy=Never.")


def test_nominated_pod_keeps_room():
    c = cache_with([node("a", cpu="1")])
    vip = PodInfo(pod("vip", "800m", priority=100))
    c.nominate(vip, "a")
    alg = Algorithm(c)
    with pytest.raises(FitError):
        alg.schedule(PodInfo(pod("low", "500m", priority=0)))
    chosen, _ = alg.schedule(vip)
    assert chosen.name == "a"


def test_assume_forget_and_confirm():
    c = cache_with([node("a", cpu="1")])
    p = pod("p", "600m")
    info = PodInfo(p)
    c.assume_pod(info, "a")
    assert c.nodes["a"].req.cpu == 600
    c.forget_pod(info)
    assert c.nodes["a"].req.cpu == 0
    c.assume_pod(info, "a")
    bound = {**p, "spec": {**p["spec"], "nodeName": "a"}}
    c.add_pod(bound)  # the informer confirms it
    assert not c.is_assumed(info.uid)
    assert c.nodes["a"].req.cpu == 600
    c.remove_pod(bound)
    assert c.nodes["a"].req.cpu == 0 and not c.nodes["a"].pods
