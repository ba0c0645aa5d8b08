"""DaemonSet decisions: which nodes run a daemon pod, the pod for a node, rolling-update steps, status."""

from __future__ import annotations

from kubelite.controllers import controllerhistory as ch
from kubelite.controllers import daemonset_util as du

NOW = 1_700_000_000.0


def ds(**spec):
    template_spec = spec.pop("template_spec", {})
    return {"metadata": {"name": "fluentd", "namespace": "kube-system", "uid": "d1", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "fluentd"}},
                     "template": {"metadata": {"labels": {"app": "fluentd"}},
                                  "spec": {"containers": [{"name": "c", "image": "fluentd"}], **template_spec}},
                     **spec}}


def node(name, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def pod(name, node_name, hash_="h1", ready=True, phase="Running"):
    return {"metadata": {"name": name, "namespace": "kube-system", "uid": name, "labels": {ch.HASH_LABEL: hash_},
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_node_selector_and_affinity():
    d = ds(template_spec={"nodeSelector": {"disk": "ssd"}})
    assert du.should_run(d, node("a", {"disk": "ssd"})) == (True, True)
    assert du.should_run(d, node("b", {"disk": "hdd"})) == (False, False)
    aff = ds(template_spec={"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
                              {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}]}}}})
    assert du.should_run(aff, node("a", {"zone": "z1"}))[0]
    assert du.should_run(aff, node("c"))[0]
    assert not du.should_run(aff, node("d", {"zone": "z2"}))[0]
    assert du.should_run(ds(template_spec={"nodeName": "x"}), node("y")) == (False, False)


def test_taints_and_automatic_tolerations():
    d = ds()
    assert du.should_run(d, node("a", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])) \
        == (False, True)
    assert du.should_run(d, node("a", taints=[{"key": "dedicated", "effect": "NoExecute"}])) == (False, False)
    # the tolerations every daemon pod gets
    for key, effect in ((du.TAINT_NOT_READY, "NoExecute"), (du.TAINT_UNREACHABLE, "NoExecute"),
                        (du.TAINT_UNSCHEDULABLE, "NoSchedule"), (du.TAINT_DISK_PRESSURE, "NoSchedule"),
                        (du.TAINT_MEMORY_PRESSURE, "NoSchedule"), (du.TAINT_PID_PRESSURE, "NoSchedule")):
        assert du.should_run(d, node("a", taints=[{"key": key, "effect": effect}])) == (True, True)
    net = {"key": du.TAINT_NETWORK_UNAVAILABLE, "effect": "NoSchedule"}
    assert not du.should_run(d, node("a", taints=[net]))[0]
    assert du.should_run(ds(template_spec={"hostNetwork": True}), node("a", taints=[net]))[0]
    tolerant = ds(template_spec={"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                                  "effect": "NoSchedule"}]})
    assert du.should_run(tolerant, node("a", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]))[0]
    assert not du.should_run(tolerant, node("a", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]))[0]


def test_pod_for_a_node():
    d = ds(template_spec={"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}})
    p = du.new_pod(d, "h1", "node-1", {"kind": "DaemonSet", "uid": "d1"})
    assert p["metadata"]["generateName"] == "fluentd-"
    assert p["metadata"]["labels"] == {"app": "fluentd", ch.HASH_LABEL: "h1", du.TEMPLATE_GENERATION_LABEL: "2"}
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]
    assert "nodeName" not in p["spec"]
    assert {t["key"] for t in p["spec"]["tolerations"]} >= {du.TAINT_NOT_READY, du.TAINT_UNSCHEDULABLE}
    assert du.target_node(p) == "node-1"


def test_manage_creates_deletes_and_replaces_failed():
    d = ds(template_spec={"nodeSelector": {"run": "yes"}})
    nodes = [node("a", {"run": "yes"}), node("b", {"run": "yes"}), node("c")]
    by_node = {"b": [pod("p1", "b"), pod("p2", "b")], "c": [pod("p3", "c")]}
    plan = du.manage(d, nodes, by_node, "h1")
    assert plan.create_on == ["a"]
    assert sorted(p["metadata"]["name"] for p in plan.delete) == ["p2", "p3"]
    plan = du.manage(d, nodes[:1], {"a": [pod("p4", "a", phase="Failed", ready=False)]}, "h1")
    assert [p["metadata"]["name"] for p in plan.failed] == ["p4"] and plan.create_on == []


def test_rolling_update_max_unavailable_and_surge():
    nodes = [node(n) for n in "abcd"]
    by_node = {n: [pod(f"old-{n}", n, hash_="h0")] for n in "abcd"}
    d = ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}})
    delete, create = du.rolling_update(d, nodes, by_node, "h1", NOW)
    assert len(delete) == 2 and create == []
    # an old pod that is already unavailable is replaced without using the budget
    by_node["a"] = [pod("old-a", "a", hash_="h0", ready=False)]
    delete, _ = du.rolling_update(d, nodes, by_node, "h1", NOW)
    assert len(delete) == 3 and "old-a" in [p["metadata"]["name"] for p in delete]
    pct = ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 0}})
    assert du.max_unavailable(pct, 4) == 1 and du.max_unavailable(pct, 5) == 2
    surge = ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    by_node = {n: [pod(f"old-{n}", n, hash_="h0")] for n in "abcd"}
    delete, create = du.rolling_update(surge, nodes, by_node, "h1", NOW)
    assert delete == [] and len(create) == 1
    by_node["a"].append(pod("new-a", "a", hash_="h1"))
    delete, create = du.rolling_update(surge, nodes, by_node, "h1", NOW)
    assert [p["metadata"]["name"] for p in delete] == ["old-a"] and create == []


def test_status():
    d = ds(template_spec={"nodeSelector": {"run": "yes"}})
    nodes = [node("a", {"run": "yes"}), node("b", {"run": "yes"}), node("c")]
    by_node = {"a": [pod("p1", "a")], "b": [pod("p2", "b", hash_="h0", ready=False)], "c": [pod("p3", "c")]}
    st = du.compute_status(d, nodes, by_node, "h1", NOW)
    assert st == {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 1,
                  "numberReady": 1, "numberAvailable": 1, "updatedNumberScheduled": 1, "numberUnavailable": 1,
                  "observedGeneration": 2}
