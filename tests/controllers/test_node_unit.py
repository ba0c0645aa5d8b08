"""Decisions of node lifecycle, taint eviction and node IPAM."""

from __future__ import annotations

import pytest

from kubelite.controllers.nodeipam import CIDRSet
from kubelite.controllers.nodelifecycle import (
    NO_EXECUTE,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    desired_condition_taints,
    eviction_time,
    merge_taints,
    tolerates,
    unknown_conditions,
    with_default_tolerations,
    zone_state,
)

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def node(ready="True", taints=None, **status_conds):
    conds = [{"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": "x",
              "lastTransitionTime": "y"}]
    conds += [{"type": k, "status": v} for k, v in status_conds.items()]
    return {"metadata": {"name": "n1"}, "spec": {"taints": taints or []}, "status": {"conditions": conds}}


def test_unknown_conditions_keep_heartbeat_and_fill_missing():
    n = node()
    out = {c["type"]: c for c in unknown_conditions(n, T0)}
    assert out["Ready"] == {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": "x",
                            "lastTransitionTime": "2023-11-14T22:13:20Z"}
    assert out["MemoryPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert out["MemoryPressure"]["message"] == "Kubelet never posted node status."
    # already Unknown: nothing to change
    n2 = {"metadata": {"name": "n"}, "status": {"conditions": [{"type": t, "status": "Unknown"} for t in
                                                                ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")]}}
    assert unknown_conditions(n2, T0) == []


def test_condition_taints_and_no_execute_swaps():
    n = node("Unknown", MemoryPressure="True")
    ns = desired_condition_taints(n)
    assert {t["key"] for t in ns} == {TAINT_UNREACHABLE, "node.kubernetes.io/memory-pressure"}
    out = merge_taints([], ns, TAINT_UNREACHABLE, allow_add_no_execute=True, now=T0)
    assert {"key": TAINT_UNREACHABLE, "effect": NO_EXECUTE, "timeAdded": "2023-11-14T22:13:20Z"} in out
    # rate-limited: NoSchedule taints now, NoExecute later
    out2 = merge_taints([], ns, TAINT_UNREACHABLE, allow_add_no_execute=False, now=T0)
    assert all(t["effect"] == "NoSchedule" for t in out2)
    # Unknown → False swaps unreachable for not-ready at once, even when rate-limited
    swapped = merge_taints(out, desired_condition_taints(node("False")), TAINT_NOT_READY,
                           allow_add_no_execute=False, now=T0)
    assert {(t["key"], t["effect"]) for t in swapped} == {(TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, NO_EXECUTE)}
    # Ready again: ours go, foreign taints stay
    foreign = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert merge_taints(out + [foreign], desired_condition_taints(node()), None, allow_add_no_execute=True,
                        now=T0) == [foreign]


def test_unschedulable_taint():
    n = node()
    n["spec"]["unschedulable"] = True
    assert desired_condition_taints(n) == [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]


def test_tolerates():
    taint = {"key": TAINT_UNREACHABLE, "effect": NO_EXECUTE}
    assert tolerates({"operator": "Exists"}, taint)
    assert tolerates({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE}, taint)
    assert not tolerates({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert tolerates({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": NO_EXECUTE})
    assert not tolerates({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": NO_EXECUTE})
    assert not tolerates({"key": "", "operator": "Equal"}, taint)


@pytest.mark.parametrize(("tolerations", "expected"), [
    ([], T0),  # not tolerated: at once
    ([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE}], None),  # forever
    ([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": 30},
      {"operator": "Exists", "tolerationSeconds": 10}], T0 - 100 + 10),  # smallest seconds, from timeAdded
    ([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": -5}], T0 - 100),
    ([{"key": "other", "operator": "Exists"}], T0),
])
def test_eviction_time(tolerations, expected):
    taints = [{"key": TAINT_UNREACHABLE, "effect": NO_EXECUTE, "timeAdded": "2023-11-14T22:11:40Z"},
              {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]
    assert eviction_time(taints, tolerations, T0) == expected


def test_no_execute_taints_only():
    assert eviction_time([{"key": "x", "effect": "NoSchedule"}], [], T0) is None


def test_default_tolerations():
    out = with_default_tolerations([{"key": TAINT_NOT_READY, "operator": "Exists", "effect": NO_EXECUTE}], 300)
    assert out[-1] == {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": 300}
    assert len(out) == 2
    taints = [{"key": TAINT_NOT_READY, "effect": NO_EXECUTE, "timeAdded": "2023-11-14T22:13:20Z"}]
    assert eviction_time(taints, with_default_tolerations([], 300), T0) == T0 + 300


def test_zone_states():
    assert zone_state(0, 1, 0.55) == "FullDisruption"
    assert zone_state(1, 1, 0.55) == "Normal"
    assert zone_state(1, 3, 0.55) == "PartialDisruption"
    assert zone_state(10, 3, 0.55) == "Normal"
    assert zone_state(0, 0, 0.55) == "Normal"


def test_cidr_set_allocates_in_order_reuses_and_exhausts():
    s = CIDRSet("10.244.0.0/16", 24)
    assert [s.allocate() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    s.release("10.244.1.0/24")
    assert s.allocate() == "10.244.3.0/24"  # continues after the last one, as upstream
    assert s.occupy("10.244.4.0/24") and not s.occupy("10.245.0.0/24") and not s.occupy("10.244.5.0/25")
    small = CIDRSet("10.0.0.0/23", 24)
    assert small.allocate() == "10.0.0.0/24" and small.allocate() == "10.0.1.0/24" and small.allocate() is None
    small.release("10.0.0.0/24")
    assert small.allocate() == "10.0.0.0/24"
    with pytest.raises(ValueError):
        CIDRSet("10.0.0.0/24", 16)
