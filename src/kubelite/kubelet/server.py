"""The kubelet's HTTPS API (port 10250): /healthz, /pods, /containerLogs, /exec, /attach, /portForward, /run.

Authentication as upstream's kubelet: a client certificate signed by the cluster CA, else a bearer token
checked with a TokenReview; authorization with a SubjectAccessReview on the node's subresource (`nodes/proxy`
for exec, logs, port-forward and run; `nodes/stats`, `nodes/log`, … for the others; security.md §3.4).
Reviews are cached as the kubelet does (allowed 5 min, denied 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.resources import Registry
from ..client import ApiClient, ClientError
from ..pki.tls import peer_identity
from .stats import StatsProvider, boot_time

# aiohttp.web and the streaming code are imported when the first client connects (`start`): an idle node
# whose kubelet API no one calls does not carry them (~3 MiB resident)
if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("kubelite.kubelet.server")

Obj = dict[str, Any]
_REG = Registry()
TOKENREVIEWS = _REG.get("authentication.k8s.io", "v1", "tokenreviews")
SARS = _REG.get("authorization.k8s.io", "v1", "subjectaccessreviews")

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def subresource_for(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return {"stats": "stats", "metrics": "metrics", "logs": "log", "spec": "spec", "checkpoint": "checkpoint",
            "pods": "pods", "runningpods": "pods", "healthz": "healthz", "configz": "configz"}.get(
        first, "proxy")


# KubeletFineGrainedAuthz (beta, on by default in 1.33): these subresources fall back to nodes/proxy when denied
_FALLS_BACK_TO_PROXY = frozenset({"pods", "healthz", "configz"})


@dataclass
class KubeletServer:
    """Serves one node's runtime (a `RuncRuntime`).  `start(host, port, ssl_context)`; `stop()`."""

    runtime: Any
    client: ApiClient
    node_name: str
    authn_cache: dict[str, tuple[float, Obj | None]] = field(default_factory=dict)
    authz_cache: dict[tuple, tuple[float, bool, str]] = field(default_factory=dict)
    anonymous: bool = False
    authorization_mode: str = "Webhook"  # or AlwaysAllow (kubelet_args.py: a lab's weak kubelet)
    _runner: web.AppRunner | None = None
    port: int = 0
    stats: StatsProvider = field(default_factory=StatsProvider)
    # streamingConnectionIdleTimeout: streaming.STREAMING_IDLE_TIMEOUT, not imported here (see above)
    streaming_idle_timeout: float = 4 * 3600.0
    _listeners: list[socket.socket] = field(default_factory=list)
    _serving: asyncio.Task | None = None

    def app(self) -> web.Application:
        from aiohttp import web

        @web.middleware
        async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
            return await self._auth(request, handler)

        app = web.Application(middlewares=[auth])
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/pods", self.pods)
        r.add_get("/stats/summary", self.stats_summary)
        for prefix, handler in (("/containerLogs", self.logs), ("/exec", self.exec_), ("/attach", self.attach),
                                ("/run", self.run)):
            r.add_route("*", prefix + "/{namespace}/{pod}/{container}", handler)
            r.add_route("*", prefix + "/{namespace}/{pod}/{uid}/{container}", handler)
        r.add_route("*", "/portForward/{namespace}/{pod}", self.portforward)
        r.add_route("*", "/portForward/{namespace}/{pod}/{uid}", self.portforward)
        return app

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
        """Listen on host:port (0: a free port) and return the port.  The sockets are bound and listening
        at once; the HTTP server (aiohttp.web) is set up when the first connection waits to be accepted."""
        self._listeners = await _listen(host, port)
        self.port = self._listeners[0].getsockname()[1]
        loop = asyncio.get_running_loop()

        def first_connection() -> None:
            for s in self._listeners:
                loop.remove_reader(s.fileno())
            self._serving = asyncio.ensure_future(self._serve(ssl_context))
        for s in self._listeners:
            loop.add_reader(s.fileno(), first_connection)
        return self.port

    async def _serve(self, ssl_context: ssl.SSLContext | None) -> None:
        from aiohttp import web

        try:
            runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            self._runner = runner
            for s in self._listeners:
                await web.SockSite(runner, s, ssl_context=ssl_context).start()
        except Exception:
            log.exception("the kubelet API server did not start")
            for s in self._listeners:
                s.close()  # refused rather than left waiting in the backlog

    async def stop(self) -> None:
        if self._serving is None:
            loop = asyncio.get_running_loop()
            for s in self._listeners:
                loop.remove_reader(s.fileno())
        else:
            await self._serving
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for s in self._listeners:
            s.close()
        self._listeners = []
        self._serving = None

    # -- authn / authz --------------------------------------------------------------------------------

    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        from aiohttp import web

        user = await self._authenticate(request)
        if user is None:
            # the kubelet API has no audit log: what it refuses (and, below, what it lets anonymous callers do)
            # is logged, so an attempt on port 10250 leaves a trace on the node
            log.warning("kubelet API: refused an unauthenticated %s %s from %s (401)", request.method,
                        request.path, request.remote)
            return web.Response(status=401, text="Unauthorized")
        verb = _VERBS.get(request.method, "get")
        sub = subresource_for(request.path)
        allowed, reason = await self._authorize(user, verb, sub)
        if not allowed and sub in _FALLS_BACK_TO_PROXY:
            sub = "proxy"
            allowed, reason = await self._authorize(user, verb, sub)
        if not allowed:
            name = user.get("username", "")
            log.warning("kubelet API: refused %s %s to %s (403: no %s on nodes/%s)", request.method, request.path,
                        name, verb, sub)
            return web.Response(status=403, text=f"Forbidden (user={name}, verb={verb}, resource=nodes, "
                                                 f"subresource={sub})")
        if user.get("username") == "system:anonymous":
            log.warning("kubelet API: allowed an anonymous %s %s from %s (--anonymous-auth=true)", request.method,
                        request.path, request.remote)
        request["user"] = user
        return await handler(request)

    async def _authenticate(self, request: web.Request) -> Obj | None:
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        ident = peer_identity(ssl_obj) if ssl_obj is not None else None
        if ident is not None:
            return {"username": ident[0], "groups": list(ident[1]) + ["system:authenticated"]}
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
            hit = self.authn_cache.get(token)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            try:
                review = await self.client.create(TOKENREVIEWS, {"apiVersion": "authentication.k8s.io/v1",
                                                                 "kind": "TokenReview", "spec": {"token": token}})
            except ClientError as e:
                log.warning("TokenReview failed: %s", e)
                return None
            status = review.get("status") or {}
            user = status.get("user") if status.get("authenticated") else None
            self.authn_cache[token] = (time.monotonic() + (120 if user else 10), user)
            return user
        if self.anonymous:
            return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
        return None

    async def _authorize(self, user: Obj, verb: str, sub: str) -> tuple[bool, str]:
        if self.authorization_mode == "AlwaysAllow":
            return True, ""
        key = (user.get("username"), tuple(user.get("groups") or ()), verb, sub)
        hit = self.authz_cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2]
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user.get("username", ""), "groups": user.get("groups") or [],
                         "uid": user.get("uid", ""), "extra": user.get("extra") or {},
                         "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": sub,
                                                "name": self.node_name, "version": "v1"}}}
        try:
            out = await self.client.create(SARS, body)
        except ClientError as e:
            return False, str(e)
        st = out.get("status") or {}
        allowed = bool(st.get("allowed"))
        self.authz_cache[key] = (time.monotonic() + (300 if allowed else 30), allowed, st.get("reason", ""))
        return allowed, st.get("reason", "")

    # -- handlers -------------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        return web.Response(text="ok")

    async def pods(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        items = [p.spec for p in self.runtime.pods.values()]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def stats_summary(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        pods = list(self.runtime.pods.values())
        return web.json_response(await self.stats.summary(self.node_name, boot_time(), pods))

    def _pod(self, request: web.Request) -> Any:
        from aiohttp import web

        m = request.match_info
        p = self.runtime.find(m["namespace"], m["pod"], m.get("uid"))
        if p is None:
            raise web.HTTPNotFound(text=f'pod "{m["pod"]}" not found')
        return p

    def _container(self, request: web.Request) -> tuple[Any, str]:
        from aiohttp import web

        p = self._pod(request)
        name = request.match_info["container"]
        cid = p.container_id(name)
        if cid is None:
            raise web.HTTPNotFound(text=f'container "{name}" in pod "{p.name}" is not running')
        return p, cid

    async def logs(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        p = self._pod(request)
        q = request.query
        name = request.match_info["container"]
        previous = q.get("previous") in ("true", "1")
        path = p.log_path(name, previous=previous)
        if path is None:
            if previous:
                raise web.HTTPBadRequest(text=f'previous terminated container "{name}" in pod "{p.name}" not found')
            raise web.HTTPBadRequest(text=f'container "{name}" in pod "{p.name}" is waiting to start: '
                                          f"ContainerCreating")
        opts = LogOptions.from_query(q)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        follow = q.get("follow") in ("true", "1") and not previous

        def running() -> bool:
            return p.container_id(name) is not None and p.log_path(name) == path
        await stream_log(resp, path, opts, follow=follow, still_running=running)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    async def exec_(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        from . import streaming

        p, cid = self._container(request)
        q = request.query
        argv = q.getall("command", [])
        if not argv:
            raise web.HTTPBadRequest(text="you must specify at least 1 command")
        tty = q.get("tty") in ("true", "1")

        async def spawn(**kw: Any) -> asyncio.subprocess.Process:
            return await self.runtime.runc.exec(cid, argv, **kw)

        async def tty_spawn(terminal: int) -> asyncio.subprocess.Process:
            # runc in the foreground makes the container's pty and relays it to its own stdio: our pty
            return await self.runtime.runc.exec(cid, argv, tty=True, stdin=terminal, stdout=terminal,
                                                stderr=terminal)
        return await streaming.serve_exec(request, spawn, tty=tty, stdin=q.get("stdin") in ("true", "1"),
                                          stdout=q.get("stdout", "true") in ("true", "1"),
                                          stderr=q.get("stderr") in ("true", "1") and not tty, tty_spawn=tty_spawn,
                                          idle_timeout=self.streaming_idle_timeout)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        from . import streaming

        # attach follows the container's output (stdin is not held open by conmon here)
        p = self._pod(request)
        name = request.match_info["container"]
        path = p.log_path(name)
        if path is None:
            raise web.HTTPNotFound(text=f'container "{name}" not found')
        q = request.query
        tty = q.get("tty") in ("true", "1")

        async def follow(write: Any, client_gone: Any) -> None:
            class _Sink:
                async def write(self, data: bytes) -> None:
                    await write(data)
            await stream_log(_Sink(), path, LogOptions(tail=0), follow=True,
                             still_running=lambda: p.container_id(name) is not None and not client_gone())
        return await streaming.serve_attach(request, follow, tty=tty, stdin=q.get("stdin") in ("true", "1"),
                                            stdout=q.get("stdout") in ("true", "1"),
                                            stderr=q.get("stderr") in ("true", "1") and not tty,
                                            idle_timeout=self.streaming_idle_timeout)

    async def run(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        p, cid = self._container(request)
        cmd = request.query.getall("cmd", []) or (await request.post()).getall("cmd", [])
        argv = cmd[0].split() if len(cmd) == 1 else list(cmd)
        rc, out = await p.exec_capture(cid, [str(a) for a in argv], 60.0)
        return web.Response(body=out, content_type="text/plain")

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        from . import streaming

        p = self._pod(request)
        netns = p.netns

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await streaming.connect_in_netns(netns, port)
        return await streaming.serve_portforward(request, connect)


async def _listen(host: str | None, port: int, backlog: int = 128) -> list[socket.socket]:
    """Listening sockets for host:port as `loop.create_server` binds them (every address of the host)."""
    try:
        ipaddress.ip_address(host or "")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICHOST)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _, addr in dict.fromkeys(infos):
            s = socket.socket(family, type_, proto)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
            s.listen(backlog)
            s.setblocking(False)
    except OSError:
        for s in sockets:
            s.close()
        raise
    return sockets


# ---------------------------------------------------------------- CRI logs


@dataclass
class LogOptions:
    tail: int | None = None
    timestamps: bool = False
    since: float | None = None  # epoch seconds
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, q: Any) -> LogOptions:
        o = cls()
        if q.get("tailLines"):
            o.tail = max(0, int(q["tailLines"]))
        o.timestamps = q.get("timestamps") in ("true", "1")
        if q.get("sinceSeconds"):
            o.since = time.time() - int(q["sinceSeconds"])
        elif q.get("sinceTime"):
            with contextlib.suppress(ValueError):
                o.since = dt.datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00")).timestamp()
        if q.get("limitBytes"):
            o.limit_bytes = int(q["limitBytes"])
        return o


def parse_cri_line(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """`<RFC3339Nano> <stream> <P|F> <content>` -> (timestamp, stream, full, content)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] != b"P", content


def _ts_epoch(ts: str) -> float:
    with contextlib.suppress(ValueError):
        base, _, frac = ts.partition(".")
        frac = frac.rstrip("Z").split("+")[0].split("-")[0]
        return dt.datetime.fromisoformat(base + "+00:00").timestamp() + float("0." + (frac or "0"))
    return 0.0


def _format_ts(ts: str) -> str:
    """kubectl's --timestamps shows RFC3339Nano in UTC with a Z."""
    base, _, frac = ts.partition(".")
    frac = frac.split("+")[0].split("Z")[0]
    return f"{base}.{frac}Z" if frac else base + "Z"


def render(entries: list[tuple[str, str, bool, bytes]], opts: LogOptions) -> bytes:
    out = []
    for ts, _stream, full, content in entries:
        if opts.since is not None and _ts_epoch(ts) < opts.since:
            continue
        prefix = (_format_ts(ts) + " ").encode() if opts.timestamps else b""
        out.append(prefix + content + (b"\n" if full else b""))
    return b"".join(out)


async def stream_log(resp: Any, path: str, opts: LogOptions, *, follow: bool,
                     still_running: Any) -> None:
    written = 0

    async def emit(data: bytes) -> bool:
        nonlocal written
        if opts.limit_bytes is not None:
            data = data[:max(0, opts.limit_bytes - written)]
        if data:
            await resp.write(data)
            written += len(data)
        return opts.limit_bytes is None or written < opts.limit_bytes

    try:
        f = open(path, "rb")  # noqa: SIM115 — held open while following
    except OSError:
        return
    try:
        data = f.read()
        lines = data.splitlines(keepends=True)
        pending = b""
        if lines and not lines[-1].endswith(b"\n"):
            pending = lines.pop()
        entries = [e for e in (parse_cri_line(x) for x in lines) if e is not None]
        if opts.tail is not None:
            # count whole log lines (partial "P" chunks belong to the next full line)
            fulls = [i for i, e in enumerate(entries) if e[2]]
            if opts.tail == 0:
                entries = []
            elif len(fulls) > opts.tail:
                entries = entries[fulls[-opts.tail - 1] + 1:]
        if not await emit(render(entries, opts)):
            return
        if not follow:
            return
        idle_since = time.monotonic()
        while True:
            chunk = f.read()
            if chunk:
                idle_since = time.monotonic()
                pending += chunk
                *complete, pending = pending.split(b"\n")
                batch = [e for e in (parse_cri_line(x + b"\n") for x in complete) if e is not None]
                if batch and not await emit(render(batch, LogOptions(timestamps=opts.timestamps))):
                    return
                continue
            if _rotated_away(f, path):
                # the log manager renamed the file and the runtime writes a fresh one: go on with that
                try:
                    f.close()
                    f = open(path, "rb")  # noqa: SIM115
                except OSError:
                    return
                continue
            if not still_running() and time.monotonic() - idle_since > 0.3:
                return
            await asyncio.sleep(0.1)
    finally:
        f.close()


def _rotated_away(f: Any, path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False  # not reopened yet
    own = os.fstat(f.fileno())
    return (st.st_ino, st.st_dev) != (own.st_ino, own.st_dev)


def self_signed_context(node_name: str, ips: list[str], ca_pem: bytes, dir_: str) -> ssl.SSLContext:
    """The kubelet's serving certificate, self-signed as upstream's default, verifying clients with the CA."""
    os.makedirs(dir_, exist_ok=True)
    cert_path, key_path = os.path.join(dir_, "kubelet.crt"), os.path.join(dir_, "kubelet.key")
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        if "cryptography" in sys.modules:
            from .selfsigned import write_self_signed

            write_self_signed(node_name, ips, cert_path, key_path)
        else:  # made by a child process, so that the long-lived agent never maps cryptography
            subprocess.run([sys.executable, "-m", "kubelite.kubelet.selfsigned", node_name, cert_path, key_path,
                            *ips], check=True)
    return serving_context(cert_path, key_path, ca_pem)


def serving_context(cert_path: str, key_path: str, ca_pem: bytes) -> ssl.SSLContext:
    """TLS for the kubelet's API (--tls-cert-file/--tls-private-key-file): client certs verified with the CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
