"""The Node object a kubelet registers, its status, and its Lease heartbeat — shared by every runtime.

Builders are pure (`node_object`, `node_conditions`, `lease_object`); `register_node`, `report_node_status`
and `renew_lease` do the API calls through `kubelite.client`.  Wording follows upstream's
`nodestatus/setters.go` (reasons KubeletReady, KubeletHasSufficientMemory, ... and their messages); the Lease
is `kube-node-lease/<node>` with `leaseDurationSeconds` 40 renewed every 40/4 = 10 s by default.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..api.resources import Registry
from ..client import ApiClient, ClientError
from .podstatus import rfc3339

log = logging.getLogger("kubelite.kubelet.node")

Obj = dict[str, Any]
_REG = Registry()
NODES = _REG.get("", "v1", "nodes")
LEASES = _REG.get("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.33.0"
DEFAULT_LEASE_DURATION = 40


@dataclass
class NodeSpec:
    """What a kubelet says about its machine when it registers."""

    name: str
    internal_ip: str
    capacity: dict[str, str] = field(default_factory=lambda: {
        "cpu": "32", "memory": "263958600Ki", "pods": "110", "ephemeral-storage": "102626232Ki",
        "hugepages-1Gi": "0", "hugepages-2Mi": "0"})
    allocatable: dict[str, str] | None = None  # defaults to capacity
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    container_runtime_version: str = "simulated://1.33.0"
    os_image: str = "kubelite simulated node"
    kernel_version: str = "6.1.0-kubelite"
    architecture: str = "amd64"
    kubelet_port: int = 10250
    network_unavailable_condition: bool = True  # report NetworkUnavailable=False as a CNI/route controller would


def _stable_id(name: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}/{name}".encode()).hexdigest()[:32]


def node_labels(spec: NodeSpec) -> dict[str, str]:
    labels = {
        "beta.kubernetes.io/arch": spec.architecture,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": spec.architecture,
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
    }
    labels.update(spec.labels)
    return labels


def node_conditions(now: float, *, ready: bool = True, old: list[Obj] | None = None,
                    network_unavailable: bool | None = False, not_ready_message: str = "") -> list[Obj]:
    """The kubelet's node conditions with lastHeartbeatTime `now`; lastTransitionTime kept while unchanged.
    `network_unavailable`: None leaves NetworkUnavailable out (it belongs to the network plug-in)."""
    stamp = rfc3339(now)
    prev = {c.get("type"): c for c in old or ()}
    items: list[tuple[str, str, str, str]] = []
    if network_unavailable is not None:
        items.append(("NetworkUnavailable", "True" if network_unavailable else "False",
                      "NoRouteCreated" if network_unavailable else "RouteCreated",
                      "Node created without a route" if network_unavailable else "RouteController created a route"))
    items += [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status") if ready else
        ("Ready", "False", "KubeletNotReady", not_ready_message or "container runtime is down"),
    ]
    out = []
    for ctype, status, reason, message in items:
        p = prev.get(ctype)
        ltt = p["lastTransitionTime"] if p and p.get("status") == status and p.get("lastTransitionTime") else stamp
        out.append({"type": ctype, "status": status, "lastHeartbeatTime": stamp, "lastTransitionTime": ltt,
                    "reason": reason, "message": message})
    return out


def node_status(spec: NodeSpec, now: float, *, old: list[Obj] | None = None, ready: bool = True) -> Obj:
    return {
        "capacity": dict(spec.capacity),
        "allocatable": dict(spec.allocatable or spec.capacity),
        "conditions": node_conditions(now, ready=ready, old=old,
                                      network_unavailable=False if spec.network_unavailable_condition else None),
        "addresses": [{"type": "InternalIP", "address": spec.internal_ip},
                      {"type": "Hostname", "address": spec.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": spec.kubelet_port}},
        "nodeInfo": {
            "machineID": _stable_id(spec.name, "machine"),
            "systemUUID": str(uuid.UUID(_stable_id(spec.name, "system"))),
            "bootID": str(uuid.uuid4()),
            "kernelVersion": spec.kernel_version,
            "osImage": spec.os_image,
            "containerRuntimeVersion": spec.container_runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": spec.architecture,
        },
    }


def node_object(spec: NodeSpec, now: float) -> Obj:
    annotations = {"node.alpha.kubernetes.io/ttl": "0",
                   "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    annotations.update(spec.annotations)
    obj: Obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": node_labels(spec), "annotations": annotations},
        "spec": {},
        "status": node_status(spec, now),
    }
    if spec.taints:
        obj["spec"]["taints"] = [dict(t) for t in spec.taints]
    return obj


def lease_object(node_name: str, node_uid: str | None, now: float,
                 duration: int = DEFAULT_LEASE_DURATION) -> Obj:
    meta: Obj = {"name": node_name, "namespace": NODE_LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration, "renewTime": _micro(now)}}


def _micro(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e6):06d}Z"


async def register_node(client: ApiClient, spec: NodeSpec, now: float | None = None) -> Obj:
    """Create the Node (or adopt an existing one of that name) and post a fresh status; returns the Node."""
    now = time.time() if now is None else now
    obj = node_object(spec, now)
    try:
        created = await client.create(NODES, obj)
    except ClientError as e:
        if not e.is_already_exists:
            raise
        existing = await client.get(NODES, None, spec.name)
        labels = {k: v for k, v in obj["metadata"]["labels"].items()
                  if existing["metadata"].get("labels", {}).get(k) != v}
        if labels:
            existing = await client.patch(NODES, None, spec.name, {"metadata": {"labels": labels}})
        created = existing
    old = (created.get("status") or {}).get("conditions")
    status = node_status(spec, now, old=old)
    return await client.patch(NODES, None, spec.name, {"status": status}, patch_type="merge",
                              subresource="status")


async def report_node_status(client: ApiClient, spec: NodeSpec, old_conditions: list[Obj] | None,
                             now: float | None = None, *, ready: bool = True) -> Obj:
    """Refresh the conditions' heartbeat (and capacity, addresses) on the Node's status."""
    now = time.time() if now is None else now
    conds = node_conditions(now, ready=ready, old=old_conditions,
                            network_unavailable=False if spec.network_unavailable_condition else None)
    patch = {"status": {"conditions": conds, "capacity": dict(spec.capacity),
                        "allocatable": dict(spec.allocatable or spec.capacity)}}
    return await client.patch(NODES, None, spec.name, patch, patch_type="strategic", subresource="status")


async def renew_lease(client: ApiClient, node_name: str, node_uid: str | None, now: float | None = None,
                      duration: int = DEFAULT_LEASE_DURATION) -> Obj:
    """Bump the node's Lease renewTime, creating the Lease when it does not exist."""
    now = time.time() if now is None else now
    try:
        return await client.patch(LEASES, NODE_LEASE_NAMESPACE, node_name,
                                  {"spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration,
                                            "renewTime": _micro(now)}})
    except ClientError as e:
        if not e.is_not_found:
            raise
    try:
        return await client.create(LEASES, lease_object(node_name, node_uid, now, duration), NODE_LEASE_NAMESPACE)
    except ClientError as e:
        if not e.is_already_exists:
            raise
        return await client.get(LEASES, NODE_LEASE_NAMESPACE, node_name)
