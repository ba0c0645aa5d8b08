"""`kubelite join`: token discovery, TLS bootstrap and the node agent, as `kubeadm join` and the kubelet do.

1. Discovery. `cluster-info` is fetched from `kube-public` anonymously over TLS *without* trusting the server
   yet. Its `jws-kubeconfig-<token id>` signature must be the HS256 detached JWS the token makes over the
   kubeconfig (proof that whoever published it holds the token); then the CA in that kubeconfig must hash
   (sha256 over its SubjectPublicKeyInfo) to one of the `--discovery-token-ca-cert-hash` pins. Only then is
   the CA trusted, and cluster-info is fetched again through it to check the server holds the CA's key.
   Nothing is sent with credentials and nothing is written before this succeeds.
2. TLS bootstrap. With the bootstrap token as bearer, a CertificateSigningRequest for
   `system:node:<name>` in `system:nodes` (signer `kubernetes.io/kube-apiserver-client-kubelet`, usages
   digital signature + client auth) is created; the controllers approve (SubjectAccessReview on
   `certificatesigningrequests/nodeclient`) and sign it.
3. The node's kubeconfig (`<data_dir>/kubelet.kubeconfig`, 0600, in a 0700 data dir) holds the signed
   certificate and its key; the node agent runs with it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.pki import certs
from kubelite.pki import csr as pkicsr
from kubelite.pki.components import node_identity
from kubelite.pki.kubeconfig import write_kubeconfig

from . import jws
from .clusterinfo import parse_cluster_info_kubeconfig
from .tokens import TokenError, parse_token

log = logging.getLogger("kubelite.join")

Obj = dict[str, Any]
_REG = Registry()
CSRS = _REG.get("certificates.k8s.io", "v1", "certificatesigningrequests")
NODES = _REG.get("", "v1", "nodes")
KUBECONFIG_NAME = "kubelet.kubeconfig"
CLUSTER_INFO_PATH = f"/api/v1/namespaces/{jws.PUBLIC_NAMESPACE}/configmaps/{jws.CLUSTER_INFO}"


class JoinError(Exception):
    """Join refused or failed; the message says why and what to do."""


@dataclass
class JoinConfig:
    endpoint: str  # host:port of the API server (or https://host:port)
    token: str  # <id>.<secret>
    ca_cert_hashes: list[str] = field(default_factory=list)
    unsafe_skip_ca_verification: bool = False
    node_name: str = ""
    data_dir: str = ""
    discovery_timeout: float = 30.0
    tls_bootstrap_timeout: float = 300.0
    poll_interval: float = 0.2
    out: Any = None  # where progress lines go (default: stdout)

    @property
    def url(self) -> str:
        return self.endpoint if self.endpoint.startswith("https://") else f"https://{self.endpoint}"

    def say(self, line: str) -> None:
        print(line, file=self.out or sys.stdout, flush=True)


def default_node_name() -> str:
    """The host's name, lower-cased, as the kubelet's --hostname-override default."""
    return socket.gethostname().strip().lower().split(".", 1)[0] or "node"


def kubeconfig_path(data_dir: str) -> str:
    return os.path.join(data_dir, KUBECONFIG_NAME)


def check_join_config(cfg: JoinConfig) -> tuple[str, str]:
    """(token id, token secret) once the flags make sense; JoinError otherwise (BOOT-02: a pin is required)."""
    try:
        token_id, token_secret = parse_token(cfg.token)
    except TokenError as e:
        raise JoinError(str(e)) from None
    if not cfg.ca_cert_hashes and not cfg.unsafe_skip_ca_verification:
        raise JoinError("using token-based discovery without --discovery-token-ca-cert-hash can be unsafe: pass "
                        "--discovery-token-ca-cert-hash sha256:<hex> (`kubelite token create --print-join-command` "
                        "on the control-plane node prints it), or --discovery-token-unsafe-skip-ca-verification "
                        "to continue")
    for pin in cfg.ca_cert_hashes:
        try:
            jws.parse_ca_hash(pin)
        except ValueError as e:
            raise JoinError(f"invalid --discovery-token-ca-cert-hash: {e}") from None
    return token_id, token_secret


async def _fetch_cluster_info(url: str, ssl_context: ssl.SSLContext, timeout: float) -> Obj:
    """GET cluster-info with no credentials at all."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        async with session.get(url + CLUSTER_INFO_PATH, ssl=ssl_context,
                               headers={"Accept": "application/json",
                                        "User-Agent": "kubelite-join/v1.33.1"}) as resp:
            body = await resp.read()
            if resp.status == 200:
                return await resp.json(content_type=None)
            try:
                message = (await resp.json(content_type=None)).get("message", "")
            except (ValueError, aiohttp.ContentTypeError):
                message = body.decode("utf-8", "replace")[:200]
            raise JoinError(f"failed to request the {jws.CLUSTER_INFO} ConfigMap: {resp.status} {message}".rstrip())


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def trusted_context(ca_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem.decode("ascii"))


def verify_cluster_info(cm: Obj, token_id: str, token_secret: str, pins: list[str],
                        skip_ca_verification: bool = False) -> tuple[str, bytes, str]:
    """(server, CA PEM, kubeconfig text) of a fetched cluster-info, after the JWS and pin checks."""
    data = cm.get("data") or {}
    content = data.get(jws.KUBECONFIG_KEY)
    if not isinstance(content, str):
        raise JoinError(f"there is no {jws.KUBECONFIG_KEY} key in the {jws.CLUSTER_INFO} ConfigMap")
    signature = data.get(jws.SIGNATURE_PREFIX + token_id)
    if not signature:
        raise JoinError(f'token id "{token_id}" is invalid for this cluster or it has expired. Use '
                        f'"kubelite token create" on the control-plane node to create a new valid token')
    if not jws.detached_signature_valid(signature, content, token_id, token_secret):
        raise JoinError(f"failed to verify JWS signature of received {jws.CLUSTER_INFO} object, can't trust this "
                        f"API Server")
    try:
        server, ca_pem = parse_cluster_info_kubeconfig(content)
        actual = jws.ca_hash(ca_pem)
    except ValueError as e:
        raise JoinError(str(e)) from None
    if not skip_ca_verification and not jws.ca_matches_pins(ca_pem, pins):
        raise JoinError(f'cluster CA found in {jws.CLUSTER_INFO} ConfigMap is invalid: none of the public keys '
                        f'"{actual}" are pinned: the CA public key does not match the pinned hash '
                        f'(--discovery-token-ca-cert-hash {", ".join(pins)})')
    return server, ca_pem, content


async def discover(cfg: JoinConfig, token_id: str, token_secret: str) -> bytes:
    """The cluster CA, proven by the token's signature and the pins (step 1 of the module docstring)."""
    deadline = time.monotonic() + cfg.discovery_timeout
    cm: Obj | None = None
    last: Exception | None = None
    while cm is None:
        try:
            cm = await _fetch_cluster_info(cfg.url, _insecure_context(), 10.0)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            last = e
            if time.monotonic() >= deadline:
                raise JoinError(f"cannot reach the API server at {cfg.url}: {last}") from None
            await asyncio.sleep(1.0)
    _, ca_pem, content = verify_cluster_info(cm, token_id, token_secret, cfg.ca_cert_hashes,
                                             cfg.unsafe_skip_ca_verification)
    if cfg.unsafe_skip_ca_verification:
        cfg.say("[discovery] WARNING: --discovery-token-unsafe-skip-ca-verification: the cluster CA "
                f"({jws.ca_hash(ca_pem)}) is trusted without a pin; a server that knows the token can impersonate "
                "the control plane")
    try:
        again = await _fetch_cluster_info(cfg.url, trusted_context(ca_pem), 10.0)
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise JoinError(f"the API server at {cfg.url} does not present a certificate of the pinned CA: {e}") from None
    if (again.get("data") or {}).get(jws.KUBECONFIG_KEY) != content:
        raise JoinError(f"the {jws.CLUSTER_INFO} ConfigMap changed between the insecure and the secure request")
    return ca_pem


def _refused(e: ClientError) -> JoinError:
    if e.code == 401:
        return JoinError("the API server refused the bootstrap token (401 Unauthorized): the token is unknown or "
                         "has expired. Use \"kubelite token create\" on the control-plane node to create a new "
                         "valid token")
    if e.code == 403:
        return JoinError(f"the bootstrap token may not do this (403 Forbidden): {e.message}")
    return JoinError(f"{e.code} {e.reason}: {e.message}")


async def tls_bootstrap(cfg: JoinConfig, ca_pem: bytes, node_name: str) -> tuple[bytes, bytes, str]:
    """(certificate PEM, key PEM, CSR name) for `system:node:<node_name>`, approved and signed by the cluster."""
    client = ApiClient(cfg.url, trusted_context(ca_pem), token=cfg.token, user_agent="kubelite-join/v1.33.1")
    try:
        try:
            node = await client.get(NODES, None, node_name)
        except ClientError as e:
            if e.code in (401,):
                raise _refused(e) from None
            node = None  # 404, or a token without kubeadm:get-nodes
        if node is not None and any(c.get("type") == "Ready" and c.get("status") == "True"
                                    for c in (node.get("status") or {}).get("conditions") or []):
            raise JoinError(f'a Node with name "{node_name}" and status "Ready" already exists in the cluster. You '
                            f'must delete the existing Node or change the name of this new joining Node')
        key = certs.new_key()
        cn, orgs = node_identity(node_name)
        request = pkicsr.make_csr(key, cn, orgs)
        body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"generateName": "node-csr-"},
                "spec": {"request": base64.b64encode(request).decode("ascii"),
                         "signerName": pkicsr.KUBE_APISERVER_CLIENT_KUBELET,
                         "usages": ["digital signature", "client auth"]}}
        try:
            created = await client.create(CSRS, body)
        except ClientError as e:
            raise _refused(e) from None
        name = created["metadata"]["name"]
        cfg.say(f"[kubelet-start] Waiting for the certificate signing request {name} to be approved and signed")
        deadline = time.monotonic() + cfg.tls_bootstrap_timeout
        while True:
            try:
                csr = await client.get(CSRS, None, name)
            except ClientError as e:
                raise _refused(e) from None
            status = csr.get("status") or {}
            for c in status.get("conditions") or []:
                if c.get("type") in ("Denied", "Failed") and c.get("status", "True") == "True":
                    raise JoinError(f"the certificate signing request {name} was {c['type'].lower()}: "
                                    f"{c.get('reason', '')}: {c.get('message', '')}")
            if status.get("certificate"):
                cert_pem = base64.b64decode(status["certificate"])
                cert = certs.load_cert(cert_pem)
                if cert.public_key() != key.public_key() or not certs.issued_by(cert, certs.load_cert(ca_pem)):
                    raise JoinError(f"the certificate issued for {name} does not match the request or the CA")
                return cert_pem, certs.key_to_pem(key), name
            if time.monotonic() >= deadline:
                raise JoinError(f"timed out waiting for the certificate signing request {name} to be approved and "
                                f"signed; approve it with `kubectl certificate approve {name}`")
            await asyncio.sleep(cfg.poll_interval)
    finally:
        await client.close()


def write_node_kubeconfig(data_dir: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                          node_name: str) -> str:
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    os.chmod(data_dir, 0o700)
    path = kubeconfig_path(data_dir)
    cn, _ = node_identity(node_name)
    write_kubeconfig(path, server=server, ca_pem=ca_pem, client_cert_pem=cert_pem, client_key_pem=key_pem,
                     user=cn, context=f"{cn}@kubelite")
    return path


async def join(cfg: JoinConfig) -> str:
    """Discovery and TLS bootstrap; returns the path of the node's kubeconfig (JoinError when refused)."""
    token_id, token_secret = check_join_config(cfg)
    node_name = cfg.node_name or default_node_name()
    cfg.say(f"[discovery] Fetching {jws.PUBLIC_NAMESPACE}/{jws.CLUSTER_INFO} from {cfg.url}")
    ca_pem = await discover(cfg, token_id, token_secret)
    cfg.say(f"[discovery] Cluster info signature and contents are valid; CA {jws.ca_hash(ca_pem)} is pinned; will "
            f"use API Server \"{cfg.url}\"")
    cert_pem, key_pem, csr_name = await tls_bootstrap(cfg, ca_pem, node_name)
    path = write_node_kubeconfig(cfg.data_dir, cfg.url, ca_pem, cert_pem, key_pem, node_name)
    cfg.say(f"[kubelet-start] Certificate signing request {csr_name} was approved and signed; wrote {path}")
    return path
