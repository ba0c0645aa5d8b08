"""The control-plane machine's profile, shared by `kubelite up` (one machine, k3s-style) and `kubelite init`
(the first of several, kubeadm-style): the same flags and the same `ComponentSettings` from them, so what one
takes the other takes too."""

from __future__ import annotations

import argparse
import ipaddress
import os

from .flags import add_node_flags, add_node_lifecycle_flags, add_toleration_flags, node_lifecycle_overrides

ADDONS = ("dns", "servicelb", "ingress", "dashboard")


def add_control_plane_flags(p: argparse.ArgumentParser) -> None:
    add_node_flags(p, joined=False)
    add_node_lifecycle_flags(p)
    add_toleration_flags(p)
    p.add_argument("--cluster-cidr", "--pod-network-cidr", "--pod-cidr", dest="cluster_cidr", default="10.244.0.0/16",
                   metavar="CIDR", help="range the nodes' pod CIDRs come from (default: %(default)s)")
    p.add_argument("--default-local-storage-path", default=None, metavar="DIR",
                   help="where the local-path provisioner puts PersistentVolumes on the node (default: "
                        "<data-dir>/storage, as k3s)")
    p.add_argument("--simulated-nodes", type=int, default=0, metavar="N",
                   help="extra simulated nodes next to the local one (like kwok: pods go through their states "
                        "without processes; default: 0)")
    p.add_argument("--disable-scheduler", action="store_true", help="do not run the scheduler")
    p.add_argument("--disable-controller-manager", action="store_true", help="do not run the controllers")
    p.add_argument("--single-process", action="store_true",
                   help="run the controllers, scheduler and nodes in the API server's process (less memory, "
                        "one core); by default they get a process of their own")
    p.add_argument("--disable", default="", metavar="LIST",
                   help="built-in add-ons not to run, comma-separated: " + ", ".join(ADDONS))
    p.add_argument("--cluster-dns-port", type=int, default=53,
                   help="port of the cluster DNS server on the bind address (default: 53; 0 picks a free one)")
    p.add_argument("--ingress-http-port", type=int, default=80,
                   help="HTTP port of the ingress controller (default: 80; 0 picks a free one)")
    p.add_argument("--ingress-https-port", type=int, default=443,
                   help="HTTPS port of the ingress controller (default: 443; 0 picks a free one)")
    p.add_argument("--dashboard-port", type=int, default=31213, metavar="NODEPORT",
                   help="node port of the dashboard (HTTPS, Service kubernetes-dashboard/kubernetes-dashboard; "
                        "default: 31213, another free one if taken; 0 picks a free one)")
    p.add_argument("--kubelet-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a kubelet setting of the local node, as k3s's flag (repeatable): anonymous-auth "
                        "(default false), authorization-mode Webhook|AlwaysAllow (default Webhook), read-only-port "
                        "(default 0, closed), address (default 0.0.0.0); the weak values are for a lab only")
    p.add_argument("--dashboard-token-ttl", type=int, default=900, metavar="SECONDS",
                   help="how long a dashboard login lasts after its last use, as the Dashboard's --token-ttl "
                        "(default: 900; 0: until sign-out)")


def disabled_addons(args: argparse.Namespace) -> set[str]:
    """--disable's names; ValueError naming the unknown ones."""
    disabled = {d.strip() for d in args.disable.split(",") if d.strip()}
    unknown = disabled - set(ADDONS)
    if unknown:
        raise ValueError(f"--disable takes {', '.join(ADDONS)}; got {', '.join(sorted(unknown))}")
    return disabled


def check_cluster_cidr(args: argparse.Namespace) -> None:
    try:
        ipaddress.ip_network(args.cluster_cidr, strict=False)
    except ValueError:
        raise SystemExit(f"kubelite: error: --cluster-cidr: {args.cluster_cidr!r} is not a CIDR") from None


def _identity(node_name: str) -> str:
    import socket
    import uuid

    return f"{node_name or socket.gethostname()}_{uuid.uuid4()}"


def component_settings(args: argparse.Namespace, data_dir: str, *, listen: str, node_ip: str, dns: bool = True):
    """`ComponentSettings` from the control-plane flags. ValueError for a bad --disable."""
    from ..launcher import ComponentSettings

    disabled = disabled_addons(args)
    extra = {**node_lifecycle_overrides(args),
             "node-ipam-controller": {"cluster_cidr": args.cluster_cidr}}
    storage = os.path.abspath(os.path.expanduser(args.default_local_storage_path or os.path.join(data_dir, "storage")))
    from ..kubelet.kubelet_args import parse_kubelet_args

    parse_kubelet_args(getattr(args, "kubelet_arg", []))  # a bad one stops `up` at once (ValueError)
    return ComponentSettings(
        kubelet_args=list(getattr(args, "kubelet_arg", [])),
        controllers=not args.disable_controller_manager, scheduler=not args.disable_scheduler,
        simulated_nodes=args.simulated_nodes, node_runtime=args.node_runtime, node_name=args.node_name,
        node_ip=node_ip, kubelet_port=args.kubelet_port, registries=args.registries,
        cleanup_on_exit=args.cleanup_on_exit, flannel_backend=args.flannel_backend,
        proxy=not args.disable_kube_proxy, node_lease_duration_seconds=args.node_lease_duration_seconds,
        cni_conf_dir=args.cni_conf_dir, cluster_cidr=args.cluster_cidr,
        # leader identities name the machine (upstream's hostname_<uuid>, with the node name, which is the host
        # name unless told otherwise), so `kubectl get lease` tells which machine leads
        controller_overrides={"extra": extra, "identity": _identity(args.node_name)},
        scheduler_overrides={"identity": _identity(args.node_name)},
        dns=dns and "dns" not in disabled, servicelb="servicelb" not in disabled, ingress="ingress" not in disabled,
        listen_host=listen, dns_port=args.cluster_dns_port, ingress_http_port=args.ingress_http_port,
        ingress_https_port=args.ingress_https_port, default_local_storage_path=storage,
        container_log_max_size=args.container_log_max_size, container_log_max_files=args.container_log_max_files,
        dashboard="dashboard" not in disabled, dashboard_port=args.dashboard_port,
        dashboard_token_ttl=args.dashboard_token_ttl, cluster_domain=getattr(args, "cluster_domain", "cluster.local"),
        # kubeadm's kube-dns address: the Service range's 10th address
        dns_service_ip=str(ipaddress.ip_network(args.service_cluster_ip_range, strict=False)[10]))


def with_node_lifecycle_admission(config) -> None:
    """TaintNodesByCondition, default-on upstream, where a node lifecycle controller always runs to lift the
    not-ready taint it puts on new Nodes: on for the profiles that run the controllers (up, init), unless the
    user disabled it; `kubelite server` alone keeps it opt-in."""
    name = "TaintNodesByCondition"
    if name not in config.admission_enable and name not in config.admission_disable:
        config.admission_enable.append(name)
