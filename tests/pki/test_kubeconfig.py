import base64
import os
import stat

import pytest
import yaml

from kubelite.pki import ensure_cluster_pki, write_kubeconfig


def test_admin_conf_shape(tmp_path):
    pki = ensure_cluster_pki(str(tmp_path / "data"))
    path = tmp_path / "admin.conf"
    write_kubeconfig(
        str(path),
        server="https://127.0.0.1:7443",
        ca_pem=pki.ca_cert_pem,
        client_cert_pem=pki.admin_cert_pem,
        client_key_pem=pki.admin_key_pem,
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cfg = yaml.safe_load(path.read_text())
    assert cfg["apiVersion"] == "v1" and cfg["kind"] == "Config"
    assert cfg["preferences"] == {}
    assert cfg["current-context"] == "kubernetes-admin@kubelite"
    assert cfg["clusters"] == [
        {
            "name": "kubelite",
            "cluster": {
                "server": "https://127.0.0.1:7443",
                "certificate-authority-data": base64.b64encode(pki.ca_cert_pem).decode(),
            },
        }
    ]
    assert cfg["contexts"] == [
        {"name": "kubernetes-admin@kubelite", "context": {"cluster": "kubelite", "user": "kubernetes-admin"}}
    ]
    (user,) = cfg["users"]
    assert user["name"] == "kubernetes-admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == pki.admin_cert_pem
    assert base64.b64decode(user["user"]["client-key-data"]) == pki.admin_key_pem
    assert "token" not in user["user"]


def test_token_kubeconfig_and_names(tmp_path):
    path = tmp_path / "k.conf"
    write_kubeconfig(
        str(path), server="https://h:1", ca_pem=b"PEM", token="abc.def", user="u", cluster="c", context="x"
    )
    cfg = yaml.safe_load(path.read_text())
    assert cfg["users"] == [{"name": "u", "user": {"token": "abc.def"}}]
    assert cfg["contexts"][0] == {"name": "x", "context": {"cluster": "c", "user": "u"}}
    assert cfg["current-context"] == "x"


def test_overwrite_is_atomic_and_stays_private(tmp_path):
    path = tmp_path / "k.conf"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_kubeconfig(str(path), server="https://h:1", ca_pem=b"PEM", token="t")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["kind"] == "Config"
    assert sorted(os.listdir(tmp_path)) == ["k.conf"]


def test_cert_without_key_rejected(tmp_path):
    with pytest.raises(ValueError):
        write_kubeconfig(str(tmp_path / "k"), server="https://h:1", ca_pem=b"x", client_cert_pem=b"c")
