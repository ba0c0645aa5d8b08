"""pods/<name>/log, exec, attach and portforward: checked here as upstream's REST storage does, then proxied
to the kubelet of the pod's node (https://<InternalIP>:<kubeletEndpoint.Port>).

The API server talks to kubelets with a client certificate of its own (`kube-apiserver-kubelet-client`, group
system:masters) from the cluster CA and, as upstream without --kubelet-certificate-authority, does not verify
the kubelets' self-signed serving certificates.  Upgraded requests (websocket exec/attach/portforward) are
relayed message by message between the client's websocket and one opened to the kubelet with the same
subprotocol; SPDY upgrades (`Upgrade: SPDY/3.1`, older clients) are relayed byte for byte once the kubelet has
answered 101, as upstream's upgrade-aware proxy does; logs are streamed through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import WSMsgType, web
from yarl import URL

from ..api import errors
from ..api.resources import ResourceType
from ..kubelet.streaming_spdy import PROTOCOL_HEADER, RawCarrier, is_spdy_upgrade, offered_protocols
from . import codec
from .context import ApiContext
from .request_info import RequestInfo

Obj = dict[str, Any]
KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
_SSL_KEY = "kubelet_client_ssl"


def _kubelet_ssl(ctx: ApiContext, app: web.Application) -> ssl.SSLContext:
    sslctx = app.get(_SSL_KEY) if _SSL_KEY in app else None
    if sslctx is not None:
        return sslctx
    from ..pki.ca import ensure_cluster_pki
    pki = ensure_cluster_pki(ctx.config.data_dir)
    d = os.path.join(ctx.config.data_dir, "pki")
    cert_path, key_path = os.path.join(d, "apiserver-kubelet-client.crt"), os.path.join(d, "apiserver-kubelet-client.key")
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        cert, key = pki.issue_client_cert(KUBELET_CLIENT_CN, ["system:masters"])
        with open(key_path, "wb") as f:
            f.write(key)
        os.chmod(key_path, 0o600)
        with open(cert_path, "wb") as f:
            f.write(cert)
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca_file = getattr(ctx.config, "kubelet_certificate_authority", None)
    if ca_file:
        # --kubelet-certificate-authority: the kubelet must prove it is the node we mean to reach
        sslctx.load_verify_locations(cafile=ca_file)
        sslctx.check_hostname = True
        sslctx.verify_mode = ssl.CERT_REQUIRED
    else:  # upstream's default: the kubelet's (self-signed) certificate is not verified
        sslctx.check_hostname = False
        sslctx.verify_mode = ssl.CERT_NONE
    sslctx.load_cert_chain(cert_path, key_path)
    with contextlib.suppress(RuntimeError):
        app[_SSL_KEY] = sslctx  # frozen app: recomputed per request (cheap: files exist)
    return sslctx


async def _get(ctx: ApiContext, key: str) -> Obj | None:
    kv = await ctx.store.get(key)
    return codec.decode_kv(kv) if kv is not None else None


def _container_names(pod: Obj) -> list[str]:
    return [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]


def _all_containers(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    return [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
            + (spec.get("ephemeralContainers") or [])]


def _pick_container(pod: Obj, requested: str | None) -> str:
    name = pod["metadata"]["name"]
    if requested:
        if requested not in _all_containers(pod):
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    names = _container_names(pod)
    if len(names) == 1:
        return names[0]
    init = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    if init:
        msg += f" or one of the init containers: [{' '.join(init)}]"
    raise errors.bad_request(msg)


def _waiting_reason(pod: Obj, container: str) -> str | None:
    status = pod.get("status") or {}
    for field in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(field) or []:
            if cs.get("name") == container:
                waiting = (cs.get("state") or {}).get("waiting")
                if waiting is not None and not (cs.get("lastState") or {}).get("terminated"):
                    return waiting.get("reason") or ""
                return None
    return "ContainerCreating"


async def _node_endpoint(ctx: ApiContext, pod: Obj) -> str:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    node = await _get(ctx, ctx.registry.get("", "v1", "nodes").key(None, node_name))
    if node is None:
        raise errors.not_found("nodes", "", node_name)
    status = node.get("status") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addrs.get("InternalIP") or addrs.get("ExternalIP") or addrs.get("Hostname") or node_name
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


async def pod_subresource(ctx: ApiContext, request: web.Request, info: RequestInfo,
                          rt: ResourceType) -> web.StreamResponse:
    pod = await _get(ctx, rt.key(info.namespace, info.name))
    if pod is None:
        raise errors.not_found("pods", "", info.name)
    sub = info.subresource
    ns, name = info.namespace, info.name
    q = request.query
    base = await _node_endpoint(ctx, pod)
    sslctx = _kubelet_ssl(ctx, request.app)
    if sub == "portforward":
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Running":
            raise errors.bad_request(f"pod {name} is not running and cannot be port-forwarded (phase {phase})")
        return await _relay_upgrade(request, f"{base}/portForward/{quote(ns)}/{quote(name)}", sslctx)
    container = _pick_container(pod, q.get("container"))
    if sub == "log":
        reason = _waiting_reason(pod, container) if q.get("previous") not in ("true", "1") else None
        if reason is not None:
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        params = {k: v for k, v in q.items() if k in ("follow", "previous", "sinceSeconds", "sinceTime",
                                                        "timestamps", "tailLines", "limitBytes")}
        url = f"{base}/containerLogs/{quote(ns)}/{quote(name)}/{quote(container)}"
        return await _relay_logs(request, url + ("?" + urlencode(params) if params else ""), sslctx)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    params = [(k, v) for k, v in q.items() if k in ("command", "stdin", "stdout", "stderr", "tty")]
    path = "exec" if sub == "exec" else "attach"
    url = f"{base}/{path}/{quote(ns)}/{quote(name)}/{quote(container)}?{urlencode(params, doseq=True)}"
    return await _relay_upgrade(request, url, sslctx)


async def _relay_logs(request: web.Request, url: str, sslctx: ssl.SSLContext) -> web.StreamResponse:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, ssl=sslctx)
        except aiohttp.ClientError as e:
            raise errors.ApiError(500, "InternalError", f"Get \"{url}\": {e}") from e
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                raise errors.ApiError(upstream.status if upstream.status in (400, 404) else 500,
                                      "BadRequest" if upstream.status == 400 else
                                      ("NotFound" if upstream.status == 404 else "InternalError"), text)
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
            return resp


def _dial_error(status: int, message: str) -> errors.ApiError:
    return errors.ApiError(status if status in (400, 403, 404) else 500,
                           {400: "BadRequest", 403: "Forbidden", 404: "NotFound"}.get(status, "InternalError"),
                           f"error dialing backend: {message}")


async def _relay_upgrade(request: web.Request, url: str, sslctx: ssl.SSLContext) -> web.StreamResponse:
    if is_spdy_upgrade(request):
        return await _relay_spdy(request, url, sslctx)
    return await _relay_ws(request, url, sslctx)


async def _relay_spdy(request: web.Request, url: str, sslctx: ssl.SSLContext) -> web.StreamResponse:
    """Send the client's upgrade request on to the kubelet; once it answers 101, pass the bytes both ways."""
    target = URL(url)
    host = (target.host or "").strip("[]")
    head = [f"POST {target.raw_path_qs} HTTP/1.1", f"Host: {target.raw_authority}", "Connection: Upgrade",
            "Upgrade: SPDY/3.1", "Content-Length: 0"]
    head += [f"{PROTOCOL_HEADER}: {p}" for p in offered_protocols(request.headers)]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, target.port, ssl=sslctx, server_hostname=host), 10)
    except (OSError, TimeoutError) as e:
        raise errors.ApiError(500, "InternalError", f"error dialing backend: {e}") from e
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        status_line, _, rest = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).partition(b"\r\n")
        parts = status_line.decode("latin-1").split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 502
        headers = {}
        for line in rest.decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if status != 101:
            length = int(headers.get("content-length") or 0)
            body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
            raise _dial_error(status, body.decode(errors="replace").strip() or parts[-1])
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as e:
        writer.close()
        raise errors.ApiError(500, "InternalError", f"error dialing backend: {e}") from e
    except BaseException:
        writer.close()
        raise
    client = RawCarrier(request)
    chosen = headers.get(PROTOCOL_HEADER.lower())
    await client.switch({PROTOCOL_HEADER: chosen} if chosen else {})

    async def down() -> None:
        while data := await reader.read(65536):
            await client.write(data)

    async def up() -> None:
        while data := await client.read():
            writer.write(data)
            await writer.drain()
    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        writer.close()
        await client.close()
    return client.response


async def _relay_ws(request: web.Request, url: str, sslctx: ssl.SSLContext) -> web.StreamResponse:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if request.headers.get("Upgrade", "").lower() != "websocket" or not offered:
        raise errors.bad_request("Upgrade request required")
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    try:
        try:
            upstream = await session.ws_connect(url, protocols=offered, ssl=sslctx, max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            raise errors.ApiError(e.status if e.status in (400, 403, 404) else 500,
                                  {400: "BadRequest", 403: "Forbidden", 404: "NotFound"}.get(e.status, "InternalError"),
                                  f"error dialing backend: {e.message}") from e
        except aiohttp.ClientError as e:
            raise errors.ApiError(500, "InternalError", f"error dialing backend: {e}") from e
        ws = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else offered, max_msg_size=0,
                                   autoping=True)
        await ws.prepare(request)

        async def down() -> None:
            async for msg in upstream:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
            await ws.close()

        async def up() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await upstream.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await upstream.send_str(msg.data)
            await upstream.close()

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0)
        for t in pending:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            await ws.close()
        return ws
    finally:
        await session.close()


def handlers() -> dict[tuple[str, str, str], Any]:
    """For app["subresource_handlers"]."""
    return {("", "pods", sub): pod_subresource for sub in ("log", "exec", "attach", "portforward")}
