"""etcd's certificates, in kubeadm's layout under `<data_dir>/pki/`:

    etcd/ca.crt etcd/ca.key                    etcd's own CA (shared by every member: `upload-certs` carries it)
    etcd/server.crt etcd/server.key            client-facing serving certificate of this member
    etcd/peer.crt etcd/peer.key                peer certificate (server and client auth: members dial each other)
    etcd/healthcheck-client.crt/.key           for `etcdctl` and snapshots on this machine
    apiserver-etcd-client.crt/.key             the API server's client certificate

Leaves are re-issued when missing, signed by another CA or lacking an address needed now.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..pki import certs

ETCD_CA_CN = "etcd-ca"
LEAF_DAYS = 365


@dataclass(frozen=True)
class EtcdPKI:
    dir: str  # <data_dir>/pki

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def ca_file(self) -> str:
        return self.path("etcd/ca.crt")

    @property
    def ca_key_file(self) -> str:
        return self.path("etcd/ca.key")

    @property
    def server_cert(self) -> str:
        return self.path("etcd/server.crt")

    @property
    def server_key(self) -> str:
        return self.path("etcd/server.key")

    @property
    def peer_cert(self) -> str:
        return self.path("etcd/peer.crt")

    @property
    def peer_key(self) -> str:
        return self.path("etcd/peer.key")

    @property
    def client_cert(self) -> str:
        return self.path("etcd/healthcheck-client.crt")

    @property
    def client_key(self) -> str:
        return self.path("etcd/healthcheck-client.key")

    @property
    def apiserver_cert(self) -> str:
        return self.path("apiserver-etcd-client.crt")

    @property
    def apiserver_key(self) -> str:
        return self.path("apiserver-etcd-client.key")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _leaf(ca_cert: x509.Certificate, ca_key, cn: str, orgs: list[str], usages: list,
          names: list[str], addresses: list[str]) -> tuple[bytes, bytes]:
    key = certs.new_key()
    now = dt.datetime.now(dt.UTC)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] + [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name(subject)).issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if names or addresses:
        general: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        general += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return certs.cert_to_pem(cert), certs.key_to_pem(key)


def _usable(cert_path: str, key_path: str, ca_cert: x509.Certificate, addresses: set[str]) -> bool:
    cert_pem, key_pem = _read(cert_path), _read(key_path)
    if cert_pem is None or key_pem is None:
        return False
    try:
        cert, key = certs.load_cert(cert_pem), certs.load_key(key_pem)
    except ValueError:
        return False
    if cert.public_key() != key.public_key() or not certs.issued_by(cert, ca_cert):
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=30):
        return False
    _, ips = certs.cert_sans(cert)
    return {ipaddress.ip_address(a) for a in addresses} <= ips


def _store(path_base: str, cert_pem: bytes, key_pem: bytes) -> None:
    certs.write_atomic(path_base + ".key", key_pem, certs.KEY_MODE)
    certs.write_atomic(path_base + ".crt", cert_pem, certs.CERT_MODE)


def ensure_etcd_pki(data_dir: str, name: str, addresses: list[str]) -> EtcdPKI:
    """etcd's CA (made once, or taken from `upload-certs`) and this member's leaves for `addresses`."""
    pki = EtcdPKI(os.path.join(data_dir, "pki"))
    os.makedirs(os.path.join(pki.dir, "etcd"), mode=0o700, exist_ok=True)
    ca_pem, ca_key_pem = _read(pki.ca_file), _read(pki.ca_key_file)
    if ca_pem is None or ca_key_pem is None:
        ca_cert, ca_key = certs.make_ca(ETCD_CA_CN)
        certs.write_atomic(pki.ca_key_file, certs.key_to_pem(ca_key), certs.KEY_MODE)
        certs.write_atomic(pki.ca_file, certs.cert_to_pem(ca_cert), certs.CERT_MODE)
    else:
        ca_cert, ca_key = certs.load_cert(ca_pem), certs.load_key(ca_key_pem)
    wanted = sorted({"127.0.0.1", *addresses})
    names = sorted({"localhost", name, socket.gethostname().lower()} - {""})
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for base, cert_path, key_path in (("etcd/server", pki.server_cert, pki.server_key),
                                      ("etcd/peer", pki.peer_cert, pki.peer_key)):
        if not _usable(cert_path, key_path, ca_cert, set(wanted)):
            _store(pki.path(base), *_leaf(ca_cert, ca_key, name, [], both, names, wanted))
    clients = (("etcd/healthcheck-client", pki.client_cert, pki.client_key, "kube-etcd-healthcheck-client"),
               ("apiserver-etcd-client", pki.apiserver_cert, pki.apiserver_key, "kube-apiserver-etcd-client"))
    for base, cert_path, key_path, cn in clients:
        if not _usable(cert_path, key_path, ca_cert, set()):
            _store(pki.path(base), *_leaf(ca_cert, ca_key, cn, [], [ExtendedKeyUsageOID.CLIENT_AUTH], [], []))
    return pki
