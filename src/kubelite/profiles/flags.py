"""Flag groups shared by the entry points, so `up`, `init`, `join` and `agent` cannot drift apart: a node flag
means the same thing, with the same default, wherever a node runs."""

from __future__ import annotations

import argparse

from .node import FLANNEL_BACKENDS


def _log_max_files(value: str) -> int:
    n = int(value)
    if n <= 1:
        raise argparse.ArgumentTypeError(f"invalid MaxFiles {n}, must be > 1")
    return n


def _log_max_size(value: str) -> str:
    from ..kubelet.logrotation import parse_max_size

    try:
        parse_max_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def add_container_log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--container-log-max-size", default="10Mi", type=_log_max_size, metavar="QUANTITY",
                   help="rotate a container's log when it reaches this size, e.g. 10Mi (default: %(default)s)")
    p.add_argument("--container-log-max-files", default=5, type=_log_max_files, metavar="N",
                   help="log files kept per container, the current one included (default: %(default)s)")


def add_node_flags(p: argparse.ArgumentParser, *, joined: bool) -> None:
    """What every machine's node takes. `joined`: the node runs alone (join, agent) rather than next to the
    control plane (up, init), which names its runtime flag --node-runtime and may have no node at all."""
    if joined:
        p.add_argument("--runtime", default="auto", choices=("auto", "runc", "crun", "simulated"),
                       help="container runtime of this node (default: auto: runc where it works, else simulated)")
        p.add_argument("--kubelet-address", default="0.0.0.0",
                       help="address the kubelet API listens on (real runtimes; default: 0.0.0.0, every address, "
                            "as upstream's kubelet)")
    else:
        p.add_argument("--node-runtime", default="auto", choices=("auto", "runc", "simulated", "none"),
                       help="this machine's node: real containers under runc, a simulated node, or none (default: "
                            "auto: runc when this machine can, see `kubelite doctor`)")
    p.add_argument("--node-name", default="", help="name of this machine's node (default: the host name)")
    p.add_argument("--node-ip", default="", metavar="IP",
                   help="the node's InternalIP (default: the address that routes to the API server; on `init`, "
                        "the advertise address)")
    p.add_argument("--kubelet-port", type=int, default=10250, help="the kubelet's HTTPS port (default: 10250)")
    p.add_argument("--registries", default=None, metavar="FILE",
                   help="registry mirrors, rewrites, auth and TLS in k3s's registries.yaml format")
    add_container_log_flags(p)
    p.add_argument("--flannel-backend", default="vxlan", choices=FLANNEL_BACKENDS,
                   help="the pod network between nodes, as k3s: vxlan (an overlay; works across subnets), host-gw "
                        "(routes; nodes on one L2 segment), none (install a CNI such as Calico yourself) "
                        "(default: vxlan)")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d", metavar="DIR",
                   help="with --flannel-backend none: the CNI network a network add-on installs there (the first "
                        "file by name) wires the pods; the built-in bridge while there is none (default: %(default)s)")
    p.add_argument("--node-lease-duration-seconds", type=int, default=40, metavar="SECONDS",
                   help="the node's Lease duration (the kubelet's nodeLeaseDurationSeconds); it is renewed every "
                        "quarter of it, so keep --node-monitor-grace-period above that (default: 40)")
    p.add_argument("--disable-kube-proxy", action="store_true",
                   help="do not run kube-proxy on this node (Services then need a proxy of your own)")
    if joined:
        p.add_argument("--cluster-cidr", default=None, metavar="CIDR",
                       help="the cluster's pod range; pod traffic leaving it is masqueraded (default: what `kubelite "
                            "init` published in kube-system/kubeadm-config, else 10.244.0.0/16)")
        p.add_argument("--apiserver-lb-port", type=int, default=6444, metavar="PORT",
                       help="the node-local load balancer over every API server, on 127.0.0.1 (as k3s's agent): the "
                            "node keeps working when the API server it joined through dies (default: 6444; 0: "
                            "talk to the kubeconfig's server directly)")
        p.add_argument("--cluster-dns", default=None, metavar="IP",
                       help="the cluster DNS Service's address, the nameserver of pods (default: what `kubelite "
                            "init` published in kube-system/kubelet-config, else 10.96.0.10)")
        p.add_argument("--cluster-domain", default=None,
                       help="the cluster's DNS domain, searched by pods (default: as published, else cluster.local)")
    p.add_argument("--cleanup-on-exit", action="store_true",
                   help="when stopping, also stop the pods' containers and remove pod networks, the pod network's "
                        "device and routes, and the proxy's iptables rules (by default containers keep running, "
                        "as with a kubelet; `kubelite reset` removes them later)")


def add_node_lifecycle_flags(p: argparse.ArgumentParser) -> None:
    """How fast an unresponsive node is noticed and its pods moved (upstream's defaults)."""
    p.add_argument("--node-monitor-period", type=float, default=5.0, metavar="SECONDS",
                   help="how often the node lifecycle controller checks the nodes (default: 5)")
    p.add_argument("--node-monitor-grace-period", type=float, default=50.0, metavar="SECONDS",
                   help="how long a node may stay silent before it is marked NotReady/Unknown (default: 50)")


def add_toleration_flags(p: argparse.ArgumentParser) -> None:
    """The DefaultTolerationSeconds admission plug-in's flags (kube-apiserver's)."""
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300, metavar="SECONDS",
                   help="how long pods stay on a NotReady node before eviction, unless they say otherwise "
                        "(default: 300)")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300, metavar="SECONDS",
                   help="how long pods stay on an unreachable node before eviction, unless they say otherwise "
                        "(default: 300)")


def node_lifecycle_overrides(args: argparse.Namespace) -> dict:
    """controller-manager settings from the node lifecycle flags."""
    return {"node-lifecycle-controller": {"node_monitor_period": args.node_monitor_period,
                                          "node_monitor_grace_period": args.node_monitor_grace_period}}


def apply_toleration_flags(config, args: argparse.Namespace) -> None:
    config.default_not_ready_toleration_seconds = args.default_not_ready_toleration_seconds
    config.default_unreachable_toleration_seconds = args.default_unreachable_toleration_seconds
