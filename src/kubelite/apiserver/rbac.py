"""The RBAC authorizer: an in-memory copy of Roles, ClusterRoles and their bindings, rule matching as upstream's
`rbac/v1` helpers, and a decision cache dropped whenever any of the four kinds changes.

The copy is loaded at start, then kept current two ways: the REST layer reports each role/binding write as it
commits (`observe`), so the very next request sees it, and a store watch catches anything written around the
REST layer. Both are idempotent: an event older than what is held for its key is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from ..storage.interface import CompactedError
from .authn import UserInfo

log = logging.getLogger("kubelite.apiserver.rbac")

GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
PREFIXES = {
    "/registry/roles/": "roles",
    "/registry/rolebindings/": "rolebindings",
    "/registry/clusterroles/": "clusterroles",
    "/registry/clusterrolebindings/": "clusterrolebindings",
}
_CACHE_LIMIT = 50_000


@dataclass(slots=True)
class Attrs:
    """What a request asks to do (upstream's authorizer.Attributes, without the user)."""

    verb: str
    is_resource: bool = True
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    def key(self) -> tuple:
        return (self.verb, self.is_resource, self.group, self.namespace, self.resource, self.subresource,
                self.name, self.path)


# ---------------------------------------------------------------- rule matching (upstream rbac/v1 helpers)


def verb_matches(rule: dict[str, Any], verb: str) -> bool:
    verbs = rule.get("verbs") or ()
    return "*" in verbs or verb in verbs


def group_matches(rule: dict[str, Any], group: str) -> bool:
    groups = rule.get("apiGroups") or ()
    return "*" in groups or group in groups


def resource_matches(rule: dict[str, Any], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.get("resources") or ():
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def name_matches(rule: dict[str, Any], name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names


def url_matches(rule: dict[str, Any], path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(attrs: Attrs, rule: dict[str, Any]) -> bool:
    if attrs.is_resource:
        return (verb_matches(rule, attrs.verb) and group_matches(rule, attrs.group)
                and resource_matches(rule, attrs.resource, attrs.subresource) and name_matches(rule, attrs.name))
    return verb_matches(rule, attrs.verb) and url_matches(rule, attrs.path)


def rules_allow(attrs: Attrs, rules: list[dict[str, Any]]) -> bool:
    return any(rule_allows(attrs, r) for r in rules)


# ---------------------------------------------------------------- subjects


def applies_to(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user.name == f"{SA_PREFIX}{ns}:{name}"
    return False


def describe_subject(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{subject.get("name", "")}/{ns}"'
    return f'{subject.get("kind", "")} "{subject.get("name", "")}"'


def describe_binding(binding: dict[str, Any], subject: dict[str, Any]) -> str:
    meta = binding["metadata"]
    ref = binding.get("roleRef") or {}
    ns = meta.get("namespace", "")
    if binding.get("kind") == "RoleBinding" or ns:
        return (f'RoleBinding "{meta["name"]}/{ns}" of {ref.get("kind", "")} "{ref.get("name", "")}" to '
                f'{describe_subject(subject, ns)}')
    return (f'ClusterRoleBinding "{meta["name"]}" of {ref.get("kind", "")} "{ref.get("name", "")}" to '
            f'{describe_subject(subject, "")}')


def _label_selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or ():
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


# ---------------------------------------------------------------- the authorizer


class RBACAuthorizer:
    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], dict[str, Any]] = {}
        self.cluster_roles: dict[str, dict[str, Any]] = {}
        self.role_bindings: dict[str, dict[str, dict[str, Any]]] = {}  # namespace -> name -> binding
        self.cluster_role_bindings: dict[str, dict[str, Any]] = {}
        self._revisions: dict[str, int] = {}
        self._cache: dict[tuple, tuple[bool, str]] = {}
        self.generation = 0
        self._watches: list[asyncio.Task] = []
        self.on_cluster_role_change = None  # set by the aggregation (async callable)

    # ------------------------------------------------------------ keeping the copy current

    async def load(self, store) -> int:
        revision = 0
        for prefix in PREFIXES:
            result = await store.list(prefix)
            revision = max(revision, result.revision)
            for kv in result.items:
                self._apply(kv.key, kv.value, kv.mod_revision)
        return revision

    def start_watching(self, store, revision: int) -> None:
        for prefix in PREFIXES:
            self._watches.append(asyncio.create_task(self._watch(store, prefix, revision)))

    async def stop(self) -> None:
        for task in self._watches:
            task.cancel()
        for task in self._watches:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watches.clear()

    async def _watch(self, store, prefix: str, revision: int) -> None:
        while True:
            try:
                watch = await store.watch(prefix, revision)
                try:
                    async for event in watch:
                        revision = event.revision
                        self._apply(event.key, event.value, event.revision)
                        if prefix == "/registry/clusterroles/" and self.on_cluster_role_change is not None:
                            await self.on_cluster_role_change()
                finally:
                    await watch.close()
            except asyncio.CancelledError:
                raise
            except CompactedError:
                # fell behind a compaction: reload everything under the prefix and resume from there
                result = await store.list(prefix)
                revision = result.revision
                for kv in result.items:
                    self._apply(kv.key, kv.value, kv.mod_revision)
            except Exception:
                log.exception("RBAC watch on %s failed; retrying", prefix)
                await asyncio.sleep(1.0)

    def observe(self, key: str, value: bytes | dict | None, revision: int) -> None:
        """A committed write under one of the four prefixes (value None for a delete)."""
        self._apply(key, value, revision)

    def _apply(self, key: str, value: bytes | dict | None, revision: int) -> None:
        if self._revisions.get(key, 0) >= revision:
            return
        kind = next((k for p, k in PREFIXES.items() if key.startswith(p)), None)
        if kind is None:
            return
        self._revisions[key] = revision
        rest = key[len(next(p for p, k in PREFIXES.items() if k == kind)):]
        obj = orjson.loads(value) if isinstance(value, bytes) else value
        if kind in ("roles", "rolebindings"):
            ns, _, name = rest.partition("/")
            if kind == "roles":
                if obj is None:
                    self.roles.pop((ns, name), None)
                else:
                    self.roles[(ns, name)] = obj
            else:
                bucket = self.role_bindings.setdefault(ns, {})
                if obj is None:
                    bucket.pop(name, None)
                else:
                    bucket[name] = obj
        elif kind == "clusterroles":
            if obj is None:
                self.cluster_roles.pop(rest, None)
            else:
                self.cluster_roles[rest] = obj
        else:
            if obj is None:
                self.cluster_role_bindings.pop(rest, None)
            else:
                self.cluster_role_bindings[rest] = obj
        self.generation += 1
        self._cache.clear()

    # ------------------------------------------------------------ rule resolution

    def role_ref_rules(self, ref: dict[str, Any], namespace: str) -> tuple[list[dict[str, Any]], str | None]:
        """(rules, error) of a binding's roleRef; the error is upstream's not-found text."""
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self.cluster_roles.get(name)
            if role is None:
                return [], f'clusterrole.rbac.authorization.k8s.io "{name}" not found'
            return role.get("rules") or [], None
        if kind == "Role":
            role = self.roles.get((namespace, name))
            if role is None:
                return [], f'role.rbac.authorization.k8s.io "{name}" not found'
            return role.get("rules") or [], None
        return [], f"unsupported role reference kind: {kind!r}"

    def visit(self, user: UserInfo, namespace: str):
        """(source description, rules, error) for every binding that applies to the user, cluster ones first."""
        for binding in self.cluster_role_bindings.values():
            subject = next((s for s in binding.get("subjects") or () if applies_to(s, user, "")), None)
            if subject is None:
                continue
            rules, err = self.role_ref_rules(binding.get("roleRef") or {}, "")
            yield binding, subject, rules, err
        if namespace:
            for binding in (self.role_bindings.get(namespace) or {}).values():
                subject = next((s for s in binding.get("subjects") or () if applies_to(s, user, namespace)), None)
                if subject is None:
                    continue
                rules, err = self.role_ref_rules(binding.get("roleRef") or {}, namespace)
                yield binding, subject, rules, err

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
        rules: list[dict[str, Any]] = []
        errors: list[str] = []
        for _, _, found, err in self.visit(user, namespace):
            rules.extend(found)
            if err:
                errors.append(err)
        return rules, errors

    # ------------------------------------------------------------ deciding

    def authorize(self, user: UserInfo, attrs: Attrs) -> tuple[bool, str]:
        key = (user.name, tuple(user.groups), attrs.key())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        decision = self._decide(user, attrs)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = decision
        return decision

    def _decide(self, user: UserInfo, attrs: Attrs) -> tuple[bool, str]:
        errors: list[str] = []
        for binding, subject, rules, err in self.visit(user, attrs.namespace):
            if err:
                errors.append(err)
            for rule in rules:
                if rule_allows(attrs, rule):
                    return True, f"RBAC: allowed by {describe_binding(binding, subject)}"
        if errors:
            return False, "RBAC: " + _aggregate(errors)
        return False, ""


def _aggregate(errors: list[str]) -> str:
    """Go's utilerrors.NewAggregate text: one error as is, several as `[a, b]`."""
    if len(errors) == 1:
        return errors[0]
    return "[" + ", ".join(errors) + "]"


# ---------------------------------------------------------------- ClusterRole aggregation


def aggregated_rules(rbac: RBACAuthorizer, role: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules an aggregated ClusterRole should hold: the union of the selected roles' rules, in name order."""
    selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
    me = role["metadata"]["name"]
    chosen = sorted(name for name, other in rbac.cluster_roles.items()
                    if name != me and any(_label_selector_matches(sel, other["metadata"].get("labels") or {})
                                          for sel in selectors if isinstance(sel, dict)))
    rules: list[dict[str, Any]] = []
    for name in chosen:
        for rule in rbac.cluster_roles[name].get("rules") or ():
            if rule not in rules:
                rules.append(rule)
    return rules


class Aggregator:
    """Keeps every ClusterRole with an aggregationRule in sync with the roles its selectors pick.

    Upstream runs this in kube-controller-manager (clusterrole-aggregation-controller); until our controller
    manager has it, the API server does it right after ClusterRole writes."""

    def __init__(self, ctx, rbac: RBACAuthorizer) -> None:
        self.ctx = ctx
        self.rbac = rbac
        self._lock = asyncio.Lock()

    async def sync(self) -> None:
        from . import codec

        async with self._lock:
            for _ in range(10):  # aggregated roles can select other aggregated roles (admin ⊃ edit ⊃ view)
                changed = False
                for name, role in list(self.rbac.cluster_roles.items()):
                    if not role.get("aggregationRule"):
                        continue
                    wanted = aggregated_rules(self.rbac, role)
                    if wanted == (role.get("rules") or []):
                        continue
                    key = f"/registry/clusterroles/{name}"
                    kv = await self.ctx.store.get(key)
                    if kv is None:
                        continue
                    current = codec.decode_kv(kv)
                    current["rules"] = wanted
                    try:
                        written = await self.ctx.store.update(key, codec.encode(current), kv.mod_revision)
                    except Exception:
                        changed = True  # raced another write: look again
                        continue
                    self.rbac.observe(key, codec.encode(current), written.mod_revision)
                    changed = True
                if not changed:
                    return
