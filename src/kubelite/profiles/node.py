"""One node, wherever it runs: the kubelet, kube-proxy and the pod-network agent, as one unit.

`kubelite up` and `init` run it next to the control plane, `join` and `agent` run it alone; all of them build a
`NodeSettings` and call `run_node`, so a joined machine gets exactly what the control plane's node gets.

    await run_node(NodeSettings(kubeconfig=".../kubelet.kubeconfig", name="node01", data_dir=".../agent"), stop)

The node talks to the API server with its own credentials (`system:node:<name>`): the kubelet's as upstream,
and kube-proxy's and the pod network's reads through the `kubelite:node-network` role (rbac_bootstrap.py),
which gives nodes what kubeadm's kube-proxy DaemonSet has through its ServiceAccount.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ..client import ApiClient, SharedInformerFactory

log = logging.getLogger("kubelite.node")

FLANNEL_BACKENDS = ("vxlan", "host-gw", "none")


@dataclass
class NodeSettings:
    kubeconfig: str  # the node's own credentials
    name: str = ""  # default: the host name
    data_dir: str = "/var/lib/kubelite/agent"  # images, pods, logs, CNI state
    runtime: str = "auto"  # auto | runc | crun | simulated
    node_ip: str = ""  # InternalIP; default: the address that routes to the API server
    kubelet_address: str = "0.0.0.0"
    kubelet_port: int = 10250
    registries: str | None = None
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    container_log_max_size: str = "10Mi"
    container_log_max_files: int = 5
    proxy: bool = True  # kube-proxy next to a real kubelet
    flannel_backend: str = "vxlan"  # the pod network between nodes: vxlan | host-gw | none (a CNI of your own)
    cluster_cidr: str = "10.244.0.0/16"
    # with flannel_backend "none": the CNI configuration a network add-on installs (Calico, Cilium, …); the
    # built-in bridge when it holds none
    cni_conf_dir: str = "/etc/cni/net.d"
    cluster_dns: str = "10.96.0.10"  # the kubelet's --cluster-dns: the nameserver in pods' resolv.conf
    cluster_domain: str = "cluster.local"  # the kubelet's --cluster-domain
    cleanup_on_exit: bool = False  # stop the containers, remove pod networks, rules and devices when stopping
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    lease_duration_seconds: int = 40
    # a node-local load balancer over every API server (as k3s's agent on 127.0.0.1:6444): the node's parts talk
    # to it and it follows the `kubernetes` endpoints, so the node keeps working when one API server dies; 0: off
    apiserver_lb_port: int = 0
    kubelet_args: list[str] = field(default_factory=list)  # --kubelet-arg KEY=VALUE (kubelet/kubelet_args.py)


def node_name(settings: NodeSettings) -> str:
    return settings.name or socket.gethostname().strip().lower().split(".", 1)[0] or "node"


def _agent_config(settings: NodeSettings, node_ip: str, pod_mtu: int = 0):
    from ..kubelet.runtime.node_agent import AgentConfig

    return AgentConfig(kubeconfig=settings.kubeconfig, node_name=node_name(settings), data_dir=settings.data_dir,
                       runtime=settings.runtime, node_ip=node_ip, kubelet_address=settings.kubelet_address,
                       kubelet_port=settings.kubelet_port, registries=settings.registries,
                       labels=dict(settings.labels), taints=list(settings.taints),
                       cluster_dns=[settings.cluster_dns], cluster_domain=settings.cluster_domain,
                       lease_duration_seconds=settings.lease_duration_seconds,
                       stop_containers_on_exit=settings.cleanup_on_exit, tls_cert_file=settings.tls_cert_file,
                       tls_private_key_file=settings.tls_private_key_file,
                       container_log_max_size=settings.container_log_max_size,
                       container_log_max_files=settings.container_log_max_files,
                       pod_network_masquerade=settings.flannel_backend == "none", pod_mtu=pod_mtu,
                       cni_conf_dir=settings.cni_conf_dir if settings.flannel_backend == "none" else None,
                       kubelet_args=list(settings.kubelet_args))


def resolve_node_ip(settings: NodeSettings, server_url: str) -> str:
    from ..kubelet.runtime.node_agent import _route_ip

    return settings.node_ip or _route_ip(server_url)


async def run_node(settings: NodeSettings, stop: asyncio.Event, *,
                   informers: SharedInformerFactory | None = None) -> None:
    """Run the node until `stop` is set. `informers` (optional) is a shared reader the proxy may use instead of
    its own watches (kubelite up's components share one)."""
    from ..kubelet.runtime.node_agent import choose_runtime, start_agent

    kind = choose_runtime(settings.runtime)
    client = ApiClient.from_kubeconfig(settings.kubeconfig, user_agent="kube-proxy/v1.33.1 (linux) kubelite")
    node_ip = resolve_node_ip(settings, client.server_url)
    balancer = None
    if settings.apiserver_lb_port:
        from ..client.loadbalancer import LoadBalancer

        try:
            balancer = await LoadBalancer([client.server_url], port=settings.apiserver_lb_port).start()
        except OSError as e:  # e.g. another node of this network namespace holds the port
            log.warning("no API server load balancer on 127.0.0.1:%d (%s): talking to %s directly",
                        settings.apiserver_lb_port, e.strerror or e, client.server_url)
        else:
            client.server_url = balancer.url
            balancer.follow_endpoints(client)
    flannel = None
    pod_mtu = 0
    if kind != "simulated" and settings.flannel_backend != "none":
        from ..flannel import FlannelConfig, FlannelNetwork

        flannel = FlannelConfig(node_name=node_name(settings), backend=settings.flannel_backend, public_ip=node_ip,
                                cluster_cidr=settings.cluster_cidr)
        # pods' packets must fit the overlay: VXLAN takes 50 bytes of the underlay's MTU
        with contextlib.suppress(Exception):
            pod_mtu = await FlannelNetwork(flannel).mtu(node_ip) or 0
    agent_config = _agent_config(settings, node_ip, pod_mtu)
    if balancer is not None:
        agent_config.server = balancer.url
    agent = await start_agent(agent_config)
    tasks: dict[str, asyncio.Task] = {}
    own_factory: SharedInformerFactory | None = None
    if kind != "simulated":
        factory = informers
        if factory is None:
            own_factory = factory = SharedInformerFactory(client)
            own_factory.start()
        if settings.proxy:
            from ..proxy import ProxyConfig, run_proxy

            tasks["proxy"] = logged_task("proxy", run_proxy(
                client, stop=stop, informers=factory, config=ProxyConfig(
                    node_name=node_name(settings), node_ips=[node_ip], cluster_cidr=settings.cluster_cidr,
                    cleanup_on_exit=settings.cleanup_on_exit)))
        if flannel is not None:
            tasks["flannel"] = logged_task("flannel", _run_flannel(
                client, flannel, settings.cleanup_on_exit, stop, factory))
    try:
        await stop.wait()
    finally:
        if tasks:
            await asyncio.wait(tasks.values(), timeout=15.0)
        for task in tasks.values():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if own_factory is not None:
            await own_factory.stop()
        await agent.stop(stop_containers=settings.cleanup_on_exit)
        network = getattr(agent.runtime, "network", None)
        if settings.cleanup_on_exit and network is not None:
            await network.cleanup_node()
        await client.close()
        if balancer is not None:
            await balancer.stop()


async def _run_flannel(client: ApiClient, config, cleanup_on_exit: bool, stop: asyncio.Event,
                       informers: SharedInformerFactory) -> None:
    from ..flannel import cleanup, run_flannel

    try:
        await run_flannel(client, stop=stop, config=config, informers=informers)
    finally:
        if cleanup_on_exit:
            await asyncio.shield(cleanup(config))


def logged_task(name: str, coro) -> asyncio.Task:
    """`coro` as a task named `name` whose crash is logged (the component runners' way to start a part)."""
    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped with an error", name)
            raise

    return asyncio.create_task(run(), name=name)


def data_dir_of(base: str) -> str:
    """The node's state directory inside a kubelite data dir."""
    return os.path.join(base, "agent")


def node_settings_from_args(args: argparse.Namespace, kubeconfig: str, data_dir: str):
    """A joined machine's node (`join`, `agent`) from the node flags (profiles/flags.py)."""
    return NodeSettings(kubeconfig=kubeconfig, name=args.node_name, data_dir=data_dir, runtime=args.runtime,
                        node_ip=args.node_ip, kubelet_address=args.kubelet_address, kubelet_port=args.kubelet_port,
                        registries=args.registries, container_log_max_size=args.container_log_max_size,
                        container_log_max_files=args.container_log_max_files, flannel_backend=args.flannel_backend,
                        cluster_cidr=args.cluster_cidr or "10.244.0.0/16", cluster_dns=args.cluster_dns or "10.96.0.10",
                        cluster_domain=args.cluster_domain or "cluster.local", proxy=not args.disable_kube_proxy,
                        lease_duration_seconds=args.node_lease_duration_seconds, cni_conf_dir=args.cni_conf_dir,
                        apiserver_lb_port=args.apiserver_lb_port,
                        cleanup_on_exit=args.cleanup_on_exit)
