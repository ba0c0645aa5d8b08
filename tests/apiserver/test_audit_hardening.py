"""Audit never changes what a request does (bodies up to the 3 MiB limit at every level) and never drops an
event for bytes that are not UTF-8 (written with U+FFFD, as upstream's JSON encoder does)."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

from kubelite_cluster import Cluster, free_port

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n" + "".join(
    f"- level: {level}\n  namespaces: [\"lvl-{level.lower()}\"]\n" for level in LEVELS) + "- level: Metadata\n"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    base = tmp_path_factory.mktemp("audited")
    (base / "policy.yaml").write_text(POLICY)
    log_path = base / "audit.log"
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"),
                extra_args=["--audit-policy-file", str(base / "policy.yaml"), "--audit-log-path", str(log_path)])
    c.start()
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(c.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    for level in LEVELS:
        r = s.post(f"{c.url}/api/v1/namespaces", json={"metadata": {"name": f"lvl-{level.lower()}"}})
        assert r.status_code == 201, r.text
    yield c, s, log_path
    c.stop()


def events(log_path, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        found = []
        if log_path.exists():
            for line in log_path.read_text(encoding="utf-8").splitlines():
                ev = json.loads(line)
                if predicate(ev):
                    found.append(ev)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("size", [200 * 1024, 1000 * 1024, 3 * 1024 * 1024 - 4096])
def test_big_bodies_at_every_level(audited, level, size):
    """ConfigMaps hold at most 1 MiB: the biggest body is refused by validation (422), as without audit."""
    c, s, log_path = audited
    ns = f"lvl-{level.lower()}"
    name = f"big-{size}"
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                       "data": {"k": "x" * (size - 200)}})
    r = s.post(f"{c.url}/api/v1/namespaces/{ns}/configmaps", data=body,
               headers={"Content-Type": "application/json"})
    code = 201 if size < 1024 * 1024 else 422
    assert r.status_code == code, r.text[:300]
    if code == 422:
        assert r.json()["reason"] == "Invalid"
        assert s.get(f"{c.url}/api/v1/namespaces/{ns}/configmaps/{name}").status_code == 404
        return
    assert s.get(f"{c.url}/api/v1/namespaces/{ns}/configmaps/{name}").status_code == 200
    r = s.put(f"{c.url}/api/v1/namespaces/{ns}/configmaps/{name}", data=body,
              headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text[:300]
    got = events(log_path, lambda e: e.get("stage") == "ResponseComplete" and e.get("verb") == "create"
                 and (e.get("objectRef") or {}).get("namespace") == ns
                 and (e.get("objectRef") or {}).get("name") == name, timeout=0 if level == "None" else 5)
    if level == "None":
        assert got == []
    else:
        assert len(got) == 1 and got[0]["responseStatus"]["code"] == 201
        assert ("requestObject" in got[0]) == (level in ("Request", "RequestResponse"))
    assert s.delete(f"{c.url}/api/v1/namespaces/{ns}/configmaps/{name}").status_code == 200


def test_invalid_bytes_in_logged_fields_are_replaced_not_dropped(audited):
    c, s, log_path = audited
    ns = "lvl-requestresponse"
    r = s.post(f"{c.url}/api/v1/namespaces/{ns}/secrets", json={"metadata": {"name": "ua"}},
               headers={"User-Agent": b"evil\xff/1.0"})
    assert r.status_code == 201
    r = s.get(f"{c.url}/api/v1/namespaces/{ns}/secrets/ua?x=%FF", headers={
        "User-Agent": b"evil\xff/1.0", "Impersonate-User": b"m\xffallory"})
    assert r.status_code == 403
    r = s.get(f"{c.url}/api/v1/namespaces/{ns}/secrets/n%FFame", headers={"User-Agent": b"evil\xff/1.0"})
    assert r.status_code == 404
    got = events(log_path, lambda e: e.get("userAgent") == "evil\ufffd/1.0" and e.get("stage") == "ResponseComplete")
    verbs = sorted(e["verb"] for e in got)
    assert verbs == ["create", "get", "get"], got
    assert any((e.get("impersonatedUser") or {}).get("username") == "m\ufffdallory" for e in got)
    assert any((e.get("objectRef") or {}).get("name") == "n\ufffdame" for e in got)
