"""Audit logging and encryption at rest end to end (security.md §3.6 AUDIT-*, §3.7 STORE-01..04, FILE-01/02):
a real server with `--audit-policy-file/--audit-log-path` and `--encryption-provider-config`, the real kubectl
and raw HTTPS."""

from __future__ import annotations

import base64
import glob
import json
import os
import sqlite3
import ssl
import stat
import time
import urllib.error
import urllib.request

import pytest

from kubelite_cluster import Cluster, free_port

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/readyz", "/healthz*", "/livez"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps"]
  - group: authentication.k8s.io
    resources: ["tokenreviews"]
- level: RequestResponse
  omitStages: ["RequestReceived"]
  resources:
  - group: ""
    resources: ["pods"]
- level: Metadata
"""


def encryption_config(*providers: str) -> str:
    body = "\n".join(providers)
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
            f"- resources: [secrets]\n  providers:\n{body}\n")


def aescbc(name: str, key: bytes) -> str:
    return f"  - aescbc:\n      keys:\n      - name: {name}\n        secret: {base64.b64encode(key).decode()}"


IDENTITY = "  - identity: {}"
KEY1, KEY2 = os.urandom(32), os.urandom(32)


class Secure(Cluster):
    @property
    def audit_log(self) -> str:
        return os.path.join(os.path.dirname(self.data_dir), "audit", "audit.log")

    @property
    def db(self) -> str:
        return os.path.join(self.data_dir, "state.db")

    def events(self, audit_id: str | None = None, wait_for: int = 1) -> list[dict]:
        deadline = time.monotonic() + 5
        while True:
            found = []
            with open(self.audit_log) as f:
                for line in f:
                    ev = json.loads(line)
                    if audit_id is None or ev["auditID"] == audit_id:
                        found.append(ev)
            if len(found) >= wait_for or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes | None = None, cert: bool = True,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            pki = os.path.join(self.data_dir, "pki")
            ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        req = urllib.request.Request(self.url + path, data=body, method=method, headers={
            "Content-Type": "application/json", "User-Agent": "audit-test/1.0", **(headers or {})})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def raw_values(self, prefix: str) -> dict[str, bytes]:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT key, value FROM objects WHERE key >= ? AND key < ?",
                              (prefix, prefix + "\xff")).fetchall()
        finally:
            db.close()
        return dict(rows)


def start_secure(tmp_path, encryption: str, *extra: str) -> Secure:
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    (files / "policy.yaml").write_text(POLICY)
    (files / "enc.yaml").write_text(encryption)
    (files / "tokens.csv").write_text('tok-bob,bob,uid-bob,"devs"\n')
    c = Secure(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "kube-cache"),
               extra_args=["--audit-policy-file", str(files / "policy.yaml"), "--audit-log-path",
                           str(tmp_path / "audit" / "audit.log"), "--audit-log-maxsize", "100",
                           "--audit-log-maxbackup", "10", "--audit-log-maxage", "30",
                           "--encryption-provider-config", str(files / "enc.yaml"),
                           "--token-auth-file", str(files / "tokens.csv"), *extra])
    c.start()
    return c


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    c = start_secure(tmp_path_factory.mktemp("secure"), encryption_config(aescbc("key1", KEY1), IDENTITY))
    yield c
    c.stop()


def _secret(name: str, value: str, namespace: str = "default") -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                       "data": {"pw": base64.b64encode(value.encode()).decode()}}).encode()


# ---------------------------------------------------------------- audit


def test_secret_reads_are_audited_with_every_field(secure):  # AUDIT-01, AUDIT-02
    code, _, _ = secure.request("POST", "/api/v1/namespaces/default/secrets", _secret("a1", "s3cr3t-value"))
    assert code == 201
    for path, verb, name in (("/api/v1/namespaces/default/secrets/a1", "get", "a1"),
                             ("/api/v1/namespaces/default/secrets", "list", None)):
        code, headers, _ = secure.request("GET", path)
        assert code == 200
        audit_id = headers["Audit-Id"]
        events = secure.events(audit_id, wait_for=2)
        assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
        done = events[-1]
        assert done["kind"] == "Event" and done["apiVersion"] == "audit.k8s.io/v1"
        assert done["level"] == "Metadata" and done["verb"] == verb and done["requestURI"] == path
        assert done["user"]["username"] == "kubernetes-admin" or done["user"]["username"]
        assert "system:masters" in done["user"]["groups"]
        ref = {"resource": "secrets", "namespace": "default", "apiVersion": "v1", **({"name": name} if name else {})}
        assert done["objectRef"] == ref
        assert done["responseStatus"] == {"metadata": {}, "code": 200}
        assert done["sourceIPs"] == ["127.0.0.1"] and done["userAgent"] == "audit-test/1.0"
        assert done["requestReceivedTimestamp"] <= done["stageTimestamp"]
        assert done["annotations"]["authorization.k8s.io/decision"] == "allow"
        assert "requestObject" not in done and "responseObject" not in done
    with open(secure.audit_log) as f:
        text = f.read()
    assert "s3cr3t-value" not in text and base64.b64encode(b"s3cr3t-value").decode() not in text


def test_watch_logs_response_started(secure):  # AUDIT-05
    code, headers, _ = secure.request("GET", "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1")
    assert code == 200
    events = secure.events(headers["Audit-Id"], wait_for=3)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert events[1]["responseStatus"]["code"] == 200 and events[1]["verb"] == "watch"


def test_levels_and_omit_stages_per_rule(secure):  # AUDIT-05
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lv"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    code, headers, _ = secure.request("POST", "/api/v1/namespaces/default/pods", json.dumps(pod).encode())
    assert code == 201
    events = secure.events(headers["Audit-Id"])
    assert [e["stage"] for e in events] == ["ResponseComplete"]  # RequestReceived omitted by the rule
    ev = events[0]
    assert ev["level"] == "RequestResponse"
    assert ev["requestObject"]["metadata"]["name"] == "lv"
    assert ev["responseObject"]["metadata"]["uid"]
    assert ev["objectRef"]["name"] == "lv"
    code, headers, _ = secure.request("GET", "/readyz")
    assert code == 200 and headers["Audit-Id"]
    time.sleep(0.3)
    assert secure.events(headers["Audit-Id"], wait_for=0) == []  # level None


def test_denied_and_unauthenticated_requests_are_audited(secure):  # AUDIT-03, AUDIT-04
    code, headers, _ = secure.request("GET", "/api/v1/namespaces/default/secrets", cert=False,
                                      headers={"Authorization": "Bearer tok-bob"})
    assert code == 403
    ev = secure.events(headers["Audit-Id"], wait_for=2)[-1]
    assert ev["stage"] == "ResponseComplete" and ev["user"]["username"] == "bob"
    assert ev["responseStatus"]["code"] == 403 and ev["responseStatus"]["reason"] == "Forbidden"
    assert ev["responseStatus"]["message"].startswith('secrets is forbidden: User "bob" cannot list resource')
    assert ev["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert "authorization.k8s.io/reason" in ev["annotations"]

    code, headers, _ = secure.request("GET", "/api/v1/secrets", cert=False,
                                      headers={"Authorization": "Bearer wrong"})
    assert code == 401
    (ev,) = secure.events(headers["Audit-Id"])
    assert ev["stage"] == "ResponseStarted" and ev["user"] == {}
    assert ev["responseStatus"] == {"metadata": {}, "message": "Authentication failed, attempted: bearer",
                                    "code": 401}

    code, headers, _ = secure.request("GET", "/api/v1/namespaces/default/configmaps", cert=False)
    assert code == 403
    ev = secure.events(headers["Audit-Id"], wait_for=2)[-1]
    assert ev["user"] == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}


def test_impersonation_is_recorded(secure):
    code, headers, _ = secure.request("GET", "/api/v1/namespaces/default/configmaps",
                                      headers={"Impersonate-User": "bob"})
    assert code == 403
    ev = secure.events(headers["Audit-Id"], wait_for=2)[-1]
    assert "system:masters" in ev["user"]["groups"] and ev["impersonatedUser"]["username"] == "bob"


def test_exec_and_event_deletion_are_audited(secure):  # AUDIT-07, AUDIT-08
    path = "/api/v1/namespaces/default/pods/lv/exec?command=cat&command=%2Fetc%2Fshadow&stdout=true"
    _, headers, _ = secure.request("POST", path, b"")
    ev = secure.events(headers["Audit-Id"])[-1]
    assert ev["verb"] == "create" and ev["requestURI"] == path
    assert ev["objectRef"]["subresource"] == "exec" and ev["objectRef"]["resource"] == "pods"
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "evasion"},
             "involvedObject": {"kind": "Pod", "name": "lv", "namespace": "default"}, "reason": "X"}
    assert secure.request("POST", "/api/v1/namespaces/default/events", json.dumps(event).encode())[0] == 201
    code, headers, _ = secure.request("DELETE", "/api/v1/namespaces/default/events/evasion")
    assert code == 200
    ev = secure.events(headers["Audit-Id"], wait_for=2)[-1]
    assert ev["verb"] == "delete" and ev["objectRef"]["resource"] == "events"
    assert ev["objectRef"]["name"] == "evasion"


def test_kubectl_requests_are_audited(secure):
    secure.kubectl("get", "secrets", "-n", "kube-system", check=True)

    def listed():  # the audit log is written after the response: give the writer a moment on a busy machine
        return [e for e in secure.events(wait_for=0) if e["stage"] == "ResponseComplete"
                and e.get("objectRef", {}).get("namespace") == "kube-system" and e["verb"] == "list"]
    deadline = time.monotonic() + 10
    while not listed() and time.monotonic() < deadline:
        time.sleep(0.1)
    found = listed()
    assert found and found[-1]["userAgent"].startswith("kubectl")


# ---------------------------------------------------------------- files


def test_file_modes(secure):  # STORE-01, FILE-01, FILE-02, AUDIT-09
    def mode(path: str) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    assert mode(secure.data_dir) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert mode(secure.db + suffix) == 0o600, suffix
    assert mode(secure.audit_log) == 0o600
    assert mode(secure.kubeconfig) == 0o600
    pki = os.path.join(secure.data_dir, "pki")
    keys = glob.glob(os.path.join(pki, "*.key"))
    assert any(k.endswith("sa.key") for k in keys)
    for key in keys:
        assert mode(key) == 0o600, key
    for crt in glob.glob(os.path.join(pki, "*.crt")):
        assert mode(crt) & 0o133 == 0, crt  # at most 0644


# ---------------------------------------------------------------- encryption at rest


def test_secrets_are_encrypted_in_the_store(secure):  # STORE-02
    assert secure.request("POST", "/api/v1/namespaces/default/secrets", _secret("enc1", "plain-xyz"))[0] == 201
    raw = secure.raw_values("/registry/secrets/default/enc1")["/registry/secrets/default/enc1"]
    assert raw.startswith(b"k8s:enc:aescbc:v1:key1:")
    assert b"plain-xyz" not in raw and base64.b64encode(b"plain-xyz") not in raw and b"enc1" not in raw
    out = secure.kubectl("get", "secret", "enc1", "-o", "jsonpath={.data.pw}", check=True).stdout
    assert base64.b64decode(out) == b"plain-xyz"
    cm = secure.raw_values("/registry/configmaps/kube-system/")
    assert all(v.startswith(b"{") for v in cm.values())  # not configured: stored as is


def test_rotation_by_rewrite(tmp_path):  # STORE-03
    enc_path = tmp_path / "files" / "enc.yaml"
    c = start_secure(tmp_path, encryption_config(IDENTITY, aescbc("key1", KEY1)))
    try:
        for i in range(3):
            c.kubectl("create", "secret", "generic", f"r{i}", "--from-literal", f"pw=rot-plain-{i}", check=True)
        raw = c.raw_values("/registry/secrets/default/r")
        assert len(raw) == 3 and all(v.startswith(b"{") for v in raw.values())  # identity first: plaintext
        c.stop()
        enc_path.write_text(encryption_config(aescbc("key2", KEY2), aescbc("key1", KEY1), IDENTITY))
        c.start()
        listed = c.kubectl("get", "secrets", "-A", "-o", "json", check=True).stdout
        c.kubectl("replace", "-f", "-", input=listed, check=True)
        values = c.raw_values("/registry/secrets/")
        assert values and all(v.startswith(b"k8s:enc:aescbc:v1:key2:") for v in values.values())
        # once rewrites pause, history, WAL and free pages are scrubbed of the old plaintext
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(c.db, "rb") as f:
                data = f.read()
            wal = c.db + "-wal"
            if os.path.exists(wal):
                with open(wal, "rb") as f:
                    data += f.read()
            if b"rot-plain-0" not in data and base64.b64encode(b"rot-plain-0") not in data:
                break
            time.sleep(0.2)
        else:
            pytest.fail("old plaintext survived in the SQLite file or WAL")
    finally:
        c.stop()


def test_missing_key_answers_500_for_those_objects_only(tmp_path):  # STORE-04
    enc_path = tmp_path / "files" / "enc.yaml"
    c = start_secure(tmp_path, encryption_config(aescbc("key1", KEY1)))
    try:
        c.kubectl("create", "secret", "generic", "m0", "--from-literal", "pw=x", check=True)
        c.stop()
        enc_path.write_text(encryption_config(aescbc("key3", os.urandom(32))))  # key1 lost
        c.start()
        result = c.kubectl("get", "secret", "m0")
        assert result.returncode != 0
        assert "Internal error occurred: no matching prefix found" in result.stderr
        code, _, body = c.request("GET", "/api/v1/namespaces/default/secrets")
        assert code == 500
        status = json.loads(body)
        assert status["reason"] == "InternalError"
        assert status["message"] == ('Internal error occurred: unable to transform key '
                                     '"/registry/secrets/default/m0": no matching prefix found')
        assert c.kubectl("get", "configmaps", "-A", check=True).returncode == 0  # the rest works
        assert c.kubectl("create", "configmap", "still-works", check=True).returncode == 0
    finally:
        c.stop()


def test_bad_encryption_config_refuses_to_start(tmp_path):
    bad = encryption_config("  - aescbc:\n      keys:\n      - name: k\n        secret: c2hvcnQ=")
    c = Secure(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "cache"))
    (tmp_path / "enc.yaml").write_text(bad)
    c.extra_args = ["--encryption-provider-config", str(tmp_path / "enc.yaml")]
    with pytest.raises(RuntimeError) as e:
        c.start(timeout=15)
    assert "secret is not of the expected length, got 5, expected one of [16 24 32]" in str(e.value)
