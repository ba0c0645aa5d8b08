"""A small aiohttp server serving discovery and OpenAPI from kubelite.api, for driving the real kubectl.

It runs in a thread on 127.0.0.1 (free port), records every request, and answers a POST to a
collection with 201 and the body, so a test can see the query string kubectl chose.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from kubelite.api import discovery, openapi
from kubelite.api.resources import Registry

JSON = "application/json"


@dataclass
class Seen:
    method: str
    path: str
    query: str
    accept: str
    content_type: str
    body: bytes


@dataclass
class DiscoveryServer:
    registry: Registry = field(default_factory=Registry)
    aggregated: bool = True  # answer aggregated discovery when asked
    minor: str = "33"
    requests: list[Seen] = field(default_factory=list)
    objects: dict[str, dict] = field(default_factory=dict)  # by item path, from POSTs
    port: int = 0

    def _json(self, obj: object, content_type: str = JSON, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(obj), status=status, headers={"Content-Type": content_type})

    def _status(self, code: int, reason: str, message: str) -> web.Response:
        return self._json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code}, status=code)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Seen(request.method, request.path, request.query_string,
                                  request.headers.get("Accept", ""), request.headers.get("Content-Type", ""),
                                  body))
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        accept = request.headers.get("Accept", "")
        if request.method == "GET":
            if path == "/version":
                return self._json(discovery.version_info(self.minor))
            if path in ("/api", "/apis"):
                ctype = discovery.wants_aggregated(accept) if self.aggregated else None
                if ctype:
                    doc = discovery.aggregated_discovery(self.registry, core=path == "/api",
                                                         api_version=discovery.aggregated_api_version(ctype))
                    return self._json(doc, ctype)
                if path == "/api":
                    return self._json(discovery.api_versions(f"127.0.0.1:{self.port}"))
                return self._json(discovery.api_group_list(self.registry))
            if parts[:1] == ["api"] and len(parts) == 2:
                doc = discovery.api_resource_list(self.registry, "", parts[1])
                return self._json(doc) if doc else self._status(404, "NotFound", "the server could not find the requested resource")
            if parts[:1] == ["apis"] and len(parts) == 2:
                doc = discovery.api_group(self.registry, parts[1])
                return self._json(doc) if doc else self._status(404, "NotFound", "the server could not find the requested resource")
            if parts[:1] == ["apis"] and len(parts) == 3:
                doc = discovery.api_resource_list(self.registry, parts[1], parts[2])
                return self._json(doc) if doc else self._status(404, "NotFound", "the server could not find the requested resource")
            if path == "/openapi/v3":
                return self._json(openapi.openapi_v3_index(self.registry))
            if parts[:2] == ["openapi", "v3"]:
                raw = openapi.openapi_v3_path(self.registry, "/".join(parts[2:]))
                if raw is None:
                    return self._status(404, "NotFound", "the server could not find the requested resource")
                return web.Response(body=raw, headers={"Content-Type": JSON})
            if path == "/openapi/v2":
                return web.Response(body=openapi.openapi_v2(self.registry), headers={"Content-Type": JSON})
            if path in self.objects:
                return self._json(self.objects[path])
        if request.method == "POST" and body:
            obj = orjson.loads(body)
            meta = obj.setdefault("metadata", {})
            meta.update(uid="00000000-0000-0000-0000-000000000001", resourceVersion="1")
            self.objects[f"{path}/{meta.get('name')}"] = obj
            return self._json(obj, status=201)
        if request.method == "PATCH" and path in self.objects:
            return self._json(self.objects[path])
        return self._status(404, "NotFound", "the server could not find the requested resource")

    # lifecycle: run the aiohttp app on its own loop in a thread
    def start(self) -> DiscoveryServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def run() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(run())
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


KUBECTL = shutil.which("kubectl")


def run_kubectl(server: DiscoveryServer, cache_dir: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real kubectl against the server with a private cache and no kubeconfig."""
    assert KUBECTL is not None
    env = dict(os.environ, HOME=cache_dir, KUBECONFIG=os.path.join(cache_dir, "no-kubeconfig"))
    return subprocess.run([KUBECTL, "--server", server.url, "--cache-dir", os.path.join(cache_dir, "cache"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
