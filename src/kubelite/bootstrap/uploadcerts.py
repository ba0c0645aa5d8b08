"""kubeadm's upload-certs phase: the control plane's shared keys, encrypted, in Secret kube-system/kubeadm-certs,
for `kubelite join --control-plane --certificate-key <key>`.

As kubeadm: a random 32-byte AES key (printed once as hex, never stored in the cluster) encrypts each file with
AES-256-GCM (the 12-byte nonce, then the sealed bytes); the Secret's keys are the file names with `/` as `-`
(`etcd/ca.crt` → `etcd-ca.crt`). The Secret is owned by a bootstrap token that expires after two hours, so the
garbage collector deletes it then. A Role lets the default node token group read it (and the
`kubeadm-config` ConfigMap a joining control plane reads its settings from).
"""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any

import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError

from .clusterconfig import KUBEADM_CONFIG, KUBELITE_KEY
from .tokens import generate_token, parse_token, token_secret

_REG = Registry()
SECRETS = _REG.get("", "v1", "secrets")
CONFIGMAPS = _REG.get("", "v1", "configmaps")
ROLES = _REG.get("rbac.authorization.k8s.io", "v1", "roles")
ROLEBINDINGS = _REG.get("rbac.authorization.k8s.io", "v1", "rolebindings")
NAMESPACE = "kube-system"
SECRET_NAME = "kubeadm-certs"
CERTS_ROLE = "kubeadm:kubeadm-certs"
NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
TTL_SECONDS = 2 * 3600
TTL_DESCRIPTION = "Proxy for managing TTL for the kubeadm-certs secret"
# the files every control-plane machine shares (under <data_dir>/pki); front-proxy ones when they exist
SHARED_FILES = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key",
                "etcd/ca.crt", "etcd/ca.key")
REQUIRED_FILES = ("ca.crt", "ca.key", "sa.key", "sa.pub")
KEY_MODE_FILES = {"ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key"}


class CertsError(Exception):
    pass


def new_certificate_key() -> str:
    return secrets.token_hex(32)


def _key_bytes(certificate_key: str) -> bytes:
    try:
        key = bytes.fromhex(certificate_key.strip())
    except ValueError:
        raise CertsError("the certificate key must be hex (64 digits, as `kubelite init --upload-certs` "
                         "prints it)") from None
    if len(key) != 32:
        raise CertsError(f"the certificate key must be 32 bytes (64 hex digits), got {len(key)} bytes")
    return key


def encrypt(data: bytes, key: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def decrypt(blob: bytes, key: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag

    if len(blob) < 12 + 16:
        raise CertsError("an encrypted certificate is too short")
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], None)
    except InvalidTag:
        raise CertsError("cannot decrypt the certificates with this certificate key: is it the one `kubelite "
                         "init --upload-certs` (or `kubelite init phase upload-certs`) printed last?") from None


def secret_key_name(path: str) -> str:
    return path.replace("/", "-")


def encrypted_data(pki_dir: str, certificate_key: str) -> dict[str, str]:
    """The Secret's `data`: every shared file present, encrypted, base64."""
    key = _key_bytes(certificate_key)
    data = {}
    for name in SHARED_FILES:
        path = os.path.join(pki_dir, name)
        if not os.path.exists(path):
            if name in REQUIRED_FILES:
                raise CertsError(f"{path} is missing")
            continue
        with open(path, "rb") as f:
            data[secret_key_name(name)] = base64.b64encode(encrypt(f.read(), key)).decode()
    return data


def decrypted_files(secret: dict[str, Any], certificate_key: str) -> dict[str, bytes]:
    """{file name under pki/: content} of a kubeadm-certs Secret."""
    key = _key_bytes(certificate_key)
    data = secret.get("data") or {}
    files = {}
    for name in SHARED_FILES:
        value = data.get(secret_key_name(name))
        if value is None:
            if name in REQUIRED_FILES:
                raise CertsError(f"the {SECRET_NAME} Secret has no {secret_key_name(name)}")
            continue
        files[name] = decrypt(base64.b64decode(value), key)
    return files


def write_files(pki_dir: str, files: dict[str, bytes]) -> None:
    from kubelite.pki.certs import CERT_MODE, KEY_MODE, write_atomic

    os.makedirs(os.path.join(pki_dir, "etcd"), mode=0o700, exist_ok=True)
    os.chmod(pki_dir, 0o700)
    for name, content in files.items():
        write_atomic(os.path.join(pki_dir, name), content, KEY_MODE if name in KEY_MODE_FILES else CERT_MODE)


async def _apply(client: ApiClient, rt, obj: dict[str, Any]) -> dict[str, Any]:
    """Create, or replace what is there."""
    meta = obj["metadata"]
    try:
        return await client.create(rt, obj, meta.get("namespace"))
    except ClientError as e:
        if not e.is_already_exists:
            raise
    current = await client.get(rt, meta.get("namespace"), meta["name"])
    obj = {**obj, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
    return await client.update(rt, obj)


async def _role(client: ApiClient, name: str, resource: str, resource_name: str, groups: list[str]) -> None:
    await _apply(client, ROLES, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": [resource], "resourceNames": [resource_name], "verbs": ["get"]}]})
    await _apply(client, ROLEBINDINGS, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups]})


async def upload_certs(client: ApiClient, pki_dir: str, certificate_key: str | None = None) -> str:
    """Encrypt and upload the shared keys; returns the certificate key (a new one unless given)."""
    certificate_key = certificate_key or new_certificate_key()
    data = encrypted_data(pki_dir, certificate_key)
    token = generate_token()
    token_id, _ = parse_token(token)
    owner = await client.create(SECRETS, token_secret(token, TTL_SECONDS, usages=(), groups=(),
                                                      description=TTL_DESCRIPTION), NAMESPACE)
    await _apply(client, SECRETS, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE, "ownerReferences": [{
            "apiVersion": "v1", "kind": "Secret", "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "data": data})
    await _role(client, CERTS_ROLE, "secrets", SECRET_NAME, [NODE_TOKEN_GROUP])
    return certificate_key


async def download(client: ApiClient, certificate_key: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(the shared files, the ClusterConfiguration) with a bootstrap token's client."""
    try:
        secret = await client.get(SECRETS, NAMESPACE, SECRET_NAME)
    except ClientError as e:
        if e.is_not_found:
            raise CertsError(f"Secret {NAMESPACE}/{SECRET_NAME} not found: it is deleted two hours after "
                             f"upload; run `kubelite init phase upload-certs --upload-certs` on a control-plane "
                             f"machine for a new one and its key") from None
        raise CertsError(f"reading Secret {NAMESPACE}/{SECRET_NAME}: {e.code} {e.message}") from None
    files = decrypted_files(secret, certificate_key)
    try:
        cm = await client.get(CONFIGMAPS, NAMESPACE, KUBEADM_CONFIG)
        config = yaml.safe_load((cm.get("data") or {}).get("ClusterConfiguration") or "") or {}
        config[KUBELITE_KEY] = yaml.safe_load((cm.get("data") or {}).get(KUBELITE_KEY) or "") or {}
    except ClientError as e:
        raise CertsError(f"reading ConfigMap {NAMESPACE}/{KUBEADM_CONFIG}: {e.code} {e.message}") from None
    return files, config
