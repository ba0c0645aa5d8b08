"""Component identities: kubeconfigs with client certificates from the cluster CA."""

from __future__ import annotations

import base64
import os
import stat

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from kubelite.pki.ca import ensure_cluster_pki
from kubelite.pki.components import CONTROLLER_MANAGER, node_identity, write_component_kubeconfig


def _subject(path: str) -> tuple[str, list[str], str]:
    with open(path) as f:
        config = yaml.safe_load(f)
    user = config["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return cn, orgs, config["clusters"][0]["cluster"]["server"]


def test_component_kubeconfigs(tmp_path):
    data_dir = str(tmp_path / "data")
    pki = ensure_cluster_pki(data_dir)
    pki.write_admin_kubeconfig(os.path.join(data_dir, "admin.kubeconfig"), "https://127.0.0.1:7443")
    cn, orgs = CONTROLLER_MANAGER
    path = write_component_kubeconfig(data_dir, "controller-manager", cn, orgs)
    assert path == os.path.join(data_dir, "controller-manager.kubeconfig")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _subject(path) == ("system:kube-controller-manager", [], "https://127.0.0.1:7443")
    cn, orgs = node_identity("node01")
    path = write_component_kubeconfig(data_dir, "kubelet-node01", cn, orgs, server="https://10.0.0.1:6443")
    assert _subject(path) == ("system:node:node01", ["system:nodes"], "https://10.0.0.1:6443")
