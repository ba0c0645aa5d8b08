"""The warnings upstream sends beside a successful request: deprecated APIs, and its strategies'
WarningsOnCreate/WarningsOnUpdate (pod specs wherever they appear, Ingress and PVC annotations, …).

Each is a `Warning: 299 - "<text>"` header; kubectl prints them as `Warning: <text>`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .quantity import parse_quantity
from .resources import ResourceType

Obj = dict[str, Any]

# resources whose version upstream marks deprecated: a warning on every request to them
DEPRECATED: dict[tuple[str, str, str], str] = {
    ("", "v1", "endpoints"): "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
}  # (v1 ComponentStatus's warning is apiserver/legacy_core.py's)

_NODE_LABELS = {
    "beta.kubernetes.io/arch": 'deprecated since v1.14; use "kubernetes.io/arch" instead',
    "beta.kubernetes.io/os": 'deprecated since v1.14; use "kubernetes.io/os" instead',
    "failure-domain.beta.kubernetes.io/region": 'deprecated since v1.17; use "topology.kubernetes.io/region" instead',
    "failure-domain.beta.kubernetes.io/zone": 'deprecated since v1.17; use "topology.kubernetes.io/zone" instead',
    "beta.kubernetes.io/instance-type": 'deprecated since v1.17; use "node.kubernetes.io/instance-type" instead',
}
_POD_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/critical-pod": 'non-functional in v1.16+; use the "priorityClassName" field instead',
    "security.alpha.kubernetes.io/sysctls": 'non-functional in v1.11+; use the "sysctls" field instead',
    "security.alpha.kubernetes.io/unsafe-sysctls": 'non-functional in v1.11+; use the "sysctls" field instead',
}
_VOLUMES = {
    "photonPersistentDisk": "deprecated in v1.11, non-functional in v1.16+",
    "gitRepo": "deprecated in v1.11",
    "scaleIO": "deprecated in v1.16, non-functional in v1.22+",
    "flocker": "deprecated in v1.22, non-functional in v1.25+",
    "storageOS": "deprecated in v1.22, non-functional in v1.25+",
    "quobyte": "deprecated in v1.22, non-functional in v1.25+",
    "glusterfs": "deprecated in v1.25, non-functional in v1.26+",
    "cephfs": "deprecated in v1.28, non-functional in v1.31+",
    "rbd": "deprecated in v1.28, non-functional in v1.31+",
}
_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"
_INGRESS_CLASS = "kubernetes.io/ingress.class"
_PVC_CLASS = "volume.beta.kubernetes.io/storage-class"

# where each kind holds its pod template (metadata + spec), as a field path
_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "PodTemplate"): ("template",),
    ("", "ReplicationController"): ("spec", "template"),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}


def deprecation(rt: ResourceType) -> str | None:
    return DEPRECATED.get((rt.group, rt.version, rt.resource))


def on_create(rt: ResourceType, obj: Obj) -> list[str]:
    return _for_kind(rt, obj)


def on_update(rt: ResourceType, obj: Obj, old: Obj | None) -> list[str]:
    """Upstream warns on update about what the new object holds, as on create (pod specs only when changed)."""
    if rt.group == "" and rt.kind == "Pod" and old is not None and obj.get("spec") == old.get("spec") \
            and (obj.get("metadata") or {}).get("annotations") == (old.get("metadata") or {}).get("annotations"):
        return []
    return _for_kind(rt, obj)


def _for_kind(rt: ResourceType, obj: Obj) -> list[str]:
    if not isinstance(obj, dict):
        return []
    key = (rt.group, rt.kind)
    if key == ("", "Pod"):
        return pod_warnings("", obj)
    path = _TEMPLATES.get(key)
    if path is not None:
        template: Any = obj
        for part in path:
            template = template.get(part) if isinstance(template, dict) else None
        return pod_warnings(".".join(path), template) if isinstance(template, dict) else []
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if key == ("networking.k8s.io", "Ingress") and _INGRESS_CLASS in annotations:
        return [f"annotation \"{_INGRESS_CLASS}\" is deprecated, please use 'spec.ingressClassName' instead"]
    if key == ("", "PersistentVolumeClaim") and _PVC_CLASS in annotations:
        return [f"metadata.annotations[{_PVC_CLASS}]: deprecated since v1.8; use \"storageClassName\" attribute "
                "instead"]
    return []


def _child(prefix: str, *parts: str) -> str:
    return ".".join(p for p in (prefix, *parts) if p)


def _fractional(value: Any) -> str | None:
    """The canonical form of a byte quantity that is not a whole number of bytes, else None."""
    q = parse_quantity(value)
    if q is None or q == q.to_integral_value():
        return None
    for scale, suffix in ((Decimal(1000), "m"), (Decimal(10**6), "u")):
        scaled = q * scale
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    return f"{int((q * Decimal(10**9)).to_integral_value(rounding='ROUND_CEILING'))}n"


def pod_warnings(prefix: str, template: Obj) -> list[str]:
    """Upstream's warnings for a pod's spec and metadata at `prefix` ("" for a Pod, "spec.template", …)."""
    spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    out: list[str] = []
    node_selector = spec.get("nodeSelector")
    if isinstance(node_selector, dict):
        for k in node_selector:
            if k in _NODE_LABELS:
                out.append(f"{_child(prefix, 'spec', 'nodeSelector')}[{k}]: {_NODE_LABELS[k]}")
    for i, t in enumerate(spec.get("topologySpreadConstraints") or ()):
        if not isinstance(t, dict):
            continue
        where = f"{_child(prefix, 'spec', 'topologySpreadConstraints')}[{i}]"
        if t.get("topologyKey") in _NODE_LABELS:
            out.append(f"{where}.topologyKey: {t['topologyKey']} is {_NODE_LABELS[t['topologyKey']]}")
        if t.get("labelSelector") is None:
            out.append(f"{where}.labelSelector: a null labelSelector results in matching no pod")
    for key, message in _POD_ANNOTATIONS.items():
        if key in annotations:
            out.append(f"{_child(prefix, 'metadata', 'annotations')}[{key}]: {message}")
    for i, volume in enumerate(spec.get("volumes") or ()):
        if isinstance(volume, dict):
            for source, message in _VOLUMES.items():
                if volume.get(source) is not None:
                    out.append(f"{_child(prefix, 'spec', 'volumes')}[{i}].{source}: {message}")
    pull_secrets = [s for s in spec.get("imagePullSecrets") or () if isinstance(s, dict)]
    seen: set[str] = set()
    for i, s in enumerate(pull_secrets):
        name = s.get("name") or ""
        where = f"{_child(prefix, 'spec', 'imagePullSecrets')}[{i}].name"
        if len(pull_secrets) > 1 and name in seen:
            out.append(f'{where}: duplicate name "{name}"')
        seen.add(name)
        if not name:
            out.append(f'{where}: invalid empty name ""')
    security = spec.get("securityContext") if isinstance(spec.get("securityContext"), dict) else {}
    if not security.get("seccompProfile") and _SECCOMP_POD in annotations:
        out.append(f"{_child(prefix, 'metadata', 'annotations')}[{_SECCOMP_POD}]: non-functional in v1.27+; use "
                   'the "seccompProfile" field instead')
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or ()):
            if isinstance(c, dict):
                out.extend(_container_warnings(f"{_child(prefix, 'spec', field)}[{i}]", c, annotations, prefix))
    return out


def _container_warnings(where: str, c: Obj, annotations: dict, prefix: str) -> list[str]:
    out: list[str] = []
    csc = c.get("securityContext") if isinstance(c.get("securityContext"), dict) else {}
    seccomp_key = _SECCOMP_CONTAINER + str(c.get("name") or "")
    if not csc.get("seccompProfile") and seccomp_key in annotations:
        out.append(f"{_child(prefix, 'metadata', 'annotations')}[{seccomp_key}]: non-functional in v1.27+; use the "
                   '"seccompProfile" field instead')
    resources = c.get("resources") if isinstance(c.get("resources"), dict) else {}
    for kind in ("limits", "requests"):
        values = resources.get(kind) if isinstance(resources.get(kind), dict) else {}
        for name in ("memory", "ephemeral-storage"):
            if name in values and (shown := _fractional(values[name])) is not None:
                out.append(f'{where}.resources.{kind}[{name}]: fractional byte value "{shown}" is invalid, must be '
                           "an integer")
    env = [e for e in c.get("env") or () if isinstance(e, dict)]
    if len(env) > 1:
        names: set[str] = set()
        for i, item in enumerate(env):
            name = str(item.get("name") or "")
            if name in names:
                ref = f"$({name})"
                value = str(item.get("value") or "")
                if item.get("valueFrom") is not None or value == ref or ref not in value:
                    out.append(f'{where}.env[{i}]: hides previous definition of "{name}", which may be dropped '
                               "when using apply")
            else:
                names.add(name)
    return out
