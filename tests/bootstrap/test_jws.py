"""Detached JWS signatures of cluster-info and CA pins (security.md §3.2 BOOT-01..04)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest

from kubelite.bootstrap import jws
from kubelite.bootstrap.clusterinfo import cluster_info_kubeconfig
from kubelite.bootstrap.join import JoinConfig, JoinError, check_join_config, verify_cluster_info
from kubelite.pki import certs

TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"


def _pem() -> bytes:
    cert, _ = certs.make_ca()
    return certs.cert_to_pem(cert)


def _cluster_info(ca_pem: bytes, token_id: str = TOKEN_ID, secret: str = TOKEN_SECRET) -> dict:
    content = cluster_info_kubeconfig("https://10.0.0.1:6443", ca_pem)
    return {"data": {"kubeconfig": content,
                     f"jws-kubeconfig-{token_id}": jws.compute_detached_signature(content, token_id, secret)}}


def test_signature_matches_upstream_vectors():
    # the values k8s.io/cluster-bootstrap's own tests expect, so real kubeadm nodes can verify ours
    content = "Hello from the other side. I must have called a thousand times."
    assert jws.compute_detached_signature(content, "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
    assert jws.compute_detached_signature("", "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"


def test_signature_shape():
    sig = jws.compute_detached_signature("payload", TOKEN_ID, TOKEN_SECRET)
    header, payload, mac = sig.split(".")
    assert payload == ""  # detached
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "kid": TOKEN_ID}
    assert len(base64.urlsafe_b64decode(mac + "=")) == 32


def test_verification_rejects_changes():
    sig = jws.compute_detached_signature("the kubeconfig", TOKEN_ID, TOKEN_SECRET)
    assert jws.detached_signature_valid(sig, "the kubeconfig", TOKEN_ID, TOKEN_SECRET)
    assert not jws.detached_signature_valid(sig, "the kubeconfiG", TOKEN_ID, TOKEN_SECRET)
    assert not jws.detached_signature_valid(sig, "the kubeconfig", TOKEN_ID, "0123456789abcdee")
    assert not jws.detached_signature_valid(sig, "the kubeconfig", "abcdeg", TOKEN_SECRET)
    assert not jws.detached_signature_valid(sig + "x", "the kubeconfig", TOKEN_ID, TOKEN_SECRET)


@pytest.mark.parametrize("pin, message", [
    ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "expected \"format:value\""),
    ("md5:00", 'unknown hash format "md5"'),
    ("sha256:zz", "not hex"),
    ("sha256:abcd", "expected 32 bytes"),
])
def test_bad_pins(pin, message):
    with pytest.raises(ValueError, match=message):
        jws.parse_ca_hash(pin)


def test_ca_hash_is_sha256_of_spki():
    pem = _pem()
    der = certs.load_cert(pem).public_key().public_bytes(
        certs.serialization.Encoding.DER, certs.serialization.PublicFormat.SubjectPublicKeyInfo)
    assert jws.ca_hash(pem) == "sha256:" + hashlib.sha256(der).hexdigest()
    assert jws.ca_matches_pins(pem, [jws.ca_hash(pem)])
    assert jws.ca_matches_pins(pem, ["sha256:" + "0" * 64, jws.ca_hash(pem).upper().replace("SHA256", "sha256")])
    assert not jws.ca_matches_pins(pem, ["sha256:" + "0" * 64])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_ca_hash_equals_openssl_pipeline(tmp_path):
    # BOOT-03: openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum
    pem = _pem()
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    assert jws.ca_hash(pem) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_verify_cluster_info_accepts_signed_and_pinned():
    pem = _pem()
    server, ca, _ = verify_cluster_info(_cluster_info(pem), TOKEN_ID, TOKEN_SECRET, [jws.ca_hash(pem)])
    assert server == "https://10.0.0.1:6443"
    assert ca == pem


def test_verify_cluster_info_wrong_pin():
    # BOOT-01: the CA's public key does not match the pin
    pem = _pem()
    with pytest.raises(JoinError, match="none of the public keys .* are pinned: the CA public key does not match"):
        verify_cluster_info(_cluster_info(pem), TOKEN_ID, TOKEN_SECRET, ["sha256:" + "ab" * 32])
    # unless verification is skipped (BOOT-02's escape hatch)
    verify_cluster_info(_cluster_info(pem), TOKEN_ID, TOKEN_SECRET, [], skip_ca_verification=True)


def test_verify_cluster_info_tampered_kubeconfig():
    # BOOT-04: one byte of the kubeconfig changed → the signature no longer verifies
    pem = _pem()
    cm = _cluster_info(pem)
    cm["data"]["kubeconfig"] = cm["data"]["kubeconfig"].replace("10.0.0.1", "10.0.0.9")
    with pytest.raises(JoinError, match="failed to verify JWS signature"):
        verify_cluster_info(cm, TOKEN_ID, TOKEN_SECRET, [jws.ca_hash(pem)])


def test_verify_cluster_info_signed_by_another_token():
    pem = _pem()
    cm = _cluster_info(pem, secret="fedcba9876543210")
    with pytest.raises(JoinError, match="failed to verify JWS signature"):
        verify_cluster_info(cm, TOKEN_ID, TOKEN_SECRET, [jws.ca_hash(pem)])
    with pytest.raises(JoinError, match='token id "zzzzzz" is invalid for this cluster or it has expired'):
        verify_cluster_info(cm, "zzzzzz", TOKEN_SECRET, [jws.ca_hash(pem)])


def test_join_requires_a_pin_or_the_unsafe_flag():
    # BOOT-02
    with pytest.raises(JoinError, match="--discovery-token-unsafe-skip-ca-verification"):
        check_join_config(JoinConfig("127.0.0.1:6443", f"{TOKEN_ID}.{TOKEN_SECRET}"))
    assert check_join_config(JoinConfig("127.0.0.1:6443", f"{TOKEN_ID}.{TOKEN_SECRET}",
                                        unsafe_skip_ca_verification=True)) == (TOKEN_ID, TOKEN_SECRET)
    with pytest.raises(JoinError, match='was not of the form'):
        check_join_config(JoinConfig("127.0.0.1:6443", "ABCDEF.0123456789abcdef", ["sha256:" + "0" * 64]))
    with pytest.raises(JoinError, match="invalid --discovery-token-ca-cert-hash"):
        check_join_config(JoinConfig("127.0.0.1:6443", f"{TOKEN_ID}.{TOKEN_SECRET}", ["sha256:00"]))
