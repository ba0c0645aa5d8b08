"""The etcd Store: etcd v3's JSON gateway (grpc-gateway) over aiohttp, keys laid out as kube-apiserver lays them.

Why the JSON gateway and not gRPC: measured on etcd 3.4 (docs node-runtime.md §4), aiohttp on the gateway does
~1.2k sequential and ~2-3k concurrent puts/s on 2 cores with ~1 ms watch latency, with no gRPC dependency.  Its
one limit: a watch request's body must be complete before etcd answers (Go's HTTP/1 server drains the body before
the response headers), so several create_requests cannot share one HTTP stream.  We therefore keep ONE etcd watch
per process over the whole key space (`prefix`), with progress notifications, and fan its events out in process
through the same WatchHub the SQLite store uses: a thousand API watches cost one etcd watcher.  A watch that
starts behind (or falls behind) catches up with a short-lived etcd watch from its revision (`_fetch`).

Keys: the API layer's keys begin with `/registry`; that root is replaced by `prefix` (upstream's
--etcd-prefix), so with the default `/registry` an `etcdctl get --prefix /registry/pods` shows pods.
resourceVersion = etcd mod_revision.  Writes are single transactions: create-if-absent compares the key's
create_revision with 0, a conditional update or delete compares its mod_revision, the failure branch reads the
live value for the conflict error.  compacted_revision is found at start (a binary search over reads at past
revisions) and follows compactions and watch responses.

Reads: a watch cache (watch_cache.py, upstream's cacher) holds the latest value of every key, loaded at start and
kept by the live watch (and by our own acknowledged writes when they are next in line).  A read at the latest
revision is answered from it once it holds this process's last acknowledged write (read-your-writes, monotonic
reads; another API server's write shows up as fast as the watch brings it, ~1 ms), while the live watch is
connected; otherwise from etcd.  A read at a past revision (a continue token, resourceVersionMatch=Exact) is
answered from the cache only when nothing under its resource changed since that revision, else by etcd.
current_revision is the revision of the state the cache answers with (see there).  Measured on 2 cores: a GET
~1 us instead of ~0.6 ms, a LIST of 10,000 ~1 ms instead of ~250 ms.  KUBELITE_ETCD_WATCH_CACHE=0 turns it off.

Endpoints: a list, tried in turn on connection errors (connect timeout `connect_timeout`); a request that reached
etcd and failed (no quorum: "etcdserver: request timed out" after ~7 s) raises StoreError with etcd's message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from kubelite.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    Store,
    StoreError,
    Watch,
)
from kubelite.storage.watch_cache import WatchCache
from kubelite.storage.watch_hub import DEFAULT_QUEUE_SIZE, WatchHub

log = logging.getLogger(__name__)

ROOT = "/registry"  # where the API layer's keys begin; replaced by the store's prefix in etcd
COMPACTED = "required revision has been compacted"
FUTURE = "required revision is a future revision"
RECONNECT_DELAY = 0.2
# Requests in flight at once (each on its own keep-alive connection); measured: 32 saturates etcd on 2 cores
MAX_REQUESTS = 32
LOAD_PAGE = 10_000  # keys per range while the watch cache loads
# How long a read waits for the watch cache to reach the revision it needs before it asks etcd instead
CACHE_WAIT = 1.0


_JSON = {"Content-Type": "application/json"}


def prefix_end(start: bytes) -> bytes:
    """etcd's range_end for every key starting with `start` (b"\\0": no upper bound)."""
    end = bytearray(start)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _int(value: Any) -> int:
    return int(value) if value else 0  # int64s come as strings, zeros are omitted


class EtcdUnavailableError(StoreError):
    """No endpoint could be reached, or etcd answered that it cannot serve (no leader, no quorum)."""


def _normalise_endpoint(url: str, tls: bool) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = ("https://" if tls else "http://") + url
    return url


class EtcdStore(Store):
    def __init__(self, endpoints: list[str], *, prefix: str = "/registry", ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, connect_timeout: float = 1.0,
                 request_timeout: float = 10.0, watch_queue_size: int = DEFAULT_QUEUE_SIZE,
                 watch_cache: bool | None = None) -> None:
        if not endpoints:
            raise ValueError("etcd: no endpoints given")
        tls = bool(ca_file or cert_file)
        self.endpoints = [_normalise_endpoint(e, tls) for e in endpoints if e.strip()]
        if not self.endpoints:
            raise ValueError("etcd: no endpoints given")
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._root = self.prefix.encode()
        self._root_end = prefix_end(self._root) if self._root else b"\0"
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._watch_queue_size = watch_queue_size
        self._current = 0  # index of the endpoint in use
        self._slots = asyncio.Semaphore(MAX_REQUESTS)
        self._session: aiohttp.ClientSession | None = None
        self._revision = 0
        self._compacted = 0
        self._hub: WatchHub | None = None
        self._watcher: asyncio.Task | None = None
        self._watching: asyncio.Event | None = None  # set once the live watch is created
        # The revision of the last event the live watch published: catch-up reads stop there.  None while it is
        # not known to be an event (before the first one arrives): catch-up reads then stop when etcd goes quiet.
        self._last_event: int | None = None
        self._floor = 0  # the live watch resumed here after losing its place to a compaction
        self._started = False
        # Reads at the latest revision are served by the watch cache once it holds every write this process has
        # had acknowledged (read-your-writes, monotonic reads), while the live watch is connected.
        if watch_cache is None:  # an escape hatch, and the A/B switch of the benchmarks
            watch_cache = os.environ.get("KUBELITE_ETCD_WATCH_CACHE", "1") not in ("0", "false", "no")
        self._cache = WatchCache() if watch_cache else None
        self._live = False  # the live watch is connected
        self._unavailable = False  # the last request to etcd found it unable to serve
        self._last_write = 0  # the revision of this process's last acknowledged write

    # ---------------------------------------------------------------- keys

    def _ekey(self, key: str) -> bytes:
        if not key.startswith(ROOT):
            raise StoreError(f"key {key!r} is outside {ROOT}")
        return self._root + key[len(ROOT):].encode()

    def _skey(self, ekey: bytes) -> str:
        return ROOT + ekey[len(self._root):].decode()

    def _range(self, prefix: str, start_key: str = "") -> tuple[bytes, bytes]:
        """[start, end) in etcd for the keys under prefix, after start_key (exclusive) when given."""
        if ROOT.startswith(prefix):  # "", "/", "/reg": every key
            start, end = self._root, self._root_end
        else:
            start = self._ekey(prefix)
            end = prefix_end(start)
        if start_key and start_key >= prefix and start_key.startswith(ROOT):
            start = max(start, self._ekey(start_key) + b"\0")
        return start, end

    def _kv(self, raw: dict) -> KeyValue:
        return KeyValue(self._skey(_unb64(raw.get("key"))), _unb64(raw.get("value")),
                        _int(raw.get("create_revision")), _int(raw.get("mod_revision")))

    # ---------------------------------------------------------------- lifecycle

    def _ssl(self) -> ssl.SSLContext | bool:
        if not any(e.startswith("https://") for e in self.endpoints):
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    async def start(self) -> None:
        if self._started:
            return
        try:
            ssl_context = self._ssl()
        except (OSError, ssl.SSLError) as e:
            raise StoreError(f"etcd TLS files: {e}") from None
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context, limit=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=self._request_timeout, sock_connect=self._connect_timeout))
        try:
            head = await self._call("/v3/kv/range", {"key": _b64(self._root), "count_only": True}, read=True)
            self._revision = _int(head["header"].get("revision"))
            self._compacted = await self._find_compacted()
            start_revision = self._revision
            if self._cache is not None:
                start_revision = await self._load_cache()
            loop = asyncio.get_running_loop()
            self._hub = WatchHub(loop, self._fetch, start_revision, self._watch_queue_size)
            self._watching = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch_loop(), name="etcd-watch")
            try:
                await asyncio.wait_for(self._watching.wait(), self._request_timeout)
            except TimeoutError:
                raise EtcdUnavailableError(f"etcd at {', '.join(self.endpoints)}: the watch did not start") from None
        except BaseException:
            await self._shutdown()
            raise
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._hub is not None:
            await self._hub.close()
            self._hub = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---------------------------------------------------------------- HTTP

    def _seen(self, header: dict | None) -> None:
        if header:
            revision = _int(header.get("revision"))
            if revision > self._revision:
                self._revision = revision

    async def _call(self, path: str, body: dict, *, read: bool, revision: int = 0) -> dict:
        """POST to the endpoint in use, moving on to the next on connection errors.

        Reads also move on when a connection drops mid-request; a write whose request may have reached etcd is
        not retried (a create would then see its own key and fail)."""
        session = self._session
        if session is None:
            raise StoreError("store is not started")
        async with self._slots:  # a burst queues here, before its timeout starts, not in aiohttp's pool
            try:
                answer = await self._post(session, path, body, read, revision)
            except EtcdUnavailableError:
                # etcd cannot serve (no quorum keeps the watch stream open but silent): reads stop coming from the
                # cache, whose state may be stale, and fail as upstream's do, until etcd answers again
                self._unavailable = True
                raise
            self._unavailable = False
            return answer

    async def _post(self, session: aiohttp.ClientSession, path: str, body: dict, read: bool, revision: int) -> dict:
        errors: list[str] = []
        for _ in range(len(self.endpoints)):
            base = self.endpoints[self._current]
            try:
                async with session.post(base + path, data=orjson.dumps(body), headers=_JSON) as resp:
                    data = await resp.read()
                    status = resp.status
            except aiohttp.ClientConnectorError as e:
                reason = os.strerror(e.os_error.errno) if e.os_error and e.os_error.errno else str(e)
                errors.append(f"{base}: {reason}")
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                if not read:
                    raise EtcdUnavailableError(f"etcd unavailable: {base}: {type(e).__name__} {e}".rstrip()
                                               + " (the write's outcome is unknown)") from None
                errors.append(f"{base}: {type(e).__name__} {e}".rstrip())
            else:
                try:
                    answer = orjson.loads(data) if data else {}
                except ValueError:
                    answer = {"error": data[:200].decode(errors="replace")}
                if status == 200 and "error" not in answer:
                    self._seen(answer.get("header"))
                    return answer
                raise self._error(base, status, answer, revision)
            self._current = (self._current + 1) % len(self.endpoints)
        raise EtcdUnavailableError("etcd unavailable: " + "; ".join(errors))

    def _error(self, base: str, status: int, answer: dict, revision: int) -> StoreError:
        message = str(answer.get("error") or answer.get("message") or f"HTTP {status}")
        if COMPACTED in message:
            self._compacted = max(self._compacted, revision + 1)
            return CompactedError(revision, self._compacted)
        if FUTURE in message:
            return FutureRevisionError(revision, self._revision)
        if status in (503, 504) or answer.get("code") in (4, 14):  # DEADLINE_EXCEEDED, UNAVAILABLE
            return EtcdUnavailableError(f"etcd cluster unavailable ({base}): {message}")
        return StoreError(f"etcd {base}: {message}")

    async def _find_compacted(self) -> int:
        """etcd does not report its compacted revision: the oldest readable revision is found by bisection
        (a read below the compacted revision fails), some 20 cheap reads."""
        low, high = 1, max(self._revision, 1)  # the answer is in [low, high]

        async def readable(revision: int) -> bool:
            try:
                await self._call("/v3/kv/range", {"key": _b64(self._root), "count_only": True,
                                                  "revision": str(revision)}, read=True, revision=revision)
            except CompactedError:
                return False
            return True

        if await readable(low):
            return 0
        while low < high:
            mid = (low + high) // 2
            if await readable(mid):
                high = mid
            else:
                low = mid + 1
        return low

    async def _load_cache(self) -> int:
        """Fill the watch cache with every key under the prefix, read in pages at one revision; returns it."""
        assert self._cache is not None
        while True:
            items: list[KeyValue] = []
            start, revision = self._root, 0
            try:
                while True:
                    body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(self._root_end),
                                            "limit": str(LOAD_PAGE)}
                    if revision:
                        body["revision"] = str(revision)
                    answer = await self._call("/v3/kv/range", body, read=True, revision=revision)
                    if not revision:
                        revision = _int(answer["header"].get("revision"))
                    raws = answer.get("kvs") or ()
                    items.extend(self._kv(raw) for raw in raws)
                    if not answer.get("more") or not raws:
                        break
                    start = _unb64(raws[-1].get("key")) + b"\0"
            except CompactedError:  # compacted past our revision between two pages: read again at the latest
                continue
            self._cache.load(items, revision)
            return revision

    def _cache_for(self, needed: int) -> WatchCache | None:
        """The watch cache when it can answer a read at the latest revision now."""
        cache = self._cache
        if cache is not None and self._live and not self._unavailable and cache.ready and cache.revision >= needed:
            return cache
        return None

    async def _fresh_cache(self) -> WatchCache | None:
        """The watch cache once it holds this process's last write (the watch brings it within a millisecond or
        so); None when it cannot serve (not loaded, watch disconnected, or too slow): the read then goes to etcd."""
        cache = self._cache
        if cache is None or not self._live or self._unavailable:
            return None
        needed = self._last_write
        if cache.ready and cache.revision >= needed:
            return cache
        if await cache.wait(needed, CACHE_WAIT) and self._live:
            return cache
        return None

    # ---------------------------------------------------------------- revisions

    @property
    def current_revision(self) -> int:
        """The revision a read at the latest revision now answers at (or after).  While the watch cache serves, that
        is the cache's revision, or this process's last write, which reads wait for; not the newest header seen,
        which may be another server's write the watch has not brought yet: reporting it as the revision of a
        state that lacks that write would let a watch from it miss the write."""
        cache = self._cache
        if cache is not None and self._live and not self._unavailable and cache.ready:
            return max(cache.revision, self._last_write)
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def _check_compacted(self, revision: int) -> None:
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)

    # ---------------------------------------------------------------- reads

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        self._check_compacted(revision)
        if self._cache is not None:
            if not key.startswith(ROOT):
                raise StoreError(f"key {key!r} is outside {ROOT}")
            if not revision:
                cache = self._cache_for(self._last_write) or await self._fresh_cache()
                if cache is not None:
                    return cache.get(key)
            elif self._live and not self._unavailable:
                answered, kv = self._cache.get_at(key, revision)
                if answered:
                    return kv
        body: dict[str, Any] = {"key": _b64(self._ekey(key))}
        if revision:
            body["revision"] = str(revision)
        answer = await self._call("/v3/kv/range", body, read=True, revision=revision)
        kvs = answer.get("kvs")
        return self._kv(kvs[0]) if kvs else None

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str = "") -> ListResult:
        self._check_compacted(revision)
        if self._cache is not None:
            cache = None
            if not revision:
                cache = self._cache_for(self._last_write) or await self._fresh_cache()
            elif self._live and not self._unavailable and self._cache.serves(prefix, revision):
                cache = self._cache
            if cache is not None:
                self._range(prefix, start_key)  # the same checks of the keys as etcd's path
                items, more, remaining = cache.list(prefix, start_key, limit)
                return ListResult(items, revision or cache.revision, more, remaining)
        start, end = self._range(prefix, start_key)
        body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(end)}
        if limit > 0:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        answer = await self._call("/v3/kv/range", body, read=True, revision=revision)
        items = [self._kv(raw) for raw in answer.get("kvs") or ()]
        more = bool(answer.get("more"))
        read_at = revision or _int(answer["header"].get("revision"))
        return ListResult(items, read_at, more, _int(answer.get("count")) - len(items) if more else 0)

    async def count(self, prefix: str) -> int:
        start, end = self._range(prefix)
        if self._cache is not None:
            cache = self._cache_for(self._last_write) or await self._fresh_cache()
            if cache is not None:
                return cache.count(prefix)
        answer = await self._call("/v3/kv/range", {"key": _b64(start), "range_end": _b64(end), "count_only": True},
                                  read=True)
        return _int(answer.get("count"))

    # ---------------------------------------------------------------- writes

    async def _txn(self, key: bytes, compare: dict, success: dict) -> tuple[bool, dict, dict]:
        """One compare-and-act transaction; the failure branch reads the key.  (succeeded, response, header)"""
        compare["key"] = _b64(key)
        body = {"compare": [compare], "success": [success], "failure": [{"request_range": {"key": _b64(key)}}]}
        answer = await self._call("/v3/kv/txn", body, read=False)
        responses = answer.get("responses") or [{}]
        return bool(answer.get("succeeded")), responses[0], answer.get("header") or {}

    async def create(self, key: str, value: bytes) -> KeyValue:
        ekey = self._ekey(key)
        ok, _, header = await self._txn(
            ekey, {"target": "CREATE", "result": "EQUAL", "create_revision": "0"},
            {"request_put": {"key": _b64(ekey), "value": _b64(value)}})
        if not ok:
            raise KeyExistsError(key)
        revision = _int(header.get("revision"))
        kv = KeyValue(key, bytes(value), revision, revision)
        self._wrote(kv, key, revision)
        return kv

    def _guard(self, expected_revision: int | None) -> dict:
        if expected_revision is None:  # the key exists
            return {"target": "CREATE", "result": "GREATER", "create_revision": "0"}
        return {"target": "MOD", "result": "EQUAL", "mod_revision": str(expected_revision)}

    def _conflict(self, key: str, response: dict) -> StoreError:
        kvs = (response.get("response_range") or {}).get("kvs")
        if not kvs:
            return KeyNotFoundError(key)
        return RevisionMismatchError(key, self._kv(kvs[0]))

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        ekey = self._ekey(key)
        ok, response, header = await self._txn(
            ekey, self._guard(expected_revision),
            {"request_put": {"key": _b64(ekey), "value": _b64(value), "prev_kv": True}})
        if not ok:
            raise self._conflict(key, response)
        prev = (response.get("response_put") or {}).get("prev_kv") or {}
        revision = _int(header.get("revision"))
        kv = KeyValue(key, bytes(value), _int(prev.get("create_revision")), revision)
        self._wrote(kv, key, revision)
        return kv

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        ekey = self._ekey(key)
        ok, response, header = await self._txn(
            ekey, self._guard(expected_revision), {"request_delete_range": {"key": _b64(ekey), "prev_kv": True}})
        if not ok:
            raise self._conflict(key, response)
        prev_kvs = (response.get("response_delete_range") or {}).get("prev_kvs") or []
        if not prev_kvs:  # deleted between the compare and the delete cannot happen in one txn; be safe
            raise KeyNotFoundError(key)
        revision = _int(header.get("revision"))
        self._wrote(None, key, revision)
        return self._kv(prev_kvs[0]), revision

    def _wrote(self, kv: KeyValue | None, key: str, revision: int) -> None:
        """Our own write is acknowledged before the watch stream brings its event: note the revision (reads wait
        for the cache to hold it), and give it to the cache when it is next in line.  The hub learns it from the
        stream, in order."""
        if revision > self._revision:
            self._revision = revision
        if revision > self._last_write:
            self._last_write = revision
        if self._cache is not None:
            self._cache.apply_own(kv, key, revision)

    async def compact(self, revision: int) -> None:
        """As etcd: at or below the compacted revision does nothing; above the current one is an error."""
        if revision <= self._compacted:
            return
        try:
            await self._call("/v3/kv/compaction", {"revision": str(revision)}, read=False, revision=revision)
        except CompactedError:  # another API server compacted further already
            self._compacted = max(self._compacted, await self._find_compacted())
            return
        except FutureRevisionError:
            raise FutureRevisionError(revision, self._revision) from None
        self._compacted = max(self._compacted, revision)

    # ---------------------------------------------------------------- watch

    async def watch(self, prefix: str, from_revision: int) -> Watch:
        if not self._started or self._hub is None:
            raise StoreError("store is not started")
        if from_revision < self._compacted:
            raise CompactedError(from_revision, self._compacted)
        if not ROOT.startswith(prefix) and not prefix.startswith(ROOT):
            raise StoreError(f"prefix {prefix!r} is outside {ROOT}")
        return self._hub.subscribe(prefix, from_revision)

    def _event(self, raw: dict) -> Event:
        kv = raw.get("kv") or {}
        prev = raw.get("prev_kv")
        prev_value = _unb64(prev.get("value")) if prev else None
        key = self._skey(_unb64(kv.get("key")))
        revision = _int(kv.get("mod_revision"))
        if raw.get("type") == "DELETE":
            return Event("DELETE", key, None, prev_value, revision, 0)
        return Event("PUT", key, _unb64(kv.get("value")), prev_value, revision, _int(kv.get("create_revision")))

    async def _stream(self, start_revision: int, on_result: Callable[[dict], Awaitable[bool]],
                      *, progress: bool = False, idle: float | None = None) -> None:
        """One etcd watch over the whole prefix from start_revision; on_result gets each result until it
        answers False, or until nothing arrives for `idle` seconds.  Raises on connection errors."""
        session = self._session
        assert session is not None
        request = {"create_request": {"key": _b64(self._root), "range_end": _b64(self._root_end),
                                      "start_revision": str(start_revision), "prev_kv": True,
                                      "progress_notify": progress}}
        base = self.endpoints[self._current]
        try:
            timeout = aiohttp.ClientTimeout(total=None, connect=self._connect_timeout,
                                            sock_connect=self._connect_timeout)
            async with session.post(base + "/v3/watch", data=orjson.dumps(request), headers=_JSON,
                                    timeout=timeout) as resp:
                if resp.status != 200:
                    text = (await resp.read())[:300].decode(errors="replace")
                    raise EtcdUnavailableError(f"etcd {base}: watch refused: HTTP {resp.status} {text}")
                content = resp.content
                partial: list[bytes] = []  # the start of a line longer than the chunks so far
                while True:
                    if idle is None:
                        chunk = await content.readany()
                    else:
                        try:
                            chunk = await asyncio.wait_for(content.readany(), idle)
                        except TimeoutError:
                            return
                    if not chunk:
                        break
                    if b"\n" not in chunk:
                        partial.append(chunk)
                        continue
                    lines = chunk.split(b"\n")
                    if partial:
                        partial.append(lines[0])
                        lines[0] = b"".join(partial)
                        partial = []
                    if lines[-1]:
                        partial.append(lines[-1])
                    for line in lines[:-1]:
                        if not line.strip():
                            continue
                        message = orjson.loads(line)
                        if "error" in message:
                            error = message["error"]
                            raise EtcdUnavailableError(
                                f"etcd {base}: watch: {error.get('message') or error}")
                        if not await on_result(message.get("result") or {}):
                            return
        except (aiohttp.ClientConnectionError, TimeoutError):
            self._current = (self._current + 1) % len(self.endpoints)
            raise
        raise EtcdUnavailableError(f"etcd {base}: the watch stream ended")

    async def _watch_loop(self) -> None:
        """The process's one live watch: every event under the prefix, published to the hub in order."""
        hub = self._hub
        watching = self._watching
        assert hub is not None and watching is not None

        connected = False

        async def on_result(result: dict) -> bool:
            nonlocal connected
            self._seen(result.get("header"))
            if result.get("created"):
                connected = self._live = True
                watching.set()
            compact_revision = _int(result.get("compact_revision"))
            if compact_revision:
                # Resuming after a disconnect found our position compacted: every open watch may have missed
                # events.  Each re-reads from its own position, which ends it with CompactedError if that is gone.
                self._compacted = max(self._compacted, compact_revision)
                self._live = False
                if self._cache is not None:
                    self._cache.invalidate()  # reloaded before the watch resumes, which re-aligns the hub
                    return False
                hub.revision = self._floor = self._revision
                self._last_event = None
                _force_catch_up(hub)
                return False
            raws = result.get("events")
            if raws:
                events = [self._event(raw) for raw in raws]
                if self._cache is not None:  # first: a watcher woken by the event then reads a state that has it
                    self._cache.apply(events)
                hub.publish(events)
                self._last_event = events[-1].revision
            elif not result.get("created") and result.get("header"):
                # a progress notification: every event up to its revision has been delivered
                progress = _int(result["header"].get("revision"))
                hub.revision = max(hub.revision, progress)
                if self._cache is not None:
                    self._cache.advance(progress)
            return True

        delay = RECONNECT_DELAY
        while True:
            connected = False
            try:
                if self._cache is not None and self._cache.ready:
                    await self._check_resume_point(hub.revision + 1)
                if self._cache is not None and not self._cache.ready:
                    await self._reload_cache(hub)
                await self._stream(hub.revision + 1, on_result, progress=True)
                self._live = False
                delay = RECONNECT_DELAY
            except asyncio.CancelledError:
                self._live = False
                raise
            except Exception as e:  # reconnect, from where the hub is, through the next endpoint
                self._live = False
                if self._cache is not None:
                    self._cache.release_waiters()
                if connected:
                    delay = RECONNECT_DELAY
                if delay == RECONNECT_DELAY:
                    log.warning("etcd watch interrupted (%s); reconnecting from revision %d", e, hub.revision + 1)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            await asyncio.sleep(RECONNECT_DELAY)

    async def _check_resume_point(self, revision: int) -> None:
        """Before the live watch resumes: if its revision was compacted meanwhile, the cache has missed events, and
        etcd would say so only after the watch is created (~100 ms later), while the cache answered reads."""
        assert self._cache is not None
        try:
            await self._call("/v3/kv/range", {"key": _b64(self._root), "count_only": True, "revision": str(revision)},
                             read=True, revision=revision)
        except CompactedError:
            self._cache.invalidate()
        except FutureRevisionError:  # nothing written since: nothing missed
            pass

    async def _reload_cache(self, hub: WatchHub) -> None:
        """After the live watch lost its place to a compaction: load the cache again at the latest revision and
        resume from there.  Every open watch may have missed events: each re-reads from its own position, which
        ends it with CompactedError if that is gone."""
        revision = await self._load_cache()
        hub.revision = self._floor = max(hub.revision, revision)
        self._last_event = None
        _force_catch_up(hub)

    async def _fetch(self, prefix: str, after: int, limit: int) -> list[Event]:
        """The hub's catch-up read: events under prefix after `after`, up to what the live watch has published.

        A short-lived etcd watch over the whole prefix from after+1, read up to the live watch's last event (an
        event there, so it comes); events after it reach the watch through the hub."""
        hub = self._hub
        assert hub is not None
        floor = max(self._compacted, self._floor)
        if after < floor:
            raise CompactedError(after, floor)
        target = self._last_event
        if target is not None and after >= target:
            return []
        events: list[Event] = []
        compacted = 0

        async def on_result(result: dict) -> bool:
            nonlocal compacted
            compacted = _int(result.get("compact_revision"))
            if compacted:
                return False
            for raw in result.get("events") or ():
                event = self._event(raw)
                if target is not None and event.revision > target:
                    return False
                if event.key.startswith(prefix):
                    events.append(event)
                    if len(events) >= limit:
                        return False
                if target is not None and event.revision >= target:
                    return False
            return True

        idle = None if target is not None else 0.3  # etcd replays history in one batch ~100 ms after creation
        for attempt in range(len(self.endpoints)):
            try:
                await asyncio.wait_for(self._stream(after + 1, on_result, idle=idle), self._request_timeout)
                break
            except (aiohttp.ClientConnectionError, EtcdUnavailableError, TimeoutError) as e:
                if attempt == len(self.endpoints) - 1:
                    raise EtcdUnavailableError(f"etcd: catching a watch up failed: {e}") from None
                events.clear()
        if compacted:
            self._compacted = max(self._compacted, compacted)
            raise CompactedError(after, compacted)
        return events


def _force_catch_up(hub: WatchHub) -> None:
    """Make every watch of the hub re-read from its position instead of trusting its live buffer."""
    for watches in list(hub._by_prefix.values()):
        for watch in list(watches):
            watch._live.clear()
            watch._drops += 1
            watch._lagging = True
            watch._wake()
