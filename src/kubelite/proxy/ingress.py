"""The built-in ingress controller: IngressClass `kubelite` and an HTTP(S) reverse proxy serving its Ingresses.

    config = IngressConfig(http_port=80, https_port=443, status_addresses=["192.0.2.2"])
    await run_ingress(client, stop=stop_event, config=config)

At start the IngressClass `kubelite` (controller `kubelite.io/ingress-controller`, annotated as the default
class) is created if absent.  Ingresses of the class — `spec.ingressClassName: kubelite`, the legacy
annotation `kubernetes.io/ingress.class: kubelite`, or no class at all while ours is the default — are
compiled into a route table (`ingress_routes`); TLS entries select certificates by SNI (`ingress_tls`).
Requests go to a ready endpoint of the backend Service (round-robin, from EndpointSlices or Endpoints, the
port found by number or name), bodies streamed both ways, with `X-Forwarded-*` / `X-Real-IP` headers;
WebSocket upgrades are relayed.  No rule: 404 (or the default backend); a backend without ready endpoints:
503; an endpoint that does not answer: 502.  Each Ingress of the class gets `status.loadBalancer.ingress`
with the node addresses (or `config.status_addresses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from kubelite.client import ApiClient, ClientError, SharedInformerFactory, WorkQueue, key_of, run_workers

from .catalog import INGRESSCLASSES, INGRESSES, NODES, SECRETS, ServiceCatalog, endpoint_port, service_port
from .ingress_routes import Backend, RouteTable
from .ingress_tls import TLSStore
from .servicelb import node_addresses

log = logging.getLogger("kubelite.proxy.ingress")

Obj = dict[str, Any]

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Trailers",
    "Transfer-Encoding", "Upgrade", "Proxy-Connection"))
WS_HANDSHAKE = frozenset(("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                          "sec-websocket-accept", "sec-websocket-protocol"))


@dataclass
class IngressConfig:
    class_name: str = "kubelite"
    controller_name: str = "kubelite.io/ingress-controller"
    create_class: bool = True  # create the IngressClass (as the default class) when absent
    listen_host: str = "0.0.0.0"
    http_port: int | None = 80  # None: no HTTP listener
    https_port: int | None = 443  # None: no HTTPS listener
    status_addresses: list[str] | None = None  # None: the InternalIP addresses of the nodes
    write_status: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 60.0  # between two reads from the backend (proxy-read-timeout)
    informer_sync_timeout: float = 60.0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _page(code: int, title: str) -> web.Response:
    body = (f"<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1>"
            f"</center>\r\n<hr><center>kubelite</center>\r\n</body>\r\n</html>\r\n")
    return web.Response(status=code, text=body, content_type="text/html")


class IngressController:
    def __init__(self, client: ApiClient, config: IngressConfig | None = None,
                 informers: SharedInformerFactory | None = None) -> None:
        self.client = client
        self.config = config or IngressConfig()
        self.informers = informers or SharedInformerFactory(client)
        self._own_informers = informers is None
        self.catalog = ServiceCatalog()
        self._sync_informers = self.catalog.attach(self.informers, namespaces=False)
        self.ingresses = self.informers.informer(INGRESSES)
        self.classes = self.informers.informer(INGRESSCLASSES)
        self.secrets = self.informers.informer(SECRETS)
        self.nodes = self.informers.informer(NODES)
        self._sync_informers += [self.ingresses, self.classes, self.secrets, self.nodes]
        for inf in (self.ingresses, self.classes, self.secrets):
            inf.add_handler(lambda _o: self._dirty(), lambda _a, _b: self._dirty(), lambda _o: self._dirty())
        self.nodes.add_handler(lambda _o: self._status_all(), lambda _a, _b: self._status_all(),
                               lambda _o: self._status_all())
        self.routes = RouteTable()
        self.tls = TLSStore()
        self.status_queue = WorkQueue("ingress-status")
        self._rebuild_pending = False
        self._rr: dict[tuple, itertools.count] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self.http_port: int | None = None
        self.https_port: int | None = None

    # -- which Ingresses are ours ---------------------------------------------------------------------------

    def _we_are_default(self) -> bool:
        cls = self.classes.get(None, self.config.class_name)
        if cls is None or (cls.get("spec") or {}).get("controller") != self.config.controller_name:
            return False
        return ((cls.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"

    def is_ours(self, ing: Obj, default: bool | None = None) -> bool:
        name = (ing.get("spec") or {}).get("ingressClassName")
        if name:
            return name == self.config.class_name
        legacy = ((ing.get("metadata") or {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
        if legacy:
            return legacy == self.config.class_name
        return self._we_are_default() if default is None else default

    def our_ingresses(self) -> list[Obj]:
        default = self._we_are_default()
        return [i for i in self.ingresses.list() if self.is_ours(i, default)
                and not (i.get("metadata") or {}).get("deletionTimestamp")]

    # -- rebuilding -------------------------------------------------------------------------------------------

    def _dirty(self) -> None:
        if self._rebuild_pending:
            return
        self._rebuild_pending = True
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self.rebuild)

    def rebuild(self) -> None:
        self._rebuild_pending = False
        ours = self.our_ingresses()
        self.routes = RouteTable.build(ours)
        self.tls.update(ours, self.secrets.get)
        for ing in ours:
            self.status_queue.add(key_of(ing))

    def _status_all(self) -> None:
        for ing in self.our_ingresses():
            self.status_queue.add(key_of(ing))

    def status_addresses(self) -> list[str]:
        if self.config.status_addresses is not None:
            return list(self.config.status_addresses)
        return node_addresses(self.nodes.list())

    async def sync_status(self, key: str) -> None:
        if not self.config.write_status:
            return
        ing = self.ingresses.get_by_key(key)
        if ing is None or not self.is_ours(ing):
            return
        want = [{"ip": a} for a in self.status_addresses()]
        current = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if want == current:
            return
        md = ing["metadata"]
        await self.client.patch(INGRESSES, md.get("namespace"), md["name"],
                                {"status": {"loadBalancer": {"ingress": want or None}}}, subresource="status")

    async def ensure_class(self) -> None:
        body = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": self.config.class_name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
                             "labels": {"app.kubernetes.io/component": "controller",
                                        "app.kubernetes.io/name": "kubelite-ingress"}},
                "spec": {"controller": self.config.controller_name}}
        try:
            await self.client.create(INGRESSCLASSES, body)
        except ClientError as e:
            if not e.is_already_exists:
                raise

    # -- proxying ---------------------------------------------------------------------------------------------

    def pick(self, backend: Backend) -> tuple[str, int] | None:
        """(address, port) of the next ready endpoint of the backend; None when there is none."""
        svc = self.catalog.service(backend.namespace, backend.service)
        if svc is None:
            return None
        sp = service_port(svc, backend.port)
        if sp is None:
            return None
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            target = (svc.get("spec") or {}).get("externalName")
            return (target, int(sp.get("port"))) if target else None
        candidates = []
        for ep in self.catalog.ready_endpoints(backend.namespace, backend.service):
            port = endpoint_port(sp, ep)
            if port is not None:
                candidates.append((ep.address, port))
        if not candidates:
            return None
        counter = self._rr.setdefault((backend.namespace, backend.service, backend.port), itertools.count())
        return candidates[next(counter) % len(candidates)]

    def _forward_headers(self, request: web.Request, websocket: bool = False) -> dict[str, str]:
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            lk = k.lower()
            if lk in HOP_BY_HOP or (websocket and lk in WS_HANDSHAKE):
                continue
            if lk.startswith("x-forwarded-") and lk != "x-forwarded-for":
                continue
            headers[k] = v if k not in headers else f"{headers[k]}, {v}"
        peer = request.remote or ""
        xff = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{xff}, {peer}" if xff else peer
        headers["X-Real-IP"] = peer
        host = request.headers.get("Host") or ""
        headers["X-Forwarded-Host"] = host
        headers["X-Forwarded-Proto"] = request.scheme
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if sockname:
            headers["X-Forwarded-Port"] = str(sockname[1])
        headers["X-Forwarded-Scheme"] = request.scheme
        if "Host" not in headers and host:
            headers["Host"] = host
        return headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        backend = self.routes.match(request.headers.get("Host") or request.host or "", request.path)
        if backend is None:
            return _page(404, "Not Found")
        target = self.pick(backend)
        if target is None:
            return _page(503, "Service Temporarily Unavailable")
        address, port = target
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, f"http://{netloc}{request.raw_path}")
        url = f"http://{netloc}{request.raw_path}"
        assert self._session is not None
        data = request.content if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method, url, headers=self._forward_headers(request), data=data, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout,
                                              sock_read=self.config.read_timeout))
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.info("ingress: %s %s → %s failed: %s", request.method, request.path, netloc, e)
            return _page(502, "Bad Gateway")
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            if "Transfer-Encoding" in upstream.headers:
                response.headers.popall("Content-Length", None)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError) as e:
                log.info("ingress: reading from %s failed: %s", netloc, e)
                return response
            await response.write_eof()
            return response

    async def _websocket(self, request: web.Request, url: str) -> web.StreamResponse:
        assert self._session is not None
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await self._session.ws_connect(url, headers=self._forward_headers(request, websocket=True),
                                                      protocols=protocols, autoping=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.info("ingress: websocket to %s failed: %s", url, e)
            return _page(502, "Bad Gateway")
        client_ws = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                          autoping=False)
        await client_ws.prepare(request)

        async def pump(src, dst) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.PING:
                    await dst.ping(msg.data)
                elif msg.type == aiohttp.WSMsgType.PONG:
                    await dst.pong(msg.data)
                else:
                    break
            await dst.close()

        tasks = [asyncio.create_task(pump(client_ws, upstream)), asyncio.create_task(pump(upstream, client_ws))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await upstream.close()
            await client_ws.close()
        return client_ws

    # -- running ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.informers.start()
        if self.config.create_class:
            try:
                await self.ensure_class()
            except ClientError as e:
                log.warning("ingress: could not create IngressClass %s: %s", self.config.class_name, e)
        for inf in self._sync_informers:
            if not await inf.wait_for_sync(self.config.informer_sync_timeout):
                log.warning("ingress: informer for %s did not sync in time", inf.rt.resource)
        self.rebuild()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=10), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar())
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        if self.config.http_port is not None:
            sock = _listen(self.config.listen_host, self.config.http_port)
            self.http_port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock).start()
        if self.config.https_port is not None:
            sock = _listen(self.config.listen_host, self.config.https_port)
            self.https_port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock, ssl_context=self.tls.context).start()
        self._tasks.append(asyncio.create_task(run_workers(self.status_queue, 2, self.sync_status)))
        log.info("ingress controller: class %s, http %s, https %s", self.config.class_name, self.http_port,
                 self.https_port)

    async def stop(self) -> None:
        self.status_queue.shutdown()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._own_informers:
            await self.informers.stop()


async def run_ingress(client: ApiClient, *, stop: asyncio.Event, config: IngressConfig | None = None,
                      informers: SharedInformerFactory | None = None) -> None:
    """Run the ingress controller until `stop` is set."""
    controller = IngressController(client, config, informers)
    await controller.start()
    try:
        await stop.wait()
    finally:
        await controller.stop()
