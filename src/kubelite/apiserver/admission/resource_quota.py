"""ResourceQuota: object counts and compute/storage totals per namespace, refused past `spec.hard` with
upstream's message (`exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10`), and
`status.used` kept current.

Upstream splits this between the admission plugin (checks and charges usage before a write) and the quota
controller (recalculates from the objects, promptly after deletions and every --resource-quota-sync-period).
kubelite does both in the API server process: admission charges `status.used` by compare-and-swap before the
write; a recalculation from the stored objects runs shortly after every delete or quota write it admits, and
for every quota every `resource_quota_sync_period` seconds (so usage freed by pods that finished, or charged by
writes that then failed, is corrected).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import Any

from . import _store
from .quantity import fmt, is_binary, value

log = logging.getLogger("kubelite.apiserver.admission.quota")

Obj = dict[str, Any]
_COMPUTE = ("cpu", "memory", "ephemeral-storage")
_TERMINAL = ("Succeeded", "Failed")
# resources whose objects quota counts under their plain name, as upstream's evaluators do
_NAMED_COUNTS = {("", "pods"): "pods", ("", "services"): "services", ("", "configmaps"): "configmaps",
                 ("", "secrets"): "secrets", ("", "persistentvolumeclaims"): "persistentvolumeclaims",
                 ("", "replicationcontrollers"): "replicationcontrollers", ("", "resourcequotas"): "resourcequotas"}


def _count_name(group: str, resource: str) -> str:
    return f"count/{resource}" if not group else f"count/{resource}.{group}"


def pod_counts(pod: Obj) -> bool:
    """Terminal pods and pods past their deletion no longer use quota."""
    return (pod.get("status") or {}).get("phase") not in _TERMINAL and not (pod.get("metadata") or {}).get(
        "deletionTimestamp")


def pod_resources(spec: Obj) -> tuple[dict[str, Decimal], dict[str, Decimal], dict[str, bool]]:
    """(requests, limits, binary-format) of a pod: sum over containers, max with each init container."""
    totals: list[dict[str, Decimal]] = [{}, {}]
    binary: dict[str, bool] = {}
    for key, combine in (("containers", lambda x, y: x + y), ("initContainers", max)):
        for c in spec.get(key) or ():
            res = (c or {}).get("resources") or {}
            for i, section in enumerate(("requests", "limits")):
                for k, q in (res.get(section) or {}).items():
                    totals[i][k] = combine(totals[i].get(k, Decimal(0)), value(q))
                    binary[k] = binary.get(k, False) or is_binary(q)
    return totals[0], totals[1], binary


def usage(group: str, resource: str, obj: Obj) -> tuple[dict[str, Decimal], set[str], dict[str, bool]]:
    """(quota resources this object uses, compute resources it leaves unspecified, binary-format hints)."""
    used: dict[str, Decimal] = {_count_name(group, resource): Decimal(1)}
    missing: set[str] = set()
    binary: dict[str, bool] = {}
    if (group, resource) in _NAMED_COUNTS:
        used[_NAMED_COUNTS[(group, resource)]] = Decimal(1)
    spec = obj.get("spec") or {}
    if (group, resource) == ("", "pods"):
        if not pod_counts(obj):
            return {}, set(), {}
        requests, limits, binary = pod_resources(spec)
        for k in _COMPUTE:
            if k in requests:
                used[f"requests.{k}"] = requests[k]
                used[k] = requests[k]
            else:
                missing |= {f"requests.{k}", k}
            if k in limits:
                used[f"limits.{k}"] = limits[k]
            else:
                missing.add(f"limits.{k}")
        for k, v in requests.items():
            if k not in _COMPUTE and "/" in k:
                used[f"requests.{k}"] = v
    elif (group, resource) == ("", "services"):
        kind = spec.get("type") or "ClusterIP"
        ports = len(spec.get("ports") or [])
        if kind == "LoadBalancer":
            used["services.loadbalancers"] = Decimal(1)
        if kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True)):
            used["services.nodeports"] = Decimal(ports)
    elif (group, resource) == ("", "persistentvolumeclaims"):
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        q = value(storage) if storage is not None else Decimal(0)
        binary["requests.storage"] = is_binary(storage)
        used["requests.storage"] = q
        cls = spec.get("storageClassName")
        if cls:
            used[f"{cls}.storageclass.storage.k8s.io/requests.storage"] = q
            used[f"{cls}.storageclass.storage.k8s.io/persistentvolumeclaims"] = Decimal(1)
            binary[f"{cls}.storageclass.storage.k8s.io/requests.storage"] = is_binary(storage)
    for k in list(binary):
        for prefix in ("requests.", "limits."):
            binary.setdefault(prefix + k, binary[k])
    return used, missing, binary


def _best_effort(pod: Obj) -> bool:
    requests, limits, _ = pod_resources(pod.get("spec") or {})
    return not requests and not limits


def matches_scopes(quota: Obj, group: str, resource: str, obj: Obj) -> bool:
    """Quota scopes (Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass) select pods only."""
    spec = quota.get("spec") or {}
    scopes = list(spec.get("scopes") or [])
    selector = (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    if not scopes and not selector:
        return True
    if (group, resource) != ("", "pods"):
        return False
    pod_spec = obj.get("spec") or {}
    checks = {
        "Terminating": pod_spec.get("activeDeadlineSeconds") is not None,
        "NotTerminating": pod_spec.get("activeDeadlineSeconds") is None,
        "BestEffort": _best_effort(obj),
        "NotBestEffort": not _best_effort(obj),
    }
    for scope in scopes:
        if not checks.get(scope, False):
            return False
    for expr in selector:
        scope = expr.get("scopeName")
        if scope == "PriorityClass":
            pc = pod_spec.get("priorityClassName") or ""
            op, values = expr.get("operator"), list(expr.get("values") or [])
            ok = {"In": pc in values, "NotIn": pc not in values, "Exists": bool(pc),
                  "DoesNotExist": not pc}.get(op, False)
        else:
            ok = checks.get(scope, False)
        if not ok:
            return False
    return True


def _fmt_list(names: list[str], values: dict[str, Decimal], binary: dict[str, bool]) -> str:
    return ",".join(f"{k}={fmt(values.get(k, Decimal(0)), binary.get(k, False))}" for k in names)


_QUOTA_RESOURCES = {("", "pods"), ("", "services"), ("", "configmaps"), ("", "secrets"),
                    ("", "persistentvolumeclaims"), ("", "replicationcontrollers"), ("", "resourcequotas")}


class ResourceQuota:
    name = "ResourceQuota"

    def __init__(self, sync_period: float = 30.0, replenish_delay: float = 0.2) -> None:
        self.sync_period = sync_period
        self.replenish_delay = replenish_delay
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None

    def _lock(self, namespace: str) -> asyncio.Lock:
        return self._locks.setdefault(namespace, asyncio.Lock())

    # ------------------------------------------------------------ admission

    async def validate(self, ctx, a) -> None:
        if not a.rt.namespaced or not a.namespace or a.subresource:
            return
        if a.op == "DELETE":
            self.schedule(ctx, a.namespace)
            return
        if a.is_("", "resourcequotas"):
            self.schedule(ctx, a.namespace)
        if a.op != "CREATE" or not isinstance(a.obj, dict):
            return
        cache = getattr(ctx, "object_cache", None)
        if cache is not None and cache.any_under(f"/registry/resourcequotas/{a.namespace}/") is False:
            return  # no quota in this namespace: nothing to charge (the common case, read from memory)
        quotas = await _store.list_all(ctx, "", "v1", "resourcequotas", a.namespace)
        if not quotas:
            return
        delta, missing, binary = usage(a.group, a.resource, a.obj)
        if not delta:
            return
        async with self._lock(a.namespace):
            for quota in quotas:
                await self._charge(ctx, a, quota, delta, missing, binary)

    async def _charge(self, ctx, a, quota: Obj, delta, missing, binary) -> None:
        for _ in range(8):
            hard = (quota.get("spec") or {}).get("hard") or {}
            if not hard or not matches_scopes(quota, a.group, a.resource, a.obj):
                return
            name = quota["metadata"]["name"]
            relevant = sorted(k for k in hard if k in delta or k in missing)
            if not relevant:
                return
            unspecified = sorted(k for k in relevant if k in missing)
            if unspecified:
                raise a.forbidden(f"failed quota: {name}: must specify {','.join(unspecified)}")
            status = quota.get("status") or {}
            if "used" not in status:
                await self.recalculate(ctx, a.namespace)
                quota = await _store.get(ctx, "", "v1", "resourcequotas", a.namespace, name) or quota
                status = quota.get("status") or {}
            used = {k: value(v) for k, v in (status.get("used") or {}).items()}
            bin_hint = dict(binary)
            for k, v in hard.items():
                bin_hint[k] = bin_hint.get(k, False) or is_binary(v)
            exceeded = [k for k in relevant if used.get(k, Decimal(0)) + delta[k] > value(hard[k])]
            if exceeded:
                raise a.forbidden(f"exceeded quota: {name}, requested: {_fmt_list(exceeded, delta, bin_hint)}, "
                                  f"used: {_fmt_list(exceeded, used, bin_hint)}, "
                                  f"limited: {_fmt_list(exceeded, {k: value(hard[k]) for k in exceeded}, bin_hint)}")
            if a.dry:
                return
            new_used = dict(status.get("used") or {})
            for k in relevant:
                new_used[k] = fmt(used.get(k, Decimal(0)) + delta[k], bin_hint.get(k, False))
            quota.setdefault("status", {})["used"] = new_used
            quota["status"]["hard"] = dict(hard)
            if await _store.write(ctx, "", "v1", "resourcequotas", quota):
                return
            quota = await _store.get(ctx, "", "v1", "resourcequotas", a.namespace, name)
            if quota is None:
                return
        raise a.forbidden("status unknown for quota: " + quota["metadata"]["name"])

    # ------------------------------------------------------------ the controller's half

    async def recalculate(self, ctx, namespace: str) -> None:
        """Write status.hard and status.used of every quota in the namespace from the stored objects."""
        quotas = await _store.list_all(ctx, "", "v1", "resourcequotas", namespace)
        if not quotas:
            return
        wanted = {k for q in quotas for k in ((q.get("spec") or {}).get("hard") or {})}
        objects: list[tuple[str, str, Obj]] = []
        for group, resource in sorted(self._resources_for(ctx, wanted)):
            rt = next((r for r in ctx.registry if r.group == group and r.resource == resource), None)
            version = rt.version if rt is not None else "v1"
            with contextlib.suppress(LookupError):
                for obj in await _store.list_all(ctx, group, version, resource, namespace):
                    objects.append((group, resource, obj))
        for quota in quotas:
            for _ in range(4):
                hard = (quota.get("spec") or {}).get("hard") or {}
                totals: dict[str, Decimal] = {k: Decimal(0) for k in hard}
                binary: dict[str, bool] = {k: is_binary(v) for k, v in hard.items()}
                for group, resource, obj in objects:
                    if not matches_scopes(quota, group, resource, obj):
                        continue
                    used, _, bin_hint = usage(group, resource, obj)
                    for k in hard:
                        if k in used:
                            totals[k] += used[k]
                            binary[k] = binary[k] or bin_hint.get(k, False)
                status = {"hard": dict(hard), "used": {k: fmt(v, binary[k]) for k, v in totals.items()}}
                if quota.get("status") == status:
                    break
                quota["status"] = status
                if await _store.write(ctx, "", "v1", "resourcequotas", quota):
                    break
                quota = await _store.get(ctx, "", "v1", "resourcequotas", namespace, quota["metadata"]["name"])
                if quota is None:
                    break

    def _resources_for(self, ctx, wanted: set[str]) -> set[tuple[str, str]]:
        out = set(_QUOTA_RESOURCES)
        for k in wanted:
            if k.startswith("count/"):
                res, _, group = k[len("count/"):].partition(".")
                out.add((group, res))
        return out

    def schedule(self, ctx, namespace: str) -> None:
        """Recalculate the namespace's quotas shortly (after the write being admitted has landed)."""
        if namespace in self._pending:
            return
        self._pending.add(namespace)

        async def later() -> None:
            await asyncio.sleep(self.replenish_delay)
            self._pending.discard(namespace)
            try:
                async with self._lock(namespace):
                    await self.recalculate(ctx, namespace)
            except Exception:
                log.exception("quota recalculation in %s failed", namespace)

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, ctx) -> None:
        self.sync_period = float(getattr(ctx.config, "resource_quota_sync_period", self.sync_period))
        self._loop_task = asyncio.get_running_loop().create_task(self._resync_loop(ctx))

    async def _resync_loop(self, ctx) -> None:
        while True:
            await asyncio.sleep(self.sync_period)
            try:
                namespaces = {q["metadata"].get("namespace", "")
                              for q in await _store.list_all(ctx, "", "v1", "resourcequotas", None)}
                for ns in sorted(namespaces):
                    async with self._lock(ns):
                        await self.recalculate(ctx, ns)
            except Exception:
                log.exception("quota resync failed")

    async def stop(self) -> None:
        tasks = [t for t in [self._loop_task, *self._tasks] if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
