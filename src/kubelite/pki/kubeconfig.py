"""kubeconfig files shaped like kubeadm's admin.conf, with the credentials embedded as base64."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from kubelite.pki.certs import write_atomic

KUBECONFIG_MODE = 0o600


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig_dict(
    *,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    user: str = "kubernetes-admin",
    cluster: str = "kubelite",
    context: str = "kubernetes-admin@kubelite",
) -> dict[str, Any]:
    if (client_cert_pem is None) != (client_key_pem is None):
        raise ValueError("client_cert_pem and client_key_pem must be given together")
    credentials: dict[str, str] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        credentials["client-certificate-data"] = _b64(client_cert_pem)
        credentials["client-key-data"] = _b64(client_key_pem)
    if token is not None:
        credentials["token"] = token
    return {
        "apiVersion": "v1",
        "clusters": [
            {"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}, "name": cluster}
        ],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    }


def write_kubeconfig(
    path: str,
    *,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    user: str = "kubernetes-admin",
    cluster: str = "kubelite",
    context: str = "kubernetes-admin@kubelite",
) -> None:
    """Write a kubeconfig (mode 0600, atomically) holding the CA and the user's credentials."""
    config = kubeconfig_dict(
        server=server,
        ca_pem=ca_pem,
        client_cert_pem=client_cert_pem,
        client_key_pem=client_key_pem,
        token=token,
        user=user,
        cluster=cluster,
        context=context,
    )
    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    write_atomic(path, text.encode(), KUBECONFIG_MODE)
