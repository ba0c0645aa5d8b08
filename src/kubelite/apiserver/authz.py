"""Authorization: the `--authorization-mode` chain (Node, RBAC, AlwaysAllow, AlwaysDeny), first decision wins.

`system:masters` is allowed everything before any mode is asked, as upstream's privileged-group authorizer.
The authorizer interface is `await authorize(user, info) -> (allowed, reason)`; `info` is a RequestInfo
(or an rbac.Attrs). The user a request acts as (after impersonation) is available to admission and the
RBAC escalation checks through `current_user()`.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from ..api import errors
from .authn import UserInfo
from .node_authorizer import NodeAuthorizer
from .rbac import Aggregator, Attrs, RBACAuthorizer
from .request_info import RequestInfo

log = logging.getLogger("kubelite.apiserver.authz")

MASTERS = "system:masters"
MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")
DEFAULT_MODES = ("Node", "RBAC")
RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_RESOURCES = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings"})
# request verbs of non-resource requests are the lower-cased HTTP method, as upstream's RequestInfo
_NON_RESOURCE_VERBS = {"create": "post", "update": "put"}

_current_user: ContextVar[UserInfo | None] = ContextVar("kubelite_request_user", default=None)


def current_user() -> UserInfo | None:
    return _current_user.get()


def set_current_user(user: UserInfo | None) -> None:
    _current_user.set(user)


def parse_modes(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """`Node,RBAC` → ["Node", "RBAC"]; ValueError with upstream's wording for an unknown or repeated mode."""
    items = [m.strip() for m in text.split(",")] if isinstance(text, str) else list(text)
    if not items or items == [""]:
        raise ValueError("at least one authorization-mode must be passed")
    seen: list[str] = []
    for m in items:
        if m not in MODES:
            raise ValueError(f'authorization-mode "{m}" is not a valid mode')
        if m in seen:
            raise ValueError(f'authorization-mode "{m}" has mode specified more than once')
        seen.append(m)
    return seen


def attributes(info: RequestInfo | Attrs) -> Attrs:
    if isinstance(info, Attrs):
        return info
    if not info.is_resource:
        return Attrs(_NON_RESOURCE_VERBS.get(info.verb, info.verb), False, path=info.path)
    namespace = info.namespace
    if info.resource == "namespaces" and info.group == "" and info.name and not namespace:
        namespace = info.name  # upstream's RequestInfo puts a namespace's own name in its namespace
    return Attrs(info.verb, True, info.group, info.version, namespace, info.resource, info.subresource, info.name,
                 info.path)


class Authorization:
    """The configured chain, plus what RBAC needs besides deciding: escalation checks and keeping current."""

    def __init__(self, modes: list[str] | tuple[str, ...] = DEFAULT_MODES, store=None) -> None:
        self.modes = list(modes)
        self.rbac = RBACAuthorizer() if "RBAC" in self.modes else None
        self.node = NodeAuthorizer(store) if "Node" in self.modes and store is not None else None
        self.aggregator: Aggregator | None = None
        self._chain = [self._mode(m) for m in self.modes]

    def _mode(self, mode: str):
        if mode == "AlwaysAllow":
            async def always_allow(user, attrs):
                return "allow", ""
            return always_allow
        if mode == "AlwaysDeny":
            async def always_deny(user, attrs):
                return "deny", ""
            return always_deny
        if mode == "Node":
            node = self.node

            async def by_node(user, attrs):
                if node is None:
                    return "no-opinion", ""
                return await node.authorize(user, attrs)
            return by_node
        rbac = self.rbac
        assert rbac is not None

        async def by_rbac(user, attrs):
            allowed, reason = rbac.authorize(user, attrs)
            return ("allow" if allowed else "no-opinion"), reason
        return by_rbac

    async def start(self, ctx) -> None:
        """Load the RBAC objects, reconcile the bootstrap policy, aggregate, and follow changes.

        The bootstrap policy and the ClusterRole aggregation run whatever the modes, as upstream's
        rbac/bootstrap-roles hook runs whenever the RBAC API is served: with AlwaysAllow, cluster-admin and the
        aggregated admin/edit/view roles still exist (the RBAC objects then only decide nothing)."""
        from . import rbac_bootstrap

        policy = self.rbac if self.rbac is not None else RBACAuthorizer()
        self._policy = policy
        revision = await policy.load(ctx.store)
        await rbac_bootstrap.reconcile(ctx)  # before the aggregator exists: one aggregation pass at the end
        revision = max(revision, await policy.load(ctx.store))
        self.aggregator = Aggregator(ctx, policy)
        await self.aggregator.sync()
        policy.on_cluster_role_change = self.aggregator.sync
        policy.start_watching(ctx.store, revision)

    async def stop(self) -> None:
        policy = getattr(self, "_policy", None) or self.rbac
        if policy is not None:
            await policy.stop()

    # ------------------------------------------------------------ deciding

    async def authorize(self, user: UserInfo, info: RequestInfo | Attrs) -> tuple[bool, str]:
        if MASTERS in user.groups:
            return True, ""
        return await self.authorize_attrs(user, attributes(info))

    async def decide(self, user: UserInfo, attrs: Attrs) -> tuple[str, str]:
        """("allow" | "deny" | "no-opinion", reason), the reasons of undecided modes joined as upstream's union."""
        if MASTERS in user.groups:
            return "allow", ""
        reasons = []
        for step in self._chain:
            decision, reason = await step(user, attrs)
            if decision != "no-opinion":
                return decision, reason
            if reason:
                reasons.append(reason)
        return "no-opinion", "\n".join(reasons)

    async def authorize_attrs(self, user: UserInfo, attrs: Attrs) -> tuple[bool, str]:
        decision, reason = await self.decide(user, attrs)
        return decision == "allow", reason

    # ------------------------------------------------------------ rule listing (SelfSubjectRulesReview)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool, list[str]]:
        """(resource rules, non-resource rules, incomplete, evaluation errors) as upstream's rule resolvers."""
        resource_rules: list[dict[str, Any]] = []
        url_rules: list[dict[str, Any]] = []
        incomplete = False
        problems: list[str] = []
        if MASTERS in user.groups:
            resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
            url_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
        for mode in self.modes:
            if mode == "AlwaysAllow":
                resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
                url_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
            elif mode == "Node":
                from .node_authorizer import node_identity

                if node_identity(user)[1]:
                    incomplete = True
                    problems.append("node authorizer does not support user rule resolution")
            elif mode == "RBAC" and self.rbac is not None:
                rules, errs = self.rbac.rules_for(user, namespace)
                for rule in rules:
                    if rule.get("resources"):
                        out = {"verbs": list(rule.get("verbs") or [])}
                        for field in ("apiGroups", "resources", "resourceNames"):
                            if rule.get(field):
                                out[field] = list(rule[field])
                        resource_rules.append(out)
                    if rule.get("nonResourceURLs"):
                        url_rules.append({"verbs": list(rule.get("verbs") or []),
                                          "nonResourceURLs": list(rule["nonResourceURLs"])})
                problems.extend(errs)
        return resource_rules, url_rules, incomplete, problems

    # ------------------------------------------------------------ hooks of the REST layer

    async def check_write(self, ctx, rt, obj: dict[str, Any], old: dict[str, Any] | None, info) -> None:
        """Escalation checks before a role or binding is written (any mode with RBAC)."""
        if self.rbac is None or rt.group != RBAC_GROUP or rt.resource not in _RBAC_RESOURCES:
            return
        from .rbac_escalation import check_write

        await check_write(self, self.rbac, current_user(), rt.resource, obj, old)

    async def observe_write(self, rt, key: str, value: bytes | dict | None, revision: int) -> None:
        """A role or binding write has committed: refresh the copy (and aggregation) before answering."""
        if self.rbac is None or rt.group != RBAC_GROUP or rt.resource not in _RBAC_RESOURCES:
            return
        self.rbac.observe(key, value, revision)
        if rt.resource == "clusterroles" and self.aggregator is not None:
            await self.aggregator.sync()


class AlwaysAllowAuthorizer(Authorization):
    def __init__(self) -> None:
        super().__init__(["AlwaysAllow"])


def forbidden_for(user: UserInfo, info: RequestInfo | Attrs, reason: str = "") -> errors.ApiError:
    """The 403 upstream answers when no authorizer allows, word for word."""
    attrs = attributes(info)
    if not attrs.is_resource:
        text = f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
        if reason:
            text += f": {reason}"
        return errors.ApiError(403, "Forbidden", f"forbidden: {text}", {})
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    text = (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.group}" {scope}')
    if reason:
        text += f": {reason}"
    target = errors.qualified(attrs.resource, attrs.group)
    subject = f'{target} "{attrs.name}"' if attrs.name else target
    details: dict[str, Any] = {"name": attrs.name} if attrs.name else {}
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    return errors.ApiError(403, "Forbidden", f"{subject} is forbidden: {text}", details)


def build(modes: list[str], store) -> Authorization:
    if "AlwaysAllow" in modes:
        log.warning("authorization mode AlwaysAllow: EVERY authenticated or anonymous request is allowed; "
                    "use it only in a lab")
    return Authorization(modes, store)
