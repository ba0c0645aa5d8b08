"""The dashboard as a `kubelite up` add-on: its namespace, its NodePort Service, and the HTTPS server.

How the NodePort reaches the server: the server always listens itself on the node port (default 31213) on
the API server's bind address, and the selector-less Service `kubernetes-dashboard/kubernetes-dashboard`
(type NodePort, port 443, nodePort = targetPort = that port) has an Endpoints object pointing at this
host's address and that port, as the API server does for the `kubernetes` Service. So:
- with simulated nodes (no proxy), `https://<bind address>:<nodePort>/` is the server itself;
- with a real node, the proxy's NodePort rules forward `<any node address>:<nodePort>` (and the Service's
  cluster IP, port 443, from pods) to that endpoint: the same listener.
The Service is what `kubectl -n kubernetes-dashboard get svc` shows (`443:31213/TCP`), as in the article.
When the wanted port is taken (by another Service or another process), the API server allocates another
node port and the server listens there; the chosen URL is printed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api.netaddr import advertised
from ..client import ApiClient, ClientError
from .server import build_app
from .userapi import ApiServer, api_path

log = logging.getLogger("kubelite.dashboard")

NAMESPACE = "kubernetes-dashboard"
SERVICE = "kubernetes-dashboard"
DEFAULT_NODE_PORT = 31213
SERVICE_PORT = 443
LABELS = {"k8s-app": "kubernetes-dashboard", "app.kubernetes.io/managed-by": "kubelite"}


@dataclass
class DashboardConfig:
    api_server: str  # the API server's URL (what the user's token is sent to)
    ca_file: str  # the cluster CA, to verify the API server
    cert_file: str  # the dashboard's serving certificate (from the cluster CA) and key
    key_file: str
    listen_host: str = "127.0.0.1"
    node_port: int = DEFAULT_NODE_PORT  # 0: whichever node port the API server allocates
    token_ttl: int = 900  # seconds a login lasts after its last use (upstream's --token-ttl); 0: no limit


def advertise_address(listen_host: str) -> str:
    """The Endpoints address: the bind address, or this host's outbound address when bound to all."""
    return advertised(listen_host)


def bind(host: str, port: int) -> socket.socket | None:
    """A listening socket on host:port, or None when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        return sock
    except OSError:
        sock.close()
        return None


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _service(node_port: int | None) -> dict[str, Any]:
    port: dict[str, Any] = {"port": SERVICE_PORT, "protocol": "TCP", "targetPort": node_port or 8443}
    if node_port:
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"type": "NodePort", "ports": [port]}}


def _node_port(svc: dict[str, Any] | None) -> int:
    if not svc or (svc.get("spec") or {}).get("type") not in ("NodePort", "LoadBalancer"):
        return 0
    return int(((svc["spec"].get("ports") or [{}])[0]).get("nodePort") or 0)


async def _get(client: ApiClient, path: str) -> dict[str, Any] | None:
    try:
        return await client.request("GET", path)
    except ClientError as e:
        if e.is_not_found:
            return None
        raise


async def ensure_namespace(client: ApiClient) -> None:
    try:
        await client.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"kubernetes.io/metadata.name": NAMESPACE}}})
    except ClientError as e:
        if not e.is_already_exists:
            raise


async def claim_node_port(client: ApiClient, host: str, wanted: int, attempts: int = 5) -> tuple[socket.socket, int]:
    """The Service with a node port this process could bind on `host`, and the bound socket."""
    svc_path = api_path("", "v1", "services", NAMESPACE, SERVICE)
    existing = await _get(client, svc_path)
    current = _node_port(existing)
    if existing is not None and current and wanted in (0, current):
        sock = bind(host, current)
        if sock is not None:
            if (existing["spec"]["ports"][0].get("targetPort")) != current:
                await client.request("PATCH", svc_path, body={"spec": {"ports": _service(current)["spec"]["ports"]}},
                                     content_type="application/merge-patch+json")
            return sock, current
    if existing is not None:
        await client.request("DELETE", svc_path)
    for attempt in range(attempts):
        ask = wanted if attempt == 0 and wanted else None
        sock = bind(host, ask) if ask else None
        if ask and sock is None:
            log.warning("dashboard: port %s is in use on %s; letting the API server pick a node port", ask, host)
            ask = None
        try:
            created = await client.request("POST", api_path("", "v1", "services", NAMESPACE), body=_service(ask))
        except ClientError as e:
            if sock is not None:
                sock.close()
            if ask and e.code == 422:
                log.warning("dashboard: node port %s: %s; letting the API server pick one", ask, e.message)
                continue
            raise
        port = _node_port(created)
        if sock is None:
            sock = bind(host, port)
        if sock is not None:
            if not ask:
                await client.request("PATCH", svc_path, body={"spec": {"ports": _service(port)["spec"]["ports"]}},
                                     content_type="application/merge-patch+json")
            return sock, port
        await client.request("DELETE", svc_path)  # allocated, but something else here holds it
    raise RuntimeError(f"no node port for the dashboard could be bound on {host}")


async def ensure_endpoints(client: ApiClient, address: str, port: int) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": dict(LABELS)},
                            "subsets": [{"addresses": [{"ip": address}], "ports": [{"port": port, "protocol": "TCP"}]}]}
    path = api_path("", "v1", "endpoints", NAMESPACE, SERVICE)
    existing = await _get(client, path)
    if existing is None:
        await client.request("POST", api_path("", "v1", "endpoints", NAMESPACE), body=body)
    elif existing.get("subsets") != body["subsets"]:
        body["metadata"]["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
        await client.request("PUT", path, body=body)


async def run_dashboard(client: ApiClient, stop: asyncio.Event, config: DashboardConfig) -> None:
    """Install the Service (with `client`, an add-on identity) and serve the dashboard until `stop`.

    `client` is used only for that installation; every request a user makes goes with the user's token."""
    host = config.listen_host or "127.0.0.1"
    await ensure_namespace(client)
    sock, port = await claim_node_port(client, host, config.node_port)
    try:
        await ensure_endpoints(client, advertise_address(host), port)
        app = build_app(ApiServer(config.api_server, ca_file=config.ca_file), config.token_ttl)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    try:
        site = web.SockSite(runner, sock, ssl_context=server_ssl_context(config.cert_file, config.key_file))
        await site.start()
        shown = advertise_address(host) if host in ("0.0.0.0", "::") else host
        print(f"kubelite: dashboard at https://{shown}:{port}/ (Service {NAMESPACE}/{SERVICE}, NodePort {port}; "
              f"sign in with a bearer token)", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
