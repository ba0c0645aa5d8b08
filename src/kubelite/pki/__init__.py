"""Cluster CA, certificates, kubeconfig files, static token files and TLS settings."""

from kubelite.pki.ca import ClusterPKI, ensure_cluster_pki, host_identity
from kubelite.pki.kubeconfig import write_kubeconfig
from kubelite.pki.tls import peer_identity, server_ssl_context
from kubelite.pki.tokenfile import TokenFile, load_token_file, parse_token_file

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
