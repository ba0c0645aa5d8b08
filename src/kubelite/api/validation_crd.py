"""CustomResourceDefinition (apiextensions.k8s.io/v1): defaults, validation and status, as upstream words them.

Paths follow upstream's internal form: when every version carries the same schema (or subresources, or
printer columns) they are reported under `spec.validation` (`spec.subresources`,
`spec.additionalPrinterColumns`), since upstream hoists identical per-version values before validating.
"""

from __future__ import annotations

import re
from typing import Any

from kubelite.api import structural
from kubelite.api import validation_names as vn
from kubelite.api.timefmt import now_rfc3339

Obj = dict[str, Any]
Causes = list[dict[str, str]]

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
_SIMPLE_JSONPATH = re.compile(r"^(\.[A-Za-z0-9_-]+|\[[0-9]+\]|\['[^']*'\])+$")


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list:
    return v if isinstance(v, list) else []


# ------------------------------------------------------------------------------------------------ defaults


def apply_defaults(crd: Obj) -> None:
    """v1 defaulting: singular and listKind from kind, conversion strategy None."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict):
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            if not names.get("singular"):
                names["singular"] = kind.lower()
            if not names.get("listKind"):
                names["listKind"] = kind + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}


# ------------------------------------------------------------------------------------------------ helpers


def storage_version(crd: Obj) -> str:
    for v in _l(_d(crd.get("spec")).get("versions")):
        if _d(v).get("storage"):
            return str(v.get("name") or "")
    return ""


def _identical(versions: list, key: str) -> bool:
    values = [_d(v).get(key) for v in versions]
    return bool(values) and all(x not in (None, [], {}) and x == values[0] for x in values)


def _simple_jsonpath(path: str, field: str) -> Causes:
    if not path.startswith("."):
        return [vn.invalid(field, path, "must be a simple json path starting with .")]
    if not _SIMPLE_JSONPATH.match(path):
        return [vn.invalid(field, path, "must be a simple json path starting with .")]
    return []


# ------------------------------------------------------------------------------------------------ validation


def validate_names(names: Obj, path: str) -> Causes:
    causes: Causes = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if isinstance(value, str) and value:
            errs = vn.is_dns1035_label(value)
            if errs:
                causes.append(vn.invalid(f"{path}.{key}", value, ",".join(errs)))
    for key in ("kind", "listKind"):
        value = names.get(key)
        if isinstance(value, str) and value:
            errs = vn.is_dns1035_label(value.lower())
            if errs:
                causes.append(vn.invalid(f"{path}.{key}", value,
                                         "may have mixed case, but should otherwise match: " + ",".join(errs)))
    for i, short in enumerate(_l(names.get("shortNames"))):
        errs = vn.is_dns1035_label(str(short))
        if errs:
            causes.append(vn.invalid(f"{path}.shortNames[{i}]", short, ",".join(errs)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        causes.append(vn.invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    for i, cat in enumerate(_l(names.get("categories"))):
        errs = vn.is_dns1035_label(str(cat))
        if errs:
            causes.append(vn.invalid(f"{path}.categories[{i}]", cat, ",".join(errs)))
    return causes


def _validate_subresources(subs: Any, path: str) -> Causes:
    causes: Causes = []
    scale = _d(subs).get("scale")
    if not isinstance(scale, dict):
        return causes
    for key, under in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")):
        value = scale.get(key) or ""
        field = f"{path}.scale.{key}"
        if not value:
            causes.append(vn.required(field))
            continue
        errs = _simple_jsonpath(value, field)
        if errs:
            causes += errs
        elif not value.startswith(under):
            causes.append(vn.invalid(field, value, f"should be a json path under {under.rstrip('.')}"))
    selector = scale.get("labelSelectorPath")
    if selector:
        field = f"{path}.scale.labelSelectorPath"
        errs = _simple_jsonpath(selector, field)
        if errs:
            causes += errs
        elif not selector.startswith((".spec.", ".status.")):
            causes.append(vn.invalid(field, selector, "should be a json path under either .spec or .status"))
    return causes


def _validate_column(col: Obj, path: str) -> Causes:
    causes: Causes = []
    if not col.get("name"):
        causes.append(vn.required(f"{path}.name"))
    ctype = col.get("type")
    if not ctype:
        causes.append(vn.required(f"{path}.type", "must be one of " + ",".join(_COLUMN_TYPES)))
    elif ctype not in _COLUMN_TYPES:
        causes.append(vn.invalid(f"{path}.type", ctype, "must be one of " + ",".join(_COLUMN_TYPES)))
    fmt = col.get("format")
    if fmt and fmt not in _COLUMN_FORMATS:
        causes.append(vn.invalid(f"{path}.format", fmt, "must be one of " + ",".join(_COLUMN_FORMATS)))
    json_path = col.get("jsonPath") or ""
    if not json_path:
        causes.append(vn.required(f"{path}.JSONPath"))
    else:
        causes += _simple_jsonpath(json_path, f"{path}.JSONPath")
    return causes


def validate_spec(spec: Obj) -> Causes:
    causes: Causes = []
    group = spec.get("group") or ""
    if not group:
        causes.append(vn.required("spec.group"))
    elif errs := vn.is_dns1123_subdomain(group):
        causes.append(vn.invalid("spec.group", group, ",".join(errs)))
    elif len(group.split(".")) < 2:
        causes.append(vn.invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope") or ""
    if not scope:
        causes.append(vn.required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(vn.not_supported("spec.scope", scope, ("Cluster", "Namespaced")))
    versions = [_d(v) for v in _l(spec.get("versions"))]
    hoist_schema = _identical(versions, "schema")
    hoist_subs = _identical(versions, "subresources")
    hoist_cols = _identical(versions, "additionalPrinterColumns")
    storage = 0
    seen: set[str] = set()
    unique = True
    for i, v in enumerate(versions):
        vpath = f"spec.versions[{i}]"
        name = str(v.get("name") or "")
        if v.get("storage"):
            storage += 1
        if name in seen:
            unique = False
        seen.add(name)
        if errs := vn.is_dns1035_label(name):
            causes.append(vn.invalid(f"{vpath}.name", name, ",".join(errs)))
        schema = _d(v.get("schema")).get("openAPIV3Schema")
        if schema is None:
            causes.append(vn.required(f"{vpath}.schema.openAPIV3Schema"))
        elif not hoist_schema:
            subs = _d(v.get("subresources"))
            causes += _validate_schema(schema, f"{vpath}.schema.openAPIV3Schema", "status" in subs)
        if not hoist_subs:
            causes += _validate_subresources(v.get("subresources"), f"{vpath}.subresources")
        if not hoist_cols:
            for j, col in enumerate(_l(v.get("additionalPrinterColumns"))):
                causes += _validate_column(_d(col), f"{vpath}.additionalPrinterColumns[{j}]")
        for j, sf in enumerate(_l(v.get("selectableFields"))):
            jp = _d(sf).get("jsonPath") or ""
            if not jp:
                causes.append(vn.required(f"{vpath}.selectableFields[{j}].jsonPath"))
        if v.get("deprecationWarning") is not None and not v.get("deprecated"):
            causes.append(vn.invalid(f"{vpath}.deprecationWarning", v["deprecationWarning"],
                                     "can only be set for deprecated versions"))
    if hoist_schema:
        schema = _d(versions[0].get("schema")).get("openAPIV3Schema")
        status_enabled = any("status" in _d(v.get("subresources")) for v in versions)
        causes += _validate_schema(schema, "spec.validation.openAPIV3Schema", status_enabled)
    if hoist_subs:
        causes += _validate_subresources(versions[0].get("subresources"), "spec.subresources")
    if hoist_cols:
        for j, col in enumerate(_l(versions[0].get("additionalPrinterColumns"))):
            causes += _validate_column(_d(col), f"spec.additionalPrinterColumns[{j}]")
    if not versions:
        causes.append(vn.invalid("spec.versions", [], "must have exactly one version marked as storage version"))
    if not unique:
        causes.append(vn.invalid("spec.versions", vn.GoLiteral("[]apiextensions.CustomResourceDefinitionVersion{...}"),
                                 "must contain unique version names"))
    if versions and storage != 1:
        causes.append(vn.invalid("spec.versions",
                                 vn.GoLiteral("[]apiextensions.CustomResourceDefinitionVersion{...}"),
                                 "must have exactly one version marked as storage version"))
    names = _d(spec.get("names"))
    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            causes.append(vn.required(f"spec.names.{key}"))
    causes += validate_names(names, "spec.names")
    conversion = _d(spec.get("conversion"))
    strategy = conversion.get("strategy") or ""
    if not strategy:
        causes.append(vn.required("spec.conversion.strategy"))
    elif strategy not in ("None", "Webhook"):
        causes.append(vn.not_supported("spec.conversion.strategy", strategy, ("None", "Webhook")))
    elif strategy == "Webhook" and not conversion.get("webhook"):
        causes.append(vn.required("spec.conversion.webhook", "required when strategy is set to Webhook"))
    if spec.get("preserveUnknownFields") is True:
        causes.append(vn.invalid("spec.preserveUnknownFields", True,
                                 "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                                 "spec.versions[*].schema instead"))
    return causes


def _validate_schema(schema: Any, path: str, status_enabled: bool) -> Causes:
    causes = structural.check_schema(schema, path, status_enabled)
    if not causes and isinstance(schema, dict):
        causes = structural.check_defaults(schema, path)
    return causes


def validate(crd: Obj, old: Obj | None = None) -> Causes:
    """Causes for the CRD itself (metadata.name is checked here; the generic ObjectMeta rules elsewhere)."""
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    causes: Causes = []
    name = _d(crd.get("metadata")).get("name") or ""
    if name and name != f"{names.get('plural', '')}.{spec.get('group', '')}":
        causes.append(vn.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    causes += validate_spec(spec)
    status = _d(crd.get("status"))
    causes += validate_names(_d(status.get("acceptedNames")), "status.acceptedNames")
    if old is not None:
        old_spec = _d(old.get("spec"))
        established = is_established(old)
        if established:
            for path, new_v, old_v in (("spec.scope", spec.get("scope"), old_spec.get("scope")),
                                       ("spec.names.kind", names.get("kind"), _d(old_spec.get("names")).get("kind"))):
                if new_v != old_v:
                    causes.append(vn.immutable(path, new_v or ""))
        if spec.get("group") != old_spec.get("group"):
            causes.append(vn.immutable("spec.group", spec.get("group") or ""))
        if names.get("plural") != _d(old_spec.get("names")).get("plural"):
            causes.append(vn.immutable("spec.names.plural", names.get("plural") or ""))
        stored = _l(status.get("storedVersions"))
        declared = {str(_d(v).get("name")) for v in _l(spec.get("versions"))}
        for i, v in enumerate(stored):
            if v not in declared:
                causes.append(vn.invalid(f"status.storedVersions[{i}]", v,
                                         f"missing from spec.versions; {v} was previously a storage version, and must "
                                         f"remain in spec.versions until a storage migration ensures no data remains "
                                         f"persisted in {v} and removes {v} from status.storedVersions"))
    return causes


# ------------------------------------------------------------------------------------------------ status


def condition(crd: Obj, ctype: str) -> Obj | None:
    for c in _l(_d(crd.get("status")).get("conditions")):
        if _d(c).get("type") == ctype:
            return c
    return None


def is_established(crd: Obj) -> bool:
    c = condition(crd, "Established")
    return c is not None and c.get("status") == "True"


def set_condition(crd: Obj, ctype: str, status: str, reason: str, message: str) -> None:
    st = crd.setdefault("status", {})
    conditions = st.setdefault("conditions", [])
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now_rfc3339()
            c.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": ctype, "status": status, "lastTransitionTime": now_rfc3339(),
                       "reason": reason, "message": message})


def accepted_names(crd: Obj) -> Obj:
    names = dict(_d(_d(crd.get("spec")).get("names")))
    return {k: names[k] for k in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
            if names.get(k)}


def establish(crd: Obj, conflicts: str = "") -> None:
    """Set what the naming and establishing controllers set: accepted names, conditions, stored versions."""
    st = crd.setdefault("status", {})
    if conflicts:
        st.setdefault("acceptedNames", {"plural": "", "kind": ""})
        set_condition(crd, "NamesAccepted", "False", "NameConflict", conflicts)
        set_condition(crd, "Established", "False", "NotAccepted", "not all names are accepted")
    else:
        st["acceptedNames"] = accepted_names(crd)
        set_condition(crd, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
        set_condition(crd, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
    stored = list(_l(st.get("storedVersions")))
    sv = storage_version(crd)
    if sv and sv not in stored:
        stored.append(sv)
    st["storedVersions"] = stored


__all__ = ["CLEANUP_FINALIZER", "GROUP", "accepted_names", "apply_defaults", "condition", "establish",
           "is_established", "set_condition", "storage_version", "validate", "validate_names", "validate_spec"]
