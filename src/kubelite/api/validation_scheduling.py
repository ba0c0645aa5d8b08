"""Taints, tolerations, readiness gates and owner references, worded as upstream's validation (v1.33).

Controllers read these lists field by field (node lifecycle, daemon sets, the scheduler, the garbage
collector), so what reaches the store must have the shape those readers expect.
"""

from __future__ import annotations

from typing import Any

from kubelite.api import validation_names as vn

Causes = list[dict[str, str]]

TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
TOLERATION_OPERATORS = ("Equal", "Exists")
_BANNED_OWNERS = {("", "v1", "Event")}


def _items(value: Any) -> list[dict[str, Any]]:
    return [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _label_name(value: str, path: str) -> Causes:
    return [vn.invalid(path, value, m) for m in vn.is_qualified_name(value)]


def _taint_effect(effect: str, allow_empty: bool, path: str) -> Causes:
    if not effect:
        return [] if allow_empty else [vn.required(path)]
    if effect not in TAINT_EFFECTS:
        return [vn.not_supported(path, effect, TAINT_EFFECTS)]
    return []


def validate_taints(taints: Any, path: str) -> Causes:
    causes: Causes = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(_items(taints)):
        at = f"{path}[{i}]"
        key, value, effect = _str(taint.get("key")), _str(taint.get("value")), _str(taint.get("effect"))
        causes += _label_name(key, f"{at}.key")
        errs = vn.is_valid_label_value(value)
        if errs:
            causes.append(vn.invalid(f"{at}.value", value, ";".join(errs)))
        causes += _taint_effect(effect, False, f"{at}.effect")
        if (effect, key) in seen:
            dup = vn.duplicate(at, vn.GoLiteral(f"core.Taint{{Key:{vn.go_quote(key)}, Value:{vn.go_quote(value)}, "
                                                f"Effect:{vn.go_quote(effect)}}}"))
            dup["message"] += ": taints must be unique by key and effect pair"
            causes.append(dup)
        seen.add((effect, key))
    return causes


def validate_tolerations(tolerations: Any, path: str) -> Causes:
    causes: Causes = []
    for i, tol in enumerate(_items(tolerations)):
        at = f"{path}[{i}]"
        key, operator = _str(tol.get("key")), _str(tol.get("operator"))
        value, effect = _str(tol.get("value")), _str(tol.get("effect"))
        if key:
            causes += _label_name(key, f"{at}.key")
        if not key and operator != "Exists":
            causes.append(vn.invalid(f"{at}.operator", operator, "operator must be Exists when `key` is empty, "
                                                                 'which means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(vn.invalid(f"{at}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("", "Equal"):
            errs = vn.is_valid_label_value(value)
            if errs:
                causes.append(vn.invalid(f"{at}.operator", value, ";".join(errs)))
        elif operator == "Exists":
            if value:
                causes.append(vn.invalid(f"{at}.operator", vn.GoLiteral(
                    f"core.Toleration{{Key:{vn.go_quote(key)}, Operator:{vn.go_quote(operator)}, "
                    f"Value:{vn.go_quote(value)}, Effect:{vn.go_quote(effect)}, TolerationSeconds:<nil>}}"),
                    "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(vn.not_supported(f"{at}.operator", operator, TOLERATION_OPERATORS))
        causes += _taint_effect(effect, True, f"{at}.effect")
    return causes


def validate_readiness_gates(gates: Any, path: str) -> Causes:
    causes: Causes = []
    for i, gate in enumerate(_items(gates)):
        value = _str(gate.get("conditionType"))
        causes += [vn.invalid(f"{path}[{i}].conditionType", value, m) for m in vn.is_qualified_name(value)]
    return causes


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def validate_owner_references(refs: Any, path: str) -> Causes:
    """Upstream's ValidateOwnerReferences: the field paths carry no index."""
    causes: Causes = []
    controller = ""
    for ref in _items(refs):
        api_version, kind = _str(ref.get("apiVersion")), _str(ref.get("kind"))
        group, version = _group_version(api_version)
        if not version:
            causes.append(vn.invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            causes.append(vn.invalid(f"{path}.kind", kind, "must not be empty"))
        for key in ("name", "uid"):
            if not _str(ref.get(key)):
                causes.append(vn.invalid(f"{path}.{key}", _str(ref.get(key)), "must not be empty"))
        if (group, version, kind) in _BANNED_OWNERS:
            causes.append(vn.invalid(path, vn.GoLiteral("v1.OwnerReference{...}"),
                                     f"/{version}, Kind={kind} is disallowed from being an owner"))
        if ref.get("controller") is True:
            this = f"{kind}/{_str(ref.get('name'))}"
            if controller:
                causes.append(vn.invalid(path, vn.GoLiteral("[]v1.OwnerReference{...}"),
                                         f'Only one reference can have Controller set to true. Found "true" in '
                                         f"references for {controller} and {this}"))
            else:
                controller = this
    return causes
