"""The API server's TLS settings and the identity carried by a client certificate."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the module serves the node agent too, which must not load cryptography (pki.ca) to run
    from kubelite.pki.ca import ClusterPKI

# CIS Kubernetes benchmark 1.2.29 / 4.2.12: ECDHE key exchange with AEAD ciphers only. TLS 1.3
# suites are all AEAD and are not affected by this list.
CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def server_ssl_context(pki: ClusterPKI) -> ssl.SSLContext:
    """TLS >= 1.2, CIS ciphers, HTTP/1.1 only, client certificates optional but verified.

    A client certificate that does not chain to the cluster CA fails the handshake; a client that
    sends none gets through and is authenticated by token or as anonymous.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(pki.serving_cert_path, pki.serving_key_path)
    ctx.load_verify_locations(cadata=pki.ca_cert_pem.decode("ascii"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_ssl_context(pki: ClusterPKI, cert_path: str | None = None, key_path: str | None = None) -> ssl.SSLContext:
    """A client context trusting only the cluster CA, optionally presenting a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=pki.ca_cert_pem.decode("ascii"))
    if cert_path is not None:
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def peer_identity(peer: Any) -> tuple[str, list[str]] | None:
    """(CN, [O, ...]) of a verified client certificate, or None if there is none.

    `peer` is an `ssl.SSLObject`/`ssl.SSLSocket` (`transport.get_extra_info("ssl_object")`) or the
    dict from `getpeercert()` (`transport.get_extra_info("peercert")`). With the server context
    above, OpenSSL hands out the decoded certificate only after it verified the chain. As upstream's
    x509 authenticator: the last CN is the user name, a certificate without a CN authenticates no one.
    """
    if peer is None:
        return None
    cert = peer if isinstance(peer, dict) else peer.getpeercert()
    if not cert:
        return None
    cn = ""
    orgs: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return cn, orgs
