"""API calls made as the logged-in user: one shared HTTPS connection pool, the user's bearer token on each call.

The dashboard holds no credential of its own for browsing: whatever RBAC forbids the token, the API server
refuses, and the dashboard shows the server's Status message.
"""

from __future__ import annotations

import ssl
import time
from typing import Any
from urllib.parse import quote

from ..client import ApiClient

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class ApiServer:
    """The API server the dashboard talks to; `as_user(token)` gives calls carrying that token."""

    def __init__(self, server_url: str, ca_file: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0) -> None:
        if ssl_context is None and server_url.startswith("https://"):
            ssl_context = ssl.create_default_context(cafile=ca_file)
        # one connection pool with no credential of its own: each call carries its user's token
        self.client = ApiClient(server_url, ssl_context, user_agent="kubernetes-dashboard/v1.33 (kubelite)",
                                timeout=timeout)
        self._discovery: dict[str, tuple[float, dict[str, Any]]] = {}

    async def close(self) -> None:
        await self.client.close()

    def as_user(self, token: str) -> UserApi:
        return UserApi(self, token)


class UserApi:
    def __init__(self, server: ApiServer, token: str) -> None:
        self.server = server
        self._auth = {"Authorization": f"Bearer {token}"}

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                      content_type: str = JSON, raw: bool = False) -> Any:
        headers = {**self._auth, "Accept": "*/*" if raw else JSON}
        return await self.server.client.request(method, path, params=params, body=body, content_type=content_type,
                                                raw=raw, headers=headers)

    def stream(self, path: str, params: dict[str, str] | None = None):
        """A long response (watch, log follow) as an aiohttp context manager; no total timeout, the caller
        stops reading when its browser goes away."""
        import aiohttp

        client = self.server.client
        return client.session.get(client.server_url + path, params=params, headers={**self._auth, "Accept": "*/*"},
                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

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
