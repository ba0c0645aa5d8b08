"""RBAC escalation prevention on Role, ClusterRole, RoleBinding and ClusterRoleBinding writes (upstream's
`policybased` storage): a user may only write a role holding rules they hold themselves, unless they have
`escalate` on it, and may only bind a role whose rules they hold, unless they have `bind` on it."""

from __future__ import annotations

from typing import Any

from ..api import errors
from .authn import UserInfo
from .rbac import GROUP, Attrs, RBACAuthorizer

MASTERS = "system:masters"


def breakdown(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """One rule per (group, resource, verb[, name]) and per (url, verb), in upstream's order."""
    out: list[dict[str, Any]] = []
    verbs = rule.get("verbs") or []
    names = rule.get("resourceNames") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                if names:
                    out.extend({"apiGroups": [group], "resources": [resource], "verbs": [verb],
                                "resourceNames": [n]} for n in names)
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in rule.get("nonResourceURLs") or []:
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _has_all(have: list[str], want: list[str]) -> bool:
    return all(w in have for w in want)


def _resources_cover(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: list[str], wanted: list[str]) -> bool:
    for url in wanted:
        if not any(o == url or (o.endswith("*") and url.startswith(o[:-1])) for o in owner):
            return False
    return True


def rule_covers(owner: dict[str, Any], sub: dict[str, Any]) -> bool:
    o_verbs, o_groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    o_names, s_names = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    if not ("*" in o_verbs or _has_all(o_verbs, sub.get("verbs") or [])):
        return False
    if not ("*" in o_groups or _has_all(o_groups, sub.get("apiGroups") or [])):
        return False
    if not _resources_cover(owner.get("resources") or [], sub.get("resources") or []):
        return False
    if not _urls_cover(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or []):
        return False
    if not s_names:
        return not o_names
    return not o_names or _has_all(o_names, s_names)


def covers(owner_rules: list[dict[str, Any]], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The broken-down rules the owner does not hold (empty: fully covered)."""
    missing = []
    for rule in rules:
        for sub in breakdown(rule):
            if not any(rule_covers(o, sub) for o in owner_rules):
                missing.append(sub)
    return missing


def compact(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge single group/resource(/name) rules that differ only by verb (upstream's CompactRules)."""
    out: list[dict[str, Any]] = []
    simple: dict[tuple, dict[str, Any]] = {}
    for rule in rules:
        names = rule.get("resourceNames") or []
        is_simple = (len(names) <= 1 and not rule.get("nonResourceURLs") and len(rule.get("apiGroups") or []) == 1
                     and len(rule.get("resources") or []) == 1)
        if not is_simple:
            out.append(rule)
            continue
        key = (rule["apiGroups"][0], rule["resources"][0], names[0] if names else None)
        if key in simple:
            simple[key]["verbs"] = simple[key]["verbs"] + list(rule.get("verbs") or [])
        else:
            simple[key] = {k: list(v) for k, v in rule.items()}
    return out + list(simple.values())


def _go_quote_list(items: list[str]) -> str:
    import json

    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def compact_string(rule: dict[str, Any]) -> str:
    parts = []
    for label, field in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                         ("NonResourceURLs", "nonResourceURLs"), ("ResourceNames", "resourceNames"),
                         ("Verbs", "verbs")):
        if rule.get(field):
            parts.append(f"{label}:{_go_quote_list(rule[field])}")
    return "{" + ", ".join(parts) + "}"


def confirm_no_escalation(rbac: RBACAuthorizer, user: UserInfo, namespace: str,
                          rules: list[dict[str, Any]]) -> str | None:
    """None when the user holds every rule; else upstream's error text."""
    owner, resolution_errors = rbac.rules_for(user, namespace)
    missing = covers(owner, rules)
    if not missing:
        return None
    descriptions = sorted({compact_string(r) for r in compact(missing)})
    msg = (f'user "{user.name}" (groups={_go_quote_list(user.groups)}) is attempting to grant RBAC permissions '
           f"not currently held:\n" + "\n".join(descriptions))
    if resolution_errors:
        msg += f"; resolution errors: [{', '.join(resolution_errors)}]"
    return msg


async def check_write(authorization, rbac: RBACAuthorizer, user: UserInfo | None, resource: str,
                      obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise 403 when writing `obj` (a role or binding) would grant the user more than they hold."""
    if user is None or MASTERS in user.groups:
        return
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    if old is not None and _only_gc_fields_changed(obj, old):
        return
    if resource in ("roles", "clusterroles"):
        allowed, _ = await authorization.authorize_attrs(
            user, Attrs("escalate", True, GROUP, "v1", namespace, resource, "", name))
        if allowed:
            return
        rules = obj.get("rules") or []
        if resource == "clusterroles" and obj.get("aggregationRule"):
            # an aggregated role's rules are written by the aggregation; what it grants is the selected roles'
            from .rbac import aggregated_rules

            rules = aggregated_rules(rbac, obj)
        problem = confirm_no_escalation(rbac, user, namespace, rules)
    else:
        ref = obj.get("roleRef") or {}
        role_resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        allowed, _ = await authorization.authorize_attrs(
            user, Attrs("bind", True, GROUP, "v1", namespace, role_resource, "", ref.get("name", "")))
        if allowed:
            return
        rules, err = rbac.role_ref_rules(ref, namespace)
        problem = err or confirm_no_escalation(rbac, user, namespace, rules)
    if problem:
        raise errors.ApiError(403, "Forbidden", f'{resource}.{GROUP} "{name}" is forbidden: {problem}',
                              {"name": name, "group": GROUP, "kind": resource})


def _only_gc_fields_changed(obj: dict[str, Any], old: dict[str, Any]) -> bool:
    """Upstream lets any holder of `update` touch finalizers and ownerReferences without an escalation check."""
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        c = {k: v for k, v in o.items() if k != "metadata"}
        m = {k: v for k, v in (o.get("metadata") or {}).items()
             if k not in ("finalizers", "ownerReferences", "resourceVersion", "managedFields", "generation")}
        c["metadata"] = m
        return c

    return strip(obj) == strip(old)
