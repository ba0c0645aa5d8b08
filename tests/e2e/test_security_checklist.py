"""security.md §3.1–§3.7 rows that no other test names: one test per row, named by its ID.  Rows covered
elsewhere are listed in the lead's report (test_rbac, test_tokens, test_join, test_audit_encryption,
tests/apiserver/test_admission*, test_authn_tokens)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests
import urllib3

from kubelite.pki.ca import ensure_cluster_pki
from kubelite_cluster import Cluster, free_port

urllib3.disable_warnings()

NODE = "checklist-node"


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def client_cert(cluster: Cluster, name: str, groups: list[str]) -> tuple[str, str]:
    cert, key = ensure_cluster_pki(cluster.data_dir).issue_client_cert(name, groups)
    base = os.path.join(cluster.data_dir + "-checklist", name.replace(":", "_"))
    os.makedirs(base, exist_ok=True)
    return _write(os.path.join(base, "tls.crt"), cert), _write(os.path.join(base, "tls.key"), key)


def get(url: str, *, cert=None, token: str | None = None, method: str = "GET", **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, url, cert=cert, verify=False, headers=headers, timeout=10, **kw)


def admin_apply(cluster: Cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj), check=True)


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state whose socket belongs to the process."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


# ---------------------------------------------------------------- §3.1 API server authentication


@pytest.fixture(scope="module")
def hardened(tmp_path_factory):
    base = tmp_path_factory.mktemp("hardened")
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"),
                extra_args=["--profile", "hardened"])
    c.log_path = c.data_dir + ".log"
    with open(c.log_path, "ab") as log:
        c.proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", c.data_dir,
                                   "--port", str(c.port), *c.extra_args],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(c)  # anonymous /readyz is 401 here, so readiness is asked with the admin certificate
        yield c
    finally:
        c.stop()


def _wait_ready(c: Cluster, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    admin = (os.path.join(c.data_dir, "pki", "admin.crt"), os.path.join(c.data_dir, "pki", "admin.key"))
    while time.monotonic() < deadline:
        assert c.proc.poll() is None, c.log()
        if os.path.exists(c.kubeconfig) and os.path.exists(admin[1]):
            try:
                if get(c.url + "/readyz", cert=admin).status_code == 200:
                    return
            except requests.exceptions.RequestException:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"hardened kubelite did not become ready: {c.log()}")


def test_authn_01_anonymous_disabled_is_401(hardened):
    r = get(hardened.url + "/api/v1/secrets")
    assert r.status_code == 401
    body = r.json()
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    assert body["message"] == "Unauthorized"


def test_authn_03_public_info_open_to_anonymous_and_401_when_disabled(cluster, hardened):
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert get(cluster.url + path).status_code == 200, path
        assert get(hardened.url + path).status_code == 401, path


def test_authn_04_anonymous_discovery_is_403(cluster):
    for path in ("/api", "/apis"):
        r = get(cluster.url + path)
        assert r.status_code == 403, path
        assert r.json()["message"] == f'forbidden: User "system:anonymous" cannot get path "{path}"'


def test_authn_05_no_plain_http_listener(cluster):
    try:
        r = requests.get(f"http://127.0.0.1:{cluster.port}/api/v1/secrets", timeout=10)
    except requests.exceptions.ConnectionError:
        pass  # the TLS listener drops the plain-HTTP connection: no data
    else:
        assert r.status_code == 400 and "secrets" not in r.text
    assert listening_ports(cluster.proc.pid) == {cluster.port}


def test_authn_07_client_cert_of_another_ca(cluster, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil-ca")])
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    crt = _write(str(tmp_path / "m.crt"), cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    k = _write(str(tmp_path / "m.key"), pem)
    try:
        r = get(cluster.url + "/api/v1/secrets", cert=(crt, k))
    except requests.exceptions.ConnectionError:
        return  # the TLS 1.3 handshake was refused (the alert arrives as a reset): also acceptable
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"


def test_authn_08_client_cert_cn_and_o(cluster):
    cert = client_cert(cluster, "alice", ["dev"])
    r = get(cluster.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews", cert=cert, method="POST",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert r.status_code == 201, r.text
    info = r.json()["status"]["userInfo"]
    assert info["username"] == "alice" and info["groups"] == ["dev", "system:authenticated"]


def test_authn_18_no_token_file_by_default_and_hardened_refuses_it(cluster, tmp_path):
    with open(f"/proc/{cluster.proc.pid}/cmdline", "rb") as f:
        assert b"--token-auth-file" not in f.read()
    tokens = _write(str(tmp_path / "tokens.csv"), b'secret,bob,1,"dev"\n')
    r = _start_fails(tmp_path, "--profile", "hardened", "--token-auth-file", tokens)
    assert r.returncode != 0 and "--token-auth-file is not allowed" in r.stderr


def _start_fails(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", str(tmp_path / "d"),
                           "--port", str(free_port()), *args], capture_output=True, text=True, timeout=30)


# ---------------------------------------------------------------- §3.3 authorization


def test_authz_01_hardened_profile_refuses_always_allow_and_anonymous(tmp_path):
    r = _start_fails(tmp_path, "--profile", "hardened", "--authorization-mode", "AlwaysAllow")
    assert r.returncode != 0 and "must not include AlwaysAllow" in r.stderr
    r = _start_fails(tmp_path, "--profile", "hardened", "--anonymous-auth", "true")
    assert r.returncode != 0 and "--anonymous-auth must be false" in r.stderr


def test_authz_06_group_impersonation_checked_separately(cluster):
    cert = client_cert(cluster, "imp-users-only", [])
    admin_apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                          "metadata": {"name": "checklist-impersonate-users"},
                          "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}]})
    admin_apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                          "metadata": {"name": "checklist-impersonate-users"},
                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "checklist-impersonate-users"},
                          "subjects": [{"kind": "User", "name": "imp-users-only"}]})
    url = cluster.url + "/api/v1/namespaces/default/configmaps"
    r = get(url, cert=cert, headers={"Impersonate-User": "someone"})
    assert r.status_code == 403  # impersonation worked; "someone" may not list configmaps
    assert 'User "someone" cannot list resource "configmaps"' in r.json()["message"]
    r = get(url, cert=cert, headers={"Impersonate-User": "someone", "Impersonate-Group": "system:masters"})
    assert r.status_code == 403
    assert r.json()["message"] == ('groups "system:masters" is forbidden: User "imp-users-only" cannot impersonate '
                                   'resource "groups" in API group "" at the cluster scope')


# ---------------------------------------------------------------- §3.4 kubelet API


class FakePod:
    name = "p"

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.spec = {"metadata": {"name": "p", "namespace": "default"}}

    def container_id(self, name: str) -> str | None:
        return "cid" if name == "c" else None

    async def exec_capture(self, cid: str, argv: list[str], timeout: float) -> tuple[int, bytes]:
        with open(self.marker, "w") as f:
            f.write(" ".join(argv))
        return 0, b"ran\n"


class FakeRuntime:
    def __init__(self, marker: str) -> None:
        self.pod = FakePod(marker)
        self.pods = {"default/p": self.pod}

    def find(self, namespace: str, name: str, uid: str | None) -> FakePod | None:
        return self.pod if (namespace, name) == ("default", "p") else None


class KubeletUnderTest:
    """The real KubeletServer (TLS, TokenReview, SubjectAccessReview) over a fake runtime, on its own loop."""

    def __init__(self, cluster: Cluster, base: str) -> None:
        from kubelite.client.rest import ApiClient
        from kubelite.kubelet.server import KubeletServer, self_signed_context

        self.marker = os.path.join(base, "ran")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        with open(os.path.join(cluster.data_dir, "pki", "ca.crt"), "rb") as f:
            ca_pem = f.read()

        async def start() -> KubeletServer:
            client = ApiClient.from_kubeconfig(cluster.kubeconfig)
            server = KubeletServer(FakeRuntime(self.marker), client, NODE)
            await server.start("127.0.0.1", 0, self_signed_context(NODE, ["127.0.0.1"], ca_pem,
                                                                  os.path.join(base, "pki")))
            return server
        self.server = self._call(start())
        self.url = f"https://127.0.0.1:{self.server.port}"

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def kubelet(cluster, tmp_path_factory):
    k = KubeletUnderTest(cluster, str(tmp_path_factory.mktemp("kubelet")))
    yield k
    k.close()


def _grant_nodes(cluster: Cluster, user: str, subresource: str) -> None:
    name = f"checklist-{user}"
    admin_apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                          "metadata": {"name": name},
                          "rules": [{"apiGroups": [""], "resources": [f"nodes/{subresource}"],
                                     "verbs": ["get", "create"]}]})
    admin_apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                          "metadata": {"name": name},
                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                          "subjects": [{"kind": "User", "name": user}]})


def test_kubelet_01_anonymous_pods_is_401(kubelet):
    r = get(kubelet.url + "/pods")
    assert r.status_code == 401 and r.text.strip() == "Unauthorized"


def test_kubelet_02_anonymous_run_exec_attach_portforward_are_401(kubelet):
    r = get(kubelet.url + "/run/default/p/c?cmd=id", method="POST")
    assert r.status_code == 401
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v4.channel.k8s.io"}
    for path in ("/exec/default/p/c?command=id&stdout=true", "/attach/default/p/c?stdout=true",
                 "/portForward/default/p"):
        assert get(kubelet.url + path, headers=dict(upgrade)).status_code == 401, path
        spdy = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
        assert get(kubelet.url + path, method="POST", headers=spdy).status_code == 401, path
    assert not os.path.exists(kubelet.marker)


def test_kubelet_03_without_nodes_proxy_is_403_via_subject_access_review(cluster, kubelet):
    cert = client_cert(cluster, "no-proxy", ["dev"])
    r = get(kubelet.url + "/run/default/p/c?cmd=id", cert=cert, method="POST")
    assert r.status_code == 403
    assert r.text.strip() == "Forbidden (user=no-proxy, verb=create, resource=nodes, subresource=proxy)"
    # a bearer token goes through TokenReview, then the same SubjectAccessReview
    cluster.kubectl("create", "serviceaccount", "checklist-kubelet", "-n", "default")
    token = cluster.kubectl("create", "token", "checklist-kubelet", "-n", "default", check=True).stdout.strip()
    r = get(kubelet.url + "/run/default/p/c?cmd=id", token=token, method="POST")
    assert r.status_code == 403 and "user=system:serviceaccount:default:checklist-kubelet" in r.text
    assert get(kubelet.url + "/pods", token="garbage").status_code == 401
    assert not os.path.exists(kubelet.marker)
    # granted nodes/proxy, the command runs
    _grant_nodes(cluster, "with-proxy", "proxy")
    r = get(kubelet.url + "/run/default/p/c?cmd=id", cert=client_cert(cluster, "with-proxy", []), method="POST")
    assert r.status_code == 200 and r.text == "ran\n"
    with open(kubelet.marker) as f:
        assert f.read() == "id"
    os.remove(kubelet.marker)


def test_kubelet_04_paths_map_to_subresources(cluster, kubelet):
    from kubelite.kubelet.server import subresource_for

    expected = {"/stats/summary": "stats", "/metrics/cadvisor": "metrics", "/logs/syslog": "log", "/spec": "spec",
                "/configz": "configz", "/healthz": "healthz", "/pods": "pods", "/checkpoint/a/b/c": "checkpoint",
                "/exec/a/b/c": "proxy", "/run/a/b/c": "proxy", "/debug/pprof/": "proxy", "/statsx": "proxy"}
    assert {p: subresource_for(p) for p in expected} == expected
    # end to end: the SubjectAccessReview names the subresource the path maps to
    _grant_nodes(cluster, "stats-only", "stats")
    cert = client_cert(cluster, "stats-only", [])
    assert get(kubelet.url + "/stats/container", cert=cert).status_code == 404  # authorized; no such handler
    r = get(kubelet.url + "/logs/syslog", cert=cert)
    assert r.status_code == 403 and r.text.strip().endswith("subresource=log)")
    r = get(kubelet.url + "/pods", cert=cert)  # nodes/pods, then the nodes/proxy fallback: both denied
    assert r.status_code == 403 and r.text.strip().endswith("subresource=proxy)")
    _grant_nodes(cluster, "healthz-only", "healthz")
    assert get(kubelet.url + "/healthz", cert=client_cert(cluster, "healthz-only", [])).status_code == 200


def test_kubelet_05_no_read_only_port(kubelet):
    from kubelite.kubelet.runtime.node_agent import AgentConfig

    addresses = kubelet.server._runner.addresses
    assert [a[1] for a in addresses] == [kubelet.server.port]  # one listener, the TLS one
    assert not any("read_only" in f for f in AgentConfig.__dataclass_fields__)
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", 10255)) != 0
    # plain HTTP on the kubelet port gets no data
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{kubelet.server.port}/pods", timeout=5)


def test_kubelet_07_debug_pprof_is_401_anonymously(kubelet):
    for path in ("/debug/pprof/", "/debug/pprof/profile", "/configz", "/metrics"):
        assert get(kubelet.url + path).status_code == 401, path


# ---------------------------------------------------------------- §3.7 store and files


def test_store_05_etcd_mode(tmp_path):
    """etcd with its own CA and --client-cert-auth: kubelite reaches it with --etcd-cafile/certfile/keyfile;
    without a client certificate, neither curl -k nor etcdctl gets anything."""
    from storage.etcd_process import SKIP_REASON, EtcdMember, EtcdTLS, etcd_available

    if not etcd_available():
        pytest.skip(SKIP_REASON)
    tls = EtcdTLS.make(str(tmp_path / "etcd-pki"))
    member = EtcdMember("store-05", str(tmp_path / "etcd"), tls=tls)
    member.start()
    server = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "kube-cache"),
                     extra_args=["--etcd-servers", member.endpoint, "--etcd-cafile", tls.ca_file,
                                 "--etcd-certfile", tls.client_cert_file, "--etcd-keyfile", tls.client_key_file])
    try:
        server.start()
        server.kubectl("create", "secret", "generic", "s5", "--from-literal=k=v", check=True)
        with pytest.raises(requests.exceptions.SSLError):  # curl -k: the handshake fails without a client cert
            requests.get(f"{member.endpoint}/v2/keys", verify=False, timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(f"{member.endpoint}/v3/kv/range", json={"key": "Lw=="}, verify=False, timeout=5)
        anonymous = member.etcdctl("get", "/registry", "--prefix", "--keys-only", cert=False, check=False)
        assert anonymous.returncode != 0 and "/registry/secrets" not in anonymous.stdout
        keys = member.etcdctl("get", "/registry", "--prefix", "--keys-only").stdout.split()
        assert "/registry/secrets/default/s5" in keys
    finally:
        server.stop()
        member.stop()


def test_store_06_sqlite_store_has_no_network_listener(cluster):
    assert listening_ports(cluster.proc.pid) == {cluster.port}
    ssl.create_default_context()  # (the one port is the TLS API server: see AUTHN-05)
