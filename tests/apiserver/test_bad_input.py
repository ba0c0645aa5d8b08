"""security.md §5: bad input gets upstream's status code and reason, never a 5xx."""

from __future__ import annotations

import os
import ssl

import orjson
import pytest
import requests


@pytest.fixture(scope="module")
def http(cluster):
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace our CA
    pki = os.path.join(cluster.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    s.base = cluster.url
    return s


def call(http, method, path, body=None, content_type="application/json", **kw):
    headers = kw.pop("headers", {})
    allowed = kw.pop("allow", ())
    if body is not None and "Content-Type" not in headers:
        headers["Content-Type"] = content_type
    data = body if isinstance(body, (bytes, str)) or body is None else orjson.dumps(body)
    r = http.request(method, http.base + path, data=data, headers=headers, **kw)
    assert r.status_code < 500 or r.status_code in allowed, (r.status_code, r.text)
    return r


def status(r):
    body = r.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == r.status_code
    return body


CM = "/api/v1/namespaces/default/configmaps"


def cm(name, **extra):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


def test_b01_body_over_3_mib_is_413(http):
    r = call(http, "POST", CM, b'{"a":"' + b"x" * (3 * 1024 * 1024 + 10) + b'"}')
    assert r.status_code == 413
    assert status(r)["message"] == "Request entity too large: limit is 3145728"


def test_b03_deep_nesting_is_400(http):
    r = call(http, "POST", CM, b"[" * 100000 + b"]" * 100000)
    assert r.status_code == 400 and status(r)["reason"] == "BadRequest"
    r = call(http, "POST", CM, b'{"a":' * 5000 + b"1" + b"}" * 5000)
    assert r.status_code == 400


def test_b04_yaml_alias_bomb_is_400(http):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    r = call(http, "POST", CM, bomb, content_type="application/yaml")
    assert r.status_code == 400


def test_b05_media_types(http):
    assert call(http, "POST", CM, b"{not json").status_code == 400
    r = call(http, "POST", CM, b"hello", content_type="text/plain")
    assert r.status_code == 415 and status(r)["reason"] == "UnsupportedMediaType"
    r = call(http, "GET", CM, headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert r.status_code == 406 and status(r)["reason"] == "NotAcceptable"


@pytest.mark.parametrize("name", ["Foo_Bar", "UPPER", "a" * 254, "ﬁle", "bad\u202ename", "nul\x00"])
def test_b06_b26_invalid_names_are_422(http, name):
    r = call(http, "POST", CM, cm(name))
    assert r.status_code == 422
    body = status(r)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_b06_namespace_must_be_a_label(http):
    r = call(http, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "a.b"}})
    assert r.status_code == 422


def test_b07_bad_label_value(http):
    r = call(http, "POST", CM, cm("labels", metadata={"name": "labels", "labels": {"k": "v" * 64}}))
    assert r.status_code == 422 and status(r)["details"]["causes"][0]["field"].startswith("metadata.labels")


def test_b08_to_b10_field_validation(http):
    r = call(http, "POST", CM + "?fieldValidation=Strict", cm("strict", spec={"foo": 1}))
    assert r.status_code == 400
    assert 'strict decoding error: unknown field "spec"' in status(r)["message"]
    r = call(http, "POST", CM + "?fieldValidation=Warn", cm("warned", bogus=1))
    assert r.status_code == 201 and 'unknown field \\"bogus\\"' in r.headers["Warning"]
    assert "bogus" not in r.json()
    r = call(http, "POST", CM + "?fieldValidation=Ignore", cm("ignored", bogus=1))
    assert r.status_code == 201 and "Warning" not in r.headers


def test_b11_b13_b14_conflicts_and_missing(http):
    created = call(http, "POST", CM, cm("conflict")).json()
    stale = dict(created)
    call(http, "PUT", CM + "/conflict", {**created, "data": {"a": "1"}})
    r = call(http, "PUT", CM + "/conflict", {**stale, "data": {"a": "2"}})
    assert r.status_code == 409
    assert status(r)["message"] == ('Operation cannot be fulfilled on configmaps "conflict": the object has been '
                                    'modified; please apply your changes to the latest version and try again')
    r = call(http, "POST", CM, cm("conflict"))
    assert r.status_code == 409 and status(r)["reason"] == "AlreadyExists"
    r = call(http, "GET", CM + "/nope")
    assert r.status_code == 404 and status(r)["message"] == 'configmaps "nope" not found'


def test_b15_b16_b17_body_does_not_match_url(http):
    call(http, "POST", CM, cm("match"))
    r = call(http, "PUT", CM + "/match", cm("other"))
    assert r.status_code == 400
    assert status(r)["message"] == "the name of the object (other) does not match the name on the URL (match)"
    r = call(http, "POST", CM, {**cm("ns"), "metadata": {"name": "ns", "namespace": "kube-system"}})
    assert r.status_code == 400
    assert status(r)["message"] == ("the namespace of the provided object does not match the namespace sent on "
                                    "the request")
    r = call(http, "POST", CM, {**cm("ver"), "apiVersion": "apps/v1"})
    assert r.status_code == 400


def test_b18_b19_resource_versions(http):
    r = call(http, "GET", CM + "?resourceVersion=999999999&resourceVersionMatch=NotOlderThan", allow=(504,))
    assert r.status_code == 504
    assert status(r)["message"].startswith("Too large resource version: 999999999")


def test_b20_method_not_allowed(http):
    r = call(http, "POST", CM + "/named", cm("named"))
    assert r.status_code == 405 and status(r)["reason"] == "MethodNotAllowed"


def test_b22_missing_namespace(http):
    r = call(http, "POST", "/api/v1/namespaces/absent/configmaps", cm("x"))
    assert r.status_code == 404 and status(r)["message"] == 'namespaces "absent" not found'


def test_b23_b24_bad_selectors_and_params(http):
    assert call(http, "GET", CM + "?labelSelector=a%20in%20(").status_code == 400
    assert call(http, "GET", CM + "?fieldSelector=spec.foo%3Dbar").status_code == 400
    assert call(http, "GET", CM + "?limit=abc").status_code == 400
    assert call(http, "GET", CM + "?watch=1&timeoutSeconds=-1").status_code == 400


def test_b27_path_traversal_never_reaches_another_namespace(http):
    for path in ("/api/v1/namespaces/..%2fkube-system/configmaps", "/api/v1/namespaces/default/configmaps/..%2f..",
                 "//api/v1/namespaces/kube-system/secrets/x"):
        r = http.get(http.base + path)
        assert r.status_code in (400, 404), (path, r.status_code)


def test_garbage_token_is_401(cluster):
    r = requests.get(cluster.url + "/api/v1/namespaces", verify=os.path.join(cluster.data_dir, "pki", "ca.crt"),
                     headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"


def test_anonymous_sees_only_public_info(cluster):
    ca = os.path.join(cluster.data_dir, "pki", "ca.crt")
    assert requests.get(cluster.url + "/version", verify=ca).status_code == 200
    assert requests.get(cluster.url + "/readyz", verify=ca).text == "ok"
    r = requests.get(cluster.url + "/api/v1/secrets", verify=ca)
    assert r.status_code == 403
    assert r.json()["message"] == ('secrets is forbidden: User "system:anonymous" cannot list resource "secrets" '
                                   'in API group "" at the cluster scope')


def test_plain_http_gets_no_data(cluster):
    import socket

    with socket.create_connection(("127.0.0.1", cluster.port)) as s:
        s.sendall(b"GET /api/v1/secrets HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, TimeoutError, ssl.SSLError):
            data = b""
    assert b"SecretList" not in data
