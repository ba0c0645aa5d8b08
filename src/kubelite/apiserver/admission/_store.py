"""Reading and writing the objects admission plugins consult, straight from the store."""

from __future__ import annotations

from typing import Any

from .. import codec

Obj = dict[str, Any]


def _rt(ctx, group: str, version: str, resource: str):
    rt = ctx.registry.get(group, version, resource)
    if rt is None:
        raise LookupError(f"{resource}.{group} is not served")
    return rt


def _cache(ctx):
    return getattr(ctx, "object_cache", None)


async def get(ctx, group: str, version: str, resource: str, namespace: str, name: str) -> Obj | None:
    key = _rt(ctx, group, version, resource).key(namespace, name)
    cache = _cache(ctx)
    if cache is not None and cache.covers(key):
        obj = cache.get(key)
        if obj is not None:
            return obj
    kv = await ctx.store.get(key)  # a miss may be an object created a moment ago
    return codec.decode_kv(kv) if kv is not None else None


async def list_all(ctx, group: str, version: str, resource: str, namespace: str | None) -> list[Obj]:
    rt = _rt(ctx, group, version, resource)
    prefix = rt.prefix(namespace or None)
    cache = _cache(ctx)
    if cache is not None and cache.covers(prefix):
        return cache.list(prefix)
    out: list[Obj] = []
    start = ""
    while True:
        result = await ctx.store.list(rt.prefix(namespace or None), limit=500, start_key=start)
        for kv in result.items:
            out.append(codec.decode_kv(kv))
            start = kv.key + "\x00"
        if not result.more or not result.items:
            return out


async def write(ctx, group: str, version: str, resource: str, obj: Obj) -> bool:
    """Compare-and-swap on the object's resourceVersion; False when it changed meanwhile."""
    from ...storage.interface import KeyNotFoundError, RevisionMismatchError

    rt = _rt(ctx, group, version, resource)
    meta = obj["metadata"]
    try:
        written = await ctx.store.update(rt.key(meta.get("namespace", ""), meta["name"]), codec.encode(obj),
                                         int(meta["resourceVersion"]))
    except (RevisionMismatchError, KeyNotFoundError):
        return False
    meta["resourceVersion"] = str(written.mod_revision)
    return True
