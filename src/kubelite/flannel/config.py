"""Settings of the built-in pod network (k3s's `--flannel-backend`), with flannel's defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

BACKENDS = ("vxlan", "host-gw", "none")

# the annotations flannel's kube subnet manager keeps on every Node
ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"
BACKEND_TYPE_ANNOTATION = ANNOTATION_PREFIX + "backend-type"
BACKEND_DATA_ANNOTATION = ANNOTATION_PREFIX + "backend-data"
PUBLIC_IP_ANNOTATION = ANNOTATION_PREFIX + "public-ip"
SUBNET_MANAGER_ANNOTATION = ANNOTATION_PREFIX + "kube-subnet-manager"

VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14


@dataclass
class FlannelConfig:
    """One node's pod network.

    `command_prefix` is put in front of every `ip`, `bridge`, `iptables-*` and `sysctl` command, e.g.
    `["nsenter", "--net=/run/netns/x"]` to drive another network namespace; with it, sysctls are set through
    the prefix too instead of this process's /proc/sys."""

    node_name: str
    backend: str = "vxlan"  # vxlan | host-gw | none (a CNI the user installs owns the network)
    public_ip: str | None = None  # the node's InternalIP; None: read from its Node object
    cluster_cidr: str = "10.244.0.0/16"
    vni: int = 1
    port: int = 8472  # the Linux kernel's VXLAN port, as flannel (not IANA's 4789)
    iface: str = "flannel.1"
    underlay_iface: str | None = None  # the VXLAN device's `dev`; None: the interface holding public_ip
    mtu: int | None = None  # of the VXLAN device; None: the underlay's MTU - 50
    direct_routing: bool = False  # vxlan: plain routes to nodes on the same L2 (flannel's DirectRouting)
    vtep_mac: str | None = None  # None: derived from the node name (stable across restarts)
    resync_period: float = 30.0
    min_sync_period: float = 0.1  # changes closer together than this are programmed in one sync
    ip_masq: bool = True  # flanneld --ip-masq
    random_fully: bool = True
    kube_proxy_mark: str = "0x4000/0x4000"  # kube-proxy masquerades what carries it; we leave it alone
    postrouting_chain: str = "KUBELITE-FLANNEL-POSTRTG"
    forward_chain: str = "KUBELITE-FLANNEL-FWD"
    route_protocol: int = 75  # `proto` of the routes we add: how we find ours again (not in rt_protos)
    annotate: bool = True  # write this node's flannel annotations
    cleanup_on_exit: bool = False
    command_prefix: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown flannel backend {self.backend!r} (one of {', '.join(BACKENDS)})")
        net = ipaddress.ip_network(self.cluster_cidr, strict=False)
        if net.version != 4:
            raise ValueError(f"cluster CIDR {self.cluster_cidr!r} is not IPv4")
        self.cluster_cidr = str(net)
        for chain in (self.postrouting_chain, self.forward_chain):
            if not chain or len(chain) > 28:
                raise ValueError(f"chain name {chain!r} must have 1 to 28 characters")
        if not 0 < self.vni < 1 << 24:
            raise ValueError(f"VNI {self.vni} out of range")
        if len(self.iface) > 15:
            raise ValueError(f"interface name {self.iface!r} is longer than 15 characters")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cluster_cidr)
