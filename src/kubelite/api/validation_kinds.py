"""Per-kind validation (pods, workloads, services, config, RBAC …) with upstream's field paths and wording.

Mirrors pkg/apis/*/validation of Kubernetes v1.33; each function returns a list of causes.
"""

from __future__ import annotations

import re
from typing import Any

from kubelite.api import validation_names as vn
from kubelite.api import validation_scheduling as vs
from kubelite.api.quantity import parse_quantity

Obj = dict[str, Any]
Causes = list[dict[str, str]]

PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)
_VOLUME_REQUIRED = {"configMap": "name", "secret": "secretName", "persistentVolumeClaim": "claimName",
                    "hostPath": "path"}
# resources whose requests must equal limits (no overcommit): extended resources and hugepages
_OVERCOMMIT = {"cpu", "memory", "ephemeral-storage"}


def items(value: Any) -> list[Obj]:
    return [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []


def as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def dns_label(value: str, path: str) -> Causes:
    return [vn.invalid(path, value, m) for m in vn.is_dns1123_label(value)]


def dns_subdomain(value: str, path: str) -> Causes:
    return [vn.invalid(path, value, m) for m in vn.is_dns1123_subdomain(value)]


def nonnegative(value: Any, path: str) -> Causes:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [vn.invalid(path, value, "must be greater than or equal to 0")]
    return []


# --- quantities ------------------------------------------------------------------------------------------

def _qty_text(value: Any) -> str:
    # upstream prints Quantity.String() (canonical form); ours is the text the client sent
    return value if isinstance(value, str) else str(value)


def _resources(res: Obj, path: str) -> Causes:
    causes: Causes = []
    limits = as_dict(res.get("limits"))
    requests = as_dict(res.get("requests"))
    for name in sorted(limits):
        q = parse_quantity(limits[name])
        if q is not None and q < 0:
            causes.append(vn.invalid(f"{path}.limits[{name}]", _qty_text(limits[name]),
                                     "must be greater than or equal to 0"))
    for name in sorted(requests):
        q = parse_quantity(requests[name])
        if q is None:
            continue
        if q < 0:
            causes.append(vn.invalid(f"{path}.requests[{name}]", _qty_text(requests[name]),
                                     "must be greater than or equal to 0"))
        if name in limits:
            lim = parse_quantity(limits[name])
            if lim is None:
                continue
            overcommit = name in _OVERCOMMIT or ("/" not in name and not name.startswith("hugepages-"))
            if q != lim and not overcommit:
                causes.append(vn.invalid(f"{path}.requests", _qty_text(requests[name]),
                                         f"must be equal to {name} limit of {_qty_text(limits[name])}"))
            elif q > lim:
                causes.append(vn.invalid(f"{path}.requests", _qty_text(requests[name]),
                                         f"must be less than or equal to {name} limit of "
                                         f"{_qty_text(limits[name])}"))
    return causes


# --- volumes ---------------------------------------------------------------------------------------------


def validate_volumes(volumes: Any, path: str) -> tuple[set[str], Causes]:
    causes: Causes = []
    names: set[str] = set()
    for i, vol in enumerate(items(volumes)):
        at = f"{path}[{i}]"
        errs: Causes = []
        sources = [k for k in VOLUME_SOURCES if vol.get(k) is not None]
        for extra in sources[1:]:
            errs.append(vn.forbidden(f"{at}.{extra}", "may not specify more than 1 volume type"))
        if not sources:
            errs.append(vn.required(at, "must specify a volume type"))
        for kind in sources[:1]:
            key = _VOLUME_REQUIRED.get(kind)
            if key and not as_dict(vol.get(kind)).get(key):
                errs.append(vn.required(f"{at}.{kind}.{key}"))
        name = vol.get("name") or ""
        if not name:
            errs.append(vn.required(f"{at}.name"))
        else:
            errs.extend(dns_label(name, f"{at}.name"))
        if name in names:
            errs.append(vn.duplicate(f"{at}.name", name))
        if errs:
            causes.extend(errs)
        else:
            names.add(name)
    return names, causes


# --- containers ------------------------------------------------------------------------------------------


def _ports(ports: Any, path: str) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(items(ports)):
        at = f"{path}[{i}]"
        name = port.get("name") or ""
        if name:
            msgs = vn.is_valid_port_name(name)
            if msgs:
                causes.extend(vn.invalid(f"{at}.name", name, m) for m in msgs)
            elif name in names:
                causes.append(vn.duplicate(f"{at}.name", name))
            else:
                names.add(name)
        cport = port.get("containerPort") or 0
        if cport == 0:
            causes.append(vn.required(f"{at}.containerPort"))
        else:
            causes.extend(vn.invalid(f"{at}.containerPort", cport, m) for m in vn.is_valid_port_num(cport))
        hport = port.get("hostPort") or 0
        if hport:
            causes.extend(vn.invalid(f"{at}.hostPort", hport, m) for m in vn.is_valid_port_num(hport))
        proto = port.get("protocol") or ""
        if not proto:
            causes.append(vn.required(f"{at}.protocol"))
        elif proto not in PORT_PROTOCOLS:
            causes.append(vn.not_supported(f"{at}.protocol", proto, PORT_PROTOCOLS))
    return causes


def _env(envs: Any, path: str) -> Causes:
    causes: Causes = []
    for i, env in enumerate(items(envs)):
        name = env.get("name") or ""
        if not name:
            causes.append(vn.required(f"{path}[{i}].name"))
        causes.extend(vn.invalid(f"{path}[{i}].name", name, m) for m in vn.is_env_var_name(name))
    return causes


def _mounts(mounts: Any, volumes: set[str], path: str) -> Causes:
    causes: Causes = []
    seen: set[str] = set()
    for i, m in enumerate(items(mounts)):
        at = f"{path}[{i}]"
        name = m.get("name") or ""
        if not name:
            causes.append(vn.required(f"{at}.name"))
        if name not in volumes:
            causes.append(vn.not_found(f"{at}.name", name))
        mount_path = m.get("mountPath") or ""
        if not mount_path:
            causes.append(vn.required(f"{at}.mountPath"))
        if mount_path in seen:
            causes.append(vn.invalid(f"{at}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
    return causes


def _container(c: Obj, volumes: set[str], path: str) -> Causes:
    causes: Causes = []
    name = c.get("name") or ""
    if not name:
        causes.append(vn.required(f"{path}.name"))
    else:
        causes.extend(dns_label(name, f"{path}.name"))
    if not c.get("image"):
        causes.append(vn.required(f"{path}.image"))
    policy = c.get("terminationMessagePolicy") or ""
    if not policy:
        causes.append(vn.required(f"{path}.terminationMessagePolicy"))
    elif policy not in TERMINATION_MESSAGE_POLICIES:
        causes.append(vn.not_supported(f"{path}.terminationMessagePolicy", policy, TERMINATION_MESSAGE_POLICIES))
    causes.extend(_ports(c.get("ports"), f"{path}.ports"))
    causes.extend(_env(c.get("env"), f"{path}.env"))
    causes.extend(_mounts(c.get("volumeMounts"), volumes, f"{path}.volumeMounts"))
    pull = c.get("imagePullPolicy") or ""
    if not pull:
        causes.append(vn.required(f"{path}.imagePullPolicy"))
    elif pull not in PULL_POLICIES:
        causes.append(vn.not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    causes.extend(_resources(as_dict(c.get("resources")), f"{path}.resources"))
    return causes


def _containers(containers: Any, volumes: set[str], path: str, names: set[str], required: bool) -> Causes:
    causes: Causes = []
    if required and not containers:
        causes.append(vn.required(path))
    for i, c in enumerate(items(containers)):
        at = f"{path}[{i}]"
        causes.extend(_container(c, volumes, at))
        name = c.get("name") or ""
        if name in names:
            causes.append(vn.duplicate(f"{at}.name", name))
        else:
            names.add(name)
    return causes


def validate_pod_spec(spec: Obj, path: str) -> Causes:
    volumes, causes = validate_volumes(spec.get("volumes"), f"{path}.volumes")
    names: set[str] = set()
    causes += _containers(spec.get("containers"), volumes, f"{path}.containers", names, True)
    causes += _containers(spec.get("initContainers"), volumes, f"{path}.initContainers", names, False)
    restart = spec.get("restartPolicy") or ""
    if not restart:
        causes.append(vn.required(f"{path}.restartPolicy"))
    elif restart not in RESTART_POLICIES:
        causes.append(vn.not_supported(f"{path}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy") or ""
    if not dns:
        causes.append(vn.required(f"{path}.dnsPolicy"))
    elif dns not in DNS_POLICIES:
        causes.append(vn.not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    sa = spec.get("serviceAccountName")
    if sa:
        causes.extend(dns_subdomain(sa, f"{path}.serviceAccountName"))
    node = spec.get("nodeName")
    if node:
        causes.extend(dns_subdomain(node, f"{path}.nodeName"))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= 2**31 - 1:
        causes.append(vn.invalid(f"{path}.activeDeadlineSeconds", deadline,
                                 f"must be between 1 and {2**31 - 1}, inclusive"))
    grace = spec.get("terminationGracePeriodSeconds")
    causes.extend(nonnegative(grace, f"{path}.terminationGracePeriodSeconds") if grace != -1 else [])
    causes += vs.validate_tolerations(spec.get("tolerations"), f"{path}.tolerations")
    causes += vs.validate_readiness_gates(spec.get("readinessGates"), f"{path}.readinessGates")
    return causes


def validate_labels(labels: Any, path: str) -> Causes:
    causes: Causes = []
    for key in sorted(as_dict(labels)):
        causes.extend(vn.invalid(path, key, m) for m in vn.is_qualified_name(key))
        value = labels[key]
        if isinstance(value, str):
            causes.extend(vn.invalid(path, value, m) for m in vn.is_valid_label_value(value))
    return causes


TOTAL_ANNOTATION_SIZE = 256 * 1024


def validate_annotations(annotations: Any, path: str) -> Causes:
    causes: Causes = []
    ann = as_dict(annotations)
    for key in sorted(ann):
        # annotation keys are qualified names, case-insensitively
        causes.extend(vn.invalid(path, key, m) for m in vn.is_qualified_name(key.lower()))
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in ann.items())
    if size > TOTAL_ANNOTATION_SIZE:
        causes.append(vn.too_long(path, TOTAL_ANNOTATION_SIZE))
    return causes


def validate_pod_template(tmpl: Any, path: str) -> Causes:
    tmpl = as_dict(tmpl)
    meta = as_dict(tmpl.get("metadata"))
    causes = validate_labels(meta.get("labels"), f"{path}.labels")
    causes += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    spec = as_dict(tmpl.get("spec"))
    causes += validate_pod_spec(spec, f"{path}.spec")
    if spec.get("ephemeralContainers"):
        causes.append(vn.forbidden(f"{path}.spec.ephemeralContainers",
                                   "ephemeral containers not allowed in pod template"))
    return causes


# --- selectors and workloads -----------------------------------------------------------------------------

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: Any, path: str) -> Causes:
    if not isinstance(sel, dict):
        return []
    causes = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(items(sel.get("matchExpressions"))):
        at = f"{path}.matchExpressions[{i}]"
        op = expr.get("operator") or ""
        values = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                causes.append(vn.required(f"{at}.values",
                                          "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                causes.append(vn.forbidden(f"{at}.values",
                                           "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(vn.invalid(f"{at}.operator", op, "not a valid selector operator"))
        causes.extend(vn.invalid(f"{at}.key", expr.get("key", ""), m)
                      for m in vn.is_qualified_name(expr.get("key") or ""))
    return causes


def selector_matches(sel: Any, labels: Any) -> bool:
    """metav1.LabelSelectorAsSelector(sel).Matches(labels); a nil selector matches nothing."""
    if not isinstance(sel, dict):
        return False
    labels = as_dict(labels)
    for k, v in as_dict(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for expr in items(sel.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_empty(sel: Any) -> bool:
    return isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions")


def _template_labels(spec: Obj) -> Any:
    return as_dict(as_dict(spec.get("template")).get("metadata")).get("labels")


def _labels_value(labels: Any) -> Any:
    return vn.GoLiteral("map[string]string(nil)") if labels is None else labels


def _selector_and_template(spec: Obj, kind: str, required: bool) -> Causes:
    """Selector presence/shape, then the template: the ReplicaSet/Deployment/StatefulSet pattern."""
    causes: Causes = []
    sel = spec.get("selector")
    if sel is None:
        if required:
            causes.append(vn.required("spec.selector"))
    else:
        causes += validate_label_selector(sel, "spec.selector")
        if _selector_empty(sel):
            causes.append(vn.invalid("spec.selector", vn.label_selector_literal(sel),
                                     f"empty selector is invalid for {kind}"))
    labels = _template_labels(spec)
    if isinstance(sel, dict) and not _selector_empty(sel) and not selector_matches(sel, labels):
        causes.append(vn.invalid("spec.template.metadata.labels", _labels_value(labels),
                                 "`selector` does not match template `labels`"))
    causes += validate_pod_template(spec.get("template"), "spec.template")
    return causes


def _restart_always(spec: Obj) -> Causes:
    policy = as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy") or ""
    if policy and policy != "Always":
        return [vn.not_supported("spec.template.spec.restartPolicy", policy, ("Always",))]
    return []


_PERCENT = re.compile(r"^[0-9]+%$")


def _int_or_string_literal(v: Any) -> vn.GoLiteral:
    if isinstance(v, str):
        return vn.GoLiteral(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{vn.go_quote(v)}}}")
    return vn.GoLiteral(f"intstr.IntOrString{{Type:0, IntVal:{v or 0}, StrVal:\"\"}}")


def _int_or_percent(v: Any, path: str) -> Causes:
    if isinstance(v, str):
        if not _PERCENT.match(v):
            return [vn.invalid(path, v, vn.regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%",
                "1%", "93%"))]
        return []
    return nonnegative(v, path)


def _int_or_percent_value(v: Any) -> int:
    if isinstance(v, str):
        return int(v[:-1]) if _PERCENT.match(v) else 0
    return v if isinstance(v, int) else 0


def validate_deployment(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative(spec.get("replicas"), "spec.replicas")
    causes += _selector_and_template(spec, "deployment", True)
    causes += _restart_always(spec)
    strategy = as_dict(spec.get("strategy"))
    stype = strategy.get("type")
    ru = strategy.get("rollingUpdate")
    if stype == "Recreate":
        if ru is not None:
            causes.append(vn.forbidden("spec.strategy.rollingUpdate",
                                       "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == "RollingUpdate":
        ru = as_dict(ru)
        mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
        causes += _int_or_percent(mu, "spec.strategy.rollingUpdate.maxUnavailable")
        causes += _int_or_percent(ms, "spec.strategy.rollingUpdate.maxSurge")
        if _int_or_percent_value(mu) == 0 and _int_or_percent_value(ms) == 0:
            causes.append(vn.invalid("spec.strategy.rollingUpdate.maxUnavailable", _int_or_string_literal(mu),
                                     "may not be 0 when `maxSurge` is 0"))
        if isinstance(mu, str) and _PERCENT.match(mu) and int(mu[:-1]) > 100:
            causes.append(vn.invalid("spec.strategy.rollingUpdate.maxUnavailable", _int_or_string_literal(mu),
                                     "must not be greater than 100%"))
    else:
        literal = vn.GoLiteral(f"apps.DeploymentStrategy{{Type:{vn.go_quote(str(stype or ''))}, "
                               "RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}")
        causes.append(vn.not_supported("spec.strategy", literal, ("Recreate", "RollingUpdate")))
    causes += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    pds = spec.get("progressDeadlineSeconds")
    if isinstance(pds, int):
        causes += nonnegative(pds, "spec.progressDeadlineSeconds")
        if pds <= (spec.get("minReadySeconds") or 0):
            causes.append(vn.invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    return causes


def validate_replica_set(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative(spec.get("replicas"), "spec.replicas")
    causes += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    # upstream's ReplicaSet message says "deployment" too
    causes += _selector_and_template(spec, "deployment", True)
    return causes + _restart_always(spec)


def validate_replication_controller(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative(spec.get("replicas"), "spec.replicas")
    causes += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = as_dict(spec.get("selector"))
    if not selector:
        causes.append(vn.required("spec.selector"))
    else:
        causes += validate_labels(selector, "spec.selector")
    tmpl = spec.get("template")
    if tmpl is None:
        causes.append(vn.required("spec.template"))
        return causes
    labels = _template_labels(spec)
    if selector and any(as_dict(labels).get(k) != v for k, v in selector.items()):
        causes.append(vn.invalid("spec.template.metadata.labels", _labels_value(labels),
                                 "`selector` does not match template `labels`"))
    causes += validate_pod_template(tmpl, "spec.template")
    return causes + _restart_always(spec)


def _with_claim_volumes(spec: Obj) -> Obj:
    """Containers may mount the volumeClaimTemplates by name, so count them as the template's volumes."""
    claims = [as_dict(as_dict(t).get("metadata")).get("name") for t in spec.get("volumeClaimTemplates") or []]
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    if not any(claims) or not pod_spec:
        return spec
    present = {as_dict(v).get("name") for v in pod_spec.get("volumes") or []}
    extra = [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in claims
             if isinstance(n, str) and n and n not in present]
    template = {**spec["template"], "spec": {**pod_spec, "volumes": list(pod_spec.get("volumes") or []) + extra}}
    return {**spec, "template": template}


def validate_stateful_set(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes: Causes = []
    pmp = spec.get("podManagementPolicy") or ""
    if not pmp:
        causes.append(vn.required("spec.podManagementPolicy"))
    elif pmp not in ("OrderedReady", "Parallel"):
        causes.append(vn.invalid("spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"))
    strategy = as_dict(spec.get("updateStrategy"))
    stype = strategy.get("type") or ""
    if not stype:
        causes.append(vn.required("spec.updateStrategy"))
    elif stype == "OnDelete" and strategy.get("rollingUpdate") is not None:
        causes.append(vn.invalid("spec.updateStrategy.rollingUpdate", vn.GoLiteral("&apps.RollingUpdateStatefulSetStrategy{...}"),
                                 "only allowed for updateStrategy 'RollingUpdate'"))
    elif stype == "RollingUpdate":
        causes += nonnegative(as_dict(strategy.get("rollingUpdate")).get("partition"),
                              "spec.updateStrategy.rollingUpdate.partition")
    elif stype not in ("OnDelete", "RollingUpdate"):
        causes.append(vn.invalid("spec.updateStrategy", vn.GoLiteral(f"apps.StatefulSetUpdateStrategy{{Type:{vn.go_quote(stype)}, RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}"),
                                 "must be 'RollingUpdate' or 'OnDelete'"))
    causes += nonnegative(spec.get("replicas"), "spec.replicas")
    causes += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += _selector_and_template(_with_claim_volumes(spec), "statefulset", True)
    causes += _restart_always(spec)
    if as_dict(as_dict(spec.get("template")).get("spec")).get("activeDeadlineSeconds") is not None:
        causes.append(vn.forbidden("spec.template.spec.activeDeadlineSeconds",
                                   "activeDeadlineSeconds in StatefulSet is not Supported"))
    return causes


def validate_daemon_set(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    sel = spec.get("selector")
    causes = validate_label_selector(sel, "spec.selector")
    labels = _template_labels(spec)
    if not selector_matches(sel, labels) or _selector_empty(sel):
        if not _selector_empty(sel):
            causes.append(vn.invalid("spec.template.metadata.labels", _labels_value(labels),
                                     "`selector` does not match template `labels`"))
    if _selector_empty(sel):
        causes.append(vn.invalid("spec.selector", vn.label_selector_literal(sel),
                                 "empty selector is invalid for daemonset"))
    causes += validate_pod_template(spec.get("template"), "spec.template")
    causes += _restart_always(spec)
    strategy = as_dict(spec.get("updateStrategy"))
    stype = strategy.get("type") or ""
    if stype and stype not in ("OnDelete", "RollingUpdate"):
        causes.append(vn.not_supported("spec.updateStrategy.type", stype, ("OnDelete", "RollingUpdate")))
    causes += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return causes


def _job_spec(spec: Obj, path: str) -> Causes:
    causes: Causes = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished"):
        causes += nonnegative(spec.get(key), f"{path}.{key}")
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("Indexed", "NonIndexed"):
        causes.append(vn.not_supported(f"{path}.completionMode", mode, ("Indexed", "NonIndexed")))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(vn.required(f"{path}.completions", "when completion mode is Indexed"))
    sel = spec.get("selector")
    if sel is not None:
        causes += validate_label_selector(sel, f"{path}.selector")
        labels = as_dict(as_dict(spec.get("template")).get("metadata")).get("labels")
        if not selector_matches(sel, labels):
            causes.append(vn.invalid(f"{path}.template.metadata.labels", _labels_value(labels),
                                     "`selector` does not match template `labels`"))
    elif spec.get("manualSelector") is True:
        causes.append(vn.required(f"{path}.selector"))
    causes += validate_pod_template(spec.get("template"), f"{path}.template")
    policy = as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        causes.append(vn.required(f"{path}.template.spec.restartPolicy",
                                  'valid values: "OnFailure", "Never"'))
    return causes


def validate_job(obj: Obj) -> Causes:
    return _job_spec(as_dict(obj.get("spec")), "spec")


def validate_cron_job(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes: Causes = []
    name = as_dict(obj.get("metadata")).get("name") or ""
    if len(name) > 52:
        causes.append(vn.invalid("metadata.name", name, "must be no more than 52 characters"))
    if not spec.get("schedule"):
        causes.append(vn.required("spec.schedule"))
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        causes.append(vn.required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(vn.not_supported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace")))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes += nonnegative(spec.get(key), f"spec.{key}")
    job_tmpl = as_dict(spec.get("jobTemplate"))
    causes += validate_labels(as_dict(job_tmpl.get("metadata")).get("labels"), "spec.jobTemplate.metadata.labels")
    causes += _job_spec(as_dict(job_tmpl.get("spec")), "spec.jobTemplate.spec")
    return causes


def validate_pod(obj: Obj) -> Causes:
    return validate_pod_spec(as_dict(obj.get("spec")), "spec")


def validate_pod_template_kind(obj: Obj) -> Causes:
    return validate_pod_template(obj.get("template"), "template")


# --- services --------------------------------------------------------------------------------------------

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _service_port_literal(port: Obj) -> vn.GoLiteral:
    return vn.GoLiteral(
        f"core.ServicePort{{Name:\"\", Protocol:{vn.go_quote(str(port.get('protocol') or ''))}, "
        f"AppProtocol:(*string)(nil), Port:{port.get('port') or 0}, "
        "TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}")


def validate_service(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes: Causes = []
    stype = spec.get("type") or ""
    ports = items(spec.get("ports"))
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and stype != "ExternalName":
        causes.append(vn.required("spec.ports"))
    if stype == "ExternalName":
        if spec.get("clusterIPs"):
            causes.append(vn.forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        cname = (spec.get("externalName") or "").removesuffix(".")
        if cname:
            causes.extend(dns_subdomain(cname, "spec.externalName"))
        else:
            causes.append(vn.required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        at = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(vn.required(f"{at}.name"))
        elif name:
            causes.extend(dns_label(name, f"{at}.name"))
            if name in names:
                causes.append(vn.duplicate(f"{at}.name", name))
            names.add(name)
        num = port.get("port") or 0
        causes.extend(vn.invalid(f"{at}.port", num, m) for m in vn.is_valid_port_num(num))
        proto = port.get("protocol") or ""
        if not proto:
            causes.append(vn.required(f"{at}.protocol"))
        elif proto not in PORT_PROTOCOLS:
            causes.append(vn.not_supported(f"{at}.protocol", proto, PORT_PROTOCOLS))
        target = port.get("targetPort")
        if isinstance(target, str):
            causes.extend(vn.invalid(f"{at}.targetPort", target, m) for m in vn.is_valid_port_name(target))
        elif isinstance(target, int):
            causes.extend(vn.invalid(f"{at}.targetPort", target, m) for m in vn.is_valid_port_num(target))
    if spec.get("selector") is not None:
        causes += validate_labels(spec.get("selector"), "spec.selector")
    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        causes.append(vn.required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        causes.append(vn.not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    if not stype:
        causes.append(vn.required("spec.type"))
    elif stype not in SERVICE_TYPES:
        causes.append(vn.not_supported("spec.type", stype, SERVICE_TYPES))
    if stype == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                causes.append(vn.forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        key = (port.get("protocol"), port.get("port"))
        if key in seen:
            causes.append(vn.duplicate(f"spec.ports[{i}]", _service_port_literal(port)))
        seen.add(key)
    return causes


# --- config, namespaces, nodes, storage ------------------------------------------------------------------

MAX_SECRET_SIZE = 1024 * 1024


def _decoded_len(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    s = value.replace("\n", "").replace("\r", "")
    return len(s) * 3 // 4 - s[-2:].count("=") if s else 0


def validate_config_map(obj: Obj) -> Causes:
    causes: Causes = []
    data = as_dict(obj.get("data"))
    binary = as_dict(obj.get("binaryData"))
    total = 0
    for key in sorted(data):
        causes.extend(vn.invalid(f"data[{key}]", key, m) for m in vn.is_config_map_key(key))
        if key in binary:
            causes.append(vn.invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(str(data[key]).encode())
    for key in sorted(binary):
        causes.extend(vn.invalid(f"binaryData[{key}]", key, m) for m in vn.is_config_map_key(key))
        if key in data:
            causes.append(vn.invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        total += _decoded_len(binary[key])
    if total > MAX_SECRET_SIZE:
        causes.append(vn.too_long("", MAX_SECRET_SIZE))
    return causes


def secret_keys(obj: Obj) -> dict[str, int]:
    """Keys of data and stringData (upstream merges stringData into data before validating), with sizes."""
    keys = {k: _decoded_len(v) for k, v in as_dict(obj.get("data")).items()}
    for k, v in as_dict(obj.get("stringData")).items():
        keys[k] = len(str(v).encode())
    return keys


def validate_secret(obj: Obj) -> Causes:
    causes: Causes = []
    keys = secret_keys(obj)
    for key in sorted(keys):
        causes.extend(vn.invalid(f"data[{key}]", key, m) for m in vn.is_config_map_key(key))
    if sum(keys.values()) > MAX_SECRET_SIZE:
        causes.append(vn.too_long("data", MAX_SECRET_SIZE))
    stype = obj.get("type") or ""
    annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
    if stype == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            causes.append(vn.required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif stype in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if stype == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in keys:
            causes.append(vn.required(f"data[{key}]"))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in keys and "password" not in keys:
            causes.append(vn.required("data[username]"))
            causes.append(vn.required("data[password]"))
    elif stype == "kubernetes.io/ssh-auth":
        if not keys.get("ssh-privatekey"):
            causes.append(vn.required("data[ssh-privatekey]"))
    elif stype == "kubernetes.io/tls":
        if "tls.crt" not in keys:
            causes.append(vn.required("data[tls.crt]"))
        if "tls.key" not in keys:
            causes.append(vn.required("data[tls.key]"))
    return causes


def validate_namespace(obj: Obj) -> Causes:
    causes: Causes = []
    for i, fin in enumerate(as_dict(obj.get("spec")).get("finalizers") or []):
        if isinstance(fin, str):
            causes.extend(vn.invalid(f"spec.finalizers[{i}]", fin, m) for m in vn.is_qualified_name(fin))
    return causes


ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def _pvc_spec(spec: Obj, path: str) -> Causes:
    causes: Causes = []
    modes = spec.get("accessModes") or []
    if not modes:
        causes.append(vn.required(f"{path}.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append(vn.not_supported(f"{path}.accessModes", mode, ACCESS_MODES))
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        causes.append(vn.required(f"{path}.resources[storage]"))
    else:
        q = parse_quantity(requests["storage"])
        if q is not None and q <= 0:
            causes.append(vn.invalid(f"{path}.resources[storage]", _qty_text(requests["storage"]),
                                     "must be greater than zero"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        causes.append(vn.not_supported(f"{path}.volumeMode", mode, ("Block", "Filesystem")))
    return causes


def validate_pvc(obj: Obj) -> Causes:
    return _pvc_spec(as_dict(obj.get("spec")), "spec")


def validate_lease(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes: Causes = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        causes.append(vn.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        causes.append(vn.invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return causes


def validate_event(obj: Obj) -> Causes:
    causes: Causes = []
    involved = as_dict(obj.get("involvedObject"))
    ns = as_dict(obj.get("metadata")).get("namespace") or ""
    ins = involved.get("namespace") or ""
    if ins and ns and ins != ns:
        causes.append(vn.invalid("involvedObject.namespace", ins, "does not match event.namespace"))
    return causes


# --- networking ------------------------------------------------------------------------------------------

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


def _ingress_backend(backend: Obj, path: str) -> Causes:
    service = backend.get("service")
    resource = backend.get("resource")
    if service is not None and resource is not None:
        return [vn.invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return []
    if service is None:
        return [vn.invalid(path, "", "resource or service backend is required")]
    causes: Causes = []
    service = as_dict(service)
    name = service.get("name") or ""
    if not name:
        causes.append(vn.required(f"{path}.service.name"))
    else:
        causes.extend(vn.invalid(f"{path}.service.name", name, m) for m in vn.is_dns1035_label(name))
    port = as_dict(service.get("port"))
    pname, pnum = port.get("name") or "", port.get("number") or 0
    if pname and pnum:
        causes.append(vn.invalid(path, "", "cannot set both port name & port number"))
    elif pname:
        causes.extend(vn.invalid(f"{path}.service.port.name", pname, m) for m in vn.is_valid_port_name(pname))
    elif pnum:
        causes.extend(vn.invalid(f"{path}.service.port.number", pnum, m) for m in vn.is_valid_port_num(pnum))
    else:
        causes.append(vn.required(path, "port name or number is required"))
    return causes


def validate_ingress(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes: Causes = []
    rules = items(spec.get("rules"))
    if spec.get("defaultBackend") is not None:
        causes += _ingress_backend(as_dict(spec["defaultBackend"]), "spec.defaultBackend")
    elif not rules:
        causes.append(vn.invalid("spec.rules", vn.GoLiteral("[]networking.IngressRule(nil)"),
                                 "either `defaultBackend` or `rules` must be specified"))
    for i, rule in enumerate(rules):
        at = f"spec.rules[{i}]"
        host = rule.get("host") or ""
        if host:
            check = host[2:] if host.startswith("*.") else host
            causes.extend(vn.invalid(f"{at}.host", host, m) for m in vn.is_dns1123_subdomain(check))
        http = rule.get("http")
        if http is None:
            continue
        paths = items(as_dict(http).get("paths"))
        if not paths:
            causes.append(vn.required(f"{at}.http.paths"))
        for j, p in enumerate(paths):
            pat = f"{at}.http.paths[{j}]"
            ptype = p.get("pathType")
            path_value = p.get("path") or ""
            if ptype is None:
                causes.append(vn.required(f"{pat}.pathType", "pathType must be specified"))
            elif ptype in ("Exact", "Prefix"):
                if not path_value.startswith("/"):
                    causes.append(vn.invalid(f"{pat}.path", path_value, "must be an absolute path"))
            elif ptype == "ImplementationSpecific":
                if path_value and not path_value.startswith("/"):
                    causes.append(vn.invalid(f"{pat}.path", path_value, "must be an absolute path"))
            else:
                causes.append(vn.not_supported(f"{pat}.pathType", ptype, PATH_TYPES))
            causes += _ingress_backend(as_dict(p.get("backend")), f"{pat}.backend")
    return causes


def validate_network_policy(obj: Obj) -> Causes:
    spec = as_dict(obj.get("spec"))
    causes = validate_label_selector(spec.get("podSelector"), "spec.podSelector")
    types = spec.get("policyTypes") or []
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            causes.append(vn.not_supported(f"spec.policyTypes[{i}]", t, ("Ingress", "Egress")))
    return causes


# --- RBAC ------------------------------------------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"


def _policy_rules(rules: Any, namespaced: bool) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(items(rules)):
        at = f"rules[{i}]"
        if not rule.get("verbs"):
            causes.append(vn.required(f"{at}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                causes.append(vn.invalid(f"{at}.nonResourceURLs", urls,
                                         "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(vn.invalid(f"{at}.nonResourceURLs", urls,
                                         "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            causes.append(vn.required(f"{at}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            causes.append(vn.required(f"{at}.resources", "resource rules must supply at least one resource"))
    return causes


def validate_role(obj: Obj) -> Causes:
    return _policy_rules(obj.get("rules"), True)


def validate_cluster_role(obj: Obj) -> Causes:
    return _policy_rules(obj.get("rules"), False)


def _binding(obj: Obj, kinds: tuple[str, ...], cluster: bool) -> Causes:
    causes: Causes = []
    ref = as_dict(obj.get("roleRef"))
    if ref.get("apiGroup") != RBAC_GROUP:
        causes.append(vn.not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", (RBAC_GROUP,)))
    if ref.get("kind") not in kinds:
        causes.append(vn.not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    if not ref.get("name"):
        causes.append(vn.required("roleRef.name"))
    else:
        causes.extend(vn.invalid("roleRef.name", ref["name"], m) for m in vn.is_path_segment_name(ref["name"]))
    for i, subject in enumerate(items(obj.get("subjects"))):
        at = f"subjects[{i}]"
        name = subject.get("name") or ""
        if not name:
            causes.append(vn.required(f"{at}.name"))
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            if name:
                causes.extend(vn.invalid(f"{at}.name", name, m) for m in vn.is_dns1123_subdomain(name))
            if subject.get("apiGroup"):
                causes.append(vn.not_supported(f"{at}.apiGroup", subject["apiGroup"], ("",)))
            if cluster and not subject.get("namespace"):
                causes.append(vn.required(f"{at}.namespace"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != RBAC_GROUP:
                causes.append(vn.not_supported(f"{at}.apiGroup", subject.get("apiGroup") or "", (RBAC_GROUP,)))
        else:
            causes.append(vn.not_supported(f"{at}.kind", kind or "", ("ServiceAccount", "User", "Group")))
    return causes


def validate_role_binding(obj: Obj) -> Causes:
    return _binding(obj, ("Role", "ClusterRole"), False)


def validate_cluster_role_binding(obj: Obj) -> Causes:
    return _binding(obj, ("ClusterRole",), True)


def validate_priority_class(obj: Obj) -> Causes:
    value = obj.get("value")
    name = as_dict(obj.get("metadata")).get("name") or ""
    causes: Causes = []
    if isinstance(value, int) and value > 1_000_000_000 and not name.startswith("system-"):
        causes.append(vn.forbidden("value", "maximum allowed value of a user defined priority is 1000000000"))
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in ("Never", "PreemptLowerPriority"):
        causes.append(vn.not_supported("preemptionPolicy", policy, ("Never", "PreemptLowerPriority")))
    return causes


def validate_storage_class(obj: Obj) -> Causes:
    causes: Causes = []
    if not obj.get("provisioner"):
        causes.append(vn.required("provisioner"))
    policy = obj.get("reclaimPolicy")
    if policy is not None and policy not in ("Delete", "Retain"):
        causes.append(vn.not_supported("reclaimPolicy", policy, ("Delete", "Retain")))
    mode = obj.get("volumeBindingMode")
    if mode is not None and mode not in ("Immediate", "WaitForFirstConsumer"):
        causes.append(vn.not_supported("volumeBindingMode", mode, ("Immediate", "WaitForFirstConsumer")))
    return causes


def validate_node(obj: Obj) -> Causes:
    return vs.validate_taints(as_dict(obj.get("spec")).get("taints"), "spec.taints")


BY_KIND = {
    ("", "Node"): validate_node,
    ("", "Pod"): validate_pod,
    ("", "PodTemplate"): validate_pod_template_kind,
    ("", "ReplicationController"): validate_replication_controller,
    ("", "Service"): validate_service,
    ("", "ConfigMap"): validate_config_map,
    ("", "Secret"): validate_secret,
    ("", "Namespace"): validate_namespace,
    ("", "PersistentVolumeClaim"): validate_pvc,
    ("", "Event"): validate_event,
    ("apps", "Deployment"): validate_deployment,
    ("apps", "ReplicaSet"): validate_replica_set,
    ("apps", "StatefulSet"): validate_stateful_set,
    ("apps", "DaemonSet"): validate_daemon_set,
    ("batch", "Job"): validate_job,
    ("batch", "CronJob"): validate_cron_job,
    ("networking.k8s.io", "Ingress"): validate_ingress,
    ("networking.k8s.io", "NetworkPolicy"): validate_network_policy,
    ("rbac.authorization.k8s.io", "Role"): validate_role,
    ("rbac.authorization.k8s.io", "ClusterRole"): validate_cluster_role,
    ("rbac.authorization.k8s.io", "RoleBinding"): validate_role_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): validate_cluster_role_binding,
    ("coordination.k8s.io", "Lease"): validate_lease,
    ("scheduling.k8s.io", "PriorityClass"): validate_priority_class,
    ("storage.k8s.io", "StorageClass"): validate_storage_class,
}
