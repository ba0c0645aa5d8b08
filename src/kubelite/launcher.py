"""Running kubelite's components next to the API server in one process (`kubelite up`), or alone.

Each component talks to the API server over HTTPS with its own identity from the cluster CA, exactly as it
would from another machine; sharing a process only saves memory and start-up time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .client import ApiClient, SharedInformerFactory
from .pki.components import CONTROLLER_MANAGER, SCHEDULER, write_component_kubeconfig
from .profiles.node import logged_task

log = logging.getLogger("kubelite.launcher")

# Simulated nodes play many kubelets from one process, as kwok does, so no single node identity fits them:
# they act as a cluster administrator. Real node agents use system:node:<name>.
SIMULATED_NODES = ("kubelite:simulated-nodes", ("system:masters",))
# The built-in network add-ons (cluster DNS, service load balancer, ingress) read Secrets and write status
# across namespaces, as the add-ons they replace do with cluster-wide roles.
NETWORK_ADDONS = ("kubelite:network-addons", ("system:masters",))
# The components of one process read through one set of informers (one list, watch and cache per resource
# instead of one per component: most of the process's memory with many pods); each still writes as itself.
# The shared reader lists and watches everything any of them reads.
COMPONENT_INFORMERS = ("kubelite:component-informers", ())  # reads only (rbac_bootstrap.py)
# The dashboard add-on installs its namespace, Service and Endpoints with this identity; what users do in the
# dashboard goes with their own bearer tokens.
DASHBOARD_INSTALLER = ("kubelite:dashboard-installer", ("system:masters",))


@dataclass
class ComponentSettings:
    controllers: bool = True
    scheduler: bool = True
    simulated_nodes: int = 0  # extra simulated nodes, next to the local node
    node_prefix: str = "sim-node-"
    controller_overrides: dict = field(default_factory=dict)
    scheduler_overrides: dict = field(default_factory=dict)
    simulated_overrides: dict = field(default_factory=dict)
    node_runtime: str = "auto"  # the local node: auto | runc | simulated | none
    node_name: str = ""  # default: the host name
    kubelet_port: int = 10250
    registries: str | None = None  # k3s registries.yaml for the local node
    proxy: bool = True  # kube-proxy (iptables) next to a real node
    node_lease_duration_seconds: int = 40
    cni_conf_dir: str = "/etc/cni/net.d"  # the local node's CNI configuration (with flannel_backend "none")  # the local node's Lease (renewed every quarter of it)
    node_ip: str = ""  # the local node's InternalIP ("" = the address that routes to the API server)
    flannel_backend: str = "vxlan"  # the pod network between nodes: vxlan | host-gw | none
    cluster_cidr: str = "10.244.0.0/16"  # the pods' range (the nodes' podCIDRs come from it)
    cleanup_on_exit: bool = False  # stop the node's containers, remove pod networks and the proxy's rules
    dns: bool = True
    servicelb: bool = True
    ingress: bool = True
    listen_host: str = "127.0.0.1"  # where DNS and ingress listen (the API server's bind address)
    cluster_domain: str = "cluster.local"  # kubeadm's dnsDomain, the kubelet's --cluster-domain
    dns_service_ip: str = "10.96.0.10"  # kube-dns's ClusterIP, the kubelet's --cluster-dns
    dns_address: str = ""  # the address in kube-dns's endpoints ("" = listen_host, or the node IP for 0.0.0.0)
    dns_port: int = 53
    ingress_http_port: int = 80
    ingress_https_port: int = 443
    # the local-path provisioner's base directory (k3s's --default-local-storage-path); "" = its default
    default_local_storage_path: str = ""
    container_log_max_size: str = "10Mi"  # the local node's containerLogMaxSize
    container_log_max_files: int = 5
    dashboard: bool = True  # the web dashboard (tutorial B) on a NodePort over HTTPS
    dashboard_port: int = 31213  # its node port; 0 = any free one
    dashboard_token_ttl: int = 900  # seconds a dashboard login lasts after its last use; 0 = no limit
    kubelet_args: list[str] = field(default_factory=list)  # the local node's --kubelet-arg KEY=VALUE


@dataclass
class Components:
    stop: asyncio.Event
    tasks: dict[str, asyncio.Task]
    clients: list[ApiClient]
    informers: SharedInformerFactory | None = None  # shared by the components; stopped after them

    def health(self) -> dict[str, str]:
        """ok / failed: <error> / stopped, per component."""
        result = {}
        for name, task in self.tasks.items():
            if not task.done():
                result[name] = "ok"
            elif task.cancelled():
                result[name] = "stopped"
            elif task.exception() is not None:
                result[name] = f"failed: {task.exception()}"
            else:
                result[name] = "stopped"
        return result

    async def shutdown(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks.values(), timeout=timeout)
            for task in pending:
                task.cancel()
            for task in self.tasks.values():
                with contextlib.suppress(BaseException):
                    await task
        if self.informers is not None:
            await self.informers.stop()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()


def _client(data_dir: str, server_url: str, name: str, identity: tuple[str, tuple[str, ...]]) -> ApiClient:
    cn, orgs = identity
    path = write_component_kubeconfig(data_dir, name, cn, list(orgs), server=server_url)
    return ApiClient.from_kubeconfig(path, user_agent=f"{name}/v1.33.1 (linux) kubelite")


def kubelet_serving_cert(data_dir: str, node_name: str) -> tuple[str, str]:
    """The local kubelet's serving certificate, from the cluster CA, so the API server verifies whom it
    sends exec and log traffic to (--kubelet-certificate-authority)."""
    from .pki.ca import ensure_cluster_pki, host_identity
    from .pki.certs import write_atomic

    pki = ensure_cluster_pki(data_dir)
    names, addresses = host_identity()
    cert, key = pki.issue_server_cert(f"system:node:{node_name}", [node_name, "localhost", *sorted(names)],
                                      ["127.0.0.1", *sorted(str(a) for a in addresses)])
    cert_file = os.path.join(data_dir, "pki", "kubelet-serving.crt")
    key_file = os.path.join(data_dir, "pki", "kubelet-serving.key")
    write_atomic(key_file, key, 0o600)
    write_atomic(cert_file, cert, 0o644)
    return cert_file, key_file


def dashboard_serving_cert(data_dir: str) -> tuple[str, str]:
    """The dashboard's HTTPS certificate from the cluster CA, for this node's names and addresses."""
    from .pki.ca import ensure_cluster_pki, host_identity
    from .pki.certs import write_atomic

    pki = ensure_cluster_pki(data_dir)
    names, addresses = host_identity()
    cert, key = pki.issue_server_cert("kubernetes-dashboard", [
        "localhost", "kubernetes-dashboard", "kubernetes-dashboard.kubernetes-dashboard",
        "kubernetes-dashboard.kubernetes-dashboard.svc", *sorted(names)],
        ["127.0.0.1", *sorted(str(a) for a in addresses)])
    cert_file = os.path.join(data_dir, "pki", "dashboard.crt")
    key_file = os.path.join(data_dir, "pki", "dashboard.key")
    write_atomic(key_file, key, 0o600)
    write_atomic(cert_file, cert, 0o644)
    return cert_file, key_file


def dns_endpoint_address(settings: ComponentSettings) -> str:
    """Where kube-dns's endpoints point: a real address every node's proxy can DNAT to, never 0.0.0.0."""
    from .api.netaddr import advertised

    if settings.dns_address:
        return settings.dns_address
    if settings.listen_host in ("0.0.0.0", "::"):
        return settings.node_ip or advertised(settings.listen_host)
    return settings.listen_host


@dataclass(frozen=True)
class Component:
    """One component as a process runs it: its name (its task's, and what `kubelite status` shows), the client
    identity it talks to the API server with — components naming the same `kubeconfig` share one client —, and
    `run(ctx)`, which returns when `ctx.stop` is set. A component that brings its own credentials (a node)
    has no identity."""

    name: str
    run: Callable[[ComponentContext], Awaitable[None]]
    kubeconfig: str = ""  # <data-dir>/<kubeconfig>.kubeconfig, issued for `identity`
    identity: tuple[str, tuple[str, ...]] | None = None


@dataclass
class ComponentContext:
    data_dir: str
    server_url: str
    settings: ComponentSettings
    stop: asyncio.Event
    informers: SharedInformerFactory  # the process's shared reader (each component takes a scoped view)
    client: ApiClient | None = None  # the component's own identity


def _controller_manager(ctx: ComponentContext) -> Awaitable[None]:
    from .controllers.manager import ControllerManagerConfig, run_controller_manager

    settings = ctx.settings
    overrides = dict(settings.controller_overrides)
    if settings.default_local_storage_path:
        extra = dict(overrides.get("extra") or {})
        local_path = {"storage_path": settings.default_local_storage_path}
        if settings.node_runtime != "none":  # this machine's node: its volumes' directories go here
            local_path["local_node"] = local_node_name(settings)
        extra.setdefault("local-path-provisioner", local_path)
        overrides["extra"] = extra
    config = ControllerManagerConfig.for_data_dir(ctx.data_dir, **overrides)
    return run_controller_manager(ctx.client, stop=ctx.stop, config=config, informers=ctx.informers)


def _scheduler(ctx: ComponentContext) -> Awaitable[None]:
    from .scheduler import SchedulerConfig, run_scheduler

    return run_scheduler(ctx.client, stop=ctx.stop, config=SchedulerConfig(**ctx.settings.scheduler_overrides),
                         informers=ctx.informers.scoped())


async def _real_node(ctx: ComponentContext) -> None:
    """This machine's node (profiles/node.py) with its own identity, system:node:<name>."""
    from .pki.components import node_identity
    from .profiles.node import NodeSettings, run_node

    settings, loop = ctx.settings, asyncio.get_running_loop()
    name = local_node_name(settings)
    cn, orgs = node_identity(name)
    path = await loop.run_in_executor(None, lambda: write_component_kubeconfig(
        ctx.data_dir, "kubelet", cn, list(orgs), server=ctx.server_url))
    cert_file, key_file = await loop.run_in_executor(None, kubelet_serving_cert, ctx.data_dir, name)
    node = NodeSettings(kubeconfig=path, name=name, data_dir=os.path.join(ctx.data_dir, "agent"), runtime="runc",
                        node_ip=settings.node_ip, kubelet_port=settings.kubelet_port, registries=settings.registries,
                        tls_cert_file=cert_file, tls_private_key_file=key_file,
                        container_log_max_size=settings.container_log_max_size,
                        container_log_max_files=settings.container_log_max_files, proxy=settings.proxy,
                        flannel_backend=settings.flannel_backend, cluster_cidr=settings.cluster_cidr,
                        cluster_dns=settings.dns_service_ip, cluster_domain=settings.cluster_domain,
                        lease_duration_seconds=settings.node_lease_duration_seconds,
                        cni_conf_dir=settings.cni_conf_dir, cleanup_on_exit=settings.cleanup_on_exit,
                        kubelet_args=list(settings.kubelet_args))
    await run_node(node, ctx.stop, informers=ctx.informers.scoped())


def _simulated_node(ctx: ComponentContext) -> Awaitable[None]:
    from .kubelet.agent import run_simulated_nodes
    from .kubelet.simulated import SimulatedConfig

    name, settings = local_node_name(ctx.settings), ctx.settings
    return run_simulated_nodes(ctx.client, names=[name], stop=ctx.stop, informers=ctx.informers.scoped(),
                               config=SimulatedConfig(lease_duration_seconds=settings.node_lease_duration_seconds),
                               node_ips={name: settings.node_ip})


def _simulated_nodes(ctx: ComponentContext) -> Awaitable[None]:
    from .kubelet.agent import run_simulated_nodes
    from .kubelet.simulated import SimulatedConfig

    settings = ctx.settings
    return run_simulated_nodes(ctx.client, count=settings.simulated_nodes, stop=ctx.stop, prefix=settings.node_prefix,
                               config=SimulatedConfig(**settings.simulated_overrides), informers=ctx.informers.scoped())


def _dns(ctx: ComponentContext) -> Awaitable[None]:
    from .proxy.dns import DNSConfig, run_dns

    settings = ctx.settings
    return run_dns(ctx.client, stop=ctx.stop, informers=ctx.informers.scoped(), config=DNSConfig(
        listen_host=settings.listen_host, port=settings.dns_port, cluster_domain=settings.cluster_domain,
        service_ip=settings.dns_service_ip, endpoint_address=dns_endpoint_address(settings)))


def _servicelb(ctx: ComponentContext) -> Awaitable[None]:
    from .proxy.servicelb import run_servicelb

    return run_servicelb(ctx.client, stop=ctx.stop, informers=ctx.informers.scoped())


def _ingress(ctx: ComponentContext) -> Awaitable[None]:
    from .proxy.ingress import IngressConfig, run_ingress

    settings = ctx.settings
    return run_ingress(ctx.client, stop=ctx.stop, informers=ctx.informers.scoped(), config=IngressConfig(
        listen_host=settings.listen_host, http_port=settings.ingress_http_port or None,
        https_port=settings.ingress_https_port or None))


async def _dashboard(ctx: ComponentContext) -> None:
    from .dashboard import DashboardConfig, run_dashboard

    settings = ctx.settings
    cert_file, key_file = await asyncio.get_running_loop().run_in_executor(None, dashboard_serving_cert, ctx.data_dir)
    await run_dashboard(ctx.client, stop=ctx.stop, config=DashboardConfig(
        api_server=ctx.server_url, ca_file=os.path.join(ctx.data_dir, "pki", "ca.crt"), cert_file=cert_file,
        key_file=key_file, listen_host=settings.listen_host, node_port=settings.dashboard_port,
        token_ttl=settings.dashboard_token_ttl))


def local_node_name(settings: ComponentSettings) -> str:
    return settings.node_name or socket.gethostname().lower()


def local_node_kind(settings: ComponentSettings) -> str:
    """runc | simulated | none for this machine's node; `auto` resolved (saying why it is simulated)."""
    kind = settings.node_runtime
    if kind == "auto":
        from .doctor import real_node_possible

        possible, missing = real_node_possible()
        kind = "runc" if possible else "simulated"
        if not possible:
            print(f"kubelite: no real containers here (missing: {', '.join(missing)}): node "
                  f"{local_node_name(settings)} is simulated. `kubelite doctor --fix` installs what is missing.",
                  file=sys.stderr)
    return kind


def control_plane_components(settings: ComponentSettings) -> list[Component]:
    """What `up` and `init` run next to the API server, as the settings choose."""
    chosen: list[Component] = []
    if settings.controllers:
        chosen.append(Component("controller-manager", _controller_manager, "controller-manager", CONTROLLER_MANAGER))
    if settings.scheduler:
        chosen.append(Component("scheduler", _scheduler, "scheduler", SCHEDULER))
    kind = local_node_kind(settings)
    if kind == "runc":
        chosen.append(Component("kubelet", _real_node))
    elif kind == "simulated":
        chosen.append(Component("node", _simulated_node, "local-node", SIMULATED_NODES))
    if settings.simulated_nodes > 0:
        chosen.append(Component("simulated-nodes", _simulated_nodes, "simulated-nodes", SIMULATED_NODES))
    for name, run, wanted in (("dns", _dns, settings.dns), ("servicelb", _servicelb, settings.servicelb),
                              ("ingress", _ingress, settings.ingress)):
        if wanted:
            chosen.append(Component(name, run, "network-addons", NETWORK_ADDONS))
    if settings.dashboard:
        chosen.append(Component("dashboard", _dashboard, "dashboard-installer", DASHBOARD_INSTALLER))
    return chosen


async def run_components(data_dir: str, server_url: str, settings: ComponentSettings,
                         components: list[Component]) -> Components:
    """Start `components` in this process: one shared informer reader, one client per identity."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reader = await loop.run_in_executor(None, _client, data_dir, server_url, "component-informers",
                                        COMPONENT_INFORMERS)
    clients: dict[str, ApiClient] = {"component-informers": reader}
    shared = SharedInformerFactory(reader)
    shared.start()  # each informer starts when a component first asks for it
    tasks: dict[str, asyncio.Task] = {}
    for component in components:
        client = None
        if component.identity is not None:
            client = clients.get(component.kubeconfig)
            if client is None:
                client = clients[component.kubeconfig] = await loop.run_in_executor(
                    None, _client, data_dir, server_url, component.kubeconfig, component.identity)
        ctx = ComponentContext(data_dir, server_url, settings, stop, shared, client)
        tasks[component.name] = logged_task(component.name, component.run(ctx))
    return Components(stop, tasks, list(clients.values()), shared)


async def start_components(data_dir: str, server_url: str, settings: ComponentSettings) -> Components:
    return await run_components(data_dir, server_url, settings, control_plane_components(settings))
