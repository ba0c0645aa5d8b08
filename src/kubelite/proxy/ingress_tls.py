"""TLS for the ingress controller: one SSL context per host from `kubernetes.io/tls` Secrets, chosen by SNI.

Hosts listed under an Ingress's `spec.tls[].hosts` use the certificate of that entry's Secret (same
namespace as the Ingress; exact host first, then a `*.` wildcard entry).  Other names get a self-signed
default certificate made at start, as ingress-nginx serves its "Fake Certificate".
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubelite.client.rest import load_client_cert

from .ingress_routes import normalize_host

log = logging.getLogger("kubelite.proxy.ingress")

Obj = dict[str, Any]

DEFAULT_CERT_CN = "Kubelite Ingress Controller Fake Certificate"


def self_signed(cn: str = DEFAULT_CERT_CN, hosts: tuple[str, ...] = ("ingress.local",)) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    load_client_cert(ctx, cert_pem, key_pem)
    return ctx


def secret_key_pair(secret: Obj) -> tuple[bytes, bytes] | None:
    data = secret.get("data") or {}
    try:
        cert = base64.b64decode(data.get("tls.crt") or "")
        key = base64.b64decode(data.get("tls.key") or "")
    except (ValueError, TypeError):
        return None
    return (cert, key) if cert and key else None


class TLSStore:
    """Host → SSLContext, rebuilt with `update(ingresses, get_secret)`; `context` is the listening one."""

    def __init__(self) -> None:
        cert, key = self_signed()
        self.default = _context(cert, key)
        self.default.sni_callback = self._sni
        self.by_host: dict[str, ssl.SSLContext] = {}
        self._built: dict[tuple[str, str, str], ssl.SSLContext] = {}  # (ns, secret, resourceVersion)

    @property
    def context(self) -> ssl.SSLContext:
        return self.default

    def update(self, ingresses: list[Obj], get_secret) -> None:
        hosts: dict[str, ssl.SSLContext] = {}
        built: dict[tuple[str, str, str], ssl.SSLContext] = {}
        for ing in sorted(ingresses, key=lambda i: (i["metadata"].get("creationTimestamp") or "",
                                                     i["metadata"].get("namespace") or "", i["metadata"]["name"])):
            ns = ing["metadata"].get("namespace") or "default"
            for entry in (ing.get("spec") or {}).get("tls") or []:
                name = entry.get("secretName")
                if not name:
                    continue
                secret = get_secret(ns, name)
                if secret is None:
                    log.warning("ingress %s/%s: TLS secret %s/%s not found", ns, ing["metadata"]["name"], ns, name)
                    continue
                key = (ns, name, secret["metadata"].get("resourceVersion") or "")
                ctx = built.get(key) or self._built.get(key)
                if ctx is None:
                    pair = secret_key_pair(secret)
                    if pair is None:
                        continue
                    try:
                        ctx = _context(*pair)
                    except (ssl.SSLError, OSError, ValueError) as e:
                        log.warning("TLS secret %s/%s is not a usable key pair: %s", ns, name, e)
                        continue
                built[key] = ctx
                for host in entry.get("hosts") or []:
                    hosts.setdefault(host.lower(), ctx)
        self.by_host, self._built = hosts, built

    def for_host(self, server_name: str | None) -> ssl.SSLContext | None:
        if not server_name:
            return None
        host = normalize_host(server_name)
        ctx = self.by_host.get(host)
        if ctx is None and "." in host:
            ctx = self.by_host.get("*." + host.split(".", 1)[1])
        return ctx

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        ctx = self.for_host(server_name)
        if ctx is not None:
            sslobj.context = ctx
        return None
