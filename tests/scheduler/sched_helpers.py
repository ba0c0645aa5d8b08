"""Plain-dict fixtures for scheduler unit tests."""

from __future__ import annotations

import itertools
from typing import Any

from kubelite.scheduler.cache import Cache
from kubelite.scheduler.podinfo import PodInfo

_uid = itertools.count(1)


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: int = 110, labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, cpu: str | None = None, memory: str | None = None, *, ns: str = "default",
        node_name: str = "", priority: int | None = None, labels: dict | None = None, **spec_extra: Any
        ) -> dict[str, Any]:
    requests = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    ports = spec_extra.pop("host_ports", None)
    if ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in ports]
    spec: dict[str, Any] = {"containers": [container], **spec_extra}
    if node_name:
        spec["nodeName"] = node_name
    if priority is not None:
        spec["priority"] = priority
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{next(_uid)}", "labels": labels or {},
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": spec, "status": {"phase": "Pending"}}


def cache_with(nodes: list[dict], pods: list[dict] = ()) -> Cache:
    c = Cache()
    for n in nodes:
        c.add_node(n)
    for p in pods:
        c.add_pod(p)
    return c


def info(p: dict) -> PodInfo:
    return PodInfo(p)
