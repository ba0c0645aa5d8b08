"""Object validation for create and update, as upstream's registry strategies run it (v1.33).

`validate(rt, obj, old)` raises `errors.invalid(...)` (422) listing every problem, worded as upstream.
`check_fields` (unknown fields, fieldValidation, type errors) lives in fieldcheck and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubelite.api import validation_kinds as vk
from kubelite.api import validation_names as vn
from kubelite.api import validation_scheduling as vs
from kubelite.api.errors import invalid
from kubelite.api.fieldcheck import check_field_validation, check_fields, find_duplicate_fields
from kubelite.api.resources import ResourceType
from kubelite.api.validation_schema import conform, conform_metadata

from .jsoncopy import deep_copy

__all__ = ["check_fields", "check_field_validation", "find_duplicate_fields", "validate", "name_problems"]

Obj = dict[str, Any]
Causes = list[dict[str, str]]
NameFn = Callable[[str, bool], list[str]]


def _subdomain(name: str, prefix: bool) -> list[str]:
    return vn.is_dns1123_subdomain(vn.mask_trailing_dash(name) if prefix else name)


def _label(name: str, prefix: bool) -> list[str]:
    return vn.is_dns1123_label(vn.mask_trailing_dash(name) if prefix else name)


def _dns1035(name: str, prefix: bool) -> list[str]:
    return vn.is_dns1035_label(vn.mask_trailing_dash(name) if prefix else name)


def _path_segment(name: str, prefix: bool) -> list[str]:
    return vn.is_path_segment_name(name, prefix)


_NAME_FNS: dict[tuple[str, str], NameFn] = {
    ("", "Namespace"): _label,
    ("", "Service"): _dns1035,
    ("rbac.authorization.k8s.io", "Role"): _path_segment,
    ("rbac.authorization.k8s.io", "ClusterRole"): _path_segment,
    ("rbac.authorization.k8s.io", "RoleBinding"): _path_segment,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _path_segment,
}


def name_problems(rt: ResourceType, name: str, prefix: bool = False) -> list[str]:
    """What is wrong with `name` as a metadata.name of rt's kind (empty list: nothing)."""
    return _NAME_FNS.get((rt.group, rt.kind), _subdomain)(name, prefix)


def validate_metadata(rt: ResourceType, meta: Any) -> Causes:
    meta = meta if isinstance(meta, dict) else {}
    causes: Causes = conform_metadata(meta)
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    if generate:
        causes.extend(vn.invalid("metadata.generateName", generate, m) for m in name_problems(rt, generate, True))
    if not name:
        causes.append(vn.required("metadata.name", "name or generateName is required"))
    else:
        causes.extend(vn.invalid("metadata.name", name, m) for m in name_problems(rt, name))
    namespace = meta.get("namespace") or ""
    if rt.namespaced:
        if not namespace:
            causes.append(vn.required("metadata.namespace"))
        else:
            causes.extend(vn.invalid("metadata.namespace", namespace, m) for m in vn.is_dns1123_label(namespace))
    elif namespace:
        causes.append(vn.forbidden("metadata.namespace", "not allowed on this type"))
    causes += vk.nonnegative(meta.get("generation"), "metadata.generation")
    causes += vk.validate_labels(meta.get("labels"), "metadata.labels")
    causes += vk.validate_annotations(meta.get("annotations"), "metadata.annotations")
    for i, fin in enumerate(meta.get("finalizers") or []):
        if isinstance(fin, str):
            causes.extend(vn.invalid(f"metadata.finalizers[{i}]", fin, m) for m in vn.is_qualified_name(fin))
    causes += vs.validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    return causes


def _metadata_update(meta: Any, old_meta: Any) -> Causes:
    meta = meta if isinstance(meta, dict) else {}
    old_meta = old_meta if isinstance(old_meta, dict) else {}
    causes: Causes = []
    for key in ("name", "namespace", "uid"):
        new, old = meta.get(key) or "", old_meta.get(key) or ""
        if old and new != old:
            causes.append(vn.immutable(f"metadata.{key}", new))
    return causes


# --- update rules ----------------------------------------------------------------------------------------

_UPDATABLE_POD_FIELDS = ",".join((
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
))


def _spec_diff(old: Obj, new: Obj) -> str:
    # upstream appends a go-cmp diff of the internal structs; ours names the differing fields
    keys = sorted(set(old) | set(new))
    lines = [f"  {k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "\n".join(lines)


def _pod_update(obj: Obj, old: Obj) -> Causes:
    spec = deep_copy(vk.as_dict(obj.get("spec")))
    old_spec = vk.as_dict(old.get("spec"))
    for key in ("containers", "initContainers"):
        new_list, old_list = spec.get(key), old_spec.get(key)
        if isinstance(new_list, list) and isinstance(old_list, list) and len(new_list) == len(old_list):
            for c, oc in zip(new_list, old_list, strict=True):
                if isinstance(c, dict) and isinstance(oc, dict):
                    if "image" in oc:
                        c["image"] = oc["image"]
                    else:
                        c.pop("image", None)
    for key in ("activeDeadlineSeconds",):
        if key in old_spec:
            spec[key] = old_spec[key]
        else:
            spec.pop(key, None)
    new_tol, old_tol = spec.get("tolerations") or [], old_spec.get("tolerations") or []
    if all(t in new_tol for t in old_tol):
        if "tolerations" in old_spec:
            spec["tolerations"] = old_spec["tolerations"]
        else:
            spec.pop("tolerations", None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and spec.get("terminationGracePeriodSeconds") == 1:
        spec["terminationGracePeriodSeconds"] = old_grace
    if spec != old_spec:
        return [vn.forbidden("spec", f"pod updates may not change fields other than {_UPDATABLE_POD_FIELDS}\n"
                                     f"{_spec_diff(old_spec, spec)}")]
    return []


def _selector_update(obj: Obj, old: Obj) -> Causes:
    sel = vk.as_dict(obj.get("spec")).get("selector")
    old_sel = vk.as_dict(old.get("spec")).get("selector")
    if sel != old_sel:
        return [vn.immutable("spec.selector", vn.label_selector_literal(sel))]
    return []


_STS_MUTABLE = ("replicas", "template", "updateStrategy", "minReadySeconds", "ordinals", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy")


def _stateful_set_update(obj: Obj, old: Obj) -> Causes:
    spec = {k: v for k, v in vk.as_dict(obj.get("spec")).items() if k not in _STS_MUTABLE}
    old_spec = {k: v for k, v in vk.as_dict(old.get("spec")).items() if k not in _STS_MUTABLE}
    if spec != old_spec:
        return [vn.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                     "'template', 'updateStrategy', 'revisionHistoryLimit', "
                                     "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")]
    return []


def _job_update(obj: Obj, old: Obj) -> Causes:
    spec, old_spec = vk.as_dict(obj.get("spec")), vk.as_dict(old.get("spec"))
    causes = _selector_update(obj, old)
    if spec.get("template") != old_spec.get("template"):
        causes.append(vn.immutable("spec.template", vn.GoLiteral("core.PodTemplateSpec{...}")))
    for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex"):
        if spec.get(key) != old_spec.get(key):
            value = spec.get(key)
            causes.append(vn.immutable(f"spec.{key}", value if isinstance(value, str | int) else
                                       vn.GoLiteral("nil" if value is None else "{...}")))
    if spec.get("completionMode", "NonIndexed") != "Indexed" and spec.get("completions") != old_spec.get("completions"):
        value = spec.get("completions")
        causes.append(vn.immutable("spec.completions", value if value is not None else vn.GoLiteral("nil")))
    return causes


def _service_update(obj: Obj, old: Obj) -> Causes:
    spec, old_spec = vk.as_dict(obj.get("spec")), vk.as_dict(old.get("spec"))
    old_ip = old_spec.get("clusterIP") or ""
    new_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if old_ip and new_ips and new_ips[0] != old_ip and spec.get("type") != "ExternalName" \
            and old_spec.get("type") != "ExternalName":
        return [vn.invalid("spec.clusterIPs[0]", new_ips, "may not change once set")]
    return []


def _immutable_data(obj: Obj, old: Obj, fields: tuple[str, ...]) -> Causes:
    causes: Causes = []
    if old.get("immutable") is True:
        if obj.get("immutable") is not True:
            causes.append(vn.forbidden("immutable", "field is immutable when `immutable` is set"))
        for key in fields:
            if (obj.get(key) or None) != (old.get(key) or None):
                causes.append(vn.forbidden(key, "field is immutable when `immutable` is set"))
    return causes


def _secret_update(obj: Obj, old: Obj) -> Causes:
    causes: Causes = []
    if (obj.get("type") or "Opaque") != (old.get("type") or "Opaque"):
        causes.append(vn.immutable("type", obj.get("type") or ""))
    return causes + _immutable_data(obj, old, ("data",))


def _config_map_update(obj: Obj, old: Obj) -> Causes:
    return _immutable_data(obj, old, ("data", "binaryData"))


def _pvc_update(obj: Obj, old: Obj) -> Causes:
    spec = deep_copy(vk.as_dict(obj.get("spec")))
    old_spec = vk.as_dict(old.get("spec"))
    # the API server fills volumeName on binding; requests may grow for a bound claim
    if old_spec.get("volumeName"):
        spec.setdefault("volumeName", old_spec["volumeName"])
    elif spec.get("volumeName"):
        # binding: an unbound claim may get its volumeName once
        old_spec = dict(old_spec, volumeName=spec["volumeName"])
    old_requests = vk.as_dict(old_spec.get("resources")).get("requests")
    if isinstance(spec.get("resources"), dict) and old_spec.get("volumeName"):
        spec["resources"] = dict(spec["resources"], requests=old_requests)
    if spec != old_spec:
        return [vn.forbidden("spec", "spec is immutable after creation except resources.requests and "
                                     "volumeAttributesClassName for bound claims\n"
                                     + _spec_diff(old_spec, spec))]
    return []


def _binding_update(obj: Obj, old: Obj) -> Causes:
    ref, old_ref = obj.get("roleRef"), old.get("roleRef")
    if ref != old_ref:
        r = vk.as_dict(ref)
        literal = vn.GoLiteral(f"rbac.RoleRef{{APIGroup:{vn.go_quote(str(r.get('apiGroup') or ''))}, "
                               f"Kind:{vn.go_quote(str(r.get('kind') or ''))}, "
                               f"Name:{vn.go_quote(str(r.get('name') or ''))}}}")
        return [vn.invalid("roleRef", literal, "cannot change roleRef")]
    return []


_UPDATE_RULES: dict[tuple[str, str], Callable[[Obj, Obj], Causes]] = {
    ("", "Pod"): _pod_update,
    ("", "Service"): _service_update,
    ("", "Secret"): _secret_update,
    ("", "ConfigMap"): _config_map_update,
    ("", "PersistentVolumeClaim"): _pvc_update,
    ("apps", "Deployment"): _selector_update,
    ("apps", "ReplicaSet"): _selector_update,
    ("apps", "DaemonSet"): _selector_update,
    ("apps", "StatefulSet"): _stateful_set_update,
    ("batch", "Job"): _job_update,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding_update,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding_update,
}


def _pod_create(obj: Obj) -> Causes:
    if vk.as_dict(obj.get("spec")).get("ephemeralContainers"):
        return [vn.forbidden("spec.ephemeralContainers", "cannot be set on create")]
    return []


_CREATE_RULES: dict[tuple[str, str], Callable[[Obj], Causes]] = {
    ("", "Pod"): _pod_create,
}


def validate(rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """Raise a 422 Invalid listing every problem of obj (a create, or an update of `old`).

    obj is first brought to the shape Go decoding gives it (nulls to zero values, see validation_schema);
    the schema's own findings follow the per-kind ones, for the fields those do not already name."""
    schema_causes = conform(rt, obj)
    causes: Causes = []
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    causes += validate_metadata(rt, meta)
    if old is not None:
        causes += _metadata_update(meta, old.get("metadata"))
        rule = _UPDATE_RULES.get((rt.group, rt.kind))
        if rule is not None:
            causes += rule(obj, old)
    else:
        create_rule = _CREATE_RULES.get((rt.group, rt.kind))
        if create_rule is not None:
            causes += create_rule(obj)
    kind_fn = vk.BY_KIND.get((rt.group, rt.kind))
    if kind_fn is not None:
        causes += kind_fn(obj)
    named = {c.get("field") for c in causes}
    causes += [c for c in schema_causes if c.get("field") not in named]
    if causes:
        name = (meta or {}).get("name") or (meta or {}).get("generateName") or ""
        raise invalid(rt.kind, rt.group, name, causes)
