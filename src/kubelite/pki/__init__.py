"""Cluster CA, certificates, kubeconfig files, static token files and TLS settings."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubelite.pki.ca import ClusterPKI, ensure_cluster_pki, host_identity
    from kubelite.pki.kubeconfig import write_kubeconfig
    from kubelite.pki.tls import peer_identity, server_ssl_context
    from kubelite.pki.tokenfile import TokenFile, load_token_file, parse_token_file

# loaded on first use: the node agent needs only `tls.peer_identity`, and `ca` pulls in cryptography (~8 MiB
# resident), which it must not carry while idle
_LAZY = {
    "ClusterPKI": "ca",
    "ensure_cluster_pki": "ca",
    "host_identity": "ca",
    "write_kubeconfig": "kubeconfig",
    "peer_identity": "tls",
    "server_ssl_context": "tls",
    "TokenFile": "tokenfile",
    "load_token_file": "tokenfile",
    "parse_token_file": "tokenfile",
}

__all__ = [
    "ClusterPKI",
    "TokenFile",
    "ensure_cluster_pki",
    "host_identity",
    "load_token_file",
    "parse_token_file",
    "peer_identity",
    "server_ssl_context",
    "write_kubeconfig",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
