"""Server-set object metadata: names from generateName, uids, timestamps, generation, create-time status."""

from __future__ import annotations

import random
import uuid
from typing import Any

from ..api.jobs import set_generated_selector
from ..api.jsoncopy import deep_copy
from ..api.resources import ResourceType
from ..api.timefmt import now_rfc3339

# upstream's random-string alphabet (no vowels, no ambiguous characters)
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_GENERATE_SUFFIX = 5
_MAX_GENERATE_PREFIX = 63 - _GENERATE_SUFFIX

# Kinds whose status the create strategy resets to its zero value.
_STATUS_RESET = frozenset({
    ("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
    ("batch", "Job"), ("batch", "CronJob"), ("", "ReplicationController"), ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"), ("", "ResourceQuota"),
})


def generate_name(prefix: str) -> str:
    if len(prefix) > _MAX_GENERATE_PREFIX:
        prefix = prefix[:_MAX_GENERATE_PREFIX]
    # not a secret: a plain PRNG as upstream's, not a system call per character
    return prefix + "".join(random.choices(_ALPHANUMS, k=_GENERATE_SUFFIX))


def _quantity_set(resources: dict[str, Any] | None, section: str) -> dict[str, Any]:
    return ((resources or {}).get(section) or {}) if isinstance(resources, dict) else {}


def qos_class(pod_spec: dict[str, Any]) -> str:
    """Guaranteed / Burstable / BestEffort, computed from cpu and memory requests and limits."""
    containers = list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") if isinstance(c, dict) else None
        requests = _quantity_set(res, "requests")
        limits = _quantity_set(res, "limits")
        for name in ("cpu", "memory"):
            if name in requests or name in limits:
                any_set = True
            req = requests.get(name, limits.get(name))
            if name not in limits or str(req) != str(limits[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_for_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(field, None)
    if rt.has_spec:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    key = (rt.group, rt.kind)
    if key in _STATUS_RESET:
        obj["status"] = {}
    elif key == ("", "Pod"):
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif key == ("", "Service"):
        obj["status"] = {"loadBalancer": {}}
    elif key in (("", "PersistentVolumeClaim"), ("", "PersistentVolume")):
        obj["status"] = {"phase": "Pending"}
    elif key == ("", "Namespace"):
        obj["status"] = {"phase": "Active"}
    if key == ("", "Namespace"):
        _label_namespace(obj)
    elif key == ("batch", "Job"):
        set_generated_selector(obj)


def _label_namespace(obj: dict[str, Any]) -> None:
    """Every namespace carries its own name as a label, so selectors can pick namespaces by name."""
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    meta["labels"] = labels


def _without(obj: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in fields}


def prepare_for_update(rt: ResourceType, new: dict[str, Any], old: dict[str, Any], subresource: str = "") -> None:
    """Keep what clients may not change through the main resource; bump generation on spec changes.

    Through the status subresource only the status changes (the caller builds that object)."""
    meta = new["metadata"]
    old_meta = old["metadata"]
    for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta.pop("selfLink", None)
    if rt.kind == "Service" and rt.group == "" and not subresource:
        drop_type_dependent_fields(new, old)
    if subresource in ("status", "binding"):
        pass
    elif rt.subresource("status") is not None and rt.kind not in ("Namespace",):
        if "status" in old:
            new["status"] = deep_copy(old["status"])
        else:
            new.pop("status", None)
    if rt.kind == "Namespace" and rt.group == "":
        if "status" in old and subresource != "status":
            new["status"] = deep_copy(old["status"])
        _label_namespace(new)
    if rt.has_spec:
        generation = old_meta.get("generation", 1)
        if _without(new, "metadata", "status", "apiVersion", "kind") != _without(
                old, "metadata", "status", "apiVersion", "kind"):
            generation += 1
        meta["generation"] = generation
    elif "generation" in old_meta:
        meta["generation"] = old_meta["generation"]
    else:
        meta.pop("generation", None)


_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def drop_type_dependent_fields(new: dict[str, Any], old: dict[str, Any]) -> None:
    """A Service changing type loses the allocated values the new type cannot use, when the client only
    carried them over unchanged (what `kubectl patch … {"spec":{"type":"ClusterIP"}}` does)."""
    spec = new.get("spec") or {}
    old_spec = old.get("spec") or {}
    new_type = spec.get("type", "ClusterIP")
    old_type = old_spec.get("type", "ClusterIP")
    if new_type == old_type:
        return
    if old_type in _NODE_PORT_TYPES and new_type not in _NODE_PORT_TYPES:
        old_ports = [p.get("nodePort") for p in old_spec.get("ports") or []]
        new_ports = [p.get("nodePort") for p in spec.get("ports") or []]
        if all(p is None or p in old_ports for p in new_ports):
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
        if spec.get("externalTrafficPolicy") in (None, old_spec.get("externalTrafficPolicy")):
            spec.pop("externalTrafficPolicy", None)
    if new_type == "ExternalName" and old_type != "ExternalName":
        if spec.get("clusterIPs") in (None, old_spec.get("clusterIPs")) and spec.get("clusterIP") in (
                None, old_spec.get("clusterIP")):
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(field, None)
    if old_type == "LoadBalancer" and new_type != "LoadBalancer":
        for field in ("healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if spec.get(field) == old_spec.get(field):
                spec.pop(field, None)


def same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from resourceVersion: such an update writes nothing, as upstream."""
    ma = {k: v for k, v in (a.get("metadata") or {}).items() if k != "resourceVersion"}
    mb = {k: v for k, v in (b.get("metadata") or {}).items() if k != "resourceVersion"}
    return ma == mb and _without(a, "metadata") == _without(b, "metadata")


def status_update(rt: ResourceType, new: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A write through the status subresource, as upstream's status strategies: the spec (and the labels)
    stay as stored; the status and other metadata come from the request."""
    merged = dict(new)
    for field in ("spec",):
        if field in current:
            merged[field] = current[field]
        else:
            merged.pop(field, None)
    meta = dict(new.get("metadata") or {})
    if "labels" in current.get("metadata", {}):
        meta["labels"] = current["metadata"]["labels"]
    else:
        meta.pop("labels", None)
    merged["metadata"] = meta
    if merged.get("status") is None:
        merged.pop("status", None)
    return merged
