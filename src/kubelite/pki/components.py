"""Kubeconfigs for kubelite's own components, each with its own identity from the cluster CA (as kubeadm
writes controller-manager.conf, scheduler.conf and kubelet.conf)."""

from __future__ import annotations

import os

import yaml

from kubelite.pki.ca import ensure_cluster_pki
from kubelite.pki.kubeconfig import write_kubeconfig

CONTROLLER_MANAGER = ("system:kube-controller-manager", ())
SCHEDULER = ("system:kube-scheduler", ())
NODES_GROUP = "system:nodes"


def node_identity(node_name: str) -> tuple[str, tuple[str, ...]]:
    """(CN, O) of a kubelet's client certificate, what the Node authorizer expects."""
    return f"system:node:{node_name}", (NODES_GROUP,)


def component_kubeconfig_path(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, f"{name}.kubeconfig")


def _server_of(data_dir: str) -> str:
    with open(os.path.join(data_dir, "admin.kubeconfig")) as f:
        config = yaml.safe_load(f)
    return config["clusters"][0]["cluster"]["server"]


def write_component_kubeconfig(data_dir: str, name: str, cn: str, orgs: list[str] | tuple[str, ...] = (),
                               server: str | None = None, days: int = 365) -> str:
    """Write `<data_dir>/<name>.kubeconfig` (0600) holding a fresh client certificate for `cn` in `orgs`.

    `server` defaults to the one in the admin kubeconfig the API server wrote. Returns the path."""
    pki = ensure_cluster_pki(data_dir)
    cert, key = pki.issue_client_cert(cn, list(orgs), days)
    path = component_kubeconfig_path(data_dir, name)
    write_kubeconfig(path, server=server or _server_of(data_dir), ca_pem=pki.ca_cert_pem, client_cert_pem=cert,
                     client_key_pem=key, user=cn, context=f"{cn}@kubelite")
    return path
