"""autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscaler, as upstream converts them.

Objects are stored once, in autoscaling/v2 (`/registry/horizontalpodautoscalers/…`); autoscaling/v1 is a
view. v1 only knows a CPU utilization target: `spec.targetCPUUtilizationPercentage` is the v2 Resource
metric `cpu` with an Utilization target, `status.currentCPUUtilizationPercentage` its current value. What
v1 cannot hold travels in annotations, as upstream keeps it: the other metrics
(`autoscaling.alpha.kubernetes.io/metrics`), their current values (`…/current-metrics`), the status
conditions (`…/conditions`) and the scaling behavior (`…/behavior`), each as JSON.
"""

from __future__ import annotations

import json
from typing import Any

Obj = dict[str, Any]

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ANNOTATIONS = (METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR)
DEFAULT_CPU_UTILIZATION = 80


def _is_cpu_utilization(metric: Obj) -> bool:
    resource = metric.get("resource") or {}
    target = resource.get("target") or {}
    return (metric.get("type") == "Resource" and resource.get("name") == "cpu"
            and target.get("type") == "Utilization" and target.get("averageUtilization") is not None)


def _meta_copy(obj: Obj) -> Obj:
    meta = dict(obj.get("metadata") or {})
    if meta.get("annotations"):
        meta["annotations"] = dict(meta["annotations"])
    return meta


def _pop_json(annotations: dict[str, str], key: str) -> Any:
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HPA in the autoscaling/v2 form (the stored one)."""
    meta = _meta_copy(obj)
    annotations = meta.get("annotations") or {}
    spec_in = obj.get("spec") or {}
    status_in = obj.get("status")
    spec: Obj = {k: v for k, v in spec_in.items() if k != "targetCPUUtilizationPercentage"}
    metrics: list[Obj] = []
    target = spec_in.get("targetCPUUtilizationPercentage")
    if target is not None:
        metrics.append({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
    extra = _pop_json(annotations, METRICS)
    if isinstance(extra, list):
        metrics.extend(m for m in extra if isinstance(m, dict))
    if metrics:
        spec["metrics"] = metrics
    behavior = _pop_json(annotations, BEHAVIOR)
    if isinstance(behavior, dict):
        spec["behavior"] = behavior
    out: Obj = {"apiVersion": V2, "kind": "HorizontalPodAutoscaler", "metadata": meta, "spec": spec}
    current = _pop_json(annotations, CURRENT_METRICS)
    conditions = _pop_json(annotations, CONDITIONS)
    if isinstance(status_in, dict):
        status = {k: v for k, v in status_in.items() if k != "currentCPUUtilizationPercentage"}
        current_metrics: list[Obj] = []
        cpu = status_in.get("currentCPUUtilizationPercentage")
        if cpu is not None:
            current_metrics.append({"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": cpu}}})
        if isinstance(current, list):
            current_metrics.extend(m for m in current if isinstance(m, dict))
        if current_metrics:
            status["currentMetrics"] = current_metrics
        if isinstance(conditions, list):
            status["conditions"] = conditions
        out["status"] = status
    if not annotations:
        meta.pop("annotations", None)
    for key, value in obj.items():
        if key not in out and key not in ("apiVersion", "kind"):
            out[key] = value
    return out


def v2_to_v1(obj: Obj) -> Obj:
    """A stored autoscaling/v2 HPA as autoscaling/v1 serves it."""
    meta = _meta_copy(obj)
    annotations: dict[str, str] = meta.get("annotations") or {}
    spec_in = obj.get("spec") or {}
    spec: Obj = {k: v for k, v in spec_in.items() if k not in ("metrics", "behavior")}
    others: list[Obj] = []
    for metric in spec_in.get("metrics") or []:
        if _is_cpu_utilization(metric) and "targetCPUUtilizationPercentage" not in spec:
            spec["targetCPUUtilizationPercentage"] = metric["resource"]["target"]["averageUtilization"]
        else:
            others.append(metric)
    if others:
        annotations[METRICS] = json.dumps(others, separators=(",", ":"))
    if spec_in.get("behavior"):
        annotations[BEHAVIOR] = json.dumps(spec_in["behavior"], separators=(",", ":"))
    out: Obj = {"apiVersion": V1, "kind": "HorizontalPodAutoscaler", "metadata": meta, "spec": spec}
    status_in = obj.get("status")
    if isinstance(status_in, dict):
        status: Obj = {k: v for k, v in status_in.items() if k not in ("currentMetrics", "conditions")}
        current_others: list[Obj] = []
        for metric in status_in.get("currentMetrics") or []:
            resource = metric.get("resource") or {}
            utilization = (resource.get("current") or {}).get("averageUtilization")
            if (metric.get("type") == "Resource" and resource.get("name") == "cpu" and utilization is not None
                    and "currentCPUUtilizationPercentage" not in status):
                status["currentCPUUtilizationPercentage"] = utilization
            else:
                current_others.append(metric)
        if current_others:
            annotations[CURRENT_METRICS] = json.dumps(current_others, separators=(",", ":"))
        if status_in.get("conditions"):
            annotations[CONDITIONS] = json.dumps(status_in["conditions"], separators=(",", ":"))
        status.setdefault("currentReplicas", 0)
        status.setdefault("desiredReplicas", 0)
        out["status"] = status
    if annotations:
        meta["annotations"] = annotations
    for key, value in obj.items():
        if key not in out and key not in ("apiVersion", "kind"):
            out[key] = value
    return out


def default_v2(obj: Obj) -> None:
    """Upstream's autoscaling/v2 defaults: one replica at least, and CPU at 80% when no metric is given."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]


def to_storage(obj: Obj) -> Obj:
    stored = v1_to_v2(obj)
    default_v2(stored)
    return stored


# what resources.py puts in the autoscaling/v1 ResourceType's `extra`
def _stored(obj: Obj) -> Obj:
    from . import zerovalues  # imported when first used: the node agent loads this module, not the schemas

    return zerovalues.fill("io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler", to_storage(obj))


def _served(obj: Obj) -> Obj:
    from . import zerovalues

    return zerovalues.fill("io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler", v2_to_v1(obj))


CONVERSION: dict[str, Any] = {"convert_in": _stored, "convert_out": _served}
