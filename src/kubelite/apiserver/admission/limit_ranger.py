"""LimitRanger: default container requests and limits from the namespace's LimitRanges, then enforce their
min, max and maxLimitRequestRatio per Container, per Pod and per PersistentVolumeClaim, with upstream's
messages (`maximum cpu usage per Container is 1, but limit is 2`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from . import _store
from .quantity import value

Obj = dict[str, Any]
ANNOTATION = "kubernetes.io/limit-ranger"


def _resources(c: Obj) -> tuple[Obj, Obj]:
    res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
    return dict(res.get("requests") or {}), dict(res.get("limits") or {})


def min_constraint(kind: str, name: str, enforced: Any, requests: Obj, limits: Obj) -> str | None:
    if name not in requests:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if value(requests[name]) < value(enforced):
        return f"minimum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    if name in limits and value(limits[name]) < value(enforced):
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    return None


def max_constraint(kind: str, name: str, enforced: Any, requests: Obj, limits: Obj) -> str | None:
    if name not in limits:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if value(limits[name]) > value(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    if name in requests and value(requests[name]) > value(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return None


def max_request_constraint(kind: str, name: str, enforced: Any, requests: Obj) -> str | None:
    if name not in requests:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if value(requests[name]) > value(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return None


def ratio_constraint(kind: str, name: str, enforced: Any, requests: Obj, limits: Obj) -> str | None:
    req = value(requests.get(name)) if name in requests else Decimal(0)
    lim = value(limits.get(name)) if name in limits else Decimal(0)
    if req == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
    if lim == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
    observed = float(lim * 1000) / float(req * 1000)
    if Decimal(str(observed)) > value(enforced):
        return f"{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:f}"
    return None


def _check(kind: str, item: Obj, requests: Obj, limits: Obj, errs: list[str]) -> None:
    for name, q in (item.get("min") or {}).items():
        if (e := min_constraint(kind, name, q, requests, limits)) is not None:
            errs.append(e)
    for name, q in (item.get("max") or {}).items():
        if (e := max_constraint(kind, name, q, requests, limits)) is not None:
            errs.append(e)
    for name, q in (item.get("maxLimitRequestRatio") or {}).items():
        if (e := ratio_constraint(kind, name, q, requests, limits)) is not None:
            errs.append(e)


def _pod_totals(spec: Obj) -> tuple[Obj, Obj]:
    """A pod's requests and limits: the sum over containers, or the largest init container if that is more."""
    totals: list[dict[str, Decimal]] = [{}, {}]
    for c in spec.get("containers") or ():
        for i, section in enumerate(_resources(c)):
            for k, q in section.items():
                totals[i][k] = totals[i].get(k, Decimal(0)) + value(q)
    for c in spec.get("initContainers") or ():
        for i, section in enumerate(_resources(c)):
            for k, q in section.items():
                totals[i][k] = max(totals[i].get(k, Decimal(0)), value(q))
    from .quantity import fmt

    return ({k: fmt(v) for k, v in totals[0].items()}, {k: fmt(v) for k, v in totals[1].items()})


def apply_defaults(pod: Obj, ranges: list[Obj]) -> None:
    default_limits: Obj = {}
    default_requests: Obj = {}
    for lr in ranges:
        for item in (lr.get("spec") or {}).get("limits") or ():
            if item.get("type") == "Container":
                for k, q in (item.get("default") or {}).items():
                    default_limits.setdefault(k, q)
                for k, q in (item.get("defaultRequest") or {}).items():
                    default_requests.setdefault(k, q)
    if not default_limits and not default_requests:
        return
    notes: list[str] = []
    spec = pod.get("spec") or {}
    for key, label in (("initContainers", "init container"), ("containers", "container")):
        for c in spec.get(key) or ():
            if not isinstance(c, dict):
                continue
            res = c.setdefault("resources", {})
            requests = res.setdefault("requests", {})
            limits = res.setdefault("limits", {})
            set_req = [k for k in default_requests if k not in requests]
            set_lim = [k for k in default_limits if k not in limits]
            for k in set_req:
                requests[k] = default_requests[k]
            for k in set_lim:
                limits[k] = default_limits[k]
            if not requests:
                res.pop("requests")
            if not limits:
                res.pop("limits")
            if set_req:
                notes.append(f"{', '.join(set_req)} request for {label} {c.get('name', '')}")
            if set_lim:
                notes.append(f"{', '.join(set_lim)} limit for {label} {c.get('name', '')}")
    if notes:
        meta = pod.setdefault("metadata", {})
        meta.setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def pod_errors(pod: Obj, ranges: list[Obj]) -> list[str]:
    errs: list[str] = []
    spec = pod.get("spec") or {}
    for lr in ranges:
        for item in (lr.get("spec") or {}).get("limits") or ():
            kind = item.get("type")
            if kind == "Container":
                for key in ("initContainers", "containers"):
                    for c in spec.get(key) or ():
                        if isinstance(c, dict):
                            _check("Container", item, *_resources(c), errs)
            elif kind == "Pod":
                _check("Pod", item, *_pod_totals(spec), errs)
    return errs


def pvc_errors(pvc: Obj, ranges: list[Obj]) -> list[str]:
    errs: list[str] = []
    res = (pvc.get("spec") or {}).get("resources") or {}
    requests, limits = dict(res.get("requests") or {}), dict(res.get("limits") or {})
    for lr in ranges:
        for item in (lr.get("spec") or {}).get("limits") or ():
            if item.get("type") != "PersistentVolumeClaim":
                continue
            for name, q in (item.get("min") or {}).items():
                if (e := min_constraint("PersistentVolumeClaim", name, q, requests, limits)) is not None:
                    errs.append(e)
            for name, q in (item.get("max") or {}).items():
                if (e := max_request_constraint("PersistentVolumeClaim", name, q, requests)) is not None:
                    errs.append(e)
    return errs


def aggregate(errs: list[str]) -> str:
    """utilerrors.NewAggregate's text: one error as is, several in brackets."""
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


class LimitRanger:
    name = "LimitRanger"

    async def _ranges(self, ctx, namespace: str) -> list[Obj]:
        return await _store.list_all(ctx, "", "v1", "limitranges", namespace) if namespace else []

    async def admit(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not a.is_("", "pods") or not isinstance(a.obj, dict):
            return
        ranges = await self._ranges(ctx, a.namespace)
        if ranges:
            apply_defaults(a.obj, ranges)

    async def validate(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not isinstance(a.obj, dict):
            return
        if a.is_("", "pods"):
            errs = pod_errors(a.obj, await self._ranges(ctx, a.namespace))
        elif a.is_("", "persistentvolumeclaims"):
            errs = pvc_errors(a.obj, await self._ranges(ctx, a.namespace))
        else:
            return
        if errs:
            raise a.forbidden(aggregate(errs))
