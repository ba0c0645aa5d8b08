"""An in-memory copy of small, hot resources (namespaces, service accounts, limit ranges, priority and
storage classes) kept current from store watches, for the admission plugins that consult them on every
write — as upstream's admission plugins read informer caches instead of etcd.

A miss is not an answer: callers fall back to the store, so an object created a moment ago is never
reported missing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..storage.interface import CompactedError, Store
from . import codec

log = logging.getLogger("kubelite.apiserver")

CACHED_PREFIXES = (
    "/registry/namespaces/",
    "/registry/serviceaccounts/",
    "/registry/limitranges/",
    "/registry/priorityclasses/",
    "/registry/storageclasses/",
    "/registry/resourcequotas/",  # only to answer "does this namespace have a quota?" (see ResourceQuota)
)
# Prefixes whose objects are written with compare-and-swap by admission: always read from the store.
UNCACHED_READS = ("/registry/resourcequotas/",)


class ObjectCache:
    def __init__(self, store: Store, prefixes: tuple[str, ...] = CACHED_PREFIXES) -> None:
        self.store = store
        self.prefixes = prefixes
        self.objects: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task] = []
        self.ready = False

    def covers(self, key: str) -> bool:
        return self.ready and key.startswith(self.prefixes) and not key.startswith(UNCACHED_READS)

    def any_under(self, prefix: str) -> bool | None:
        """Whether a cached prefix holds anything (None when this cache cannot tell)."""
        if not self.ready or not prefix.startswith(self.prefixes):
            return None
        return any(key.startswith(prefix) for key in self.objects)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)

    def list(self, prefix: str) -> list[dict[str, Any]]:
        return [obj for key, obj in sorted(self.objects.items()) if key.startswith(prefix)]

    async def start(self) -> None:
        for prefix in self.prefixes:
            revision = await self._load(prefix)
            self._tasks.append(asyncio.create_task(self._follow(prefix, revision)))
        self.ready = True

    async def _load(self, prefix: str) -> int:
        result = await self.store.list(prefix)
        for key in [k for k in self.objects if k.startswith(prefix)]:
            del self.objects[key]
        for kv in result.items:
            self.objects[kv.key] = codec.decode_kv(kv)
        return result.revision

    async def _follow(self, prefix: str, revision: int) -> None:
        while True:
            try:
                watch = await self.store.watch(prefix, revision)
                try:
                    async for event in watch:
                        revision = event.revision
                        if event.type == "DELETE":
                            self.objects.pop(event.key, None)
                        else:
                            self.objects[event.key] = codec.decode(event.value, event.revision)  # type: ignore[arg-type]
                finally:
                    await watch.close()
            except asyncio.CancelledError:
                raise
            except CompactedError:
                revision = await self._load(prefix)
            except Exception:
                log.exception("object cache for %s: watch failed; reloading", prefix)
                await asyncio.sleep(0.5)
                revision = await self._load(prefix)

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
