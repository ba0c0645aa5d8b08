"""Watch streams: newline-delimited WatchEvents over a chunked response, resumable from a resourceVersion."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import web

from ..api import errors, tables
from ..api.resources import ResourceType
from ..storage.interface import CompactedError, Event
from . import codec, rest
from .context import ApiContext
from .request_info import RequestInfo
from .responses import JSON_TYPE, TABLE_TYPE, wants_table

_END = object()


class DecodeCache:
    """Each store event is decoded once however many watchers receive it."""

    def __init__(self, size: int = 2048) -> None:
        self._items: OrderedDict[tuple[int, bool], dict[str, Any]] = OrderedDict()
        self._size = size

    def get(self, event: Event, previous: bool) -> dict[str, Any]:
        key = (event.revision, previous)
        obj = self._items.get(key)
        if obj is None:
            if previous:
                obj = codec.decode(event.prev_value, event.revision)  # type: ignore[arg-type]
            else:
                obj = codec.decode(event.value, event.revision)  # type: ignore[arg-type]
            self._items[key] = obj
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return obj


class _Converting:
    """The shared cache holds stored objects; a resource served in another version converts for its watchers."""

    def __init__(self, cache: DecodeCache, convert) -> None:
        self._cache = cache
        self._convert = convert

    def get(self, event: Event, previous: bool) -> dict[str, Any]:
        return self._convert(self._cache.get(event, previous))


def install(app: web.Application) -> None:
    """Open watches end cleanly (the chunked body terminated) when the server shuts down, as upstream's
    graceful termination ends them: clients see the end of a stream, not a connection cut mid-body."""
    app["watch_queues"] = set()
    app.on_shutdown.append(_end_watches)


async def _end_watches(app: web.Application) -> None:
    for queue in list(app.get("watch_queues", ())):
        # what is queued is dropped: the client resumes from the last event it saw
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(_END)


def _status_event(err: errors.ApiError) -> bytes:
    return orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n"


async def watch(ctx: ApiContext, request: web.Request, info: RequestInfo, rt: ResourceType) -> web.StreamResponse:
    label_sel, field_sel = rest._selectors(request, rt)
    match = rest.matcher(label_sel, field_sel)
    rv = rest._resource_version(request)
    bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("1", "true")
    send_initial = request.query.get("sendInitialEvents", "").lower() in ("1", "true")
    timeout = rest._int_param(request, "timeoutSeconds")
    if timeout is None or timeout == 0:
        base = ctx.config.min_request_timeout
        timeout = base * (1 + random.random())
    as_table = wants_table(request.headers.get("Accept", ""))
    include = rest.include_object(request) if as_table else "Object"
    if info.name:
        # GET …/pods/x?watch=true is the deprecated single-object form: a field selector on the name
        name = info.name

        def by_name(obj: dict[str, Any], _inner=match) -> bool:
            return obj["metadata"].get("name") == name and (_inner is None or _inner(obj))

        match = by_name
    prefix = rt.prefix(info.namespace or None)
    if info.name:
        prefix = rt.key(info.namespace, info.name)
    store = ctx.store
    initial: list[dict[str, Any]] = []
    if rv is None or rv == 0 or send_initial:
        # current state first, as ADDED events, then changes after that revision
        result = await store.list(prefix, revision=0)
        start = result.revision
        for kv in result.items:
            if info.name and kv.key != prefix:
                continue
            obj = rest.decode_kv(rt, kv)
            if match is None or match(obj):
                initial.append(obj)
    else:
        start = rv
    if start > store.current_revision:
        raise errors.too_large_resource_version(start, store.current_revision)
    response = web.StreamResponse(status=200, headers={
        "Content-Type": TABLE_TYPE if as_table else JSON_TYPE, "Cache-Control": "no-cache, private"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        store_watch = await store.watch(prefix, start)
    except CompactedError:
        await response.write(_status_event(errors.gone("The resourceVersion for the provided watch is too old.")))
        return response
    cache: DecodeCache | _Converting = request.app["watch_decode_cache"]
    if rt.extra.get("convert_out") is not None:
        cache = _Converting(cache, rt.extra["convert_out"])
    # bounded: a slow client stalls only its own pump, and the store's watch catches up from history
    queue: asyncio.Queue = asyncio.Queue(maxsize=1024)
    watchers: set = request.app.get("watch_queues", set())
    watchers.add(queue)

    async def pump() -> None:
        try:
            async for event in store_watch:
                await queue.put(event)
        except CompactedError:
            await queue.put(errors.gone("The resourceVersion for the provided watch is too old."))
        except Exception as e:  # a watch that cannot continue is ended so the client re-lists
            await queue.put(errors.gone(f"watch closed: {e}"))
        await queue.put(_END)

    def encode(kind: str, obj: dict[str, Any]) -> bytes:
        if as_table:
            obj = tables.to_table_event(rt, obj, include_object=include)
        return orjson.dumps({"type": kind, "object": obj}) + b"\n"

    # every event to this watcher as stored: its bytes go out as they are, never decoded or re-encoded
    raw = match is None and not as_table and rt.extra.get("convert_out") is None
    pump_task = asyncio.create_task(pump())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_rev = start
    interval = ctx.config.bookmark_interval
    next_bookmark = loop.time() + interval
    try:
        if initial:
            await response.write(b"".join(encode("ADDED", obj) for obj in initial))
        if send_initial and bookmarks:
            await response.write(_bookmark(rt, last_rev, initial_end=True))
        while True:
            now = loop.time()
            if now >= deadline:
                break
            wait = min(deadline, next_bookmark if bookmarks else deadline, now + 5.0) - now
            try:
                item = await asyncio.wait_for(queue.get(), timeout=max(wait, 0.001))
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                if bookmarks and loop.time() >= next_bookmark:
                    await response.write(_bookmark(rt, last_rev))
                    next_bookmark = loop.time() + interval
                continue
            if item is _END:
                break
            if isinstance(item, errors.ApiError):
                await response.write(_status_event(item))
                break
            lines = []
            pending_end = None
            batch = [item]
            while not queue.empty():
                extra = queue.get_nowait()
                if extra is _END or isinstance(extra, errors.ApiError):
                    pending_end = extra
                    break
                batch.append(extra)
            for event in batch:
                last_rev = event.revision
                line = _raw_event_line(event) if raw else _event_line(event, match, cache, encode)
                if line:
                    lines.append(line)
            if lines:
                await response.write(b"".join(lines))
            if pending_end is not None:
                if isinstance(pending_end, errors.ApiError):
                    await response.write(_status_event(pending_end))
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watchers.discard(queue)
        pump_task.cancel()
        with contextlib.suppress(BaseException):
            await store_watch.close()
    with contextlib.suppress(Exception):
        await response.write_eof()
    return response


def _raw_event_line(event: Event) -> bytes | None:
    if event.type == "DELETE":
        if event.prev_value is None:
            return None
        kind, value = b"DELETED", event.prev_value
    else:
        kind, value = (b"ADDED" if event.prev_value is None else b"MODIFIED"), event.value
    return b'{"type":"' + kind + b'","object":' + codec.with_revision(value, event.revision) + b"}\n"


def _event_line(event: Event, match, cache: DecodeCache, encode) -> bytes | None:
    if event.type == "DELETE":
        if event.prev_value is None:
            return None
        obj = cache.get(event, previous=True)
        if match is not None and not match(obj):
            return None
        return encode("DELETED", obj)
    obj = cache.get(event, previous=False)
    new_match = match is None or match(obj)
    if event.prev_value is None:
        return encode("ADDED", obj) if new_match else None
    if match is None:
        return encode("MODIFIED", obj)
    old_match = match(cache.get(event, previous=True))
    if new_match and old_match:
        return encode("MODIFIED", obj)
    if new_match:
        return encode("ADDED", obj)
    if old_match:
        return encode("DELETED", obj)
    return None


def _bookmark(rt: ResourceType, revision: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return orjson.dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                         "metadata": meta}}) + b"\n"
