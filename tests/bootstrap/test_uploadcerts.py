"""kubeadm's upload-certs format: AES-256-GCM with a hex key, nonce first, Secret keys with `/` as `-`."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubelite.bootstrap import uploadcerts
from kubelite.pki.ca import ensure_cluster_pki


def test_round_trip_in_kubeadms_format(tmp_path):
    ensure_cluster_pki(str(tmp_path))
    (tmp_path / "pki" / "etcd").mkdir()
    (tmp_path / "pki" / "etcd" / "ca.crt").write_bytes(b"etcd ca")
    (tmp_path / "pki" / "etcd" / "ca.key").write_bytes(b"etcd key")
    key = uploadcerts.new_certificate_key()
    assert len(key) == 64 and bytes.fromhex(key)
    data = uploadcerts.encrypted_data(str(tmp_path / "pki"), key)
    assert set(data) == {"ca.crt", "ca.key", "sa.key", "sa.pub", "etcd-ca.crt", "etcd-ca.key"}
    blob = base64.b64decode(data["etcd-ca.key"])
    # kubeadm decrypts with the first 12 bytes as the nonce
    assert AESGCM(bytes.fromhex(key)).decrypt(blob[:12], blob[12:], None) == b"etcd key"
    files = uploadcerts.decrypted_files({"data": data}, key)
    assert files["ca.crt"] == (tmp_path / "pki" / "ca.crt").read_bytes()
    out = tmp_path / "other"
    uploadcerts.write_files(str(out), files)
    assert (out / "etcd" / "ca.key").read_bytes() == b"etcd key"
    assert (out / "ca.key").stat().st_mode & 0o077 == 0


def test_wrong_or_malformed_key(tmp_path):
    ensure_cluster_pki(str(tmp_path))
    data = uploadcerts.encrypted_data(str(tmp_path / "pki"), uploadcerts.new_certificate_key())
    with pytest.raises(uploadcerts.CertsError, match="cannot decrypt"):
        uploadcerts.decrypted_files({"data": data}, uploadcerts.new_certificate_key())
    with pytest.raises(uploadcerts.CertsError, match="32 bytes"):
        uploadcerts.decrypted_files({"data": data}, "abcd")
    with pytest.raises(uploadcerts.CertsError, match="hex"):
        uploadcerts.decrypted_files({"data": data}, "zz" * 32)
