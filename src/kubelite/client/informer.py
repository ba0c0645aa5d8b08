"""Informers as in client-go: list + watch into a shared in-memory cache with indexes and event handlers.

An `Informer` lists a resource (paginated), then watches from the list's resourceVersion with bookmarks,
resuming from the last seen resourceVersion whenever a stream ends or breaks.  A 410 Gone/Expired (history
compacted) makes it list again; the difference between the cache and the new list is delivered to the
handlers as the adds, updates and deletes that were missed.

Cached objects are the decoded dicts themselves, shared by every reader and never copied on read.
**Callers must not mutate an object they got from an informer** (cache, handler argument, index lookup):
`copy.deepcopy` it (or build a patch) before changing anything.

Handlers are plain (sync) callables run in the informer's task, in the order they were added, after the
cache already reflects the change; they must be quick (typically: enqueue a key into a `WorkQueue`).

Memory: a `transform` runs on every object before it is cached (client-go's SetTransform).  Informers from a
`SharedInformerFactory` drop `metadata.managedFields` by default, as kube-controller-manager and kube-scheduler
do: they are about half of a typical object and no control loop reads them (an update without them keeps
the stored ones); they also share repeated strings (`compact`).  Components of one process share one factory through `factory.scoped()` views, so each
resource is listed, watched, decoded and cached once per process however many components read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from ..api.resources import ResourceType
from .rest import ApiClient, ClientError

log = logging.getLogger("kubelite.client.informer")

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]
Transform = Callable[[Obj], Obj]

NAMESPACE_INDEX = "namespace"
OWNER_UID_INDEX = "owner-uid"
NODE_NAME_INDEX = "spec.nodeName"  # pods only; unscheduled pods are indexed under ""


def key_of(obj: Obj) -> str:
    """The cache / work-queue key: "namespace/name", or "name" for cluster-scoped objects."""
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def make_key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """(namespace or None, name) from a key made by `key_of` / `make_key`."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def index_namespace(obj: Obj) -> Iterable[str]:
    ns = obj["metadata"].get("namespace")
    return (ns,) if ns else ()


def index_owner_uid(obj: Obj) -> Iterable[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or ()
            if isinstance(ref, dict) and isinstance(ref.get("uid"), str) and ref["uid"]]


def index_node_name(obj: Obj) -> Iterable[str]:
    return ((obj.get("spec") or {}).get("nodeName") or "",)


def drop_managed_fields(obj: Obj) -> Obj:
    """The object without `metadata.managedFields`."""
    meta = obj.get("metadata")
    if meta is not None and "managedFields" in meta:
        del meta["managedFields"]
    return obj


def _intern_strings(node: Any, _intern=sys.intern, _str=str, _dict=dict, _list=list) -> None:
    if type(node) is _dict:
        for k, v in node.items():
            t = type(v)
            if t is _str:
                node[k] = _intern(v)
            elif t is _dict or t is _list:
                _intern_strings(v)
    else:
        for i, v in enumerate(node):
            t = type(v)
            if t is _str:
                node[i] = _intern(v)
            elif t is _dict or t is _list:
                _intern_strings(v)


def compact(obj: Obj) -> Obj:
    """The default transform of factory informers: `drop_managed_fields`, and every string value replaced by
    its interned copy.  Pods of one template repeat most of their strings (images, policies, paths,
    condition types, node names, timestamps of one second): one copy each saves ~30% of a cached pod.
    Interned strings are freed with their last user, as any other."""
    drop_managed_fields(obj)
    _intern_strings(obj)
    return obj


class _Handler:
    __slots__ = ("on_add", "on_update", "on_delete")

    def __init__(self, on_add, on_update, on_delete) -> None:
        self.on_add = on_add
        self.on_update = on_update
        self.on_delete = on_delete


class Informer:
    """List + watch one resource type (optionally one namespace / selector) into an indexed cache.

    `start()` launches the loop as a task in the running event loop (idempotent); `await stop()` ends it.
    """

    def __init__(self, client: ApiClient, rt: ResourceType, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 page_size: int = 500, watch_timeout: int = 300, min_backoff: float = 0.2,
                 max_backoff: float = 10.0, transform: Transform | None = None) -> None:
        self.client = client
        self.transform = transform  # applied to each listed or watched object before it is cached
        self.rt = rt
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._items: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.resource_version: str = ""  # last resourceVersion seen (list, event or bookmark)
        self.relists = 0  # how many times the informer listed (1 after the first sync)
        self._logged_bad: set[tuple[str, str, str]] = set()
        self.add_indexer(NAMESPACE_INDEX, index_namespace)
        self.add_indexer(OWNER_UID_INDEX, index_owner_uid)
        if rt.group == "" and rt.resource == "pods":
            self.add_indexer(NODE_NAME_INDEX, index_node_name)

    # -- configuration --------------------------------------------------------------------------------

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Index the cache by `fn(obj)` → iterable of values; objects already cached are indexed now."""
        self._index_funcs[name] = fn
        index: dict[str, set[str]] = {}
        self._indices[name] = index
        for key, obj in self._items.items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    def add_handler(self, on_add: Callable[[Obj], Any] | None = None,
                    on_update: Callable[[Obj, Obj], Any] | None = None,
                    on_delete: Callable[[Obj], Any] | None = None) -> object:
        """Register callbacks: on_add(obj), on_update(old, new), on_delete(last_known_obj).

        A handler added after objects are cached gets an on_add for each of them first, as client-go does.
        Returns a registration for `remove_handler`."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in list(self._items.values()):
                self._call(on_add, obj)
        return handler

    def remove_handler(self, registration: object) -> None:
        """Stop calling a handler registered by `add_handler` (no-op if it is gone already)."""
        with contextlib.suppress(ValueError):
            self._handlers.remove(registration)  # type: ignore[arg-type]

    # -- reading the cache ------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(make_key(namespace, name))

    def get_by_key(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self, namespace: str | None = None) -> list[Obj]:
        if namespace:
            return self.by_index(NAMESPACE_INDEX, namespace)
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indices[name].get(value)
        if not keys:
            return []
        items = self._items
        return [items[k] for k in keys]

    def index_keys(self, name: str, value: str) -> list[str]:
        return list(self._indices[name].get(value) or ())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True once the first list is in the cache (and its adds delivered); False on timeout."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- running --------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"informer-{self.rt.resource}")

    @property
    def started(self) -> bool:
        return self._task is not None

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        need_list = True
        backoff = self.min_backoff
        while not self._stopping:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                began = asyncio.get_running_loop().time()
                await self._watch()
                if asyncio.get_running_loop().time() - began < 1.0:
                    await asyncio.sleep(backoff)  # a stream that keeps ending at once must not spin
                    backoff = min(backoff * 2, self.max_backoff)
                else:
                    backoff = self.min_backoff
            except asyncio.CancelledError:
                raise
            except ClientError as e:
                if e.is_gone:
                    log.info("%s: watch expired (%s); re-listing", self.rt.resource, e.message)
                    need_list = True
                    continue
                log.warning("%s: %s; retrying in %.1fs", self.rt.resource, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                log.warning("%s: %s: %s; retrying in %.1fs", self.rt.resource, type(e).__name__, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception:
                log.exception("%s: informer loop failed; re-listing in %.1fs", self.rt.resource, backoff)
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _list_all(self) -> tuple[list[Obj], str]:
        kwargs = {"label_selector": self.label_selector, "field_selector": self.field_selector}
        try:
            result = await self.client.list(self.rt, self.namespace, limit=self.page_size, **kwargs)
        except ClientError as e:
            if not e.is_gone:
                raise
            # a continue token expired mid-way: one unpaginated list is always consistent
            result = await self.client.list(self.rt, self.namespace, **kwargs)
        kind, api_version = self.rt.kind, self.rt.api_version
        items = [obj for obj in result.get("items") or [] if isinstance(obj, dict)]
        for obj in items:
            # list items may lack them; watch events carry them; keep the cache uniform
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
        if self.transform is not None:
            items = [t for t in (self._transformed(obj) for obj in items) if t is not None]
        return items, (result.get("metadata") or {}).get("resourceVersion", "")

    def _transformed(self, obj: Obj) -> Obj | None:
        try:
            return self.transform(obj) if self.transform is not None else obj
        except Exception:
            self._bad_object(obj, "transform")
            return None

    async def _relist(self) -> None:
        items, rv = await self._list_all()
        self.relists += 1
        fresh: dict[str, Obj] = {}
        for obj in items:
            key = self._key_or_none(obj)
            if key is not None:
                fresh[key] = obj
        for key in [k for k in self._items if k not in fresh]:
            self._delete(key, self._items[key])
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is None:
                self._add(key, obj)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._update(key, old, obj)
        self.resource_version = rv
        self._synced.set()

    async def _watch(self) -> None:
        stream = self.client.watch(self.rt, self.namespace, resource_version=self.resource_version,
                                   label_selector=self.label_selector, field_selector=self.field_selector,
                                   allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout)
        async with stream:
            async for kind, obj in stream:
                rv = obj.get("metadata", {}).get("resourceVersion")
                if kind == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                if self.transform is not None:
                    obj = self._transformed(obj)
                    if obj is None:
                        continue
                key = self._key_or_none(obj)
                if key is None:
                    continue
                old = self._items.get(key)
                if kind == "DELETED":
                    if old is not None:
                        self._delete(key, obj)
                elif old is None:
                    self._add(key, obj)
                else:
                    self._update(key, old, obj)
                if rv:
                    self.resource_version = rv

    # -- cache mutation + notification ----------------------------------------------------------------

    # -- objects this informer cannot understand (stored before validation caught their shape): each is
    # logged once and left out of what fails on it (its key, one index), never stopping the informer

    def _bad_object(self, obj: Any, what: str) -> None:
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        ident = (what, repr((meta or {}).get("namespace") if isinstance(meta, dict) else None),
                 repr((meta or {}).get("name") if isinstance(meta, dict) else None))
        if ident in self._logged_bad:
            return
        if len(self._logged_bad) > 10000:
            self._logged_bad.clear()
        self._logged_bad.add(ident)
        log.warning("%s: skipping what fails on an object it cannot understand (%s) %s/%s",
                    self.rt.resource, what, ident[1], ident[2], exc_info=True)

    def _key_or_none(self, obj: Any) -> str | None:
        try:
            key = key_of(obj)
        except Exception:
            self._bad_object(obj, "no namespace/name")
            return None
        return key if isinstance(key, str) else None

    def _index_values(self, name: str, fn: IndexFunc, obj: Obj) -> Iterable[str]:
        try:
            return [v for v in fn(obj) if isinstance(v, str)]
        except Exception:
            self._bad_object(obj, f"index {name}")
            return ()

    def _index(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in self._index_values(name, fn, obj):
                bucket = index.get(value)
                if bucket is None:
                    index[value] = {key}
                else:
                    bucket.add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in self._index_values(name, fn, obj):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[value]

    def _add(self, key: str, obj: Obj) -> None:
        self._items[key] = obj
        self._index(key, obj)
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _update(self, key: str, old: Obj, obj: Obj) -> None:
        self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, obj)

    def _delete(self, key: str, obj: Obj) -> None:
        old = self._items.pop(key)
        self._unindex(key, old)
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, fn: Callable[..., Any], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: event handler %r failed", self.rt.resource, fn)


class SharedInformerFactory:
    """One informer per (resource type, namespace, selectors), shared by every controller of a process.

    `informer(rt)` returns the same object for the same arguments. `start()` starts every informer not yet
    started; informers requested after `start()` start at once.  Informers cache `compact` objects (no
    managedFields) unless `transform=None` (or another transform) is given.  `scoped()` hands another component a view of this
    factory whose `stop()` removes that component's handlers and leaves the informers running.
    """

    def __init__(self, client: ApiClient, *, namespace: str | None = None, **informer_options: Any) -> None:
        self.client = client
        self.namespace = namespace
        informer_options.setdefault("transform", compact)
        self.informer_options = informer_options
        self._informers: dict[tuple, Informer] = {}
        self._started = False

    def informer(self, rt: ResourceType, *, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> Informer:
        ns = namespace if namespace is not None else self.namespace
        key = (rt.group, rt.version, rt.resource, ns, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, rt, namespace=ns, label_selector=label_selector,
                           field_selector=field_selector, **self.informer_options)
            self._informers[key] = inf
            if self._started:
                inf.start()
        return inf

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True when every informer requested so far has synced; False on timeout."""
        waits = [inf.wait_for_sync() for inf in self._informers.values()]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            return False
        return all(results)

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))

    def scoped(self) -> ScopedInformerFactory:
        """A view for one component (see `ScopedInformerFactory`)."""
        return ScopedInformerFactory(self)


class ScopedInformer:
    """One component's handle on a shared `Informer`: reads go to the shared cache; the handlers it adds are
    remembered so that `ScopedInformerFactory.stop()` can take them off again."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self._registrations: list[object] = []

    def add_handler(self, on_add: Callable[[Obj], Any] | None = None,
                    on_update: Callable[[Obj, Obj], Any] | None = None,
                    on_delete: Callable[[Obj], Any] | None = None) -> object:
        registration = self.informer.add_handler(on_add, on_update, on_delete)
        self._registrations.append(registration)
        return registration

    def remove_handler(self, registration: object) -> None:
        self.informer.remove_handler(registration)
        with contextlib.suppress(ValueError):
            self._registrations.remove(registration)

    def remove_all_handlers(self) -> None:
        for registration in self._registrations:
            self.informer.remove_handler(registration)
        self._registrations.clear()

    async def stop(self) -> None:
        """Leaves the shared informer running: only this component's handlers go."""
        self.remove_all_handlers()

    # everything else (get, list, by_index, add_indexer, wait_for_sync, rt, resource_version, …) is the
    # shared informer's
    def __getattr__(self, name: str) -> Any:
        return getattr(self.informer, name)

    def __len__(self) -> int:
        return len(self.informer)

    def __contains__(self, key: str) -> bool:
        return key in self.informer


class ScopedInformerFactory:
    """A `SharedInformerFactory` as one component of a process sees it: the same informers (one list, one
    watch and one cache per resource for the whole process), with this component's handlers tracked.

    `start()` starts the informers requested through this view (already running ones stay as they are);
    `wait_for_sync()` waits for those; `stop()` removes this view's handlers and stops nothing, so another
    component, or this one after regaining a lease, goes on with the same caches.
    """

    def __init__(self, parent: SharedInformerFactory) -> None:
        self.parent = parent
        self.client = parent.client
        self.namespace = parent.namespace
        self._informers: dict[int, ScopedInformer] = {}
        self._started = False

    def informer(self, rt: ResourceType, *, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> ScopedInformer:
        shared = self.parent.informer(rt, namespace=namespace, label_selector=label_selector,
                                      field_selector=field_selector)
        view = self._informers.get(id(shared))
        if view is None:
            view = self._informers[id(shared)] = ScopedInformer(shared)
            if self._started:
                shared.start()
        return view

    @property
    def informers(self) -> list[ScopedInformer]:
        return list(self._informers.values())

    def start(self) -> None:
        self._started = True
        for view in self._informers.values():
            view.informer.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        waits = [view.informer.wait_for_sync() for view in self._informers.values()]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            return False
        return all(results)

    async def stop(self) -> None:
        self._started = False
        for view in self._informers.values():
            view.remove_all_handlers()
