"""Server-sent events for the browser: a list or an object changed (an API watch with the user's token), and
a container's log lines as they come (`follow=true`). Also the log download.

Each stream is one API connection per open page; it ends when the browser goes away, when the session ends, or
when the API closes the watch (the script then reconnects, as EventSource does by itself)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import orjson
from aiohttp import web

from ..client import ClientError
from .server import ALL, _kind, _name, _namespace, authed, log_params
from .sessions import Session
from .userapi import UserApi, api_path

KEEPALIVE = 15.0


async def _sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    return resp


def _event(name: str, data: str) -> bytes:
    return b"".join(f"event: {name}\ndata: {line}\n".encode() for line in (data.split("\n") or [""])) + b"\n"


async def _pump(resp: web.StreamResponse, lines, on_line) -> None:
    """Copy lines to the browser, with a comment line as keep-alive while the source is quiet."""
    it = lines.__aiter__()
    while True:
        try:
            line = await asyncio.wait_for(it.__anext__(), KEEPALIVE)
        except TimeoutError:
            await resp.write(b": keep-alive\n\n")
            continue
        except StopAsyncIteration:
            return
        out = on_line(line)
        if out:
            await resp.write(out)


async def _watch(request: web.Request, api: UserApi, path: str, params: dict[str, str]) -> web.StreamResponse:
    try:
        listed = await api.request("GET", path, params={**params, "limit": "1"})
    except ClientError as e:
        if e.code == 401:
            raise
        return web.Response(status=e.code if 400 <= e.code < 600 else 502, text=e.message)
    rv = (listed.get("metadata") or {}).get("resourceVersion") or "0"
    resp = await _sse(request)

    def changed(line: bytes) -> bytes | None:
        if not line.strip():
            return None
        try:
            kind = orjson.loads(line).get("type")
        except orjson.JSONDecodeError:
            return None
        if kind == "ERROR":
            return _event("gone", "watch ended")
        return _event("change", kind) if kind in ("ADDED", "MODIFIED", "DELETED") else None

    with contextlib.suppress(ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError):
        async with api.stream(path, {**params, "watch": "true", "resourceVersion": rv,
                                     "allowWatchBookmarks": "true"}) as upstream:
            if upstream.status >= 300:
                await resp.write(_event("gone", f"watch refused: {upstream.status}"))
                return resp
            await _pump(resp, upstream.content, changed)
    return resp


@authed
async def live_namespaced(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"], allow_all=True)
    k = _kind(request.match_info["kind"], True)
    name = request.match_info.get("name")
    params = {"fieldSelector": f"metadata.name={_name(name)}"} if name else {}
    return await _watch(request, api, api_path(k.group, k.version, k.key, None if ns == ALL else ns), params)


@authed
async def live_cluster(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    k = _kind(request.match_info["kind"], False)
    name = request.match_info.get("name")
    params = {"fieldSelector": f"metadata.name={_name(name)}"} if name else {}
    return await _watch(request, api, api_path(k.group, k.version, k.key), params)


@authed
async def follow_logs(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    name = _name(request.match_info["name"])
    params = log_params(request.query)
    params["follow"] = "true"
    resp = await _sse(request)
    end = "log stream ended"
    with contextlib.suppress(ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError):
        async with api.stream(api_path("", "v1", "pods", ns, name, "log"), params) as upstream:
            if upstream.status >= 300:
                body = await upstream.read()
                err = ClientError.from_body(upstream.status, body)
                await resp.write(_event("end", f"{err.code} {err.reason}: {err.message}"))
                return resp
            await _pump(resp, upstream.content,
                        lambda line: _event("line", line.decode("utf-8", "replace").rstrip("\n")))
        await resp.write(_event("end", end))
    return resp


@authed
async def download_logs(request: web.Request, s: Session, api: UserApi) -> web.StreamResponse:
    ns = _namespace(request.match_info["ns"])
    name = _name(request.match_info["name"])
    params = log_params(request.query)
    params.pop("tailLines", None) if request.query.get("tail") is None else None
    raw = await api.request("GET", api_path("", "v1", "pods", ns, name, "log"), params=params, raw=True)
    filename = f"{name}{'-' + params['container'] if 'container' in params else ''}.log"
    return web.Response(body=raw, content_type="text/plain", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/live/ns/{ns}/{kind}", live_namespaced)
    r.add_get("/live/ns/{ns}/{kind}/{name}", live_namespaced)
    r.add_get("/live/cluster/{kind}", live_cluster)
    r.add_get("/live/cluster/{kind}/{name}", live_cluster)
    r.add_get("/ns/{ns}/pods/{name}/logs/follow", follow_logs)
    r.add_get("/ns/{ns}/pods/{name}/logs/download", download_logs)
