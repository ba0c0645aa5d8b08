"""Detached JWS signatures of `cluster-info`, as upstream's k8s.io/cluster-bootstrap/token/jws.

The bootstrap signer signs the kubeconfig in `kube-public/cluster-info` with every signing bootstrap token:
HS256 keyed by the token secret, protected header `{"alg":"HS256","kid":"<token id>"}`, stored as the compact
serialization with the payload left out (`<header>..<signature>`) under `jws-kubeconfig-<token id>`. A joining
node that knows the token recomputes the signature over the kubeconfig it fetched: a match proves the
ConfigMap came from someone holding the token, before it trusts the CA inside.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from kubelite.pki import certs

SIGNATURE_PREFIX = "jws-kubeconfig-"
KUBECONFIG_KEY = "kubeconfig"
CLUSTER_INFO = "cluster-info"
PUBLIC_NAMESPACE = "kube-public"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compute_detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """`<base64url header>..<base64url HMAC-SHA256>` over `content`, keyed by the token secret."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode("ascii")
    mac = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


def detached_signature_valid(detached: str, content: str, token_id: str, token_secret: str) -> bool:
    """Whether `detached` is the signature the token makes over `content` (constant-time comparison)."""
    expected = compute_detached_signature(content, token_id, token_secret)
    return hmac.compare_digest(detached.encode(), expected.encode())


def parse_ca_hash(text: str) -> bytes:
    """The digest of a `sha256:<64 hex>` pin; ValueError with kubeadm's words otherwise."""
    kind, sep, value = text.partition(":")
    if not sep:
        raise ValueError(f'invalid hash "{text}", expected "format:value"')
    if kind.lower() != "sha256":
        raise ValueError(f'unknown hash format "{kind}". Known format(s) are: sha256')
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f'invalid hash value "{value}" (not hex)') from None
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError(f"invalid hash, expected 32 bytes of sha256 but got {len(digest)} bytes")
    return digest


def ca_hash(ca_pem: bytes) -> str:
    """`sha256:<hex>` of the CA's DER SubjectPublicKeyInfo (kubeadm's --discovery-token-ca-cert-hash)."""
    return certs.spki_sha256(certs.load_cert(ca_pem))


def ca_matches_pins(ca_pem: bytes, pins: list[str]) -> bool:
    """Whether the CA's public key hash is one of `pins` (each validated by `parse_ca_hash`)."""
    actual = bytes.fromhex(ca_hash(ca_pem).split(":", 1)[1])
    return any(hmac.compare_digest(actual, parse_ca_hash(p)) for p in pins)
