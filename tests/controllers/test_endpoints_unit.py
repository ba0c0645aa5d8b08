"""Decisions of the endpoints / endpointslice controllers: which pods, which ports, how slices are packed."""

from __future__ import annotations

from kubelite.controllers.endpoints import (
    TriggerTimeTracker,
    desired_subsets,
    format_trigger_time,
    resolve_port,
    should_pod_be_in_endpoints,
)
from kubelite.controllers.endpointslice import (
    desired_endpoints,
    mirrored_endpoints,
    plan_slices,
    pod_to_endpoint,
    slice_labels,
)


def svc(name="web", ports=None, selector=None, **spec):
    return {"metadata": {"name": name, "namespace": "default", "uid": "svc-uid", "resourceVersion": "1",
                         "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {"app": "web"}},
            "spec": {"selector": selector if selector is not None else {"app": "web"},
                     "ports": ports if ports is not None else [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                     "clusterIP": "10.96.0.10", **spec}}


def pod(name, ip="10.244.0.2", ready=True, node="n1", ports=None, deleting=False, phase="Running", **spec):
    p = {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
         "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                    "lastTransitionTime": "2024-01-01T00:00:05Z"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:01:00Z"
    return p


def test_ready_and_not_ready_addresses_with_target_refs():
    subsets, truncated = desired_subsets(svc(), [pod("a", "10.244.0.3"), pod("b", "10.244.0.2", ready=False)])
    assert not truncated
    assert subsets == [{
        "addresses": [{"ip": "10.244.0.3", "nodeName": "n1",
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.244.0.2", "nodeName": "n1",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_publish_not_ready_addresses_and_terminating_pods():
    pods = [pod("a", ready=False), pod("b", "10.244.0.9", deleting=True)]
    subsets, _ = desired_subsets(svc(publishNotReadyAddresses=True), pods)
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.244.0.2", "10.244.0.9"]
    subsets, _ = desired_subsets(svc(), pods)
    assert "addresses" not in subsets[0] and [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.244.0.2"]


def test_pods_without_ip_or_finished_are_left_out():
    assert not should_pod_be_in_endpoints(pod("a", ip=None), False)
    assert not should_pod_be_in_endpoints(pod("a", phase="Succeeded", restartPolicy="Never"), False)
    assert should_pod_be_in_endpoints(pod("a", phase="Failed", restartPolicy="OnFailure"), False)
    assert not should_pod_be_in_endpoints(pod("a", deleting=True), False)
    assert should_pod_be_in_endpoints(pod("a", deleting=True), True)


def test_named_target_ports_resolve_per_pod_and_group_subsets():
    s = svc(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    a = pod("a", "10.244.0.2", ports=[{"name": "web", "containerPort": 8080}])
    b = pod("b", "10.244.0.3", ports=[{"name": "web", "containerPort": 9090}])
    c = pod("c", "10.244.0.4", ports=[{"name": "other", "containerPort": 1}])
    assert resolve_port(a, s["spec"]["ports"][0]) == 8080
    assert resolve_port(c, s["spec"]["ports"][0]) is None
    assert resolve_port(a, {"port": 80, "targetPort": "web", "protocol": "UDP"}) is None
    subsets, _ = desired_subsets(s, [a, b, c])
    assert [(x["addresses"][0]["ip"], x["ports"][0]["port"]) for x in subsets] == [("10.244.0.2", 8080),
                                                                                  ("10.244.0.3", 9090)]
    assert subsets[0]["ports"][0]["name"] == "http"


def test_headless_hostname_and_portless():
    s = svc(name="db", ports=[], clusterIP="None")
    p = pod("db-0", hostname="db-0", subdomain="db")
    subsets, _ = desired_subsets(s, [p])
    assert subsets == [{"addresses": [{"ip": "10.244.0.2", "hostname": "db-0", "nodeName": "n1",
                                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0",
                                                     "uid": "uid-db-0"}}]}]
    # a non-headless service without ports has no endpoints
    assert desired_subsets(svc(ports=[]), [p])[0] == []
    # the hostname is only published for the service named by the subdomain
    assert "hostname" not in desired_subsets(svc(), [p])[0][0]["addresses"][0]


def test_truncation_beyond_capacity():
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 2}") for i in range(12)]
    subsets, truncated = desired_subsets(svc(), pods, max_capacity=10)
    assert truncated and len(subsets[0]["addresses"]) == 10


def test_trigger_time_is_the_earliest_unreflected_change():
    tr = TriggerTimeTracker()
    s = svc()
    t = tr.compute(s, [pod("a")])
    assert format_trigger_time(t) == "2024-01-01T00:00:00Z"  # the service's creation (first sync)
    assert tr.compute(s, [pod("a")]) is None  # nothing changed
    b = pod("b")
    b["status"]["conditions"][0]["lastTransitionTime"] = "2024-01-01T00:00:09Z"
    assert format_trigger_time(tr.compute(s, [pod("a"), b])) == "2024-01-01T00:00:09Z"
    assert format_trigger_time(1700000000.25) == "2023-11-14T22:13:20.25Z"


def test_slice_endpoint_conditions_and_zone():
    node = {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}
    ep = pod_to_endpoint(pod("a", ready=True, deleting=True), svc(), node)
    assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert ep["zone"] == "z1" and ep["nodeName"] == "n1" and ep["targetRef"]["name"] == "a"
    ep = pod_to_endpoint(pod("a", ready=False), svc(publishNotReadyAddresses=True), None)
    assert ep["conditions"] == {"ready": True, "serving": True, "terminating": False}
    labels = slice_labels(svc(clusterIP="None"), "endpointslice-controller.k8s.io")
    assert labels == {"app": "web", "kubernetes.io/service-name": "web", "service.kubernetes.io/headless": "",
                      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}


def _slice(name, ports, eps):
    return {"metadata": {"name": name}, "ports": ports, "endpoints": eps}


def test_plan_slices_packs_at_most_max_and_keeps_placement():
    pods = [pod(f"p{i}", f"10.244.0.{i + 2}") for i in range(7)]
    desired = desired_endpoints(svc(), pods, {})
    plan = plan_slices(desired, [], 3)
    assert [len(b["endpoints"]) for b in plan.create] == [3, 3, 1] and not plan.update and not plan.delete
    # an existing slice keeps its endpoints; new ones fill it up before a new slice is made
    ports = plan.create[0]["ports"]
    existing = [_slice("web-a", ports, desired[next(iter(desired))][1][:2])]
    plan = plan_slices(desired, existing, 3)
    assert len(plan.update) == 1 and len(plan.update[0]["endpoints"]) == 3
    assert [len(b["endpoints"]) for b in plan.create] == [3, 1]


def test_plan_slices_placeholder_and_deletes():
    plan = plan_slices({}, [], 100)
    assert plan.create == [{"ports": [], "endpoints": []}]
    placeholder = _slice("web-p", [], [])
    assert plan_slices({}, [placeholder], 100).create == []
    desired = desired_endpoints(svc(), [pod("a")], {})
    plan = plan_slices(desired, [placeholder], 100)
    assert plan.delete == [placeholder] and len(plan.create) == 1
    # a slice for ports the service no longer has goes; one whose endpoints all left goes too
    stale = _slice("web-x", [{"port": 1, "protocol": "TCP"}], [{"addresses": ["1.1.1.1"]}])
    plan = plan_slices(desired, [stale], 100)
    assert plan.delete == [stale]


def test_unchanged_slice_is_not_rewritten():
    desired = desired_endpoints(svc(), [pod("a")], {})
    ports, eps = next(iter(desired.values()))
    plan = plan_slices(desired, [_slice("web-a", ports, eps)], 100)
    assert not plan.create and not plan.update and not plan.delete


def test_mirroring_of_endpoints_subsets():
    ep = {"metadata": {"name": "ext"}, "subsets": [
        {"addresses": [{"ip": "1.2.3.4"}], "notReadyAddresses": [{"ip": "1.2.3.5"}],
         "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}]}
    groups = mirrored_endpoints(ep, 1000)
    (ports, eps), = groups.values()
    assert ports == [{"name": "https", "port": 443, "protocol": "TCP"}]
    assert eps == [{"addresses": ["1.2.3.4"], "conditions": {"ready": True}},
                   {"addresses": ["1.2.3.5"], "conditions": {"ready": False}}]
