"""Per-kind Table columns and cells, computed as kube-apiserver's internal-version printers compute them.

Each printer is (column definitions, row function). A row function takes the object (a plain dict) and the
time to measure ages against, and returns the cells (wide cells included: the server always prints wide and
kubectl hides priority>0 columns) plus optional row conditions.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubelite.api import schemas
from kubelite.api.selectors import format_label_selector, format_labels, label_selector_to_string
from kubelite.api.timefmt import UNKNOWN, between, human_duration, parse_rfc3339, since

log = logging.getLogger("kubelite.api.printers")

Obj = dict[str, Any]
Cells = list[Any]
RowFn = Callable[[Obj, datetime], "Cells | tuple[Cells, list[dict[str, Any]]]"]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@functools.cache
def doc(definition: str, field: str) -> str:
    """The OpenAPI description of a field: the same text as upstream's `SwaggerDoc()`."""
    try:
        d = schemas.definition(definition) or {}
    except OSError:
        return ""
    prop = (d.get("properties") or {}).get(field) or {}
    return prop.get("description", "")


def core(kind: str, field: str) -> str:
    return doc(f"io.k8s.api.core.v1.{kind}", field)


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    description: str | Callable[[], str] = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        desc = self.description() if callable(self.description) else self.description
        return {"name": self.name, "type": self.type, "format": self.format, "description": desc,
                "priority": self.priority}


def _name() -> Column:
    return Column("Name", "string", lambda: doc(_META, "name"), 0, "name")


def _age() -> Column:
    return Column("Age", "string", lambda: doc(_META, "creationTimestamp"))


def _d(definition: str, field: str) -> Callable[[], str]:
    return lambda: doc(definition, field)


def _c(kind: str, field: str) -> Callable[[], str]:
    return lambda: core(kind, field)


_CONTAINERS = "Names of each container in the template."
_IMAGES = "Images referenced by each container in the template."


# ---------------------------------------------------------------------------------------------------
# helpers

def g(obj: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(p)
        if obj is None:
            return default
    return obj


def name(obj: Obj) -> str:
    return g(obj, "metadata", "name", default="")


def age(obj: Obj, now: datetime) -> str:
    return since(g(obj, "metadata", "creationTimestamp"), now)


def _int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def containers_cells(spec: Obj | None) -> tuple[str, str]:
    cs = g(spec, "containers", default=[]) or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def int_or_string(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _deleting(obj: Obj) -> bool:
    return bool(g(obj, "metadata", "deletionTimestamp"))


def _lt(a: str | None, b: str | None) -> bool:
    """a.Before(b) for RFC 3339 strings, with a missing time as the zero time."""
    da, db = parse_rfc3339(a), parse_rfc3339(b)
    if db is None:
        return False
    return da is None or da < db


def _later(current: str | None, candidate: str | None) -> str | None:
    return candidate if _lt(current, candidate) else current


def _lb_ingress(status: Obj | None) -> str:
    seen = set()
    for ing in g(status, "loadBalancer", "ingress", default=[]) or []:
        if ing.get("ip"):
            seen.add(ing["ip"])
        elif ing.get("hostname"):
            seen.add(ing["hostname"])
    # the server prints wide, so the address list is never clipped
    return ",".join(sorted(seen))


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - limit} more..."
    return ret or "<unset>"


# ---------------------------------------------------------------------------------------------------
# core/v1

POD_COLUMNS = [
    _name(),
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have been restarted and "
                                   "when the last container in this pod has restarted."),
    _age(),
    Column("IP", description=_c("PodStatus", "podIP"), priority=1),
    Column("Node", description=_c("PodSpec", "nodeName"), priority=1),
    Column("Nominated Node", description=_c("PodStatus", "nominatedNodeName"), priority=1),
    Column("Readiness Gates", description=_c("PodSpec", "readinessGates"), priority=1),
]


def _has_condition(conditions: list[Obj], ctype: str) -> bool | None:
    for c in conditions:
        if c.get("type") == ctype:
            return c.get("status") == "True"
    return None


def pod_status_reason(pod: Obj) -> tuple[str, int, int, int, str | None]:
    """(STATUS, ready containers, total containers, restarts, last restart time) as upstream's printPod."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    conditions = status.get("conditions") or []
    restarts = 0
    sidecar_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: str | None = None
    last_sidecar_restart: str | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    sidecars = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total += len(sidecars)

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += _int(cs.get("restartCount"))
        last_term = g(cs, "lastState", "terminated")
        if last_term is not None:
            last_restart = _later(last_restart, last_term.get("finishedAt"))
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            if last_term is not None:
                last_sidecar_restart = _later(last_sidecar_restart, last_term.get("finishedAt"))
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and _int(term.get("exitCode")) == 0:
            continue
        if is_sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                if _int(term.get("signal")):
                    reason = f"Init:Signal:{_int(term.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{_int(term.get('exitCode'))}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or _has_condition(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += _int(cs.get("restartCount"))
            last_term = g(cs, "lastState", "terminated")
            if last_term is not None:
                last_restart = _later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                if _int(term.get("signal")):
                    reason = f"Signal:{_int(term.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(term.get('exitCode'))}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(conditions, "Ready") else "NotReady"

    if _deleting(pod) and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif _deleting(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart


def pod_row(pod: Obj, now: datetime) -> tuple[Cells, list[Obj]]:
    reason, ready, total, restarts, last_restart = pod_status_reason(pod)
    restarts_str = str(restarts)
    if restarts and parse_rfc3339(last_restart) is not None:
        restarts_str = f"{restarts} ({since(last_restart, now)} ago)"
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips and isinstance(ips[0], dict) else None) or status.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_str = "<none>"
    if gates:
        conds = status.get("conditions") or []
        true = sum(1 for gate in gates if _has_condition(conds, gate.get("conditionType")))
        gates_str = f"{true}/{len(gates)}"
    cells = [name(pod), f"{ready}/{total}", reason, restarts_str, age(pod, now),
             pod_ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_str]
    conditions = []
    if status.get("phase") == "Succeeded":
        conditions = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                       "message": "The pod has completed successfully."}]
    elif status.get("phase") == "Failed":
        conditions = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return cells, conditions


POD_TEMPLATE_COLUMNS = [
    _name(),
    Column("Containers", description=_CONTAINERS),
    Column("Images", description=_IMAGES),
    Column("Pod Labels", description="The labels for the pod template."),
]


def pod_template_row(obj: Obj, now: datetime) -> Cells:
    names, images = containers_cells(g(obj, "template", "spec"))
    return [name(obj), names, images, format_labels(g(obj, "template", "metadata", "labels"))]


NAMESPACE_COLUMNS = [_name(), Column("Status", description="The status of the namespace"), _age()]


def namespace_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), g(obj, "status", "phase", default=""), age(obj, now)]


SERVICE_COLUMNS = [
    _name(),
    Column("Type", description=_c("ServiceSpec", "type")),
    Column("Cluster-IP", description=_c("ServiceSpec", "clusterIP")),
    Column("External-IP", description=_c("ServiceSpec", "externalIPs")),
    Column("Port(s)", description=_c("ServiceSpec", "ports")),
    _age(),
    Column("Selector", description=_c("ServiceSpec", "selector"), priority=1),
]


def service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    stype = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if stype == "LoadBalancer":
        lb = _lb_ingress(svc.get("status"))
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + list(external))
        return lb or "<pending>"
    if stype == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def service_ports(ports: list[Obj]) -> str:
    pieces = []
    for p in ports:
        proto = p.get("protocol") or "TCP"
        if _int(p.get("nodePort")) > 0:
            pieces.append(f"{_int(p.get('port'))}:{_int(p.get('nodePort'))}/{proto}")
        else:
            pieces.append(f"{_int(p.get('port'))}/{proto}")
    return ",".join(pieces)


def service_row(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = service_ports(spec.get("ports") or []) or "<none>"
    return [name(obj), spec.get("type") or "ClusterIP", cluster_ips[0] if cluster_ips else "<none>",
            service_external_ip(obj), ports, age(obj, now), format_labels(spec.get("selector"))]


ENDPOINTS_COLUMNS = [_name(), Column("Endpoints", description=_c("Endpoints", "subsets")), _age()]


def format_endpoints(obj: Obj) -> str:
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    items: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            count += len(addresses)
            for a in addresses:
                if len(items) == limit:
                    more = True
                    break
                items.append(a.get("ip", ""))
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses:
                if len(items) == limit:
                    more = True
                    break
                ip = a.get("ip", "")
                host = f"[{ip}]" if ":" in ip else ip
                items.append(f"{host}:{_int(port.get('port'))}")
    ret = ",".join(items)
    return f"{ret} + {count - limit} more..." if more else ret


def endpoints_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), format_endpoints(obj), age(obj, now)]


NODE_COLUMNS = [
    _name(),
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    _age(),
    Column("Version", description=_c("NodeSystemInfo", "kubeletVersion")),
    Column("Internal-IP", description=_c("NodeStatus", "addresses"), priority=1),
    Column("External-IP", description=_c("NodeStatus", "addresses"), priority=1),
    Column("OS-Image", description=_c("NodeSystemInfo", "osImage"), priority=1),
    Column("Kernel-Version", description=_c("NodeSystemInfo", "kernelVersion"), priority=1),
    Column("Container-Runtime", description=_c("NodeSystemInfo", "containerRuntimeVersion"), priority=1),
]


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for k, v in (g(node, "metadata", "labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            if role := k[len("node-role.kubernetes.io/"):]:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return sorted(roles)


def _node_address(node: Obj, kind: str) -> str:
    for a in g(node, "status", "addresses") or []:
        if a.get("type") == kind:
            return a.get("address", "")
    return "<none>"


def node_row(obj: Obj, now: datetime) -> Cells:
    status: list[str] = []
    ready = _has_condition(g(obj, "status", "conditions") or [], "Ready")
    if ready is not None:
        status.append("Ready" if ready else "NotReady")
    else:
        status.append("Unknown")
    if g(obj, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    info = g(obj, "status", "nodeInfo") or {}
    return [name(obj), ",".join(status), ",".join(node_roles(obj)) or "<none>", age(obj, now),
            info.get("kubeletVersion", ""), _node_address(obj, "InternalIP"), _node_address(obj, "ExternalIP"),
            info.get("osImage") or UNKNOWN, info.get("kernelVersion") or UNKNOWN,
            info.get("containerRuntimeVersion") or UNKNOWN]


EVENT_COLUMNS = [
    Column("Last Seen", description=_c("Event", "lastTimestamp")),
    Column("Type", description=_c("Event", "type")),
    Column("Reason", description=_c("Event", "reason")),
    Column("Object", description=_c("Event", "involvedObject")),
    Column("Subobject", description=_c("ObjectReference", "fieldPath"), priority=1),
    Column("Source", description=_c("Event", "source"), priority=1),
    Column("Message", description=_c("Event", "message")),
    Column("First Seen", description=_c("Event", "firstTimestamp"), priority=1),
    Column("Count", description=_c("Event", "count"), priority=1),
    Column("Name", description=lambda: doc(_META, "name"), priority=1, format="name"),
]


def core_event(obj: Obj) -> Obj:
    """An events.k8s.io/v1 Event in the core/v1 shape the event printer reads."""
    if obj.get("apiVersion") != "events.k8s.io/v1" and "regarding" not in obj and "note" not in obj:
        return obj
    return {
        "metadata": obj.get("metadata") or {},
        "involvedObject": obj.get("regarding") or {},
        "reason": obj.get("reason", ""),
        "message": obj.get("note", ""),
        "source": obj.get("deprecatedSource") or {},
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount") or 0,
        "type": obj.get("type", ""),
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController", ""),
        "reportingInstance": obj.get("reportingInstance", ""),
    }


def event_row(raw: Obj, now: datetime) -> Cells:
    obj = core_event(raw)
    first = since(obj.get("firstTimestamp"), now)
    if parse_rfc3339(obj.get("firstTimestamp")) is None:
        first = since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now)
    if parse_rfc3339(obj.get("lastTimestamp")) is None:
        last = first
    count = _int(obj.get("count"))
    series = obj.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    inv = obj.get("involvedObject") or {}
    kind = (inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    src = obj.get("source") or {}
    component = src.get("component") or obj.get("reportingComponent") or ""
    instance = src.get("host") or obj.get("reportingInstance") or ""
    source = f"{component}, {instance}" if instance else component
    return [last, obj.get("type", ""), obj.get("reason", ""), target, inv.get("fieldPath", ""), source,
            (obj.get("message") or "").strip(), first, count, name(raw)]


SECRET_COLUMNS = [
    _name(), Column("Type", description=_c("Secret", "type")), Column("Data", description=_c("Secret", "data")),
    _age(),
]


def secret_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), obj.get("type", ""), len(obj.get("data") or {}), age(obj, now)]


CONFIGMAP_COLUMNS = [_name(), Column("Data", description=_c("ConfigMap", "data")), _age()]


def configmap_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age(obj, now)]


SERVICE_ACCOUNT_COLUMNS = [_name(), Column("Secrets", description=_c("ServiceAccount", "secrets")), _age()]


def service_account_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), len(obj.get("secrets") or []), age(obj, now)]


def access_modes(modes: list[str] | None) -> str:
    modes = modes or []
    out = []
    for mode, short in (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                        ("ReadWriteOncePod", "RWOP")):
        if mode in modes:
            out.append(short)
    return ",".join(out)


_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"

PV_COLUMNS = [
    _name(),
    Column("Capacity", description=_c("PersistentVolumeSpec", "capacity")),
    Column("Access Modes", description=_c("PersistentVolumeSpec", "accessModes")),
    Column("Reclaim Policy", description=_c("PersistentVolumeSpec", "persistentVolumeReclaimPolicy")),
    Column("Status", description=_c("PersistentVolumeStatus", "phase")),
    Column("Claim", description=_c("PersistentVolumeSpec", "claimRef")),
    Column("StorageClass", description="StorageClass of the pv"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
    Column("Reason", description=_c("PersistentVolumeStatus", "reason")),
    _age(),
    Column("VolumeMode", description=_c("PersistentVolumeSpec", "volumeMode"), priority=1),
]


def pv_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    claim = spec.get("claimRef")
    claim_str = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    annotations = g(obj, "metadata", "annotations") or {}
    sc = annotations.get(_STORAGE_CLASS_ANNOTATION, spec.get("storageClassName") or "")
    phase = "Terminating" if _deleting(obj) else status.get("phase", "")
    return [name(obj), str((spec.get("capacity") or {}).get("storage", "0")), access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", ""), phase, claim_str, sc,
            spec.get("volumeAttributesClassName") or "<unset>", status.get("reason", ""), age(obj, now),
            spec.get("volumeMode") or "<unset>"]


PVC_COLUMNS = [
    _name(),
    Column("Status", description=_c("PersistentVolumeClaimStatus", "phase")),
    Column("Volume", description=_c("PersistentVolumeClaimSpec", "volumeName")),
    Column("Capacity", description=_c("PersistentVolumeClaimStatus", "capacity")),
    Column("Access Modes", description=_c("PersistentVolumeClaimStatus", "accessModes")),
    Column("StorageClass", description="StorageClass of the pvc"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
    _age(),
    Column("VolumeMode", description=_c("PersistentVolumeClaimSpec", "volumeMode"), priority=1),
]


def pvc_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    capacity, modes = "", ""
    if spec.get("volumeName"):
        modes = access_modes(status.get("accessModes"))
        capacity = str((status.get("capacity") or {}).get("storage", "0"))
    annotations = g(obj, "metadata", "annotations") or {}
    if _STORAGE_CLASS_ANNOTATION in annotations:
        sc = annotations[_STORAGE_CLASS_ANNOTATION]
    else:
        sc = spec.get("storageClassName") or ""
    phase = "Terminating" if _deleting(obj) else status.get("phase", "")
    return [name(obj), phase, spec.get("volumeName", ""), capacity, modes, sc,
            spec.get("volumeAttributesClassName") or "<unset>", age(obj, now), spec.get("volumeMode") or "<unset>"]


RC_COLUMNS = [
    _name(),
    Column("Desired", "integer", _c("ReplicationControllerSpec", "replicas")),
    Column("Current", "integer", _c("ReplicationControllerStatus", "replicas")),
    Column("Ready", "integer", _c("ReplicationControllerStatus", "readyReplicas")),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
    Column("Selector", description=_c("ReplicationControllerSpec", "selector"), priority=1),
]


def _replicas(spec: Obj) -> int:
    # the defaulted value, for objects stored before defaulting ran
    return _int(spec.get("replicas", 1))


def rc_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(g(spec, "template", "spec"))
    return [name(obj), _replicas(spec), _int(status.get("replicas")), _int(status.get("readyReplicas")),
            age(obj, now), names, images, format_labels(spec.get("selector"))]


def _quantity_str(v: Any) -> str:
    return "0" if v is None else str(v)


RESOURCE_QUOTA_COLUMNS = [
    _name(),
    Column("Request", description="Request represents a minimum amount of cpu/memory that a container may "
                                  "consume."),
    Column("Limit", description="Limits control the maximum amount of cpu/memory that a container may use "
                                "independent of contention on the node."),
    _age(),
]


def resource_quota_row(obj: Obj, now: datetime) -> Cells:
    hard = g(obj, "status", "hard") or {}
    used = g(obj, "status", "used") or {}
    requests, limits = [], []
    for res in sorted(hard):
        target = limits if res.split(".")[0] == "limits" and "." in res else requests
        target.append(f"{res}: {_quantity_str(used.get(res))}/{_quantity_str(hard.get(res))}")
    return [name(obj), ", ".join(requests), ", ".join(limits), age(obj, now)]


# ---------------------------------------------------------------------------------------------------
# apps/v1

_APPS = "io.k8s.api.apps.v1"

DEPLOYMENT_COLUMNS = [
    _name(),
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", description=_d(f"{_APPS}.DeploymentStatus", "updatedReplicas")),
    Column("Available", description=_d(f"{_APPS}.DeploymentStatus", "availableReplicas")),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
    Column("Selector", description=_d(f"{_APPS}.DeploymentSpec", "selector"), priority=1),
]


def deployment_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(g(spec, "template", "spec"))
    return [name(obj), f"{_int(status.get('readyReplicas'))}/{_replicas(spec)}", _int(status.get("updatedReplicas")),
            _int(status.get("availableReplicas")), age(obj, now), names, images,
            label_selector_to_string(spec.get("selector"))]


REPLICASET_COLUMNS = [
    _name(),
    Column("Desired", "integer", _d(f"{_APPS}.ReplicaSetSpec", "replicas")),
    Column("Current", "integer", _d(f"{_APPS}.ReplicaSetStatus", "replicas")),
    Column("Ready", "integer", _d(f"{_APPS}.ReplicaSetStatus", "readyReplicas")),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
    Column("Selector", description=_d(f"{_APPS}.ReplicaSetSpec", "selector"), priority=1),
]


def replicaset_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(g(spec, "template", "spec"))
    return [name(obj), _replicas(spec), _int(status.get("replicas")), _int(status.get("readyReplicas")),
            age(obj, now), names, images, format_label_selector(spec.get("selector"))]


STATEFULSET_COLUMNS = [
    _name(),
    Column("Ready", description="Number of the pod with ready state"),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
]


def statefulset_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(g(spec, "template", "spec"))
    return [name(obj), f"{_int(status.get('readyReplicas'))}/{_replicas(spec)}", age(obj, now), names, images]


DAEMONSET_COLUMNS = [
    _name(),
    Column("Desired", "integer", _d(f"{_APPS}.DaemonSetStatus", "desiredNumberScheduled")),
    Column("Current", "integer", _d(f"{_APPS}.DaemonSetStatus", "currentNumberScheduled")),
    Column("Ready", "integer", _d(f"{_APPS}.DaemonSetStatus", "numberReady")),
    Column("Up-to-date", "integer", _d(f"{_APPS}.DaemonSetStatus", "updatedNumberScheduled")),
    Column("Available", "integer", _d(f"{_APPS}.DaemonSetStatus", "numberAvailable")),
    Column("Node Selector", description=_c("PodSpec", "nodeSelector")),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
    Column("Selector", description=_d(f"{_APPS}.DaemonSetSpec", "selector"), priority=1),
]


def daemonset_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(g(spec, "template", "spec"))
    return [name(obj), _int(status.get("desiredNumberScheduled")), _int(status.get("currentNumberScheduled")),
            _int(status.get("numberReady")), _int(status.get("updatedNumberScheduled")),
            _int(status.get("numberAvailable")), format_labels(g(spec, "template", "spec", "nodeSelector")),
            age(obj, now), names, images, format_label_selector(spec.get("selector"))]


CONTROLLER_REVISION_COLUMNS = [
    _name(),
    Column("Controller", description="Controller of the object"),
    Column("Revision", description=_d(f"{_APPS}.ControllerRevision", "revision")),
    _age(),
]


def controller_revision_row(obj: Obj, now: datetime) -> Cells:
    controller = "<none>"
    for ref in g(obj, "metadata", "ownerReferences") or []:
        if ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = ref.get("kind", "")
            gk = f"{kind}.{group}" if group else kind
            controller = f"{gk.lower()}/{ref.get('name', '')}" if gk else ref.get("name", "")
            break
    return [name(obj), controller, _int(obj.get("revision")), age(obj, now)]


# ---------------------------------------------------------------------------------------------------
# batch/v1

JOB_COLUMNS = [
    _name(),
    Column("Status", description="Status of the job."),
    Column("Completions", description=_d("io.k8s.api.batch.v1.JobStatus", "succeeded")),
    Column("Duration", description="Time required to complete the job."),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
    Column("Selector", description=_d("io.k8s.api.batch.v1.JobSpec", "selector"), priority=1),
]


def job_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec['completions'])}"
    else:
        parallelism = _int(spec.get("parallelism"))
        completions = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    duration = ""
    if parse_rfc3339(status.get("startTime")) is not None:
        if parse_rfc3339(status.get("completionTime")) is None:
            duration = since(status.get("startTime"), now)
        else:
            duration = between(status.get("startTime"), status.get("completionTime")) or ""
    conds = status.get("conditions") or []
    if _has_condition(conds, "Complete"):
        state = "Complete"
    elif _has_condition(conds, "Failed"):
        state = "Failed"
    elif _deleting(obj):
        state = "Terminating"
    elif _has_condition(conds, "Suspended"):
        state = "Suspended"
    elif _has_condition(conds, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = containers_cells(g(spec, "template", "spec"))
    return [name(obj), state, completions, duration, age(obj, now), names, images,
            format_label_selector(spec.get("selector"))]


_CRONJOB = "io.k8s.api.batch.v1.CronJobSpec"

CRONJOB_COLUMNS = [
    _name(),
    Column("Schedule", description=_d(_CRONJOB, "schedule")),
    Column("Timezone", description=_d(_CRONJOB, "timeZone")),
    Column("Suspend", "boolean", _d(_CRONJOB, "suspend")),
    Column("Active", "integer", _d("io.k8s.api.batch.v1.CronJobStatus", "active")),
    Column("Last Schedule", description=_d("io.k8s.api.batch.v1.CronJobStatus", "lastScheduleTime")),
    _age(),
    Column("Containers", description=_CONTAINERS, priority=1),
    Column("Images", description=_IMAGES, priority=1),
    Column("Selector", description=_d("io.k8s.api.batch.v1.JobSpec", "selector"), priority=1),
]


def _bool_ptr(v: Any) -> str:
    if v is None:
        return "<unset>"
    return "True" if v else "False"


def cronjob_row(obj: Obj, now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    last = since(status["lastScheduleTime"], now) if status.get("lastScheduleTime") else "<none>"
    job_spec = g(spec, "jobTemplate", "spec") or {}
    names, images = containers_cells(g(job_spec, "template", "spec"))
    return [name(obj), spec.get("schedule", ""), spec.get("timeZone") or "<none>", _bool_ptr(spec.get("suspend")),
            len(status.get("active") or []), last, age(obj, now), names, images,
            format_label_selector(job_spec.get("selector"))]


# ---------------------------------------------------------------------------------------------------
# networking, rbac, storage, coordination, discovery, policy, scheduling

INGRESS_COLUMNS = [
    _name(),
    Column("Class", description="The name of the IngressClass resource that should be used for additional "
                                "configuration"),
    Column("Hosts", description="Hosts that incoming requests are matched against before the ingress rule"),
    Column("Address", description="Address is a list containing ingress points for the load-balancer"),
    Column("Ports", description="Ports of TLS configurations that open"),
    _age(),
]


def _ingress_hosts(rules: list[Obj]) -> str:
    hosts: list[str] = []
    limit, more = 3, False
    for rule in rules:
        if len(hosts) == limit:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    ret = ",".join(hosts)
    return f"{ret} + {len(rules) - limit} more..." if more else ret


def ingress_row(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or {}
    cls = spec.get("ingressClassName")
    return [name(obj), "<none>" if cls is None else cls, _ingress_hosts(spec.get("rules") or []),
            _lb_ingress(obj.get("status")), "80, 443" if spec.get("tls") else "80", age(obj, now)]


INGRESS_CLASS_COLUMNS = [
    _name(),
    Column("Controller", description="Controller that is responsible for handling this class"),
    Column("Parameters", description="A reference to a resource with additional parameters"),
    _age(),
]


def ingress_class_row(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or {}
    params = spec.get("parameters")
    shown = "<none>"
    if params:
        shown = params.get("kind", "")
        if params.get("apiGroup") is not None:
            shown += "." + params["apiGroup"]
        shown += "/" + params.get("name", "")
    return [name(obj), spec.get("controller", ""), shown, age(obj, now)]


NETWORK_POLICY_COLUMNS = [
    _name(),
    Column("Pod-Selector", description=_d("io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector")),
    _age(),
]


def network_policy_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), format_label_selector(g(obj, "spec", "podSelector") or {}), age(obj, now)]


def _binding_columns(what: str) -> list[Column]:
    return [
        _name(),
        Column("Role", description=_d(f"io.k8s.api.rbac.v1.{what}", "roleRef")),
        _age(),
        Column("Users", description=f"Users in the {what[0].lower() + what[1:]}", priority=1),
        Column("Groups", description=f"Groups in the {what[0].lower() + what[1:]}", priority=1),
        Column("ServiceAccounts", description=f"ServiceAccounts in the {what[0].lower() + what[1:]}", priority=1),
    ]


ROLE_BINDING_COLUMNS = _binding_columns("RoleBinding")
CLUSTER_ROLE_BINDING_COLUMNS = _binding_columns("ClusterRoleBinding")


def binding_row(obj: Obj, now: datetime) -> Cells:
    ref = obj.get("roleRef") or {}
    users, groups, sas = [], [], []
    for s in obj.get("subjects") or []:
        kind = s.get("kind")
        if kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        elif kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
    return [name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}", age(obj, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


_SC = "io.k8s.api.storage.v1.StorageClass"

STORAGE_CLASS_COLUMNS = [
    _name(),
    Column("Provisioner", description=_d(_SC, "provisioner")),
    Column("ReclaimPolicy", description=_d(_SC, "reclaimPolicy")),
    Column("VolumeBindingMode", description=_d(_SC, "volumeBindingMode")),
    Column("AllowVolumeExpansion", description=_d(_SC, "allowVolumeExpansion")),
    _age(),
]


def storage_class_row(obj: Obj, now: datetime) -> Cells:
    annotations = g(obj, "metadata", "annotations") or {}
    shown = name(obj)
    if (annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
            or annotations.get("storageclass.beta.kubernetes.io/is-default-class") == "true"):
        shown += " (default)"
    return [shown, obj.get("provisioner", ""), obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate", bool(obj.get("allowVolumeExpansion")), age(obj, now)]


LEASE_COLUMNS = [
    _name(), Column("Holder", description=_d("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")), _age(),
]


def lease_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), g(obj, "spec", "holderIdentity", default=""), age(obj, now)]


_ES = "io.k8s.api.discovery.v1.EndpointSlice"

ENDPOINT_SLICE_COLUMNS = [
    _name(),
    Column("AddressType", description=_d(_ES, "addressType")),
    Column("Ports", description=_d(_ES, "ports")),
    Column("Endpoints", description=_d(_ES, "endpoints")),
    _age(),
]


def endpoint_slice_row(obj: Obj, now: datetime) -> Cells:
    limit = 3
    ports: list[str] = []
    more, count = False, 0
    for p in obj.get("ports") or []:
        if len(ports) < limit:
            if p.get("port") is not None:
                ports.append(str(_int(p["port"])))
            elif p.get("name") is not None:
                ports.append(p["name"])
            else:
                ports.append("*")
        elif len(ports) == limit:
            more = True
        count += 1
    addrs: list[str] = []
    amore, acount = False, 0
    for ep in obj.get("endpoints") or []:
        for a in ep.get("addresses") or []:
            if len(addrs) < limit:
                addrs.append(a)
            elif len(addrs) == limit:
                amore = True
            acount += 1
    return [name(obj), obj.get("addressType", ""), _list_with_more(ports, more, count, limit),
            _list_with_more(addrs, amore, acount, limit), age(obj, now)]


PDB_COLUMNS = [
    _name(),
    Column("Min Available", description="The minimum number of pods that must be available."),
    Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
    Column("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
    _age(),
]


def pdb_row(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or {}
    min_a = int_or_string(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A"
    max_u = int_or_string(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A"
    return [name(obj), min_a, max_u, _int(g(obj, "status", "disruptionsAllowed")), age(obj, now)]


_PC = "io.k8s.api.scheduling.v1.PriorityClass"

PRIORITY_CLASS_COLUMNS = [
    _name(),
    Column("Value", "integer", _d(_PC, "value")),
    Column("Global-Default", "boolean", _d(_PC, "globalDefault")),
    _age(),
    Column("PreemptionPolicy", description=_d(_PC, "preemptionPolicy")),
]


def priority_class_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), _int(obj.get("value")), bool(obj.get("globalDefault")), age(obj, now),
            obj.get("preemptionPolicy") or ""]


_CSR_SPEC = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec"

CSR_COLUMNS = [
    _name(), _age(),
    Column("SignerName", description=_d(_CSR_SPEC, "signerName")),
    Column("Requestor", description=_d(_CSR_SPEC, "request")),
    Column("RequestedDuration", description=_d(_CSR_SPEC, "expirationSeconds")),
    Column("Condition", description=_d("io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions")),
]


def csr_row(obj: Obj, now: datetime) -> Cells:
    types = {c.get("type") for c in g(obj, "status", "conditions", default=None) or [] if isinstance(c, dict)}
    condition = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        condition += ",Failed"
    if g(obj, "status", "certificate"):
        condition += ",Issued"
    seconds = g(obj, "spec", "expirationSeconds")
    duration = human_duration(_int(seconds)) if seconds is not None else "<none>"
    return [name(obj), age(obj, now), g(obj, "spec", "signerName") or "<none>", g(obj, "spec", "username", default=""),
            duration, condition]


# ---------------------------------------------------------------------------------------------------
# Kinds without a printer upstream use the apiserver's default table convertor (NAME, CREATED AT).

DEFAULT_COLUMNS = [_name(), Column("Created At", "date", lambda: doc(_META, "creationTimestamp"))]


def default_row(obj: Obj, now: datetime) -> Cells:
    # RFC 3339 in UTC, as the default convertor formats creationTimestamp
    ts = parse_rfc3339(g(obj, "metadata", "creationTimestamp"))
    return [name(obj), ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "0001-01-01T00:00:00Z"]


# Custom resources without additionalPrinterColumns get the CRD handler's default: NAME, AGE (a date column).
GENERIC_COLUMNS = [_name(), Column("Age", "date", lambda: doc(_META, "creationTimestamp"))]


def generic_row(obj: Obj, now: datetime) -> Cells:
    return [name(obj), age(obj, now)]


@dataclass(frozen=True)
class Printer:
    """Columns and the row function of a kind. A row that cannot be printed (an object of a shape its
    printer does not expect, stored before validation caught it) is logged once and printed as its name
    and `<unknown>` cells: one bad object must not fail the whole list for every reader."""

    columns: list[Column]
    row: RowFn

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", _guarded(self.row, len(self.columns)))

    def column_definitions(self) -> list[dict[str, Any]]:
        return [c.definition() for c in self.columns]


_logged_bad_rows: set[tuple[str, str, str]] = set()


def _guarded(row: RowFn, width: int) -> RowFn:
    if getattr(row, "guarded", False):
        return row

    def safe_row(obj: Obj, now: datetime) -> Any:
        try:
            return row(obj, now)
        except Exception:
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            meta = meta if isinstance(meta, dict) else {}
            who = (str((obj.get("kind") if isinstance(obj, dict) else "") or ""), str(meta.get("namespace") or ""),
                   str(meta.get("name") or ""))
            if who not in _logged_bad_rows and len(_logged_bad_rows) < 10000:
                _logged_bad_rows.add(who)
                log.exception("cannot print a table row for %s %s/%s", *who)
            first = meta.get("name") if isinstance(meta.get("name"), str) else UNKNOWN
            return [first] + [UNKNOWN] * (width - 1)

    safe_row.guarded = True  # type: ignore[attr-defined]
    return safe_row


PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Pod"): Printer(POD_COLUMNS, pod_row),
    ("", "PodTemplate"): Printer(POD_TEMPLATE_COLUMNS, pod_template_row),
    ("", "Namespace"): Printer(NAMESPACE_COLUMNS, namespace_row),
    ("", "Service"): Printer(SERVICE_COLUMNS, service_row),
    ("", "Endpoints"): Printer(ENDPOINTS_COLUMNS, endpoints_row),
    ("", "Node"): Printer(NODE_COLUMNS, node_row),
    ("", "Event"): Printer(EVENT_COLUMNS, event_row),
    ("events.k8s.io", "Event"): Printer(EVENT_COLUMNS, event_row),
    ("", "Secret"): Printer(SECRET_COLUMNS, secret_row),
    ("", "ConfigMap"): Printer(CONFIGMAP_COLUMNS, configmap_row),
    ("", "ServiceAccount"): Printer(SERVICE_ACCOUNT_COLUMNS, service_account_row),
    ("", "PersistentVolume"): Printer(PV_COLUMNS, pv_row),
    ("", "PersistentVolumeClaim"): Printer(PVC_COLUMNS, pvc_row),
    ("", "ReplicationController"): Printer(RC_COLUMNS, rc_row),
    ("", "ResourceQuota"): Printer(RESOURCE_QUOTA_COLUMNS, resource_quota_row),
    ("", "LimitRange"): Printer(DEFAULT_COLUMNS, default_row),
    ("apps", "Deployment"): Printer(DEPLOYMENT_COLUMNS, deployment_row),
    ("apps", "ReplicaSet"): Printer(REPLICASET_COLUMNS, replicaset_row),
    ("apps", "StatefulSet"): Printer(STATEFULSET_COLUMNS, statefulset_row),
    ("apps", "DaemonSet"): Printer(DAEMONSET_COLUMNS, daemonset_row),
    ("apps", "ControllerRevision"): Printer(CONTROLLER_REVISION_COLUMNS, controller_revision_row),
    ("batch", "Job"): Printer(JOB_COLUMNS, job_row),
    ("batch", "CronJob"): Printer(CRONJOB_COLUMNS, cronjob_row),
    ("networking.k8s.io", "Ingress"): Printer(INGRESS_COLUMNS, ingress_row),
    ("networking.k8s.io", "IngressClass"): Printer(INGRESS_CLASS_COLUMNS, ingress_class_row),
    ("networking.k8s.io", "NetworkPolicy"): Printer(NETWORK_POLICY_COLUMNS, network_policy_row),
    ("rbac.authorization.k8s.io", "Role"): Printer(DEFAULT_COLUMNS, default_row),
    ("rbac.authorization.k8s.io", "ClusterRole"): Printer(DEFAULT_COLUMNS, default_row),
    ("rbac.authorization.k8s.io", "RoleBinding"): Printer(ROLE_BINDING_COLUMNS, binding_row),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): Printer(CLUSTER_ROLE_BINDING_COLUMNS, binding_row),
    ("storage.k8s.io", "StorageClass"): Printer(STORAGE_CLASS_COLUMNS, storage_class_row),
    ("coordination.k8s.io", "Lease"): Printer(LEASE_COLUMNS, lease_row),
    ("certificates.k8s.io", "CertificateSigningRequest"): Printer(CSR_COLUMNS, csr_row),
    ("discovery.k8s.io", "EndpointSlice"): Printer(ENDPOINT_SLICE_COLUMNS, endpoint_slice_row),
    ("policy", "PodDisruptionBudget"): Printer(PDB_COLUMNS, pdb_row),
    ("scheduling.k8s.io", "PriorityClass"): Printer(PRIORITY_CLASS_COLUMNS, priority_class_row),
}

GENERIC = Printer(GENERIC_COLUMNS, generic_row)
DEFAULT = Printer(DEFAULT_COLUMNS, default_row)


__all__ = ["DEFAULT", "GENERIC", "PRINTERS", "Column", "Printer", "pod_status_reason"]
