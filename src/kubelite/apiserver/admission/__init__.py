"""The admission chain: mutating plugins, then validating plugins, in upstream's plugin order.

A plugin is an object with a `name` and optional coroutine methods `admit(ctx, a)` (mutating phase) and
`validate(ctx, a)` (validating phase), where `a` is an `Attributes`. A plain coroutine function with the older
signature `await plugin(ctx, op, rt, obj, old, info, dry)` (NodeRestriction, written elsewhere) is hosted as a
validating plugin.

Enabled plugins follow kube-apiserver's flags: upstream's default-on set, plus `--enable-admission-plugins`,
minus `--disable-admission-plugins`; the order is always upstream's, whatever the order of the flags.
Warnings a plugin adds (`a.warnings`) reach the response's `Warning` headers through `warning_middleware`;
audit annotations (`a.annotations`) are kept on the request for the audit log (`request_annotations()`).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ...api import errors
from ..authz import current_user
from ..responses import warning_header

log = logging.getLogger("kubelite.apiserver.admission")

Obj = dict[str, Any]

# upstream's AllOrderedPlugins (pkg/kubeapiserver/options/plugins.go), the ones kubelite knows
ORDERED_PLUGINS: tuple[str, ...] = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "TaintNodesByCondition",
    "AlwaysPullImages",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "DefaultIngressClass",
    "DenyServiceExternalIPs",
    "ResourceQuota",
)

# upstream's default-on plugins (defaultOnPlugins) that kubelite implements
DEFAULT_ON: frozenset[str] = frozenset({
    "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "PodSecurity", "Priority", "DefaultTolerationSeconds",
    "DefaultStorageClass", "ResourceQuota", "DefaultIngressClass",
})
# TaintNodesByCondition is default-on upstream, where a node lifecycle controller always runs to lift the
# taint; here `kubelite server` and the partial control planes of the tests run without one, so it is opt-in
# (--enable-admission-plugins) until the profiles that run the controllers turn it on

# default-on upstream but with nothing to do here (no webhooks, CSRs or RuntimeClass objects are admitted by
# kubelite yet): accepted in the flags so that a kube-apiserver command line still parses
KNOWN_NOOP: frozenset[str] = frozenset({
    "StorageObjectInUseProtection", "PersistentVolumeClaimResize", "RuntimeClass",
    "CertificateApproval", "CertificateSigning", "ClusterTrustBundleAttest", "CertificateSubjectRestriction",
    "MutatingAdmissionWebhook", "ValidatingAdmissionWebhook", "ValidatingAdmissionPolicy",
    "MutatingAdmissionPolicy", "PodTopologyLabels", "AlwaysAdmit", "NamespaceExists", "NamespaceAutoProvision",
    "LimitPodHardAntiAffinityTopology", "PodNodeSelector", "PodTolerationRestriction", "EventRateLimit",
    "ExtendedResourceToleration", "OwnerReferencesPermissionEnforcement", "ImagePolicyWebhook", "AlwaysDeny",
})


class Operation:
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass
class Attributes:
    """What a plugin sees of one request (upstream's admission.Attributes)."""

    op: str
    rt: Any  # api.resources.ResourceType
    obj: Obj | None
    old: Obj | None
    info: Any  # apiserver.request_info.RequestInfo
    dry: bool
    user: Any = None  # apiserver.authn.UserInfo, None for the server's own writes
    warnings: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.rt.group

    @property
    def resource(self) -> str:
        return self.rt.resource

    @property
    def subresource(self) -> str:
        return getattr(self.info, "subresource", "") or ""

    @property
    def namespace(self) -> str:
        meta = (self.obj or self.old or {}).get("metadata") or {}
        return getattr(self.info, "namespace", "") or meta.get("namespace", "") or ""

    @property
    def name(self) -> str:
        meta = (self.obj or self.old or {}).get("metadata") or {}
        return meta.get("name") or getattr(self.info, "name", "") or ""

    @property
    def username(self) -> str:
        return getattr(self.user, "name", "") or ""

    def is_(self, group: str, resource: str) -> bool:
        return self.rt.group == group and self.rt.resource == resource

    def forbidden(self, why: str) -> errors.ApiError:
        """upstream's admission.NewForbidden: `<resource> "<name>" is forbidden: <why>`."""
        return errors.forbidden(self.rt.resource, self.rt.group, self.name, why)


class _Legacy:
    """Hosts a plugin written as `await plugin(ctx, op, rt, obj, old, info, dry)` (validating)."""

    def __init__(self, name: str, fn) -> None:
        self.name = name
        self.fn = fn

    async def validate(self, ctx, a: Attributes) -> None:
        await self.fn(ctx, a.op, a.rt, a.obj, a.old, a.info, a.dry)


def _legacy_name(fn) -> str:
    name = getattr(fn, "plugin_name", None) or getattr(fn, "__name__", "")
    return "NodeRestriction" if name == "node_restriction" else (name or "External")


# ---------------------------------------------------------------- request-scoped warnings and annotations

_warnings: ContextVar[list[str] | None] = ContextVar("kubelite_admission_warnings", default=None)
_annotations: ContextVar[dict[str, str] | None] = ContextVar("kubelite_admission_annotations", default=None)


def request_warnings() -> list[str]:
    return list(_warnings.get() or [])


def add_warnings(texts: list[str]) -> None:
    """Warnings of this request from outside the chain (the kinds' WarningsOnCreate/Update)."""
    sink = _warnings.get()
    if sink is not None:
        for w in texts:
            if w not in sink:
                sink.append(w)


def request_annotations() -> dict[str, str]:
    return dict(_annotations.get() or {})


def _publish(a: Attributes) -> None:
    sink = _warnings.get()
    if sink is not None:
        for w in a.warnings:
            if w not in sink:
                sink.append(w)
    notes = _annotations.get()
    if notes is not None:
        notes.update(a.annotations)
    a.warnings.clear()


@web.middleware
async def warning_middleware(request: web.Request, handler):
    """Collect admission warnings for this request and send them as `Warning: 299 - "..."` headers."""
    sink: list[str] = []
    token = _warnings.set(sink)
    notes_token = _annotations.set({})
    try:
        response = await handler(request)
    finally:
        _warnings.reset(token)
        _annotations.reset(notes_token)
    if sink and isinstance(response, web.StreamResponse) and not response.prepared:
        for w in sink:
            response.headers.add("Warning", warning_header(w))
    return response


# ---------------------------------------------------------------- the chain


def parse_plugin_list(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if text is None:
        return []
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p).strip() for p in text]
    return [p for p in items if p]


def enabled_plugins(enable: list[str] | None = None, disable: list[str] | None = None) -> list[str]:
    """Upstream's default-on set + enable − disable, in upstream's order; ValueError for an unknown name or a
    plugin both enabled and disabled (kube-apiserver refuses both)."""
    enable = list(enable or [])
    disable = list(disable or [])
    known = set(ORDERED_PLUGINS) | KNOWN_NOOP
    for name in enable + disable:
        if name not in known:
            raise ValueError(f"enable-admission-plugins plugin \"{name}\" is unknown" if name in enable else
                             f"disable-admission-plugins plugin \"{name}\" is unknown")
    both = sorted(set(enable) & set(disable))
    if both:
        raise ValueError(f"{', '.join(both)} in enable-admission-plugins and disable-admission-plugins overlapped")
    chosen = (DEFAULT_ON | set(enable)) - set(disable)
    return [p for p in ORDERED_PLUGINS if p in chosen]


class AdmissionChain:
    """The ordered plugins; `mutate` runs the mutating phase, `validate` the validating phase."""

    def __init__(self, plugins: list[Any] | None = None, disabled: set[str] | None = None) -> None:
        self.plugins: list[Any] = []
        self.disabled = set(disabled or ())
        for p in plugins or ():
            self.append(p)

    # list-like, so that code that did `ctx.admission.append(plugin)` keeps working
    def append(self, plugin: Any) -> None:
        if not hasattr(plugin, "admit") and not hasattr(plugin, "validate"):
            plugin = _Legacy(_legacy_name(plugin), plugin)
        if plugin.name in self.disabled:
            return
        self.plugins = [p for p in self.plugins if p.name != plugin.name]
        self.plugins.append(plugin)
        rank = {n: i for i, n in enumerate(ORDERED_PLUGINS)}
        self.plugins.sort(key=lambda p: rank.get(p.name, len(rank)))

    def __iter__(self):
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def get(self, name: str) -> Any:
        return next((p for p in self.plugins if p.name == name), None)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def attributes(self, op: str, rt, obj, old, info, dry: bool) -> Attributes:
        return Attributes(op=op, rt=rt, obj=obj, old=old, info=info, dry=dry, user=current_user())

    async def mutate(self, ctx, op: str, rt, obj, old, info, dry: bool) -> None:
        a = self.attributes(op, rt, obj, old, info, dry)
        try:
            for p in self.plugins:
                admit = getattr(p, "admit", None)
                if admit is not None:
                    await admit(ctx, a)
        finally:
            _publish(a)

    async def validate(self, ctx, op: str, rt, obj, old, info, dry: bool) -> None:
        a = self.attributes(op, rt, obj, old, info, dry)
        try:
            for p in self.plugins:
                check = getattr(p, "validate", None)
                if check is not None:
                    await check(ctx, a)
        finally:
            _publish(a)


def build_chain(config) -> AdmissionChain:
    """The chain the server's configuration asks for (`admission_enable` / `admission_disable` lists)."""
    from .always_pull_images import AlwaysPullImages
    from .default_ingress_class import DefaultIngressClass
    from .default_storage_class import DefaultStorageClass
    from .default_toleration_seconds import DefaultTolerationSeconds
    from .deny_service_external_ips import DenyServiceExternalIPs
    from .limit_ranger import LimitRanger
    from .namespace_lifecycle import NamespaceLifecycle
    from .pod_security import PodSecurity
    from .priority import Priority
    from .resource_quota import ResourceQuota
    from .service_account import ServiceAccount
    from .taint_nodes_by_condition import TaintNodesByCondition

    enable = list(getattr(config, "admission_enable", []) or [])
    disable = list(getattr(config, "admission_disable", []) or [])
    names = enabled_plugins(enable, disable)
    factories = {
        "NamespaceLifecycle": NamespaceLifecycle,
        "LimitRanger": LimitRanger,
        "ServiceAccount": ServiceAccount,
        "AlwaysPullImages": AlwaysPullImages,
        "PodSecurity": lambda: PodSecurity.from_config(getattr(config, "pod_security", None)),
        "Priority": Priority,
        "DefaultTolerationSeconds": lambda: DefaultTolerationSeconds(
            getattr(config, "default_not_ready_toleration_seconds", 300),
            getattr(config, "default_unreachable_toleration_seconds", 300)),
        "DefaultStorageClass": DefaultStorageClass,
        "DefaultIngressClass": DefaultIngressClass,
        "TaintNodesByCondition": TaintNodesByCondition,
        "DenyServiceExternalIPs": DenyServiceExternalIPs,
        "ResourceQuota": ResourceQuota,
    }
    # NodeRestriction is hosted when the server adds it (it needs the authorizer); disabling it here drops it
    disabled = set(disable) | ({"NodeRestriction"} if "NodeRestriction" in disable else set())
    chain = AdmissionChain(disabled=disabled)
    for name in names:
        if name in factories:
            chain.append(factories[name]())
    return chain


async def start(ctx) -> None:
    """Objects and loops the enabled plugins need (built-in PriorityClasses, the quota refresher)."""
    from ..object_cache import ObjectCache

    ctx.object_cache = ObjectCache(ctx.store)
    await ctx.object_cache.start()
    chain = ctx.admission
    for p in getattr(chain, "plugins", ()):
        begin = getattr(p, "start", None)
        if begin is not None:
            await begin(ctx)


async def stop(ctx) -> None:
    for p in getattr(ctx.admission, "plugins", ()):
        end = getattr(p, "stop", None)
        if end is not None:
            await end()
    cache = getattr(ctx, "object_cache", None)
    if cache is not None:
        await cache.stop()


__all__ = ["AdmissionChain", "Attributes", "Operation", "build_chain", "enabled_plugins", "parse_plugin_list",
           "add_warnings", "request_annotations", "request_warnings", "start", "stop", "warning_middleware",
           "DEFAULT_ON", "ORDERED_PLUGINS"]
