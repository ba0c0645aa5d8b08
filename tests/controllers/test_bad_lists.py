"""Controllers read lists out of objects: an item of the wrong shape is left out, never a crash loop."""

from __future__ import annotations

from kubelite.controllers import controller_utils as cu
from kubelite.controllers import daemonset_util
from kubelite.controllers.nodelifecycle import eviction_time, merge_taints


def test_dict_items_keeps_only_objects():
    assert cu.dict_items([None, {"a": 1}, "x", 3, {}]) == [{"a": 1}, {}]
    assert cu.dict_items(None) == [] and cu.dict_items("s") == []


def test_controller_ref_skips_null_owner_references():
    ref = {"kind": "ReplicaSet", "name": "r", "uid": "u", "controller": True}
    assert cu.controller_ref({"metadata": {"ownerReferences": [None, "x", ref]}}) == ref


def test_daemon_tolerations_and_taints_skip_nulls():
    tolerations = daemonset_util.daemon_tolerations({"tolerations": [None, {"key": "k", "operator": "Exists"}]})
    assert {"key": "k", "operator": "Exists"} in tolerations and None not in tolerations
    node = {"spec": {"taints": [None, {"key": "k", "effect": "NoSchedule"}, {"key": "x", "effect": "NoSchedule"}]}}
    assert daemonset_util.untolerated_taints(node, tolerations, ("NoSchedule",)) == [
        {"key": "x", "effect": "NoSchedule"}]


def test_node_lifecycle_helpers_take_odd_taints():
    current = cu.dict_items([None, {"effect": "1Gi"}, {"key": "a", "effect": "NoSchedule"}])
    merged = merge_taints(current, [], None, allow_add_no_execute=False, now=0.0)
    assert {"effect": "1Gi"} in merged
    assert eviction_time([{"effect": "NoExecute", "key": "k", "timeAdded": 5}], [], 10.0) == 10.0
