"""The cluster's PKI: made once under `<data_dir>/pki/`, loaded on every later start.

Layout (names as kubeadm's /etc/kubernetes/pki):
    ca.crt ca.key                 cluster CA, 10 years, CN "kubernetes"
    apiserver.crt apiserver.key   API serving certificate, 1 year
    admin.crt admin.key           CN kubernetes-admin, O system:masters, 1 year
    sa.key sa.pub                 service-account token signing pair (ECDSA P-256, so tokens are ES256)

Leaf certificates are re-issued from the existing CA when they are missing, torn (key and cert
do not match after a crash), signed by another CA, close to expiry, or — for the serving cert —
lack a SAN that is needed now (a new host address). The CA itself is never replaced once made:
joined nodes pin its hash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubelite.pki import certs
from kubelite.pki.certs import IPAddress

SA_SIGNING_ALGORITHM = "ES256"
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"
SERVING_CN = "kube-apiserver"
# Leaf certificates this close to expiry are re-issued at start-up.
RENEW_BEFORE = dt.timedelta(days=30)

KUBERNETES_SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
LOCAL_NAMES = ("localhost",)
LOCAL_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))

_SIOCGIFADDR = 0x8915


@dataclass
class ClusterPKI:
    dir: str
    ca_cert: x509.Certificate
    ca_cert_pem: bytes
    serving_dns_names: set[str] = field(default_factory=set)
    serving_ip_addresses: set[IPAddress] = field(default_factory=set)
    _ca_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def ca_cert_path(self) -> str:
        return self._path("ca.crt")

    @property
    def ca_key_path(self) -> str:
        return self._path("ca.key")

    @property
    def serving_cert_path(self) -> str:
        return self._path("apiserver.crt")

    @property
    def serving_key_path(self) -> str:
        return self._path("apiserver.key")

    @property
    def admin_cert_path(self) -> str:
        return self._path("admin.crt")

    @property
    def admin_key_path(self) -> str:
        return self._path("admin.key")

    @property
    def sa_key_path(self) -> str:
        return self._path("sa.key")

    @property
    def sa_pub_path(self) -> str:
        return self._path("sa.pub")

    @property
    def admin_cert_pem(self) -> bytes:
        return _read(self.admin_cert_path)

    @property
    def admin_key_pem(self) -> bytes:
        return _read(self.admin_key_path)

    @property
    def sa_key_pem(self) -> bytes:
        return _read(self.sa_key_path)

    @property
    def sa_pub_pem(self) -> bytes:
        return _read(self.sa_pub_path)

    def _key(self) -> ec.EllipticCurvePrivateKey:
        if self._ca_key is None:
            self._ca_key = certs.load_key(_read(self.ca_key_path))
        return self._ca_key

    def issue_client_cert(self, cn: str, orgs: list[str], days: int = 365) -> tuple[bytes, bytes]:
        """A client certificate for user `cn` in groups `orgs`: (PEM cert, PEM key). Not stored."""
        cert, key = certs.make_client_cert(self.ca_cert, self._key(), cn, orgs, days)
        return certs.cert_to_pem(cert), certs.key_to_pem(key)

    def issue_server_cert(
        self,
        cn: str,
        hostnames: Iterable[str] = (),
        addresses: Iterable[str] = (),
        days: int = 365,
    ) -> tuple[bytes, bytes]:
        """A serving certificate (e.g. a kubelet's) for the given names and IPs. Not stored."""
        dns, ips = _split_names(hostnames)
        ips |= {ipaddress.ip_address(a) for a in addresses}
        cert, key = certs.make_server_cert(self.ca_cert, self._key(), cn, sorted(dns), _sorted_ips(ips), days)
        return certs.cert_to_pem(cert), certs.key_to_pem(key)

    def ca_hash(self) -> str:
        """`sha256:<hex>` of the CA's SubjectPublicKeyInfo (kubeadm's --discovery-token-ca-cert-hash)."""
        return certs.spki_sha256(self.ca_cert)

    def write_admin_kubeconfig(self, path: str, server: str) -> None:
        from kubelite.pki.kubeconfig import write_kubeconfig

        write_kubeconfig(
            path,
            server=server,
            ca_pem=self.ca_cert_pem,
            client_cert_pem=self.admin_cert_pem,
            client_key_pem=self.admin_key_pem,
        )


def ensure_cluster_pki(
    data_dir: str,
    *,
    hostnames: list[str] | None = None,
    addresses: list[str] | None = None,
    service_ip: str = "10.96.0.1",
) -> ClusterPKI:
    """Load the PKI under `<data_dir>/pki/`, creating or repairing whatever is missing."""
    pki_dir = os.path.join(data_dir, "pki")
    if not os.path.isdir(data_dir):
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    os.chmod(pki_dir, 0o700)

    wanted_dns, wanted_ips = serving_names(hostnames or [], addresses or [], service_ip)
    with _locked(pki_dir):
        ca_cert, ca_key, ca_pem, ca_new = _ensure_ca(pki_dir)
        dns, ips = _ensure_serving(pki_dir, ca_cert, ca_key, ca_new, wanted_dns, wanted_ips)
        _ensure_admin(pki_dir, ca_cert, ca_key, ca_new)
        _ensure_sa(pki_dir)
        _tighten_key_modes(pki_dir)
    if isinstance(ca_key, _LazyKey):
        ca_key = ca_key.loaded
    return ClusterPKI(pki_dir, ca_cert, ca_pem, dns, ips, ca_key)


def serving_names(
    hostnames: Iterable[str], addresses: Iterable[str], service_ip: str
) -> tuple[set[str], set[IPAddress]]:
    """Every DNS name and IP the API serving certificate must carry."""
    dns, ips = _split_names(hostnames)
    ips |= {ipaddress.ip_address(a) for a in addresses}
    host_dns, host_ips = host_identity()
    dns |= set(LOCAL_NAMES) | set(KUBERNETES_SERVICE_NAMES) | host_dns
    ips |= set(LOCAL_ADDRESSES) | host_ips | {ipaddress.ip_address(service_ip)}
    return dns, ips


def host_identity() -> tuple[set[str], set[IPAddress]]:
    """This host's name(s) and non-loopback addresses, found without DNS or network traffic."""
    names: set[str] = set()
    hostname = socket.gethostname().strip().lower().rstrip(".")
    if hostname and hostname != "localhost":
        names.add(hostname)
        short = hostname.split(".", 1)[0]
        if short:
            names.add(short)
    ips: set[IPAddress] = set()
    for ip in _interface_addresses():
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast):
            ips.add(ip)
    return names, ips


def _interface_addresses() -> Iterator[IPAddress]:
    # connect() on a UDP socket only picks a route and a source address: no packet is sent.
    for family, probe in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                yield ipaddress.ip_address(s.getsockname()[0].split("%", 1)[0])
        except OSError:
            pass
    if not sys.platform.startswith("linux"):
        return
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    req = struct.pack("256s", name.encode()[:15])
                    res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)
                except OSError:
                    continue
                yield ipaddress.IPv4Address(res[20:24])
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[3] == "00":  # global scope only
                    yield ipaddress.IPv6Address(bytes.fromhex(parts[0]))
    except (OSError, ValueError):
        pass


def _split_names(names: Iterable[str]) -> tuple[set[str], set[IPAddress]]:
    dns: set[str] = set()
    ips: set[IPAddress] = set()
    for n in names:
        n = n.strip()
        if not n:
            continue
        try:
            ips.add(ipaddress.ip_address(n.strip("[]")))
        except ValueError:
            dns.add(n.lower().rstrip("."))
    return dns, ips


def _sorted_ips(ips: Iterable[IPAddress]) -> list[IPAddress]:
    return sorted(ips, key=lambda ip: (ip.version, int(ip)))


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _read_optional(path: str) -> bytes | None:
    try:
        return _read(path)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(pki_dir: str) -> Iterator[None]:
    # Server and agent may share a data dir and start together; only one of them generates.
    fd = os.open(os.path.join(pki_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _LazyKey:
    """The CA key, read from disk only when a leaf certificate has to be signed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.loaded: ec.EllipticCurvePrivateKey | None = None

    def get(self) -> ec.EllipticCurvePrivateKey:
        if self.loaded is None:
            self.loaded = certs.load_key(_read(self.path))
        return self.loaded


def _ensure_ca(pki_dir: str) -> tuple[x509.Certificate, _LazyKey, bytes, bool]:
    cert_path = os.path.join(pki_dir, "ca.crt")
    key_path = os.path.join(pki_dir, "ca.key")
    pem = _read_optional(cert_path)
    lazy = _LazyKey(key_path)
    if pem is not None:
        if not os.path.exists(key_path):
            raise RuntimeError(f"{cert_path} exists but its key {key_path} is missing")
        return certs.load_cert(pem), lazy, pem, False
    # The key is written before the cert, so a crash in between leaves no ca.crt and we start over.
    cert, key = certs.make_ca()
    pem = certs.cert_to_pem(cert)
    certs.write_atomic(key_path, certs.key_to_pem(key), certs.KEY_MODE)
    certs.write_atomic(cert_path, pem, certs.CERT_MODE)
    lazy.loaded = key
    return cert, lazy, pem, True


def _usable_leaf(
    cert_path: str, key_path: str, ca_cert: x509.Certificate
) -> x509.Certificate | None:
    """The stored leaf cert if it is whole, signed by `ca_cert` and not about to expire."""
    cert_pem = _read_optional(cert_path)
    key_pem = _read_optional(key_path)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = certs.load_cert(cert_pem)
        key = certs.load_key(key_pem)
    except ValueError:
        return None
    if cert.public_key() != key.public_key():
        return None
    if not certs.issued_by(cert, ca_cert):
        return None
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return None
    return cert


def _store_leaf(pki_dir: str, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    certs.write_atomic(os.path.join(pki_dir, name + ".key"), certs.key_to_pem(key), certs.KEY_MODE)
    certs.write_atomic(os.path.join(pki_dir, name + ".crt"), certs.cert_to_pem(cert), certs.CERT_MODE)


def _ensure_serving(
    pki_dir: str,
    ca_cert: x509.Certificate,
    ca_key: _LazyKey,
    ca_new: bool,
    wanted_dns: set[str],
    wanted_ips: set[IPAddress],
) -> tuple[set[str], set[IPAddress]]:
    cert_path = os.path.join(pki_dir, "apiserver.crt")
    key_path = os.path.join(pki_dir, "apiserver.key")
    current = None if ca_new else _usable_leaf(cert_path, key_path, ca_cert)
    if current is not None:
        dns, ips = certs.cert_sans(current)
        if wanted_dns <= dns and wanted_ips <= ips:
            return dns, ips
        # Keep the names the old cert had, so that an address that comes and goes (a bridge
        # interface) does not make us re-issue on every start.
        wanted_dns, wanted_ips = wanted_dns | dns, wanted_ips | ips
    cert, key = certs.make_server_cert(
        ca_cert, ca_key.get(), SERVING_CN, sorted(wanted_dns), _sorted_ips(wanted_ips)
    )
    _store_leaf(pki_dir, "apiserver", cert, key)
    return set(wanted_dns), set(wanted_ips)


def _ensure_admin(pki_dir: str, ca_cert: x509.Certificate, ca_key: _LazyKey, ca_new: bool) -> None:
    cert_path = os.path.join(pki_dir, "admin.crt")
    key_path = os.path.join(pki_dir, "admin.key")
    if not ca_new and _usable_leaf(cert_path, key_path, ca_cert) is not None:
        return
    cert, key = certs.make_client_cert(ca_cert, ca_key.get(), ADMIN_USER, [ADMIN_GROUP])
    _store_leaf(pki_dir, "admin", cert, key)


def _ensure_sa(pki_dir: str) -> None:
    key_path = os.path.join(pki_dir, "sa.key")
    pub_path = os.path.join(pki_dir, "sa.pub")
    key_pem = _read_optional(key_path)
    if key_pem is not None:
        # Never replace an unreadable signing key silently: that would void every issued token.
        try:
            key = certs.load_key(key_pem)
        except ValueError as e:
            raise RuntimeError(f"cannot load the service-account signing key {key_path}: {e}") from e
    else:
        key = certs.new_key()
        certs.write_atomic(key_path, certs.key_to_pem(key), certs.KEY_MODE)
    pub_pem = certs.public_key_to_pem(key)
    if _read_optional(pub_path) != pub_pem:
        certs.write_atomic(pub_path, pub_pem, certs.CERT_MODE)


def _tighten_key_modes(pki_dir: str) -> None:
    for name in ("ca.key", "apiserver.key", "admin.key", "sa.key"):
        path = os.path.join(pki_dir, name)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, certs.KEY_MODE)
