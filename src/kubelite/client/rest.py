"""An asyncio Kubernetes API client: HTTPS keep-alive over aiohttp, verbs by `ResourceType`, watch streams.

Every component (controllers, scheduler, kubelet) talks to the API server through one `ApiClient`; it never
touches the store.  Objects go in and come out as plain dicts shaped like the Kubernetes JSON.

Conventions used by every method:
- `namespace` comes before `name`, as in `ResourceType.path(namespace, name)`; for cluster-scoped types pass
  `None` (or "") as the namespace.
- A non-2xx answer raises `ClientError` carrying the API's `Status` (code, reason, message, details).
- Network failures surface as `aiohttp.ClientError` / `OSError` / `TimeoutError`; nothing is retried here
  (informers and work queues do the retrying).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..api.errors import ApiError
from ..api.resources import ResourceType
from . import yamlfiles

JSON = "application/json"
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
DEFAULT_USER_AGENT = "kubelite-client/v1.33.0"

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


class ClientError(ApiError):
    """A failed API call: the server's `metav1.Status` as attributes (`code`, `reason`, `message`, `details`)."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None,
                 status: dict[str, Any] | None = None) -> None:
        super().__init__(code, reason, message, details)
        self.status_body = status

    @classmethod
    def from_status(cls, status: dict[str, Any], code: int | None = None) -> ClientError:
        c = int(status.get("code") or code or 500)
        return cls(c, status.get("reason") or _REASONS.get(c, "Unknown"), status.get("message") or "",
                   status.get("details"), status)

    @classmethod
    def from_body(cls, code: int, body: bytes) -> ClientError:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict) and decoded.get("kind") == "Status":
            return cls.from_status(decoded, code)
        text = body.decode("utf-8", "replace").strip()
        return cls(code, _REASONS.get(code, "Unknown"), text or f"the server responded with HTTP {code}")

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    @property
    def is_not_found(self) -> bool:
        return self.code == 404

    @property
    def is_already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def is_conflict(self) -> bool:
        """409 Conflict: a stale resourceVersion / failed precondition (not AlreadyExists)."""
        return self.code == 409 and self.reason != "AlreadyExists"

    @property
    def is_gone(self) -> bool:
        """410 Gone/Expired: a watch or continue token older than the compacted history; re-list."""
        return self.code == 410

    @property
    def is_invalid(self) -> bool:
        return self.code == 422

    @property
    def is_forbidden(self) -> bool:
        return self.code == 403

    @property
    def is_unauthorized(self) -> bool:
        return self.code == 401

    @property
    def is_bad_request(self) -> bool:
        return self.code == 400

    @property
    def is_timeout(self) -> bool:
        return self.code == 504 or self.reason == "Timeout"

    @property
    def is_too_many_requests(self) -> bool:
        return self.code == 429

    @property
    def is_server_error(self) -> bool:
        return self.code >= 500


def _ns_name(obj: dict[str, Any]) -> tuple[str | None, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or None, meta.get("name") or ""


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _load_kubeconfig(path: str, context: str | None) -> tuple[str, ssl.SSLContext | None, str | None]:
    cfg = yamlfiles.load(path) or {}
    base = os.path.dirname(os.path.abspath(path))
    ctx_name = context or cfg.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in cfg.get("contexts") or []}
    if ctx_name not in contexts:
        raise ValueError(f"kubeconfig {path}: context {ctx_name!r} not found")
    kctx = contexts[ctx_name]
    clusters = {c["name"]: c.get("cluster") or {} for c in cfg.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in cfg.get("users") or []}
    cluster = clusters.get(kctx.get("cluster"))
    if cluster is None:
        raise ValueError(f"kubeconfig {path}: cluster {kctx.get('cluster')!r} not found")
    user = users.get(kctx.get("user"), {})

    def material(data_key: str, file_key: str, where: dict[str, Any]) -> bytes | None:
        if where.get(data_key):
            return base64.b64decode(where[data_key])
        if where.get(file_key):
            p = where[file_key]
            with open(p if os.path.isabs(p) else os.path.join(base, p), "rb") as fh:
                return fh.read()
        return None

    server = cluster["server"].rstrip("/")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(user["tokenFile"]) as fh:
            token = fh.read().strip()
    sslctx: ssl.SSLContext | None = None
    if server.startswith("https://"):
        ca = material("certificate-authority-data", "certificate-authority", cluster)
        sslctx = ssl.create_default_context(cadata=ca.decode() if ca else None)
        if cluster.get("insecure-skip-tls-verify"):
            sslctx.check_hostname = False
            sslctx.verify_mode = ssl.CERT_NONE
        cert = material("client-certificate-data", "client-certificate", user)
        key = material("client-key-data", "client-key", user)
        if cert and key:
            load_client_cert(sslctx, cert, key)
    return server, sslctx, token


def load_client_cert(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load an in-memory client certificate into `ctx` (the ssl module only reads files: a private temp dir)."""
    with tempfile.TemporaryDirectory(prefix="kubelite-client-") as d:
        cert_path, key_path = os.path.join(d, "client.crt"), os.path.join(d, "client.key")
        for p, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        ctx.load_cert_chain(cert_path, key_path)


class ApiClient:
    """One keep-alive connection pool to one API server.

    Create it anywhere; the aiohttp session opens lazily on the first request (inside the running loop).
    Close it with `await client.close()` or use `async with ApiClient(...) as client`.
    """

    def __init__(self, server_url: str, ssl_context: ssl.SSLContext | None = None, token: str | None = None,
                 user_agent: str = DEFAULT_USER_AGENT, *, pool_size: int = 512, max_in_flight: int = 32,
                 timeout: float = 60.0) -> None:
        self.server_url = server_url.rstrip("/")
        self.ssl_context = ssl_context
        self.token = token
        self.user_agent = user_agent
        self.pool_size = pool_size
        # Requests other than watches wait for one of this many slots: a burst of hundreds of creates
        # then reuses a few keep-alive connections (no TLS handshake each) and does not crowd out other
        # clients at the server. Watches hold their connection for long and are not counted.
        self.max_in_flight = max_in_flight
        self._slots: asyncio.Semaphore | None = None
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"User-Agent": user_agent, "Accept": JSON}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_kubeconfig(cls, path: str, *, context: str | None = None, user_agent: str = DEFAULT_USER_AGENT,
                        **kwargs: Any) -> ApiClient:
        """Server, CA, client certificate/key or token from a kubeconfig file (embedded data or file paths)."""
        server, sslctx, token = _load_kubeconfig(path, context)
        return cls(server, sslctx, token=token, user_agent=user_agent, **kwargs)

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=0,
                                             ssl=self.ssl_context if self.ssl_context is not None else False,
                                             keepalive_timeout=60.0, enable_cleanup_closed=False)
            # no cookie jar: an API client keeps no cookies (and nothing one caller's request brings back may
            # travel with another's, when calls carry different users' tokens)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, json_serialize=lambda o: orjson.dumps(o).decode(),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=True, skip_auto_headers=())
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, content_type: str = JSON, raw: bool = False,
                      headers: dict[str, str] | None = None) -> Any:
        """One API call; returns the decoded JSON body (bytes if `raw`). Raises ClientError on non-2xx.

        `headers` are added to this call's (e.g. another user's Authorization over this client's pool)."""
        headers = dict(headers) if headers else None
        data = None
        if body is not None:
            data = body if isinstance(body, bytes | str) else orjson.dumps(body)
            headers = {**(headers or {}), "Content-Type": content_type}
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        async with self._slots, self.session.request(method, self.server_url + path, params=params, data=data,
                                                     headers=headers) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise ClientError.from_body(resp.status, payload)
        if raw:
            return payload
        return orjson.loads(payload) if payload else None

    # -- verbs ----------------------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str, *,
                  resource_version: str | None = None, subresource: str | None = None) -> dict[str, Any]:
        path = rt.path(namespace, name)
        if subresource:
            path += "/" + subresource
        params = {"resourceVersion": resource_version} if resource_version is not None else None
        return await self.request("GET", path, params=params)

    async def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None, resource_version_match: str | None = None,
                   paginate: bool = True) -> dict[str, Any]:
        """A `<Kind>List` dict. With `limit` and `paginate` (default) every page is fetched and the items are
        joined (one consistent snapshot: later pages are served at the first page's revision); with
        `paginate=False` one page comes back and `metadata.continue` says where the next one starts."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if resource_version_match:
            params["resourceVersionMatch"] = resource_version_match
        if continue_:
            params["continue"] = continue_
        path = rt.path(namespace)
        result = await self.request("GET", path, params=params)
        if not paginate:
            return result
        while (result.get("metadata") or {}).get("continue"):
            params.pop("resourceVersion", None)
            params.pop("resourceVersionMatch", None)
            params["continue"] = result["metadata"]["continue"]
            page = await self.request("GET", path, params=params)
            result["items"].extend(page.get("items") or [])
            result["metadata"] = page.get("metadata") or {}
        return result

    async def create(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None = None, *,
                     field_manager: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """POST; the namespace defaults to obj.metadata.namespace. Returns the created object."""
        ns = namespace if namespace is not None else _ns_name(obj)[0]
        return await self.request("POST", rt.path(ns), params=self._write_params(field_manager, dry_run), body=obj)

    async def update(self, rt: ResourceType, obj: dict[str, Any], *, field_manager: str | None = None,
                     dry_run: bool = False, subresource: str | None = None) -> dict[str, Any]:
        """PUT the whole object; metadata.resourceVersion (if set) makes it conditional → 409 on a stale one."""
        ns, name = _ns_name(obj)
        path = rt.path(ns, name)
        if subresource:
            path += "/" + subresource
        return await self.request("PUT", path, params=self._write_params(field_manager, dry_run), body=obj)

    async def update_status(self, rt: ResourceType, obj: dict[str, Any], *,
                            field_manager: str | None = None) -> dict[str, Any]:
        """PUT …/status: only .status changes (and metadata.resourceVersion is checked as for update)."""
        return await self.update(rt, obj, field_manager=field_manager, subresource="status")

    async def patch(self, rt: ResourceType, namespace: str | None, name: str, patch: Any, *,
                    patch_type: str = "merge", field_manager: str | None = None, force: bool | None = None,
                    subresource: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """PATCH with `patch_type` in merge | strategic | json | apply (server-side apply needs field_manager;
        `force=True` takes conflicting fields). `patch` is a dict/list (sent as JSON) or raw bytes/str."""
        try:
            content_type = PATCH_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"patch_type must be one of {sorted(PATCH_TYPES)}") from None
        path = rt.path(namespace, name)
        if subresource:
            path += "/" + subresource
        params = self._write_params(field_manager, dry_run)
        if force is not None:
            params["force"] = _bool(force)
        return await self.request("PATCH", path, params=params, body=patch, content_type=content_type)

    async def delete(self, rt: ResourceType, namespace: str | None, name: str, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """DELETE with DeleteOptions. `propagation_policy`: Orphan | Background | Foreground;
        `preconditions`: {"uid": …, "resourceVersion": …}. Returns the API's answer: the object (still there
        with deletionTimestamp when finalizers or graceful deletion hold it) or a Success Status."""
        opts: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = preconditions
        if dry_run:
            opts["dryRun"] = ["All"]
        return await self.request("DELETE", rt.path(namespace, name), body=opts)

    async def delete_collection(self, rt: ResourceType, namespace: str | None = None, *,
                                label_selector: str | None = None, field_selector: str | None = None,
                                propagation_policy: str | None = None) -> dict[str, Any]:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        return await self.request("DELETE", rt.path(namespace), params=params, body=body)

    def watch(self, rt: ResourceType, namespace: str | None = None, *, name: str | None = None,
              resource_version: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, allow_watch_bookmarks: bool = True,
              timeout_seconds: int | None = None, send_initial_events: bool = False) -> WatchStream:
        """A watch stream: `async for type, obj in client.watch(...)` yields ("ADDED" | "MODIFIED" | "DELETED"
        | "BOOKMARK", object). An ERROR event raises ClientError (410 → `is_gone`: re-list). The stream ends
        when the server closes it (timeoutSeconds). Use `async with client.watch(...) as w:` (or `await
        w.close()`) when leaving the loop early so the connection is released at once."""
        params: dict[str, str] = {"watch": "true"}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        fs = field_selector
        if name:
            fs = f"metadata.name={name}" + (f",{fs}" if fs else "")
        if fs:
            params["fieldSelector"] = fs
        if allow_watch_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
        if send_initial_events:
            params["sendInitialEvents"] = "true"
            params["resourceVersionMatch"] = "NotOlderThan"
        total = None if timeout_seconds is None else timeout_seconds + 30.0
        return WatchStream(self, rt.path(namespace), params, total)

    # -- subresources ---------------------------------------------------------------------------------

    async def bind(self, namespace: str, pod_name: str, node_name: str, *, uid: str | None = None,
                   resource_version: str | None = None) -> dict[str, Any]:
        """POST pods/<name>/binding (what the scheduler does): sets spec.nodeName once."""
        meta: dict[str, Any] = {"name": pod_name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        if resource_version:
            meta["resourceVersion"] = resource_version
        body = {"kind": "Binding", "apiVersion": "v1", "metadata": meta,
                "target": {"kind": "Node", "apiVersion": "v1", "name": node_name}}
        return await self.request("POST", f"/api/v1/namespaces/{namespace}/pods/{pod_name}/binding", body=body)

    async def get_scale(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        return await self.get(rt, namespace, name, subresource="scale")

    async def set_scale(self, rt: ResourceType, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Merge-patch …/scale spec.replicas; returns the autoscaling/v1 Scale."""
        return await self.patch(rt, namespace, name, {"spec": {"replicas": replicas}}, subresource="scale")

    async def create_subresource(self, rt: ResourceType, namespace: str | None, name: str, subresource: str,
                                 body: dict[str, Any]) -> dict[str, Any]:
        """POST …/<name>/<subresource> (eviction, token, …)."""
        return await self.request("POST", rt.path(namespace, name) + "/" + subresource, body=body)

    @staticmethod
    def _write_params(field_manager: str | None, dry_run: bool) -> dict[str, str]:
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if dry_run:
            params["dryRun"] = "All"
        return params


class WatchStream:
    """Async iterator of (type, object) over one chunked NDJSON watch response; see `ApiClient.watch`."""

    def __init__(self, client: ApiClient, path: str, params: dict[str, str], total: float | None) -> None:
        self._client = client
        self._path = path
        self._params = params
        self._total = total
        self._resp: aiohttp.ClientResponse | None = None
        self._lines: list[bytes] = []
        self._pos = 0
        self._pending = b""
        self._done = False

    async def _open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._total, sock_connect=self._client.timeout)
        resp = await self._client.session.get(self._client.server_url + self._path, params=self._params,
                                              timeout=timeout)
        if resp.status != 200:
            try:
                body = await resp.read()
            finally:
                resp.release()
            raise ClientError.from_body(resp.status, body)
        self._resp = resp

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        while True:
            if self._pos < len(self._lines):
                line = self._lines[self._pos]
                self._pos += 1
                if not line.strip():
                    continue
                event = orjson.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    await self.close()
                    raise ClientError.from_status(obj)
                return kind, obj
            if self._done:
                await self.close()
                raise StopAsyncIteration
            if self._resp is None:
                await self._open()
            assert self._resp is not None
            chunk = await self._resp.content.readany()
            if not chunk:
                self._done = True
                self._lines, self._pos = ([self._pending] if self._pending.strip() else []), 0
                self._pending = b""
                continue
            data = self._pending + chunk if self._pending else chunk
            parts = data.split(b"\n")
            self._pending = parts.pop()
            self._lines, self._pos = parts, 0

    async def close(self) -> None:
        self._done = True
        self._lines, self._pos = [], 0
        if self._resp is not None:
            if self._resp.content.at_eof():
                self._resp.release()  # the connection goes back to the pool
            else:
                self._resp.close()
            self._resp = None

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if self._resp is not None:
            with contextlib.suppress(Exception):
                self._resp.close()


async def iterate_pages(client: ApiClient, rt: ResourceType, namespace: str | None = None, *,
                        page_size: int = 500, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """One `<Kind>List` page at a time (memory-bounded listing of big collections)."""
    token: str | None = None
    while True:
        page = await client.list(rt, namespace, limit=page_size, continue_=token, paginate=False, **kwargs)
        yield page
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        kwargs.pop("resource_version", None)
        kwargs.pop("resource_version_match", None)
