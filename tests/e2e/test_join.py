"""`kubelite init` + `kubelite join` over two processes with separate data dirs (tutorial.md A.2, security.md
§3.2 BOOT-01..08), and CSRs with the real kubectl (`get csr`, `certificate approve|deny`)."""

from __future__ import annotations

import base64
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
import yaml

from kubectl_output import header, rows
from kubelite.bootstrap import jws
from kubelite.bootstrap.tokens import token_secret
from kubelite.pki import certs
from kubelite.pki import csr as pkicsr
from kubelite.pki.kubeconfig import write_kubeconfig
from kubelite_cluster import KUBECTL, Cluster, free_port

JOIN_RE = re.compile(r"^kubelite join (\S+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) "
                     r"--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})$", re.M)


class ControlPlane:
    def __init__(self, base) -> None:
        self.base = base
        self.cluster = Cluster(data_dir=str(base / "control-plane"), port=free_port(),
                               cache_dir=str(base / "kube-cache"))
        self.stdout_path = str(base / "init.out")
        self.proc: subprocess.Popen | None = None
        self.endpoint = self.token = self.ca_hash = ""

    def start(self, timeout: float = 40.0) -> None:
        c = self.cluster
        c.log_path = str(self.base / "init.log")
        with open(self.stdout_path, "wb") as out, open(c.log_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubelite.cli", "init", "--data-dir", c.data_dir, "--port", str(c.port),
                 "--apiserver-advertise-address", "127.0.0.1", "--node-runtime", "none",
                 "--disable", "dns,servicelb,ingress"], stdout=out, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = JOIN_RE.search(self.output())
            if m:
                self.endpoint, self.token, self.ca_hash = m.groups()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"kubelite init did not print a join command:\n{self.output()}\n{c.log()}")

    def output(self) -> str:
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kubectl(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.cluster.kubectl(*args, **kw)

    def ca_file(self) -> str:
        return os.path.join(self.cluster.data_dir, "pki", "ca.crt")

    def raw(self, method: str, path: str, token: str | None = None, body=None) -> requests.Response:
        s = requests.Session()
        s.trust_env = False
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return s.request(method, self.cluster.url + path, json=body, headers=headers, verify=self.ca_file(),
                         timeout=10)

    def kubelite(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kubelite.cli", *args, "--data-dir", self.cluster.data_dir],
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory):
    cp = ControlPlane(tmp_path_factory.mktemp("join"))
    cp.start()
    yield cp
    cp.stop()


def join(cp: ControlPlane, data_dir: str, *args: str, token: str | None = None,
         ca_hash: str | None = None) -> subprocess.Popen:
    # a simulated runtime: the joined node binds nothing (a real one would serve the kubelet API on 10250)
    cmd = [sys.executable, "-m", "kubelite.cli", "join", cp.endpoint, "--token", token or cp.token, "--data-dir",
           data_dir, "--runtime", "simulated", *args]
    if ca_hash != "":
        cmd += ["--discovery-token-ca-cert-hash", ca_hash or cp.ca_hash]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def refused(cp: ControlPlane, data_dir: str, *args: str, **kw) -> str:
    proc = join(cp, data_dir, *args, **kw)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert not os.path.exists(data_dir), "a refused join must write nothing"
    return out


def table(text: str) -> list[dict[str, str]]:
    """kubectl's columns as one dict per row, keyed by the header."""
    if not text.strip():
        return []
    names = header(text)
    return [dict(zip(names, r, strict=False)) for r in rows(text)]


def csr_names(cp: ControlPlane) -> set[str]:
    r = cp.kubectl("get", "csr", "-o", "name", check=True)
    return set(r.stdout.split())


def wait_for(fn, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {fn}")
        time.sleep(interval)


def test_init_prints_kubeadm_style_hints(control_plane):
    cp = control_plane
    out = cp.output()
    assert "Your Kubernetes control-plane has initialized successfully!" in out
    assert f"export KUBECONFIG={cp.cluster.kubeconfig}" in out
    assert cp.endpoint == f"127.0.0.1:{cp.cluster.port}"
    with open(cp.ca_file(), "rb") as f:
        assert cp.ca_hash == jws.ca_hash(f.read())  # BOOT-03
    listed = cp.kubelite("token", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(cp.token))
    assert line.split()[1] == "23h"
    assert "authentication,signing" in line and "system:bootstrappers:kubeadm:default-node-token" in line


def test_cluster_info_is_public_and_signed(control_plane):
    # BOOT-04: anonymous read, a kubeconfig with the CA, a detached JWS per token
    cp = control_plane
    r = cp.raw("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    token_id, secret = cp.token.split(".")
    assert jws.detached_signature_valid(data[f"jws-kubeconfig-{token_id}"], data["kubeconfig"], token_id, secret)
    assert not jws.detached_signature_valid(data[f"jws-kubeconfig-{token_id}"], data["kubeconfig"] + " ", token_id,
                                            secret)
    cfg = yaml.safe_load(data["kubeconfig"])
    assert cfg["clusters"][0]["cluster"]["server"] == f"https://{cp.endpoint}"
    assert cfg["users"] is None
    # anonymous users get nothing else from kube-public
    assert cp.raw("GET", "/api/v1/namespaces/kube-public/configmaps").status_code == 403


def test_join_registers_a_ready_node(control_plane, tmp_path):
    cp = control_plane
    data_dir = str(tmp_path / "node01")
    proc = join(cp, data_dir, "--node-name", "node01")
    try:
        def ready():
            r = cp.kubectl("get", "nodes")
            return any(row["NAME"] == "node01" and row["STATUS"] == "Ready" for row in table(r.stdout))
        wait_for(ready, 40)
        csrs = table(cp.kubectl("get", "csr", check=True).stdout)
        mine = [c for c in csrs if c["REQUESTOR"] == f"system:bootstrap:{cp.token.split('.')[0]}"]
        assert mine and mine[0]["CONDITION"] == "Approved,Issued"
        assert mine[0]["SIGNERNAME"] == "kubernetes.io/kube-apiserver-client-kubelet"
        assert mine[0]["NAME"].startswith("node-csr-")
        detail = cp.kubectl("get", "csr", mine[0]["NAME"], "-o", "yaml", check=True).stdout
        assert "AutoApproved" in detail
        assert "Auto approving kubelet client certificate after SubjectAccessReview." in detail
        # the node's credentials: 0600 kubeconfig in a 0700 dir, identity system:node:node01
        kubeconfig = os.path.join(data_dir, "kubelet.kubeconfig")
        assert stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        who = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", str(tmp_path / "c"), "auth",
                              "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"],
                             capture_output=True, text=True, timeout=30)
        assert who.stdout.split(" ", 1)[0] == "system:node:node01", who.stderr
        assert "system:nodes" in who.stdout
        # pods bound to the joined node run there
        cp.kubectl("run", "on-node01", "--image=nginx", "--overrides", '{"spec":{"nodeName":"node01"}}', check=True)
        wait_for(lambda: cp.kubectl("get", "pod", "on-node01", "-o", "jsonpath={.status.phase}").stdout == "Running")
        cp.kubectl("delete", "pod", "on-node01", "--wait=false", check=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert "This node has joined the cluster" in out, out


def test_wrong_ca_hash_is_refused_before_any_credentialed_request(control_plane, tmp_path):
    # BOOT-01
    cp = control_plane
    before = csr_names(cp)
    out = refused(cp, str(tmp_path / "rogue"), "--node-name", "rogue", ca_hash="sha256:" + "0" * 64)
    assert "the CA public key does not match the pinned hash" in out
    assert cp.ca_hash in out  # names the key it found
    assert csr_names(cp) == before
    assert "rogue" not in cp.kubectl("get", "nodes", "-o", "name").stdout


def test_missing_ca_hash_is_refused_unless_unsafe(control_plane, tmp_path):
    # BOOT-02
    cp = control_plane
    out = refused(cp, str(tmp_path / "nohash"), "--node-name", "nohash", ca_hash="")
    assert "--discovery-token-unsafe-skip-ca-verification" in out
    data_dir = str(tmp_path / "unsafe")
    proc = join(cp, data_dir, "--node-name", "unsafe-node", "--discovery-token-unsafe-skip-ca-verification",
                ca_hash="")
    try:
        wait_for(lambda: os.path.exists(os.path.join(data_dir, "kubelet.kubeconfig")), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert "WARNING: --discovery-token-unsafe-skip-ca-verification" in out
    cp.kubectl("delete", "node", "unsafe-node", "--wait=false")


def _apply_token(cp: ControlPlane, token: str, ttl: float, **kw) -> None:
    secret = token_secret(token, ttl, now=datetime.now(UTC), **kw)
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret), check=True)


def test_expired_token_is_refused(control_plane, tmp_path):
    # BOOT-05: 401 for the token, no signature for it, the cleaner deletes it, join refused
    cp = control_plane
    token = "exp1re.0123456789abcdef"
    _apply_token(cp, token, -60)
    assert cp.raw("GET", "/api/v1/nodes", token=token).status_code == 401
    out = refused(cp, str(tmp_path / "late"), "--node-name", "late", token=token)
    assert 'token id "exp1re" is invalid for this cluster or it has expired' in out
    wait_for(lambda: cp.kubectl("-n", "kube-system", "get", "secret", "bootstrap-token-exp1re").returncode != 0, 20)


def test_unknown_token_is_refused(control_plane, tmp_path):
    out = refused(control_plane, str(tmp_path / "unknown"), "--node-name", "unknown", token="zzzzzz.0123456789abcdef")
    assert 'token id "zzzzzz" is invalid for this cluster or it has expired' in out


def test_token_that_cannot_authenticate_is_refused_at_tls_bootstrap(control_plane, tmp_path):
    # signs cluster-info (discovery passes) but is not usable as a credential: the CSR request gets 401
    cp = control_plane
    token = "s1gnon.0123456789abcdef"
    _apply_token(cp, token, 3600, usages=("signing",))
    try:
        wait_for(lambda: "jws-kubeconfig-s1gnon" in cp.kubectl(
            "-n", "kube-public", "get", "cm", "cluster-info", "-o", "yaml").stdout)
        out = refused(cp, str(tmp_path / "signonly"), "--node-name", "signonly", token=token)
        assert "refused the bootstrap token (401 Unauthorized)" in out
    finally:
        cp.kubectl("-n", "kube-system", "delete", "secret", "bootstrap-token-s1gnon")


def test_token_create_list_delete(control_plane, tmp_path):
    cp = control_plane
    r = cp.kubelite("token", "create", "--ttl", "2h", "--print-join-command")
    assert r.returncode == 0, r.stderr
    m = JOIN_RE.fullmatch(r.stdout.strip())
    assert m and m.group(1) == cp.endpoint and m.group(3) == cp.ca_hash
    token = m.group(2)
    token_id = token.split(".")[0]
    secret = yaml.safe_load(cp.kubectl("-n", "kube-system", "get", "secret", f"bootstrap-token-{token_id}",
                                       "-o", "yaml", check=True).stdout)
    expires = datetime.fromisoformat(base64.b64decode(secret["data"]["expiration"]).decode().replace("Z", "+00:00"))
    assert abs((expires - datetime.now(UTC)) - timedelta(hours=2)) < timedelta(minutes=1)
    assert token in cp.kubelite("token", "list").stdout
    r = cp.kubelite("token", "delete", token_id)
    assert r.returncode == 0 and r.stdout.strip() == f'bootstrap token "{token_id}" deleted', r.stderr
    assert token not in cp.kubelite("token", "list").stdout
    # the signer withdraws its signature, so the deleted token can no longer vouch for the CA
    wait_for(lambda: f"jws-kubeconfig-{token_id}" not in cp.kubectl(
        "-n", "kube-public", "get", "cm", "cluster-info", "-o", "yaml").stdout)
    refused(cp, str(tmp_path / "deleted"), "--node-name", "deleted", token=token)
    r = cp.kubelite("token", "delete", token_id)
    assert r.returncode == 1 and "not found" in r.stderr


def test_bootstrap_token_can_create_csrs_and_nothing_else(control_plane):
    # BOOT-07
    cp = control_plane
    assert cp.raw("GET", "/api/v1/secrets", token=cp.token).status_code == 403
    assert cp.raw("GET", "/api/v1/namespaces/kube-system/configmaps", token=cp.token).status_code == 403
    body = _csr_body(f"boot07-{uuid.uuid4().hex[:6]}", "system:node:boot07", ["system:nodes"],
                     pkicsr.KUBE_APISERVER_CLIENT_KUBELET, ["digital signature", "client auth"])
    r = cp.raw("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", token=cp.token, body=body)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["username"] == f"system:bootstrap:{cp.token.split('.')[0]}"
    cp.kubectl("delete", "csr", body["metadata"]["name"])


def _csr_body(name: str, cn: str, orgs: list[str], signer: str, usages: list[str], key=None) -> dict:
    pem = pkicsr.make_csr(key or certs.new_key(), cn, orgs)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer, "usages": usages,
                     "expirationSeconds": 86400}}


def test_kubectl_certificate_approve_and_deny(control_plane, tmp_path):
    cp = control_plane
    key = certs.new_key()
    name = f"alice-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "-f", "-", input=yaml.safe_dump(_csr_body(
        name, "alice", ["devs"], pkicsr.KUBE_APISERVER_CLIENT, ["digital signature", "client auth"], key)),
        check=True)
    row = next(r for r in table(cp.kubectl("get", "csr", check=True).stdout) if r["NAME"] == name)
    assert row["CONDITION"] == "Pending"
    assert row["REQUESTOR"] == "kubernetes-admin"
    assert row["REQUESTEDDURATION"] == "24h"
    r = cp.kubectl("certificate", "approve", name, check=True)
    assert r.stdout.strip() == f"certificatesigningrequest.certificates.k8s.io/{name} approved"

    def issued():
        got = [r for r in table(cp.kubectl("get", "csr", name).stdout) if r["NAME"] == name]
        return got and got[0]["CONDITION"] == "Approved,Issued"
    wait_for(issued)
    cert_b64 = cp.kubectl("get", "csr", name, "-o", "jsonpath={.status.certificate}", check=True).stdout
    kubeconfig = str(tmp_path / "alice.kubeconfig")
    with open(cp.ca_file(), "rb") as f:
        write_kubeconfig(kubeconfig, server=cp.cluster.url, ca_pem=f.read(),
                         client_cert_pem=base64.b64decode(cert_b64), client_key_pem=certs.key_to_pem(key), user="alice")
    who = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", str(tmp_path / "c"), "auth", "whoami",
                          "-o", "jsonpath={.status.userInfo.username}"], capture_output=True, text=True, timeout=30)
    assert who.stdout == "alice", who.stderr
    # approving twice, or denying an approved one, is refused by kubectl as upstream
    r = cp.kubectl("certificate", "deny", name)
    assert f'certificate signing request "{name}" is already Approved' in r.stderr

    other = f"bob-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "-f", "-", input=yaml.safe_dump(_csr_body(
        other, "bob", [], pkicsr.KUBE_APISERVER_CLIENT, ["client auth"])), check=True)
    cp.kubectl("certificate", "deny", other, check=True)
    time.sleep(0.5)
    row = next(r for r in table(cp.kubectl("get", "csr", check=True).stdout) if r["NAME"] == other)
    assert row["CONDITION"] == "Denied"
    assert cp.kubectl("get", "csr", other, "-o", "jsonpath={.status.certificate}").stdout == ""


def test_masters_group_may_not_be_requested(control_plane):
    r = control_plane.kubectl("create", "-f", "-", input=yaml.safe_dump(_csr_body(
        "sneaky", "mallory", ["system:masters"], pkicsr.KUBE_APISERVER_CLIENT, ["client auth"])))
    assert r.returncode != 0
    assert ('certificatesigningrequests.certificates.k8s.io "sneaky" is forbidden: use of '
            'kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed') in r.stderr


def test_approval_needs_the_approve_verb_on_the_signer(control_plane):
    cp = control_plane
    name = f"carol-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "-f", "-", input=yaml.safe_dump(_csr_body(
        name, "carol", [], pkicsr.KUBE_APISERVER_CLIENT, ["client auth"])), check=True)
    cp.kubectl("create", "clusterrole", f"{name}-approver", "--verb=get,list,update",
               "--resource=certificatesigningrequests,certificatesigningrequests/approval", check=True)
    cp.kubectl("create", "clusterrolebinding", f"{name}-approver", f"--clusterrole={name}-approver",
               f"--user={name}-admin", check=True)
    r = cp.kubectl("certificate", "approve", name, "--as", f"{name}-admin")
    assert r.returncode != 0
    assert ('user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"'
            in r.stderr), r.stderr


def test_init_publishes_the_cluster_configuration_joining_nodes_read(control_plane):
    # kubeadm's kube-system/kubeadm-config and kubelet-config, readable with the bootstrap token (as `join` reads
    # them) and by nodes; not by other users
    cp = control_plane
    for name, key in (("kubeadm-config", "ClusterConfiguration"), ("kubelet-config", "kubelet")):
        r = cp.raw("GET", f"/api/v1/namespaces/kube-system/configmaps/{name}", token=cp.token)
        assert r.status_code == 200, r.text
        doc = yaml.safe_load(r.json()["data"][key])
        if name == "kubeadm-config":
            assert doc["kind"] == "ClusterConfiguration"
            assert doc["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                         "dnsDomain": "cluster.local"}
            assert doc["controlPlaneEndpoint"] == ""  # as kubeadm: only what --control-plane-endpoint says
        else:
            assert doc["clusterDNS"] == ["10.96.0.10"] and doc["clusterDomain"] == "cluster.local"
    assert cp.raw("GET", "/api/v1/namespaces/kube-system/configmaps/kube-proxy", token=cp.token).status_code in (403, 404)
    assert cp.raw("GET", "/api/v1/namespaces/kube-system/configmaps", token=cp.token).status_code == 403
