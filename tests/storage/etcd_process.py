"""Real etcd members for tests: free loopback ports, a temp data dir, stopped by the test.

Import as `from storage.etcd_process import ...` (tests/ is on the path)."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
SKIP_REASON = f"etcd is not installed ({ETCD} missing; Debian package etcd-server)"


def etcd_available() -> bool:
    return os.access(ETCD, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EtcdTLS:
    """A CA of etcd's own, a serving certificate for 127.0.0.1 and a client certificate, as files."""
    directory: str
    ca_file: str = ""
    cert_file: str = ""  # server
    key_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""

    @classmethod
    def make(cls, directory: str) -> EtcdTLS:
        from kubelite.pki import certs

        os.makedirs(directory, exist_ok=True)
        ca_cert, ca_key = certs.make_ca("etcd-ca")
        server, server_key = _peer_cert(ca_cert, ca_key)
        client, client_key = certs.make_client_cert(ca_cert, ca_key, "kube-apiserver-etcd-client")
        tls = cls(directory)

        def write(name: str, data: bytes) -> str:
            path = os.path.join(directory, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o600)
            return path

        tls.ca_file = write("ca.crt", certs.cert_to_pem(ca_cert))
        tls.cert_file = write("server.crt", certs.cert_to_pem(server))
        tls.key_file = write("server.key", certs.key_to_pem(server_key))
        tls.client_cert_file = write("client.crt", certs.cert_to_pem(client))
        tls.client_key_file = write("client.key", certs.key_to_pem(client_key))
        return tls


def _peer_cert(ca_cert, ca_key):
    """etcd's serving certificate: its gateway dials etcd itself with it, so it is a client certificate too."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


@dataclass
class EtcdMember:
    name: str
    data_dir: str
    client_port: int = field(default_factory=_free_port)
    peer_port: int = field(default_factory=_free_port)
    tls: EtcdTLS | None = None
    initial_cluster: str = ""
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, *, wait: bool = True) -> None:
        args = [ETCD, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
                "--initial-cluster-state", "new", "--log-level", "warn", "--logger", "zap", *self.extra_args]
        if self.tls:
            args += ["--cert-file", self.tls.cert_file, "--key-file", self.tls.key_file,
                     "--trusted-ca-file", self.tls.ca_file, "--client-cert-auth=true"]
        self.log_path = self.data_dir + ".log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()

    def _request(self, path: str, body: dict, timeout: float = 2.0) -> dict:
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.tls.ca_file)
            context.load_cert_chain(self.tls.client_cert_file, self.tls.client_key_file)
        req = urllib.request.Request(self.endpoint + path, json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return json.loads(r.read())

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}: {self.log()}")
            try:
                self._request("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"etcd did not become ready: {self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def etcdctl(self, *args: str, cert: bool = True, check: bool = True,
                timeout: float = 10.0) -> subprocess.CompletedProcess:
        flags = ["--endpoints", self.endpoint, "--dial-timeout", "2s", "--command-timeout", "3s"]
        if self.tls:
            flags += ["--cacert", self.tls.ca_file]
            if cert:
                flags += ["--cert", self.tls.client_cert_file, "--key", self.tls.client_key_file]
        return subprocess.run([ETCDCTL, *flags, *args], capture_output=True, text=True, check=check,
                              timeout=timeout, env={**os.environ, "ETCDCTL_API": "3"})


def start_cluster(base_dir: str, members: int = 3, extra_args: list[str] | None = None) -> list[EtcdMember]:
    """A cluster of `members` etcds on loopback, every one serving."""
    nodes = [EtcdMember(f"m{i}", os.path.join(base_dir, f"m{i}"), extra_args=list(extra_args or []))
             for i in range(members)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in nodes)
    for m in nodes:
        m.initial_cluster = initial
        m.start(wait=False)
    try:
        for m in nodes:
            m.wait_ready()
    except BaseException:
        for m in nodes:
            m.stop(signal.SIGKILL)
        raise
    return nodes
