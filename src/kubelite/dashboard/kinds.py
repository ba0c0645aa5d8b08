"""The kinds the dashboard browses and the columns it shows for each (kubectl's `get` columns, mostly)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    key: str  # the URL segment, the resource name
    title: str
    group: str
    version: str
    kind: str
    namespaced: bool
    columns: tuple[str, ...]
    row: Callable[[Obj], list[Any]]
    scalable: bool = False
    section: str = "Workloads"


def age(ts: str | None, now: datetime | None = None) -> str:
    """kubectl's short human duration since `ts`."""
    if not ts:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    s = int(((now or datetime.now(UTC)) - then).total_seconds())
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def _age(o: Obj) -> str:
    return age(_meta(o).get("creationTimestamp"))


def pod_status(pod: Obj) -> str:
    """The STATUS column of `kubectl get pods`, short form."""
    meta, st = _meta(pod), _status(pod)
    if meta.get("deletionTimestamp"):
        return "Terminating"
    reason = st.get("reason") or st.get("phase") or "Unknown"
    for cs in st.get("initContainerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode", 0) != 0:
            return "Init:" + ((state["terminated"].get("reason")) or "Error")
        if state.get("waiting", {}).get("reason") not in (None, "PodInitializing"):
            return "Init:" + state["waiting"]["reason"]
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    return reason


def _pod_row(p: Obj) -> list[Any]:
    statuses = _status(p).get("containerStatuses") or []
    total = len(_spec(p).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return [f"{ready}/{total}", pod_status(p), restarts, _age(p), _status(p).get("podIP") or "<none>",
            _spec(p).get("nodeName") or "<none>"]


def _deploy_row(d: Obj) -> list[Any]:
    st = _status(d)
    return [f"{st.get('readyReplicas') or 0}/{_spec(d).get('replicas', 1)}", st.get("updatedReplicas") or 0,
            st.get("availableReplicas") or 0, _age(d)]


def _rs_row(r: Obj) -> list[Any]:
    st = _status(r)
    return [_spec(r).get("replicas", 1), st.get("replicas") or 0, st.get("readyReplicas") or 0, _age(r)]


def _sts_row(s: Obj) -> list[Any]:
    return [f"{_status(s).get('readyReplicas') or 0}/{_spec(s).get('replicas', 1)}", _age(s)]


def _ds_row(d: Obj) -> list[Any]:
    st = _status(d)
    return [st.get("desiredNumberScheduled") or 0, st.get("currentNumberScheduled") or 0,
            st.get("numberReady") or 0, st.get("updatedNumberScheduled") or 0, st.get("numberAvailable") or 0,
            _age(d)]


def _job_row(j: Obj) -> list[Any]:
    st = _status(j)
    status = "Complete" if any(c.get("type") == "Complete" and c.get("status") == "True"
                               for c in st.get("conditions") or []) else \
        "Failed" if any(c.get("type") == "Failed" and c.get("status") == "True"
                        for c in st.get("conditions") or []) else "Running"
    return [status, f"{st.get('succeeded') or 0}/{_spec(j).get('completions', 1)}", _age(j)]


def _cronjob_row(c: Obj) -> list[Any]:
    st = _status(c)
    last = st.get("lastScheduleTime")
    return [_spec(c).get("schedule", ""), str(bool(_spec(c).get("suspend"))), len(st.get("active") or []),
            age(last) if last else "<none>", _age(c)]


def _ports(svc: Obj) -> str:
    out = []
    for p in _spec(svc).get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _svc_row(s: Obj) -> list[Any]:
    spec = _spec(s)
    external = list(spec.get("externalIPs") or [])
    external += [i.get("ip") or i.get("hostname") for i in (_status(s).get("loadBalancer") or {}).get("ingress") or []]
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            ",".join(x for x in external if x) or ("<pending>" if spec.get("type") == "LoadBalancer" else "<none>"),
            _ports(s), _age(s), selector or "<none>"]


def _cm_row(c: Obj) -> list[Any]:
    return [len(c.get("data") or {}) + len(c.get("binaryData") or {}), _age(c)]


def _ns_row(n: Obj) -> list[Any]:
    return [_status(n).get("phase") or "Active", _age(n)]


def node_ready(n: Obj) -> str:
    for c in _status(n).get("conditions") or []:
        if c.get("type") == "Ready":
            state = "Ready" if c.get("status") == "True" else "NotReady"
            return state + (",SchedulingDisabled" if _spec(n).get("unschedulable") else "")
    return "Unknown"


def _node_row(n: Obj) -> list[Any]:
    roles = sorted(k.split("/", 1)[1] for k in _meta(n).get("labels") or {}
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    internal = next((a.get("address") for a in _status(n).get("addresses") or [] if a.get("type") == "InternalIP"),
                    "<none>")
    return [node_ready(n), ",".join(roles) or "<none>", _age(n),
            (_status(n).get("nodeInfo") or {}).get("kubeletVersion", ""), internal]


def _ing_row(i: Obj) -> list[Any]:
    spec = _spec(i)
    hosts = [r.get("host") or "*" for r in spec.get("rules") or []]
    addrs = [x.get("ip") or x.get("hostname") for x in (_status(i).get("loadBalancer") or {}).get("ingress") or []]
    return [spec.get("ingressClassName") or "<none>", ",".join(hosts) or "*", ",".join(a for a in addrs if a),
            "80, 443" if spec.get("tls") else "80", _age(i)]


def _secret_row(s: Obj) -> list[Any]:
    return [s.get("type") or "Opaque", len(s.get("data") or {}), _age(s)]


def _access(modes: list | None) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _pvc_row(c: Obj) -> list[Any]:
    st, spec = _status(c), _spec(c)
    return [st.get("phase") or "Pending", spec.get("volumeName") or "", (st.get("capacity") or {}).get("storage", ""),
            _access(st.get("accessModes")), spec.get("storageClassName") or "", _age(c)]


def _pv_row(v: Obj) -> list[Any]:
    spec = _spec(v)
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace')}/{ref.get('name')}" if ref else ""
    return [(spec.get("capacity") or {}).get("storage", ""), _access(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy") or "", _status(v).get("phase") or "", claim,
            spec.get("storageClassName") or "", _age(v)]


def _sc_row(c: Obj) -> list[Any]:
    default = (_meta(c).get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    return [c.get("provisioner", "") + (" (default)" if default else ""), c.get("reclaimPolicy") or "Delete",
            c.get("volumeBindingMode") or "Immediate", _age(c)]


def _age_row(o: Obj) -> list[Any]:
    return [_age(o)]


def _binding_row(b: Obj) -> list[Any]:
    ref = b.get("roleRef") or {}
    subjects = [f"{s.get('kind')}/{s.get('name')}" for s in b.get("subjects") or []]
    return [f"{ref.get('kind')}/{ref.get('name')}", ", ".join(subjects), _age(b)]


def _crd_row(c: Obj) -> list[Any]:
    spec = _spec(c)
    return [spec.get("group", ""), (spec.get("names") or {}).get("kind", ""), spec.get("scope", ""),
            ",".join(v.get("name", "") for v in spec.get("versions") or [] if v.get("served")), _age(c)]


def _event_row(e: Obj) -> list[Any]:
    inv = e.get("involvedObject") or e.get("regarding") or {}
    last = e.get("lastTimestamp") or e.get("eventTime") or _meta(e).get("creationTimestamp")
    return [e.get("type") or "Normal", e.get("reason") or "", f"{(inv.get('kind') or '').lower()}/{inv.get('name')}",
            e.get("message") or e.get("note") or "", e.get("count") or 1, age(last)]


KINDS: dict[str, Kind] = {k.key: k for k in (
    Kind("namespaces", "Namespaces", "", "v1", "Namespace", False, ("Status", "Age"), _ns_row, section="Cluster"),
    Kind("nodes", "Nodes", "", "v1", "Node", False, ("Status", "Roles", "Age", "Version", "Internal-IP"), _node_row,
         section="Cluster"),
    Kind("deployments", "Deployments", "apps", "v1", "Deployment", True,
         ("Ready", "Up-to-date", "Available", "Age"), _deploy_row, scalable=True),
    Kind("replicasets", "Replica Sets", "apps", "v1", "ReplicaSet", True, ("Desired", "Current", "Ready", "Age"),
         _rs_row, scalable=True),
    Kind("statefulsets", "Stateful Sets", "apps", "v1", "StatefulSet", True, ("Ready", "Age"), _sts_row,
         scalable=True),
    Kind("daemonsets", "Daemon Sets", "apps", "v1", "DaemonSet", True,
         ("Desired", "Current", "Ready", "Up-to-date", "Available", "Age"), _ds_row),
    Kind("jobs", "Jobs", "batch", "v1", "Job", True, ("Status", "Completions", "Age"), _job_row),
    Kind("cronjobs", "Cron Jobs", "batch", "v1", "CronJob", True,
         ("Schedule", "Suspend", "Active", "Last schedule", "Age"), _cronjob_row),
    Kind("pods", "Pods", "", "v1", "Pod", True, ("Ready", "Status", "Restarts", "Age", "IP", "Node"), _pod_row),
    Kind("services", "Services", "", "v1", "Service", True,
         ("Type", "Cluster-IP", "External-IP", "Ports", "Age", "Selector"), _svc_row, section="Service"),
    Kind("ingresses", "Ingresses", "networking.k8s.io", "v1", "Ingress", True,
         ("Class", "Hosts", "Address", "Ports", "Age"), _ing_row, section="Service"),
    Kind("configmaps", "Config Maps", "", "v1", "ConfigMap", True, ("Data", "Age"), _cm_row, section="Config"),
    Kind("secrets", "Secrets", "", "v1", "Secret", True, ("Type", "Data", "Age"), _secret_row, section="Config"),
    Kind("persistentvolumeclaims", "Persistent Volume Claims", "", "v1", "PersistentVolumeClaim", True,
         ("Status", "Volume", "Capacity", "Access modes", "Storage class", "Age"), _pvc_row, section="Config"),
    Kind("serviceaccounts", "Service Accounts", "", "v1", "ServiceAccount", True, ("Age",), _age_row,
         section="Access"),
    Kind("roles", "Roles", "rbac.authorization.k8s.io", "v1", "Role", True, ("Age",), _age_row, section="Access"),
    Kind("rolebindings", "Role Bindings", "rbac.authorization.k8s.io", "v1", "RoleBinding", True,
         ("Role", "Subjects", "Age"), _binding_row, section="Access"),
    Kind("events", "Events", "", "v1", "Event", True, ("Type", "Reason", "Object", "Message", "Count", "Last seen"),
         _event_row, section="Cluster"),
    Kind("persistentvolumes", "Persistent Volumes", "", "v1", "PersistentVolume", False,
         ("Capacity", "Access modes", "Reclaim policy", "Status", "Claim", "Storage class", "Age"), _pv_row,
         section="Cluster"),
    Kind("storageclasses", "Storage Classes", "storage.k8s.io", "v1", "StorageClass", False,
         ("Provisioner", "Reclaim policy", "Binding mode", "Age"), _sc_row, section="Cluster"),
    Kind("clusterroles", "Cluster Roles", "rbac.authorization.k8s.io", "v1", "ClusterRole", False, ("Age",),
         _age_row, section="Cluster"),
    Kind("clusterrolebindings", "Cluster Role Bindings", "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding",
         False, ("Role", "Subjects", "Age"), _binding_row, section="Cluster"),
    Kind("customresourcedefinitions", "Custom Resource Definitions", "apiextensions.k8s.io", "v1",
         "CustomResourceDefinition", False, ("Group", "Kind", "Scope", "Versions", "Age"), _crd_row,
         section="Cluster"),
)}

RESTARTABLE = ("deployments", "statefulsets", "daemonsets")
CLUSTER_KEYS = tuple(k.key for k in KINDS.values() if not k.namespaced)

WORKLOADS = ("deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs", "pods")
