import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import stat
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubelite.pki import ca as ca_mod
from kubelite.pki import certs, ensure_cluster_pki

FILES = ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key", "sa.pub")


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _snapshot(pki_dir):
    out = {}
    for name in FILES:
        with open(os.path.join(pki_dir, name), "rb") as f:
            out[name] = f.read()
    return out


def _sans(cert):
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def test_fresh_pki_files_and_modes(tmp_path):
    data = tmp_path / "data"
    pki = ensure_cluster_pki(str(data))
    assert pki.dir == str(data / "pki")
    assert _mode(pki.dir) == 0o700
    for name in FILES:
        path = os.path.join(pki.dir, name)
        want = 0o600 if name.endswith(".key") else 0o644
        assert _mode(path) == want, name
    # no temp files left behind by the atomic writes
    assert not [n for n in os.listdir(pki.dir) if n.endswith(".tmp")]


def test_ca_is_kubeadm_like(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    cert = _cert(pki.ca_cert_path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kubernetes"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3649) < life < dt.timedelta(days=3651)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert pki.ca_cert_pem == open(pki.ca_cert_path, "rb").read()


def test_serving_cert_sans(tmp_path):
    pki = ensure_cluster_pki(
        str(tmp_path), hostnames=["api.example.com", "10.1.2.3"], addresses=["192.168.50.7"], service_ip="10.43.0.1"
    )
    cert = _cert(pki.serving_cert_path)
    cert.verify_directly_issued_by(_cert(pki.ca_cert_path))
    dns, ips = _sans(cert)
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "api.example.com",
    } <= dns
    assert {"127.0.0.1", "::1", "10.43.0.1", "10.1.2.3", "192.168.50.7"} <= ips
    host_dns, host_ips = ca_mod.host_identity()
    assert host_dns <= dns
    assert {str(i) for i in host_ips} <= ips
    assert not any(ipaddress.ip_address(i).is_link_local for i in ips)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=364) < life < dt.timedelta(days=366)
    assert pki.serving_dns_names == dns


def test_host_identity_is_quick_and_sane():
    start = time.perf_counter()
    names, ips = ca_mod.host_identity()
    assert time.perf_counter() - start < 0.05
    assert "localhost" not in names
    assert all(not ip.is_loopback for ip in ips)


def test_admin_cert(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    cert = _cert(pki.admin_cert_path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kubernetes-admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    cert.verify_directly_issued_by(_cert(pki.ca_cert_path))
    key = serialization.load_pem_private_key(pki.admin_key_pem, None)
    assert key.public_key() == cert.public_key()


def test_sa_key_pair(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    key = serialization.load_pem_private_key(pki.sa_key_pem, None)
    pub = serialization.load_pem_public_key(pki.sa_pub_pem)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == pub
    assert ca_mod.SA_SIGNING_ALGORITHM == "ES256"


def test_sa_key_signs_jwt_verifiable_with_pub(tmp_path):
    jwt = pytest.importorskip("jwt")
    pki = ensure_cluster_pki(str(tmp_path))
    token = jwt.encode({"sub": "system:serviceaccount:default:x"}, pki.sa_key_pem, algorithm="ES256")
    assert jwt.decode(token, pki.sa_pub_pem, algorithms=["ES256"])["sub"].endswith(":x")


def test_reload_keeps_everything(tmp_path):
    first = ensure_cluster_pki(str(tmp_path))
    before = _snapshot(first.dir)
    second = ensure_cluster_pki(str(tmp_path))
    assert _snapshot(second.dir) == before
    assert second.ca_hash() == first.ca_hash()


def test_new_address_reissues_only_serving_cert(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    before = _snapshot(pki.dir)
    again = ensure_cluster_pki(str(tmp_path), addresses=["203.0.113.9"], hostnames=["new.example"])
    after = _snapshot(again.dir)
    changed = {n for n in FILES if before[n] != after[n]}
    assert changed == {"apiserver.crt", "apiserver.key"}
    dns, ips = _sans(_cert(again.serving_cert_path))
    assert "203.0.113.9" in ips and "new.example" in dns
    _cert(again.serving_cert_path).verify_directly_issued_by(_cert(again.ca_cert_path))
    # the names are kept: asking without them again does not re-issue
    third = ensure_cluster_pki(str(tmp_path))
    assert _snapshot(third.dir) == after


def test_torn_serving_pair_is_reissued(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    # a crash after writing the new key but before the cert leaves a mismatched pair
    certs.write_atomic(pki.serving_key_path, certs.key_to_pem(certs.new_key()), 0o600)
    again = ensure_cluster_pki(str(tmp_path))
    cert = _cert(again.serving_cert_path)
    key = serialization.load_pem_private_key(open(again.serving_key_path, "rb").read(), None)
    assert key.public_key() == cert.public_key()


def test_leaf_from_other_ca_is_reissued(tmp_path):
    a = ensure_cluster_pki(str(tmp_path / "a"))
    b = ensure_cluster_pki(str(tmp_path / "b"))
    for name in ("admin.crt", "admin.key"):
        shutil.copy(os.path.join(b.dir, name), os.path.join(a.dir, name))
    again = ensure_cluster_pki(str(tmp_path / "a"))
    _cert(again.admin_cert_path).verify_directly_issued_by(_cert(again.ca_cert_path))


def test_expiring_leaf_is_renewed(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    ca_cert = _cert(pki.ca_cert_path)
    ca_key = certs.load_key(open(pki.ca_key_path, "rb").read())
    cert, key = certs.make_client_cert(ca_cert, ca_key, "kubernetes-admin", ["system:masters"], days=3)
    certs.write_atomic(pki.admin_key_path, certs.key_to_pem(key), 0o600)
    certs.write_atomic(pki.admin_cert_path, certs.cert_to_pem(cert), 0o644)
    again = ensure_cluster_pki(str(tmp_path))
    renewed = _cert(again.admin_cert_path)
    assert renewed.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_missing_ca_key_is_an_error(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    os.unlink(pki.ca_key_path)
    with pytest.raises(RuntimeError, match="ca.key"):
        ensure_cluster_pki(str(tmp_path))


def test_loose_key_modes_are_tightened(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    os.chmod(pki.sa_key_path, 0o644)
    os.chmod(pki.dir, 0o755)
    ensure_cluster_pki(str(tmp_path))
    assert _mode(pki.sa_key_path) == 0o600
    assert _mode(pki.dir) == 0o700


def test_issue_client_cert(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    cert_pem, key_pem = pki.issue_client_cert("system:kube-scheduler", ["a", "b"], days=10)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(_cert(pki.ca_cert_path))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-scheduler"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["a", "b"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < dt.timedelta(days=11)
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key() == cert.public_key()
    with pytest.raises(ValueError):
        pki.issue_client_cert("", [])


def test_issue_client_cert_after_reload_uses_stored_ca_key(tmp_path):
    ensure_cluster_pki(str(tmp_path))
    pki = ensure_cluster_pki(str(tmp_path))
    cert_pem, _ = pki.issue_client_cert("alice", ["dev"])
    x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(_cert(pki.ca_cert_path))


def test_issue_server_cert(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    cert_pem, _ = pki.issue_server_cert("node-1", ["node-1", "10.0.0.5"], ["fd00::5"])
    dns, ips = _sans(x509.load_pem_x509_certificate(cert_pem))
    assert dns == {"node-1"} and ips == {"10.0.0.5", "fd00::5"}


def test_ca_hash_matches_openssl_pipeline(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path))
    h = pki.ca_hash()
    assert h.startswith("sha256:") and len(h) == 7 + 64
    der = _cert(pki.ca_cert_path).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert h == "sha256:" + hashlib.sha256(der).hexdigest()
    if shutil.which("openssl"):
        pub = subprocess.run(
            ["openssl", "x509", "-pubkey", "-noout", "-in", pki.ca_cert_path], capture_output=True, check=True
        ).stdout
        der2 = subprocess.run(
            ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True
        ).stdout
        assert h == "sha256:" + hashlib.sha256(der2).hexdigest()


def test_openssl_verifies_chain(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("no openssl")
    pki = ensure_cluster_pki(str(tmp_path))
    for path, purpose in ((pki.serving_cert_path, "sslserver"), (pki.admin_cert_path, "sslclient")):
        r = subprocess.run(
            ["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", pki.ca_cert_path, path],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr


def test_generation_and_load_are_fast(tmp_path):
    ensure_cluster_pki(str(tmp_path / "warm"))  # imports and first-use costs out of the way
    start = time.perf_counter()
    ensure_cluster_pki(str(tmp_path / "fresh"))
    generate = time.perf_counter() - start
    start = time.perf_counter()
    ensure_cluster_pki(str(tmp_path / "fresh"))
    load = time.perf_counter() - start
    # generous bounds (a busy 2-core CI machine): they catch a pathological cost such as RSA key generation or
    # re-issuing on every load, not small regressions (bench/ measures those)
    assert generate < 0.5, generate
    assert load < 0.1, load


def test_concurrent_first_start_makes_one_ca(tmp_path):
    import sys

    code = (
        "import sys; from kubelite.pki import ensure_cluster_pki; "
        "print(ensure_cluster_pki(sys.argv[1]).ca_hash())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    hashes = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert len(hashes) == 1
    assert hashes == {ensure_cluster_pki(str(tmp_path)).ca_hash()}
