"""Audit logging: `audit.k8s.io/v1` Event lines for every request the Policy selects, as upstream's log backend.

Stages, as upstream's filters emit them: RequestReceived once the user is known; ResponseStarted when a
long-running request (watch, exec, attach, port-forward, proxy, log) sends its headers, and for a request whose
authentication failed (the only event it gets); ResponseComplete when the answer is sent; Panic for a handler
that crashed.  Every response carries the event's ID in `Audit-Id` (taken from the request's `Audit-ID`
header when the client sent one).

The request path only snapshots small dicts into a queue; a writer thread turns them into JSON lines (bodies
are decoded there), writes each batch at once and rotates the file by size as upstream's lumberjack does
(`audit-<UTC timestamp>.log` backups, pruned by count and age).  The log file and its backups are 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import yaml
from aiohttp import streams, web

from . import body as bodies
from .admission import request_annotations
from .audit_policy import Attributes, Decision, Policy, at_least, load_policy
from .request_info import RequestInfo

log = logging.getLogger("kubelite.apiserver.audit")

MB = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 100  # lumberjack's default when --audit-log-maxsize is 0
_LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy", "log"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NON_RESOURCE_VERBS = {"create": "post", "update": "put"}
_BACKUP_TIME = "%Y-%m-%dT%H-%M-%S"


def micro_time(ts: float) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- the log file


class RotatingFile:
    """Append-only file rotated by size, with lumberjack's naming and pruning; created 0600."""

    def __init__(self, path: str, *, max_bytes: int = DEFAULT_MAX_SIZE_MB * MB, max_backups: int = 0,
                 max_age_days: float = 0) -> None:
        self.path = os.path.abspath(path)
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self.max_age_days = max_age_days
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._file = self._open()
        self.size = os.fstat(self._file.fileno()).st_size

    def _open(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps whatever mode it had otherwise
        return os.fdopen(fd, "ab", buffering=0)

    def write(self, data: bytes) -> None:
        if self.size and self.size + len(data) > self.max_bytes:
            self.rotate()
        self._file.write(data)
        self.size += len(data)

    def backup_name(self, when: float) -> str:
        stem, ext = os.path.splitext(self.path)
        stamp = datetime.fromtimestamp(when, UTC)
        name = f"{stem}-{stamp.strftime(_BACKUP_TIME)}.{stamp.microsecond // 1000:03d}{ext}"
        bump = 0
        while os.path.exists(name):  # two rotations within a millisecond
            bump += 1
            name = f"{stem}-{stamp.strftime(_BACKUP_TIME)}.{stamp.microsecond // 1000:03d}-{bump}{ext}"
        return name

    def rotate(self) -> None:
        self._file.close()
        os.rename(self.path, self.backup_name(time.time()))
        self._file = self._open()
        self.size = 0
        self.prune()

    def backups(self) -> list[str]:
        stem, ext = os.path.splitext(self.path)
        found = [p for p in glob.glob(glob.escape(stem) + "-*" + glob.escape(ext)) if p != self.path]
        return sorted(found, key=lambda p: os.path.basename(p), reverse=True)  # newest first

    def prune(self) -> None:
        backups = self.backups()
        doomed = set(backups[self.max_backups:]) if self.max_backups > 0 else set()
        if self.max_age_days > 0:
            cutoff = time.time() - self.max_age_days * 86400
            doomed.update(p for p in backups if os.path.getmtime(p) < cutoff)
        for p in doomed:
            with contextlib.suppress(OSError):
                os.unlink(p)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _Stdout:
    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)

    def flush(self) -> None:
        sys.stdout.buffer.flush()

    def close(self) -> None:
        self.flush()


class _Raw:
    """A body to decode in the writer thread: the request (or response) bytes and their media type."""

    __slots__ = ("data", "media", "omit_managed")

    def __init__(self, data: bytes, media: str, omit_managed: bool) -> None:
        self.data = data
        self.media = media
        self.omit_managed = omit_managed

    def decode(self) -> Any:
        if not self.data:
            return None
        media = self.media.split(";", 1)[0].strip().lower()
        if media.endswith("yaml"):
            obj = yaml.load(self.data, Loader=bodies._YamlLoader)  # noqa: S506 - a safe loader
        elif media == bodies.PROTOBUF:
            obj = bodies.decode(self.data, media)
        else:  # JSON, and the JSON patch types
            obj = orjson.loads(self.data)
        if self.omit_managed:
            _strip_managed_fields(obj)
        return obj


def _strip_managed_fields(obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    for item in obj.get("items") or ():
        _strip_managed_fields(item)


class AuditBackend:
    """Queue + writer thread: `emit()` never blocks on the disk."""

    def __init__(self, out) -> None:
        self._out = out
        self._queue: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()
        self._closed = False

    def emit(self, event: dict) -> None:
        if not self._closed:
            self._queue.put(event)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batch = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            lines = []
            waiters = []
            for event in batch:
                marker = event.get("__flush__")
                if marker is not None:
                    waiters.append(marker)
                    continue
                try:
                    lines.append(_serialize(event))
                except Exception:  # one bad body must not lose the others
                    log.exception("audit event could not be encoded")
            if lines:
                try:
                    self._out.write(b"".join(lines))
                    self._out.flush()
                except OSError:
                    log.exception("audit log write failed")
            for marker in waiters:
                marker.set()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        done = threading.Event()
        self._queue.put({"__flush__": done})
        done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._out.close()


def _serialize(event: dict) -> bytes:
    status = event.get("responseStatus")
    if isinstance(status, _Raw):
        event["responseStatus"] = _status_of(status.data, event.pop("_code", 0))
    for name in ("requestObject", "responseObject"):
        raw = event.get(name)
        if isinstance(raw, _Raw):
            try:
                obj = raw.decode()
            except Exception:
                obj = None
            if obj is None:
                del event[name]
            else:
                event[name] = obj
    fill = event.pop("_name_from", None)
    if isinstance(fill, _Raw):
        with contextlib.suppress(Exception):
            meta = (fill.decode() or {}).get("metadata") or {}
            ref = event.setdefault("objectRef", {})
            if meta.get("name") and not ref.get("name"):
                ref["name"] = meta["name"]
    event["requestReceivedTimestamp"] = micro_time(event["requestReceivedTimestamp"])
    event["stageTimestamp"] = micro_time(event["stageTimestamp"])
    try:
        return orjson.dumps(event) + b"\n"
    except TypeError:
        # a string holding bytes that are not UTF-8 (a header, the request line): upstream's JSON encoder
        # writes U+FFFD for each, and so do we, rather than lose the event
        return orjson.dumps(valid_utf8(event)) + b"\n"


_NOT_ESCAPED_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # surrogateescape holds bytes as U+DC80..U+DCFF


def valid_utf8(value: Any) -> Any:
    """value with every lone surrogate (an undecodable byte kept by surrogateescape) replaced by U+FFFD."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = _NOT_ESCAPED_BYTE.sub("\ufffd", value)
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {valid_utf8(k): valid_utf8(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_utf8(v) for v in value]
    return value


def _status_of(data: bytes, code: int) -> dict:
    """The bounded fields of a Status body, as upstream copies them into responseStatus."""
    out: dict[str, Any] = {"metadata": {}}
    try:
        status = orjson.loads(data)
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        for k in ("status", "message", "reason", "details"):
            if status.get(k):
                out[k] = status[k]
    out["code"] = code
    return out


# ---------------------------------------------------------------- per-request integration


def source_ips(request: web.Request) -> list[str]:
    """X-Forwarded-For, then X-Real-Ip, then the peer, without duplicates (upstream's utilnet.SourceIPs)."""
    ips: list[str] = []
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        ips.extend(p.strip() for p in forwarded.split(",") if p.strip())
    real = (request.headers.get("X-Real-Ip") or "").strip()
    if real and real not in ips:
        ips.append(real)
    remote = request.remote or ""
    if remote and remote not in ips:
        ips.append(remote)
    return ips


def auth_methods_message(request: web.Request) -> str:
    methods = []
    header = request.headers.get("Authorization", "")
    scheme = header.split(" ", 1)[0].lower() if header else ""
    if scheme == "basic":
        methods.append("basic")
    if scheme == "bearer" and len(header.split(" ", 1)) > 1:
        methods.append("bearer")
    if request.query.get("access_token", "").strip():
        methods.append("access_token")
    transport = request.transport
    if transport is not None and transport.get_extra_info("peercert"):
        methods.append("x509")
    if methods:
        return "Authentication failed, attempted: " + ", ".join(methods)
    return "Authentication failed, no credentials provided"


def attributes(info: RequestInfo) -> Attributes:
    if not info.is_resource:
        return Attributes(_NON_RESOURCE_VERBS.get(info.verb, info.verb), False, info.path)
    namespace = info.namespace
    if info.resource == "namespaces" and info.group == "" and info.name and not namespace:
        namespace = info.name  # upstream's RequestInfo puts a namespace's own name in its namespace
    return Attributes(info.verb, True, info.path, info.group, namespace, info.resource, info.subresource,
                      info.name)


def _object_ref(info: RequestInfo, attrs: Attributes) -> dict | None:
    if not info.is_resource:
        return None
    ref: dict[str, str] = {"resource": info.resource}
    if attrs.namespace:
        ref["namespace"] = attrs.namespace
    if info.name:
        ref["name"] = info.name
    if info.group:
        ref["apiGroup"] = info.group
    if info.version:
        ref["apiVersion"] = info.version
    if info.subresource:
        ref["subresource"] = info.subresource
    return ref


def is_long_running(info: RequestInfo) -> bool:
    return info.verb in ("watch", "proxy") or info.subresource in _LONG_RUNNING_SUBRESOURCES


class _Event:
    """The event of one request while it is served; each stage emits a snapshot of it."""

    __slots__ = ("base", "decision", "long_running", "started", "request_body", "media", "method")

    def __init__(self, base: dict, decision: Decision, long_running: bool) -> None:
        self.base = base
        self.decision = decision
        self.long_running = long_running
        self.started = False
        self.request_body: bytes | None = None
        self.media = ""
        self.method = ""


class Auditor:
    def __init__(self, policy: Policy, backend: AuditBackend) -> None:
        self.policy = policy
        self.backend = backend

    # ------------------------------------------------------------ hooks of the dispatcher

    async def around(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        request["audit_received"] = time.time()
        response: web.StreamResponse | None = None
        code = 0
        try:
            response = await handler(request)
            return response
        except web.HTTPException as e:
            code = e.status
            raise
        except BaseException:
            code = code or 500
            raise
        finally:
            self._complete(request, response, code)

    async def received(self, request: web.Request, info: RequestInfo, user) -> None:
        """After authentication: decide the level, log RequestReceived, keep the body if it will be logged."""
        attrs = attributes(info)
        decision = self.policy.evaluate(user, attrs)
        if decision.level == "None":
            return
        now = request.get("audit_received") or time.time()
        base: dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": decision.level,
            "auditID": audit_id(request), "stage": "RequestReceived", "requestURI": request.raw_path,
            "verb": attrs.verb, "user": user.to_json(), "sourceIPs": source_ips(request)}
        agent = request.headers.get("User-Agent")
        if agent:
            base["userAgent"] = agent
        ref = _object_ref(info, attrs)
        if ref is not None:
            base["objectRef"] = ref
        base["requestReceivedTimestamp"] = now
        ev = _Event(base, decision, is_long_running(info))
        request["audit_event"] = ev
        if "RequestReceived" not in decision.omit_stages:
            snapshot = dict(base)
            snapshot["stageTimestamp"] = now
            self.backend.emit(snapshot)
        wants_body = at_least(decision.level, "Request") or (info.verb == "create" and not info.name)
        if wants_body and request.method in _BODY_METHODS and request.can_read_body:
            data = await bodies.read_raw(request)
            _replay_body(request, data)
            ev.request_body = data
            ev.media = bodies.media_type(request)

    def failed_authentication(self, request: web.Request, info: RequestInfo) -> None:
        """A 401: one ResponseStarted event with an empty user, as upstream's failed-authentication audit."""
        attrs = attributes(info)
        decision = self.policy.evaluate(None, attrs)
        if decision.level == "None" or "ResponseStarted" in decision.omit_stages:
            return
        now = time.time()
        event: dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": decision.level,
            "auditID": audit_id(request), "stage": "ResponseStarted", "requestURI": request.raw_path,
            "verb": attrs.verb, "user": {}, "sourceIPs": source_ips(request)}
        agent = request.headers.get("User-Agent")
        if agent:
            event["userAgent"] = agent
        ref = _object_ref(info, attrs)
        if ref is not None:
            event["objectRef"] = ref
        event["responseStatus"] = {"metadata": {}, "message": auth_methods_message(request), "code": 401}
        event["requestReceivedTimestamp"] = request.get("audit_received") or now
        event["stageTimestamp"] = now
        request["audit_failed_authn"] = True
        self.backend.emit(event)

    def response_started(self, request: web.Request, response: web.StreamResponse) -> None:
        ev: _Event | None = request.get("audit_event")
        if ev is None or ev.started or not ev.long_running:
            return
        ev.started = True
        if "ResponseStarted" in ev.decision.omit_stages:
            return
        event = self._snapshot(request, ev, "ResponseStarted")
        event["responseStatus"] = {"metadata": {}, "code": response.status}
        self.backend.emit(event)

    def _snapshot(self, request: web.Request, ev: _Event, stage: str) -> dict:
        event = dict(ev.base)
        event["stage"] = stage
        acting = request.get("user")
        if acting is not None and acting.name != event["user"].get("username"):
            event["impersonatedUser"] = acting.to_json()
        notes = dict(request.get("audit_annotations") or {})
        notes.update(request_annotations())
        if notes:
            event["annotations"] = dict(sorted(notes.items()))
        event["stageTimestamp"] = time.time()
        return event

    def _complete(self, request: web.Request, response: web.StreamResponse | None, code: int) -> None:
        ev: _Event | None = request.get("audit_event")
        if ev is None:
            return
        panic = request.get("audit_panic")
        stage = "Panic" if panic is not None else "ResponseComplete"
        if ev.long_running and not ev.started and stage != "Panic" and response is not None:
            self.response_started(request, response)
        if stage in ev.decision.omit_stages:
            return
        event = self._snapshot(request, ev, stage)
        level = ev.decision.level
        if panic is not None:
            event["responseStatus"] = {"metadata": {}, "status": "Failure",
                                       "message": f"APIServer panic'd: {panic}", "reason": "InternalError",
                                       "code": 500}
        else:
            status = response.status if response is not None else code or 500
            body = getattr(response, "body", None) if isinstance(response, web.Response) else None
            data = body if isinstance(body, bytes) else None
            if data is not None and data.startswith(b'{"kind":"Status"'):
                event["responseStatus"] = _Raw(data, "", False)
                event["_code"] = status
            else:
                event["responseStatus"] = {"metadata": {}, "code": status}
            if level == "RequestResponse" and data is not None and not ev.long_running:
                media = response.content_type if response is not None else ""
                event["responseObject"] = _Raw(data, media, ev.decision.omit_managed_fields)
        if ev.request_body is not None:
            raw = _Raw(ev.request_body, ev.media, ev.decision.omit_managed_fields)
            if at_least(level, "Request"):
                event["requestObject"] = raw
            if "name" not in event.get("objectRef", {"name": ""}):
                event["objectRef"] = dict(event["objectRef"])
                event["_name_from"] = raw
        self.backend.emit(event)

    def close(self) -> None:
        self.backend.close()


def _replay_body(request: web.Request, data: bytes) -> None:
    """Put the body back for the handler, which reads the request stream itself."""
    # the reader's high-water mark is twice its limit: below it, feeding the whole body never pauses the
    # connection (a paused protocol asserted, and bodies over 128 KiB failed)
    reader = streams.StreamReader(request.protocol, max(2**16, len(data)), loop=asyncio.get_running_loop())
    if data:
        reader.feed_data(data)
    reader.feed_eof()
    request._payload = reader  # type: ignore[attr-defined]
    request._cache["content"] = reader  # type: ignore[attr-defined]  # `content` is a cached property


def audit_id(request: web.Request) -> str:
    value = request.get("audit_id")
    if value is None:
        value = request.headers.get("Audit-ID", "").strip() or str(uuid.uuid4())
        request["audit_id"] = value
    return value


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every response names its audit ID; a long-running one also logs ResponseStarted now."""
    response.headers["Audit-Id"] = audit_id(request)
    auditor: Auditor | None = request.app.get("auditor")
    if auditor is not None:
        auditor.response_started(request, response)


async def cleanup(app: web.Application) -> None:
    auditor: Auditor | None = app.get("auditor")
    if auditor is not None:
        await asyncio.to_thread(auditor.close)


def add_annotations(request: web.Request, notes: dict[str, str]) -> None:
    if notes and request.get("audit_event") is not None:
        request.setdefault("audit_annotations", {}).update(notes)


def build(policy_file: str | None, log_path: str | None, *, max_size_mb: int = 0, max_backups: int = 0,
          max_age_days: int = 0, log_format: str = "json") -> Auditor | None:
    """The auditor of `--audit-policy-file` + `--audit-log-path` (both needed, as upstream); ValueError if bad."""
    if not policy_file or not log_path:
        return None
    if log_format != "json":
        raise ValueError(f'--audit-log-format: invalid audit log format "{log_format}", only "json" is '
                         "supported")
    for flag, value in (("--audit-log-maxsize", max_size_mb), ("--audit-log-maxbackup", max_backups),
                        ("--audit-log-maxage", max_age_days)):
        if value < 0:
            raise ValueError(f"{flag} {value} can't be a negative number")
    policy = load_policy(policy_file)
    if log_path == "-":
        out: Any = _Stdout()
    else:
        try:
            out = RotatingFile(log_path, max_bytes=(max_size_mb or DEFAULT_MAX_SIZE_MB) * MB,
                               max_backups=max_backups, max_age_days=max_age_days)
        except OSError as e:
            raise ValueError(f"ensureLogFile: {log_path}: {e.strerror or e}") from None
    return Auditor(policy, AuditBackend(out))


__all__ = ["Auditor", "AuditBackend", "RotatingFile", "build", "on_response_prepare", "add_annotations",
           "audit_id"]
