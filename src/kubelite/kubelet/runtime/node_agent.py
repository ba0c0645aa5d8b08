"""`kubelite agent`: one real node — registration, Lease, pod sync (agent.py, shared with the simulated nodes)
with the runc runtime, and the kubelet HTTPS API.

    await run_agent(AgentConfig(server=..., kubeconfig=..., node_name="node-1", data_dir="/var/lib/kubelite"),
                    stop=asyncio.Event())
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ...client import ApiClient, yamlfiles
from .. import node as nodeapi
from ..agent import SimulatedNodes
from ..simulated import SimulatedConfig

log = logging.getLogger("kubelite.kubelet.agent")


@dataclass
class AgentConfig:
    kubeconfig: str
    node_name: str = ""
    data_dir: str = "/var/lib/kubelite/agent"
    server: str | None = None  # overrides the kubeconfig's server
    runtime: str = "auto"  # runc | crun | simulated | auto
    node_ip: str = ""  # default: the address of the interface that routes to the server
    kubelet_address: str = "0.0.0.0"
    kubelet_port: int = 10250
    registries: str | None = None  # k3s registries.yaml
    cluster_dns: list[str] = field(default_factory=lambda: ["10.96.0.10"])
    cluster_domain: str = "cluster.local"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    lease_duration_seconds: int = 40
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    stop_containers_on_exit: bool = False  # containers outlive the agent (re-adopted on restart), as upstream
    simulated: SimulatedConfig | None = None  # for --runtime simulated
    # --tls-cert-file / --tls-private-key-file: a serving certificate the API server can verify
    # (--kubelet-certificate-authority); without them the kubelet serves a self-signed one, as upstream
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    # containerLogMaxSize / containerLogMaxFiles / containerLogMonitorInterval (kubelet.logrotation)
    container_log_max_size: str = "10Mi"
    container_log_max_files: int = 5
    container_log_monitor_interval: float = 10.0
    # the CNI bridge masquerades pod traffic leaving the node's podCIDR; off when the built-in pod network
    # (profiles/node.py) masquerades what leaves the cluster's range instead
    pod_network_masquerade: bool = True
    cni_conf_dir: str | None = None  # use the first network configured there instead of the built-in bridge
    pod_mtu: int = 0  # the pods' interface MTU (an overlay's, smaller than the host's); 0: 1500
    kubelet_args: list[str] = field(default_factory=list)  # --kubelet-arg KEY=VALUE (kubelet_args.py)


def choose_runtime(wanted: str) -> str:
    from .runc import find_runtime
    if wanted in ("runc", "crun", "simulated"):
        return wanted
    if os.geteuid() == 0 and find_runtime("runc"):
        return "runc"
    log.warning("no usable container runtime (needs root and runc); running a simulated node")
    return "simulated"


def _kubeconfig_ca(path: str) -> bytes:
    cfg = yamlfiles.load(path)
    cluster = (cfg.get("clusters") or [{}])[0].get("cluster") or {}
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    if cluster.get("certificate-authority"):
        with open(cluster["certificate-authority"], "rb") as f:
            return f.read()
    return b""


def _route_ip(server_url: str) -> str:
    """The address of the interface that routes to the API server (the kubelet's default node IP)."""
    from urllib.parse import urlparse

    from ...api.netaddr import route_address

    host = urlparse(server_url).hostname or "127.0.0.1"
    with contextlib.suppress(OSError):
        host = socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
    return route_address(host)


def host_capacity() -> dict[str, str]:
    cpus = len(os.sched_getaffinity(0))
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            v = f.read().strip()
            if v != "max" and int(v) // 1024 < mem_kib:
                mem_kib = int(v) // 1024
    st = os.statvfs("/")
    return {"cpu": str(cpus), "memory": f"{mem_kib}Ki", "pods": "110",
            "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}


@dataclass
class RunningAgent:
    nodes: SimulatedNodes
    runtime: Any
    server: Any
    client: ApiClient
    registry_client: Any = None
    read_only: Any = None  # the read-only port's server, when --kubelet-arg read-only-port=N opened one

    async def stop(self, *, stop_containers: bool = False) -> None:
        await self.nodes.stop()
        if self.read_only is not None:
            await self.read_only.stop()
        if self.server is not None:
            await self.server.stop()
        if self.runtime is not None and hasattr(self.runtime, "shutdown"):
            await self.runtime.shutdown(stop_containers=stop_containers)
        if self.registry_client is not None:
            await self.registry_client.close()
        await self.client.close()


async def start_agent(config: AgentConfig) -> RunningAgent:
    """Start the node agent; returns handles (tests use `.runtime`, `.server.port`)."""
    client = ApiClient.from_kubeconfig(config.kubeconfig, user_agent=f"kubelet/{nodeapi.KUBELET_VERSION}")
    if config.server:
        client.server_url = config.server.rstrip("/")
    name = config.node_name or socket.gethostname().lower()
    kind = choose_runtime(config.runtime)
    sim_cfg = config.simulated or SimulatedConfig(lease_duration_seconds=config.lease_duration_seconds,
                                                  backoff_initial=config.backoff_initial,
                                                  backoff_max=config.backoff_max)
    if kind == "simulated":
        nodes = SimulatedNodes(client, [name], sim_cfg)
        if config.node_ip:  # a simulated node of its own machine (join, agent) shows that machine's address
            nodes.nodes[name].spec.internal_ip = config.node_ip
        await nodes.start()
        return RunningAgent(nodes, None, None, client)

    from ..images import ImagePuller, ImageStore, RegistriesConfig, RegistryClient, RootfsManager
    from ..logrotation import LogRotatePolicy
    from ..network import PodNetwork
    from ..server import KubeletServer, self_signed_context, serving_context
    from .runc import Runc, find_runtime, runtime_version
    from .runc_runtime import DNSConfig, RuncRuntime

    log_policy = LogRotatePolicy.parse(config.container_log_max_size, config.container_log_max_files)
    os.makedirs(config.data_dir, exist_ok=True)
    node_ip = config.node_ip or _route_ip(client.server_url)
    ca_pem = _kubeconfig_ca(config.kubeconfig)
    binary = find_runtime(kind) or kind
    store = ImageStore(os.path.join(config.data_dir, "images"))
    registry_client = RegistryClient(RegistriesConfig.load(config.registries))
    puller = ImagePuller(store, registry_client)
    runtime = RuncRuntime(client, data_dir=config.data_dir, node_name=name, node_ip=node_ip, puller=puller,
                          rootfs=RootfsManager(store), runc=Runc(os.path.join(config.data_dir, "runc"), binary=binary),
                          network=PodNetwork(config.data_dir, masquerade=config.pod_network_masquerade,
                                             mtu=config.pod_mtu or 1500, conf_dir=config.cni_conf_dir),
                          dns=DNSConfig(nameservers=list(config.cluster_dns), cluster_domain=config.cluster_domain),
                          ca_pem=ca_pem, log_policy=log_policy)
    server = KubeletServer(runtime, client, name)
    from ..kubelet_args import ReadOnlyPort, apply_to_server, parse_kubelet_args

    kubelet_args = parse_kubelet_args(config.kubelet_args)
    apply_to_server(server, kubelet_args)
    if config.tls_cert_file and config.tls_private_key_file:
        tls = serving_context(config.tls_cert_file, config.tls_private_key_file, ca_pem)
    else:
        tls = self_signed_context(name, [node_ip], ca_pem, os.path.join(config.data_dir, "pki"))
    address = kubelet_args.address or config.kubelet_address
    port = await server.start(address, config.kubelet_port, tls)
    spec = nodeapi.NodeSpec(
        name=name, internal_ip=node_ip, capacity=host_capacity(), labels=dict(config.labels),
        taints=list(config.taints), container_runtime_version=f"{kind}://{runtime_version(binary)}",
        os_image=_os_image(), kernel_version=platform.release(),
        architecture={"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        kubelet_port=port)
    nodes = SimulatedNodes(client, [], sim_cfg, runtime=runtime, node_specs=[spec])
    await nodes.start()
    runtime.spawn(_cleanup_later(runtime))
    runtime.spawn(_trim_when_quiet(nodes))
    if log_policy.enabled:
        runtime.spawn(runtime.rotate_logs_forever(config.container_log_monitor_interval))
    read_only = None
    if kubelet_args.read_only_port:
        read_only = ReadOnlyPort(server)
        await read_only.start(address, kubelet_args.read_only_port)
    return RunningAgent(nodes, runtime, server, client, registry_client, read_only)


async def _cleanup_later(runtime: Any) -> None:
    await asyncio.sleep(5.0)  # pods of this node have been synced (re-adopted) by now
    with contextlib.suppress(Exception):
        await runtime.cleanup_orphans()


async def _trim_when_quiet(nodes: SimulatedNodes, quiet: float = 1.0, poll: float = 0.5) -> None:
    """Hand the memory a burst of work used (start-up, image pulls and unpacking, pod syncs) back to the system
    once the node has written no pod status for `quiet` seconds: freed but kept by malloc, it would count in
    the idle node's resident memory.  A collection and a trim take a few ms, once per burst."""
    from ... import heap

    trimmed, seen, since = -1, nodes.status_writes, time.monotonic()
    while True:
        await asyncio.sleep(poll)
        now, writes = time.monotonic(), nodes.status_writes
        if writes != seen:
            seen, since = writes, now
        elif writes != trimmed and now - since >= quiet:
            gc.collect()
            heap.trim()
            trimmed = writes


def _os_image() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


async def run_agent(config: AgentConfig, stop: asyncio.Event | None = None) -> None:
    """Run the node agent until `stop` is set (or the task is cancelled)."""
    agent = await start_agent(config)
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await agent.stop(stop_containers=config.stop_containers_on_exit)


async def reset_node(data_dir: str, node_name: str) -> list[str]:
    """Remove what this node made on the machine (for `kubelite reset`): every container in its runc root, pod
    network namespaces, CNI state, cgroups and volume mounts (the runtime's orphan cleanup with no pod known),
    then the bridge and portmap's chains. Only this node's things, named after it, are touched. Returns what
    was done, for the user."""
    from ..images import ImageStore, RootfsManager
    from ..network import PodNetwork
    from .runc import Runc, find_runtime
    from .runc_runtime import RuncRuntime

    done: list[str] = []
    network = PodNetwork(data_dir, node=node_name)
    if os.path.isdir(data_dir) and find_runtime("runc"):
        runtime = RuncRuntime(None, data_dir=data_dir, node_name=node_name, node_ip="", puller=None,  # type: ignore[arg-type]
                              rootfs=RootfsManager(ImageStore(os.path.join(data_dir, "images"))),
                              runc=Runc(os.path.join(data_dir, "runc"), binary=find_runtime("runc")), network=network)
        containers = len(await runtime.runc.list())
        pods = len(network.known_pods())
        await runtime.cleanup_orphans()
        await runtime.shutdown(stop_containers=True)
        if containers or pods:
            done.append(f"Stopped and removed {containers} container(s) and the networks of {pods} pod(s)")
    await network.cleanup_node()
    done.append(f"Removed the pod bridge {network.bridge} and the CNI host-port chains")
    return done
