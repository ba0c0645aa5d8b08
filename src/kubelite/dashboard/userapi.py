"""API calls made as the logged-in user: one shared HTTPS connection pool, the user's bearer token on each call.

The dashboard holds no credential of its own for browsing: whatever RBAC forbids the token, the API server
refuses, and the dashboard shows the server's Status message.
"""

from __future__ import annotations

import ssl
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ..client import ClientError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class ApiServer:
    """The API server the dashboard talks to; `as_user(token)` gives calls carrying that token."""

    def __init__(self, server_url: str, ca_file: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0) -> None:
        self.server_url = server_url.rstrip("/")
        if ssl_context is None and self.server_url.startswith("https://"):
            ssl_context = ssl.create_default_context(cafile=ca_file)
        self.ssl_context = ssl_context
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[str, tuple[float, dict[str, Any]]] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # no cookie jar: nothing one user's request brings back may travel with another user's
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else False),
                cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "kubernetes-dashboard/v1.33 (kubelite)"})
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def as_user(self, token: str) -> UserApi:
        return UserApi(self, token)


class UserApi:
    def __init__(self, server: ApiServer, token: str) -> None:
        self.server = server
        self._auth = {"Authorization": f"Bearer {token}"}

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                      content_type: str = JSON, raw: bool = False) -> Any:
        headers = dict(self._auth)
        headers["Accept"] = "*/*" if raw else JSON
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        async with self.server.session.request(method, self.server.server_url + path, params=params, data=data,
                                               headers=headers) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise ClientError.from_body(resp.status, payload)
        if raw:
            return payload
        return orjson.loads(payload) if payload else None

    async def whoami(self) -> dict[str, Any]:
        """The token's user (SelfSubjectReview); 401 when the API server does not accept the token."""
        review = await self.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return ((review or {}).get("status") or {}).get("userInfo") or {}

    async def resources(self, api_version: str) -> dict[str, Any]:
        """The APIResourceList of a group version, cached briefly (the same for every user)."""
        cache = self.server._discovery
        hit = cache.get(api_version)
        if hit and time.monotonic() - hit[0] < 30:
            return hit[1]
        path = "/api/v1" if api_version == "v1" else f"/apis/{quote(api_version, safe='/')}"
        result = await self.request("GET", path)
        cache[api_version] = (time.monotonic(), result)
        return result


def api_path(group: str, version: str, resource: str, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
    """/api/v1/... or /apis/<group>/<version>/... with every user-given part percent-quoted."""
    path = "/api/v1" if not group else f"/apis/{quote(group, safe='')}/{quote(version, safe='')}"
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{resource}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path
