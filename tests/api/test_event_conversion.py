"""core/v1 <-> events.k8s.io/v1 Event conversion, and autoscaling/v1 <-> v2 HPA conversion."""

from __future__ import annotations

import copy
import json

from kubelite.api import event_conversion as ec
from kubelite.api import hpa_conversion as hc

META = {"name": "e1", "namespace": "default", "uid": "u1", "resourceVersion": "7"}

EVENTS_V1 = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": META,
    "eventTime": "2024-01-01T00:00:00.000000Z",
    "series": {"count": 3, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
    "reportingController": "example.com/ctrl", "reportingInstance": "ctrl-1", "action": "Binding",
    "reason": "Scheduled", "note": "assigned", "type": "Normal",
    "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "default"},
    "related": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
}

CORE_V1 = {
    "apiVersion": "v1", "kind": "Event", "metadata": META,
    "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "default"},
    "reason": "Pulled", "message": "pulled image", "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:05:00Z", "count": 4,
    "type": "Normal", "reportingComponent": "kubelet", "reportingInstance": "node-1",
}


def test_events_v1_to_core():
    core = ec.to_core(copy.deepcopy(EVENTS_V1))
    assert core["apiVersion"] == "v1"
    assert core["message"] == "assigned"
    assert core["involvedObject"] == EVENTS_V1["regarding"]
    assert core["related"] == EVENTS_V1["related"]
    assert core["reportingComponent"] == "example.com/ctrl"
    assert core["reportingInstance"] == "ctrl-1"
    assert core["series"] == EVENTS_V1["series"]
    assert core["eventTime"] == EVENTS_V1["eventTime"]
    assert core["action"] == "Binding"
    # what Go prints for the unset fields of a core/v1 Event
    assert core["source"] == {}
    assert core["firstTimestamp"] is None and core["lastTimestamp"] is None
    assert "count" not in core
    for name in ("note", "regarding", "reportingController", "deprecatedSource"):
        assert name not in core


def test_core_to_events_v1():
    events = ec.from_core(copy.deepcopy(CORE_V1))
    assert events["apiVersion"] == "events.k8s.io/v1"
    assert events["note"] == "pulled image"
    assert events["regarding"] == CORE_V1["involvedObject"]
    assert events["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert events["deprecatedFirstTimestamp"] == "2024-01-01T00:00:00Z"
    assert events["deprecatedLastTimestamp"] == "2024-01-01T00:05:00Z"
    assert events["deprecatedCount"] == 4
    assert events["reportingController"] == "kubelet"
    assert events["reportingInstance"] == "node-1"
    assert events["eventTime"] is None  # printed as null, as upstream
    assert events["metadata"]["resourceVersion"] == "7"
    for name in ("message", "involvedObject", "source", "count", "firstTimestamp", "reportingComponent"):
        assert name not in events


def test_round_trips():
    assert ec.from_core(ec.to_core(copy.deepcopy(EVENTS_V1))) == {
        **EVENTS_V1, "deprecatedSource": {}, "deprecatedFirstTimestamp": None, "deprecatedLastTimestamp": None}
    back = ec.to_core(ec.from_core(copy.deepcopy(CORE_V1)))
    assert back == {**CORE_V1, "eventTime": None}


def test_does_not_mutate_its_input():
    src = copy.deepcopy(CORE_V1)
    ec.from_core(src)
    assert src == CORE_V1


def test_field_labels():
    assert ec.core_field_label("regarding.name") == "involvedObject.name"
    assert ec.core_field_label("reportingController") == "reportingComponent"
    assert ec.core_field_label("involvedObject.name") is None


HPA_V1 = {
    "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
             "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70},
    "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 50},
}


def test_hpa_v1_to_v2_and_back():
    v2 = hc.to_storage(copy.deepcopy(HPA_V1))
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    assert v2["status"]["currentMetrics"][0]["resource"]["current"] == {"averageUtilization": 50}
    assert hc.v2_to_v1(v2) == HPA_V1


def test_hpa_v2_only_fields_ride_in_annotations():
    v2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "m"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "m"}, "maxReplicas": 5, "metrics": [
              {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue",
                                                                             "averageValue": "10"}}}],
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
          "status": {"conditions": [{"type": "AbleToScale", "status": "True"}]}}
    v1 = hc.v2_to_v1(copy.deepcopy(v2))
    annotations = v1["metadata"]["annotations"]
    assert "targetCPUUtilizationPercentage" not in v1["spec"]
    assert json.loads(annotations[hc.METRICS]) == v2["spec"]["metrics"]
    assert json.loads(annotations[hc.BEHAVIOR]) == v2["spec"]["behavior"]
    assert json.loads(annotations[hc.CONDITIONS]) == v2["status"]["conditions"]
    again = hc.v1_to_v2(v1)
    assert again["spec"] == v2["spec"]
    assert again["status"]["conditions"] == v2["status"]["conditions"]
    assert "annotations" not in again["metadata"]


def test_hpa_v1_without_target_reads_back_the_default():
    v1 = copy.deepcopy(HPA_V1)
    del v1["spec"]["targetCPUUtilizationPercentage"]
    assert hc.v2_to_v1(hc.to_storage(v1))["spec"]["targetCPUUtilizationPercentage"] == 80
