"""Table printers of the kinds kubelite stores without acting on them (HPA, RuntimeClass, CSI objects,
admission webhooks and policies, flow control, IPAddress/ServiceCIDR, ComponentStatus).

Columns and cells follow kube-apiserver's internal-version printers for the same kinds. Importing this
module registers them in `printers.PRINTERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubelite.api import hpa_conversion
from kubelite.api.printers import PRINTERS, Column, Printer, age, doc, g, name

Obj = dict[str, Any]
_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_UNSET = "<unset>"
_NONE = "<none>"


def _col(title: str, definition: str, field: str, priority: int = 0, kind: str = "string") -> Column:
    return Column(title, kind, lambda: doc(definition, field), priority)


def _name_col() -> Column:
    return Column("Name", "string", lambda: doc(_META, "name"), 0, "name")


def _age_col() -> Column:
    return Column("Age", "string", lambda: doc(_META, "creationTimestamp"))


def _bool(value: Any) -> bool:
    return value is True


def _register(group: str, kind: str, columns: list[Column], row: Callable[[Obj, datetime], list[Any]]) -> None:
    PRINTERS.setdefault((group, kind), Printer(columns, row))


# --- autoscaling ----------------------------------------------------------------------------------

_HPA = "io.k8s.api.autoscaling.v2."


def _quantity(value: Any) -> str:
    return str(value) if value is not None else _UNSET


def _hpa_metric(spec: Obj, status: Obj | None) -> str:
    kind = spec.get("type", "")
    current = "<unknown>"
    if kind in ("Resource", "ContainerResource"):
        src = spec.get("resource" if kind == "Resource" else "containerResource") or {}
        cur = ((status or {}).get("resource" if kind == "Resource" else "containerResource") or {}).get(
            "current") or {}
        target = src.get("target") or {}
        label = src.get("name", "")
        if kind == "ContainerResource":
            label = f"{label} of container \"{src.get('container', '')}\""
        if target.get("averageValue") is not None:
            if cur.get("averageValue") is not None:
                current = str(cur["averageValue"])
            return f"{label}: {current}/{target['averageValue']}"
        if cur.get("averageUtilization") is not None:
            current = f"{cur['averageUtilization']}%"
        want = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
        return f"{label}: {current}/{want}"
    key = {"Pods": "pods", "Object": "object", "External": "external"}.get(kind)
    if key is None:
        return "<unknown type>"
    src = spec.get(key) or {}
    cur = ((status or {}).get(key) or {}).get("current") or {}
    target = src.get("target") or {}
    if kind == "Object" and target.get("value") is not None:
        if cur.get("value") is not None:
            current = str(cur["value"])
        return f"{current}/{target['value']}"
    if target.get("averageValue") is not None:
        if cur.get("averageValue") is not None:
            current = str(cur["averageValue"])
        suffix = " (avg)" if kind in ("Object", "External") else ""
        return f"{current}/{target['averageValue']}{suffix}"
    if target.get("value") is not None:
        if cur.get("value") is not None:
            current = str(cur["value"])
        return f"{current}/{target['value']}"
    return "<unknown type>"


def hpa_targets(obj: Obj) -> str:
    specs = g(obj, "spec", "metrics") or []
    statuses = g(obj, "status", "currentMetrics") or []
    if not specs:
        return _NONE
    shown = [_hpa_metric(s, statuses[i] if i < len(statuses) else None) for i, s in enumerate(specs[:2])]
    text = ", ".join(shown)
    if len(specs) > 2:
        text += f" + {len(specs) - 2} more..."
    return text


def hpa_row(obj: Obj, now: datetime) -> list[Any]:
    if obj.get("apiVersion") == hpa_conversion.V1:
        obj = hpa_conversion.v1_to_v2(obj)
    ref = g(obj, "spec", "scaleTargetRef") or {}
    min_pods = g(obj, "spec", "minReplicas")
    return [name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}", hpa_targets(obj),
            _UNSET if min_pods is None else str(min_pods), str(g(obj, "spec", "maxReplicas", default=0)),
            g(obj, "status", "currentReplicas", default=0), age(obj, now)]


_register("autoscaling", "HorizontalPodAutoscaler", [
    _name_col(), _col("Reference", _HPA + "HorizontalPodAutoscalerSpec", "scaleTargetRef"),
    _col("Targets", _HPA + "HorizontalPodAutoscalerSpec", "metrics"),
    _col("MinPods", _HPA + "HorizontalPodAutoscalerSpec", "minReplicas"),
    _col("MaxPods", _HPA + "HorizontalPodAutoscalerSpec", "maxReplicas"),
    _col("Replicas", _HPA + "HorizontalPodAutoscalerStatus", "currentReplicas"), _age_col()], hpa_row)

# --- node.k8s.io, storage.k8s.io ------------------------------------------------------------------

_register("node.k8s.io", "RuntimeClass", [
    _name_col(), _col("Handler", "io.k8s.api.node.v1.RuntimeClass", "handler"), _age_col()],
    lambda o, now: [name(o), o.get("handler", ""), age(o, now)])

_CSI = "io.k8s.api.storage.v1."


def csidriver_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    attach = spec.get("attachRequired")
    tokens = spec.get("tokenRequests")
    token_text = _UNSET if tokens is None else ",".join(t.get("audience", "") for t in tokens) or _UNSET
    modes = ",".join(spec.get("volumeLifecycleModes") or []) or _NONE
    return [name(obj), True if attach is None else _bool(attach), _bool(spec.get("podInfoOnMount")),
            _bool(spec.get("storageCapacity")), token_text, _bool(spec.get("requiresRepublish")), modes,
            age(obj, now)]


_register("storage.k8s.io", "CSIDriver", [
    _name_col(), _col("AttachRequired", _CSI + "CSIDriverSpec", "attachRequired", kind="boolean"),
    _col("PodInfoOnMount", _CSI + "CSIDriverSpec", "podInfoOnMount", kind="boolean"),
    _col("StorageCapacity", _CSI + "CSIDriverSpec", "storageCapacity", kind="boolean"),
    _col("TokenRequests", _CSI + "CSIDriverSpec", "tokenRequests"),
    _col("RequiresRepublish", _CSI + "CSIDriverSpec", "requiresRepublish", kind="boolean"),
    _col("Modes", _CSI + "CSIDriverSpec", "volumeLifecycleModes"), _age_col()], csidriver_row)

_register("storage.k8s.io", "CSINode", [
    _name_col(), _col("Drivers", _CSI + "CSINodeSpec", "drivers", kind="integer"), _age_col()],
    lambda o, now: [name(o), len(g(o, "spec", "drivers") or []), age(o, now)])

_register("storage.k8s.io", "VolumeAttachment", [
    _name_col(), _col("Attacher", _CSI + "VolumeAttachmentSpec", "attacher"),
    _col("PV", _CSI + "VolumeAttachmentSource", "persistentVolumeName"),
    _col("Node", _CSI + "VolumeAttachmentSpec", "nodeName"),
    _col("Attached", _CSI + "VolumeAttachmentStatus", "attached", kind="boolean"), _age_col()],
    lambda o, now: [name(o), g(o, "spec", "attacher", default=""),
                    g(o, "spec", "source", "persistentVolumeName", default=""), g(o, "spec", "nodeName", default=""),
                    _bool(g(o, "status", "attached")), age(o, now)])

_register("storage.k8s.io", "CSIStorageCapacity", [
    _name_col(), _col("StorageClassName", _CSI + "CSIStorageCapacity", "storageClassName"),
    _col("Capacity", _CSI + "CSIStorageCapacity", "capacity"), _age_col()],
    lambda o, now: [name(o), o.get("storageClassName", ""), _quantity(o.get("capacity")), age(o, now)])

# --- admissionregistration.k8s.io -----------------------------------------------------------------

_ADM = "io.k8s.api.admissionregistration.v1."


def _webhooks_row(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), len(obj.get("webhooks") or []), age(obj, now)]


for _kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
    _register("admissionregistration.k8s.io", _kind, [
        _name_col(), _col("Webhooks", _ADM + _kind, "webhooks", kind="integer"), _age_col()], _webhooks_row)


def _param_kind(obj: Obj) -> str:
    pk = g(obj, "spec", "paramKind")
    if not pk:
        return _UNSET
    return f"{pk.get('apiVersion', '')}/{pk.get('kind', '')}"


def _param_ref(obj: Obj) -> str:
    ref = g(obj, "spec", "paramRef")
    if not ref:
        return _UNSET
    target = ref.get("name") or "*"
    if ref.get("namespace"):
        return f"{ref['namespace']}/{target}"
    if ref.get("selector") is not None and not ref.get("name"):
        return "*/*"
    return f"*/{target}"


_register("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", [
    _name_col(), _col("Validations", _ADM + "ValidatingAdmissionPolicySpec", "validations", kind="integer"),
    _col("ParamKind", _ADM + "ValidatingAdmissionPolicySpec", "paramKind"), _age_col()],
    lambda o, now: [name(o), len(g(o, "spec", "validations") or []), _param_kind(o), age(o, now)])

_register("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", [
    _name_col(), _col("PolicyName", _ADM + "ValidatingAdmissionPolicyBindingSpec", "policyName"),
    _col("ParamRef", _ADM + "ValidatingAdmissionPolicyBindingSpec", "paramRef"), _age_col()],
    lambda o, now: [name(o), g(o, "spec", "policyName", default=""), _param_ref(o), age(o, now)])

# --- flowcontrol.apiserver.k8s.io -----------------------------------------------------------------

_FC = "io.k8s.api.flowcontrol.v1."


def flowschema_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    method = (spec.get("distinguisherMethod") or {}).get("type") or "*"
    missing = "?"
    for cond in g(obj, "status", "conditions") or []:
        if cond.get("type") == "Dangling":
            missing = cond.get("status", "?")
    return [name(obj), (spec.get("priorityLevelConfiguration") or {}).get("name", ""),
            spec.get("matchingPrecedence", 0), method, age(obj, now), missing]


_register("flowcontrol.apiserver.k8s.io", "FlowSchema", [
    _name_col(), _col("PriorityLevel", _FC + "FlowSchemaSpec", "priorityLevelConfiguration"),
    _col("MatchingPrecedence", _FC + "FlowSchemaSpec", "matchingPrecedence"),
    _col("DistinguisherMethod", _FC + "FlowSchemaSpec", "distinguisherMethod"), _age_col(),
    _col("MissingPL", _FC + "FlowSchemaStatus", "conditions")], flowschema_row)


def priority_level_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "")
    shares: Any = _NONE
    queues: Any = _NONE
    hand: Any = _NONE
    limit: Any = _NONE
    limited = spec.get("limited")
    if kind == "Limited" and isinstance(limited, dict):
        shares = limited.get("nominalConcurrencyShares", 0)
        queuing = (limited.get("limitResponse") or {}).get("queuing")
        if queuing:
            queues, hand, limit = queuing.get("queues", 0), queuing.get("handSize", 0), queuing.get(
                "queueLengthLimit", 0)
    elif kind == "Exempt" and isinstance(spec.get("exempt"), dict):
        shares = spec["exempt"].get("nominalConcurrencyShares", 0)
    return [name(obj), kind, shares, queues, hand, limit, age(obj, now)]


_register("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", [
    _name_col(), _col("Type", _FC + "PriorityLevelConfigurationSpec", "type"),
    _col("NominalConcurrencyShares", _FC + "LimitedPriorityLevelConfiguration", "nominalConcurrencyShares"),
    _col("Queues", _FC + "QueuingConfiguration", "queues"), _col("HandSize", _FC + "QueuingConfiguration", "handSize"),
    _col("QueueLengthLimit", _FC + "QueuingConfiguration", "queueLengthLimit"), _age_col()], priority_level_row)

# --- networking.k8s.io ----------------------------------------------------------------------------

_NET = "io.k8s.api.networking.v1."


def ipaddress_row(obj: Obj, now: datetime) -> list[Any]:
    ref = g(obj, "spec", "parentRef")
    text = _NONE
    if ref:
        text = (ref.get("resource") or "").lower()
        if ref.get("group"):
            text += "." + ref["group"]
        if ref.get("namespace"):
            text += "/" + ref["namespace"]
        text += "/" + (ref.get("name") or "")
    return [name(obj), text]


_register("networking.k8s.io", "IPAddress", [
    _name_col(), _col("ParentRef", _NET + "IPAddressSpec", "parentRef")], ipaddress_row)

_register("networking.k8s.io", "ServiceCIDR", [
    _name_col(), _col("CIDRs", _NET + "ServiceCIDRSpec", "cidrs"), _age_col()],
    lambda o, now: [name(o), ",".join(g(o, "spec", "cidrs") or []), age(o, now)])

# --- core/v1 ComponentStatus ----------------------------------------------------------------------


def component_status_row(obj: Obj, now: datetime) -> list[Any]:
    status, message, error = "Unknown", "", ""
    for cond in obj.get("conditions") or []:
        if cond.get("type") == "Healthy":
            status = {"True": "Healthy", "False": "Unhealthy"}.get(cond.get("status", ""), "Unknown")
            message, error = cond.get("message", ""), cond.get("error", "")
            break
    return [name(obj), status, message, error]


_register("", "ComponentStatus", [
    _name_col(), Column("Status", "string", "Status of the component conditions"),
    Column("Message", "string", "Message of the component conditions"),
    Column("Error", "string", "Error of the component conditions")], component_status_row)
