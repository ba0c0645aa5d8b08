"""Defaulting, as upstream's `SetDefaults_*` functions in pkg/apis/*/v1/defaults.go do it for v1.33.

`apply_defaults(rt, obj)` fills in what a client left out, in place. Values the API server allocates
(clusterIP, nodePort, a Job's controller-uid selector) and admission-time values (priority,
preemptionPolicy of pods) are not defaults and are left alone.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

from kubelite.api.resources import ResourceType

Obj = dict[str, Any]
DEFAULT_MODE = 0o644  # 420, the mode of projected, secret, configMap and downwardAPI volume files


def _sub(obj: Obj, *keys: str) -> Obj | None:
    cur: Any = obj
    for k in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur if isinstance(cur, dict) else None


def _items(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- core: containers, probes, volumes, pod specs ------------------------------------------------------


def image_pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged, undigested image; IfNotPresent otherwise."""
    name = image
    digest = ""
    if "@" in name:
        name, digest = name.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if tag == "latest" or (not tag and not digest):
        return "Always"
    return "IfNotPresent"


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _http_get(probe.get("httpGet"))


def _http_get(action: Any) -> None:
    if isinstance(action, dict):
        action.setdefault("path", "/")
        action.setdefault("scheme", "HTTP")


def _lifecycle(lc: Any) -> None:
    if isinstance(lc, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lc.get(hook), dict):
                _http_get(lc[hook].get("httpGet"))


def _env(envs: Any) -> None:
    for env in _items(envs):
        field_ref = _sub(env, "valueFrom", "fieldRef")
        if field_ref is not None:
            field_ref.setdefault("apiVersion", "v1")


def _container(c: Obj, host_network: bool) -> None:
    if isinstance(c.get("image"), str) and "imagePullPolicy" not in c:
        c["imagePullPolicy"] = image_pull_policy(c["image"])
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if not isinstance(c.get("resources"), dict):
        c["resources"] = {}
    for port in _items(c.get("ports")):
        port.setdefault("protocol", "TCP")
        if host_network and "hostPort" not in port and "containerPort" in port:
            port["hostPort"] = port["containerPort"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(probe))
    _lifecycle(c.get("lifecycle"))
    _env(c.get("env"))


_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)


def _field_refs(items: Any) -> None:
    for item in _items(items):
        if isinstance(item.get("fieldRef"), dict):
            item["fieldRef"].setdefault("apiVersion", "v1")


def _volume(v: Obj) -> None:
    if not any(k in v for k in _VOLUME_SOURCES):
        v["emptyDir"] = {}
        return
    for kind in ("secret", "configMap", "downwardAPI", "projected"):
        src = v.get(kind)
        if isinstance(src, dict):
            src.setdefault("defaultMode", DEFAULT_MODE)
    _field_refs(_sub(v, "downwardAPI") and v["downwardAPI"].get("items"))
    for source in _items(_sub(v, "projected") and v["projected"].get("sources")):
        token = source.get("serviceAccountToken")
        if isinstance(token, dict):
            token.setdefault("expirationSeconds", 3600)
        if isinstance(source.get("downwardAPI"), dict):
            _field_refs(source["downwardAPI"].get("items"))
    if isinstance(v.get("hostPath"), dict):
        v["hostPath"].setdefault("type", "")
    claim = _sub(v, "ephemeral", "volumeClaimTemplate", "spec")
    if claim is not None:
        _pvc_spec(claim)


def pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec plus everything nested in it (containers, probes, volumes)."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    host_network = spec.get("hostNetwork") is True
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _items(spec.get(key)):
            _container(c, host_network)
    for v in _items(spec.get("volumes")):
        _volume(v)


def _template(tmpl: Any) -> None:
    spec = _sub(tmpl, "spec") if isinstance(tmpl, dict) else None
    if spec is not None:
        pod_spec(spec)


def _pod(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    # a container with limits but no requests gets requests equal to its limits
    for key in ("containers", "initContainers"):
        for c in _items(spec.get(key)):
            res = c.get("resources")
            limits = res.get("limits") if isinstance(res, dict) else None
            if isinstance(limits, dict) and limits:
                requests = res.setdefault("requests", {})
                if isinstance(requests, dict):
                    for name, qty in limits.items():
                        requests.setdefault(name, qty)


def _service(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        cfg = spec.setdefault("sessionAffinityConfig", {})
        if isinstance(cfg, dict):
            client = cfg.setdefault("clientIP", {})
            if isinstance(client, dict):
                client.setdefault("timeoutSeconds", 10800)
    for port in _items(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    stype = spec["type"]
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if stype != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        # set by the registry on create in a single-stack IPv4 cluster, as upstream's REST storage does
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])


def _endpoints(obj: Obj) -> None:
    for subset in _items(obj.get("subsets")):
        for port in _items(subset.get("ports")):
            port.setdefault("protocol", "TCP")


def _secret(obj: Obj) -> None:
    merge_string_data(obj)
    if not obj.get("type"):
        obj["type"] = "Opaque"


def merge_string_data(obj: Obj) -> None:
    """stringData is write-only: upstream's conversion folds it into data (its keys winning) on every write,
    create, update and patch alike, and never stores it."""
    string_data = obj.get("stringData")
    if string_data is not None and not isinstance(string_data, dict):
        return  # not a map: validation reports it
    obj.pop("stringData", None)
    if not string_data:
        return
    data = obj.get("data")
    if data is None:
        data = obj["data"] = {}
    elif not isinstance(data, dict):
        return
    for key, value in string_data.items():
        data[key] = base64.b64encode(("" if value is None else str(value)).encode()).decode()


def _namespace(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict) and not spec.get("finalizers"):
        spec["finalizers"] = ["kubernetes"]
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Active")


def _pvc_spec(spec: Obj) -> None:
    spec.setdefault("volumeMode", "Filesystem")


def _pvc(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is not None:
        _pvc_spec(spec)
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")


def _pv(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is not None:
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")


def _limit_range(obj: Obj) -> None:
    for item in _items(_sub(obj, "spec") and obj["spec"].get("limits")):
        if item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        request = dict(item.get("defaultRequest") or {})
        for name, qty in (item.get("max") or {}).items():
            default.setdefault(name, qty)
        for name, qty in default.items():
            request.setdefault(name, qty)
        for name, qty in (item.get("min") or {}).items():
            request.setdefault(name, qty)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request


def _replication_controller(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    labels = _sub(spec, "template", "metadata", "labels")
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = obj.setdefault("metadata", {})
        if isinstance(meta, dict) and not meta.get("labels"):
            meta["labels"] = dict(labels)
    spec.setdefault("replicas", 1)
    _template(spec.get("template"))


def _pod_template(obj: Obj) -> None:
    _template(obj.get("template"))


# --- apps ------------------------------------------------------------------------------------------------


def _deployment(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(spec.get("template"))


def _replica_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is not None:
        spec.setdefault("replicas", 1)
        _template(spec.get("template"))


def _stateful_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("partition", 0)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(policy, dict):
        policy.setdefault("whenDeleted", "Retain")
        policy.setdefault("whenScaled", "Retain")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    for claim in _items(spec.get("volumeClaimTemplates")):
        if isinstance(claim.get("spec"), dict):
            _pvc_spec(claim["spec"])
        status = claim.setdefault("status", {})
        if isinstance(status, dict):
            status.setdefault("phase", "Pending")
    _template(spec.get("template"))


def _daemon_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", 1)
                ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(spec.get("template"))


# --- batch -----------------------------------------------------------------------------------------------


def _job(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if "backoffLimit" not in spec:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    labels = _sub(spec, "template", "metadata", "labels")
    meta = obj.setdefault("metadata", {})
    if labels is not None and isinstance(meta, dict) and not meta.get("labels"):
        meta["labels"] = copy.deepcopy(labels)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, dict):
        for rule in _items(failure_policy.get("rules")):
            for cond in _items(rule.get("onPodConditions")):
                cond.setdefault("status", "True")
    if "podReplacementPolicy" not in spec:
        spec["podReplacementPolicy"] = "Failed" if failure_policy is not None else "TerminatingOrFailed"
    _template(spec.get("template"))


def _cron_job(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = _sub(spec, "jobTemplate", "spec")
    if job_spec is not None:
        _template(job_spec.get("template"))


# --- other groups ----------------------------------------------------------------------------------------


def _network_policy(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec is None:
        return
    for direction in ("ingress", "egress"):
        for rule in _items(spec.get(direction)):
            for port in _items(rule.get("ports")):
                port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _role_binding(obj: Obj) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = "rbac.authorization.k8s.io"
    for subject in _items(obj.get("subjects")):
        # apiGroup is omitempty upstream: a ServiceAccount subject keeps no apiGroup key at all
        if not subject.get("apiGroup"):
            subject.pop("apiGroup", None)
            if subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = "rbac.authorization.k8s.io"


def _storage_class(obj: Obj) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def _endpoint_slice(obj: Obj) -> None:
    for port in _items(obj.get("ports")):
        port.setdefault("name", "")
        port.setdefault("protocol", "TCP")


def _node(obj: Obj) -> None:
    # upstream's v1 conversion keeps podCIDR and podCIDRs[0] in step
    spec = _sub(obj, "spec")
    if spec is None:
        return
    cidrs = spec.get("podCIDRs")
    if not cidrs and isinstance(spec.get("podCIDR"), str) and spec["podCIDR"]:
        spec["podCIDRs"] = [spec["podCIDR"]]
    elif isinstance(cidrs, list) and cidrs and not spec.get("podCIDR"):
        spec["podCIDR"] = cidrs[0]


def _priority_class(obj: Obj) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


_BY_KIND: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): _pod,
    ("", "PodTemplate"): _pod_template,
    ("", "ReplicationController"): _replication_controller,
    ("", "Service"): _service,
    ("", "Endpoints"): _endpoints,
    ("", "Secret"): _secret,
    ("", "Namespace"): _namespace,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "PersistentVolume"): _pv,
    ("", "LimitRange"): _limit_range,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cron_job,
    ("networking.k8s.io", "NetworkPolicy"): _network_policy,
    ("rbac.authorization.k8s.io", "RoleBinding"): _role_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _role_binding,
    ("storage.k8s.io", "StorageClass"): _storage_class,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    ("scheduling.k8s.io", "PriorityClass"): _priority_class,
    ("", "Node"): _node,
}


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    """Fill in upstream's defaults for rt's kind, in place. Kinds without defaults are left as they are."""
    fn = _BY_KIND.get((rt.group, rt.kind))
    if fn is not None and isinstance(obj, dict):
        fn(obj)
