"""Issue 16: objects upstream would reject are refused with its 422, bad bytes and numbers are 4xx Statuses,
and a bounded structure-aware fuzzer finds no 5xx and no stored object that fails validation on read-back."""

from __future__ import annotations

import copy
import json
import os
import random
import time

import pytest
import requests

from kubelite.api import validation
from kubelite.api.defaults import apply_defaults
from kubelite.api.resources import BUILTIN


@pytest.fixture(scope="module")
def http(cluster):
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(cluster.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    s.base = cluster.url
    return s


def call(http, method, path, body=None, content_type="application/json", headers=None):
    h = dict(headers or {})
    if body is not None:
        h.setdefault("Content-Type", content_type)
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    r = http.request(method, http.base + path, data=data, headers=h)
    assert r.status_code < 500, (method, path, r.status_code, r.text[:500])
    if r.status_code >= 400:
        status = r.json()
        assert status["kind"] == "Status" and status["code"] == r.status_code
    return r


NS = "/api/v1/namespaces/default"


def pod(name, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


def messages(r):
    return [c["message"] for c in r.json()["details"]["causes"]]


def test_null_list_items_are_422(http):
    p = pod("h-owner")
    p["metadata"]["ownerReferences"] = [None]
    r = call(http, "POST", f"{NS}/pods", p)
    assert r.status_code == 422 and 'Invalid value: "": version must not be empty' in messages(r)
    for spec in ({"readinessGates": [None]}, {"tolerations": [None]},
                 {"ephemeralContainers": [{"name": "e", "image": "x"}]}):
        assert call(http, "POST", f"{NS}/pods", pod("h-spec", **spec)).status_code == 422
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h-cm", "ownerReferences": [None]}}
    assert call(http, "POST", f"{NS}/configmaps", cm).status_code == 422
    assert call(http, "GET", f"{NS}/pods/h-owner").status_code == 404


def test_node_taint_effects(http):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "h-node"}, "spec": {"taints": [{"effect": "1Gi"}]}}
    r = call(http, "POST", "/api/v1/nodes", node)
    assert r.status_code == 422
    assert 'Unsupported value: "1Gi": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"' in messages(r)
    node["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule"}]
    assert call(http, "POST", "/api/v1/nodes", node).status_code == 201
    patch = {"spec": {"taints": [None]}}
    r = call(http, "PATCH", "/api/v1/nodes/h-node", patch, "application/merge-patch+json")
    assert r.status_code == 422
    call(http, "DELETE", "/api/v1/nodes/h-node")


def test_scale_replicas_fit_an_int32(http):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "h-dep"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "h"}},
                    "template": {"metadata": {"labels": {"a": "h"}}, "spec": pod("x")["spec"]}}}
    base = "/apis/apps/v1/namespaces/default/deployments"
    assert call(http, "POST", base, dep).status_code == 201
    r = call(http, "PATCH", f"{base}/h-dep/scale", {"spec": {"replicas": 2**31}}, "application/merge-patch+json")
    assert r.status_code == 422
    assert messages(r) == ["Invalid value: 2147483648: must be less than or equal to 2147483647"]
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "h-dep", "namespace": "default"},
             "spec": {"replicas": 2**31}}
    assert call(http, "PUT", f"{base}/h-dep/scale", scale).status_code == 422
    r = call(http, "PATCH", f"{base}/h-dep", {"spec": {"replicas": 2**40}}, "application/merge-patch+json")
    assert r.status_code in (400, 422)
    r = call(http, "PATCH", f"{base}/h-dep", [{"op": "replace", "path": "/spec/replicas", "value": 2**31}],
             "application/json-patch+json")
    assert r.status_code in (400, 422)
    assert call(http, "GET", f"{base}/h-dep").json()["spec"]["replicas"] == 0
    call(http, "DELETE", f"{base}/h-dep")


def test_cluster_roles_with_empty_selectors_do_not_break_later_writes(http):
    base = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    for name, selectors in (("h-agg-null", [None]), ("h-agg-empty", [{}])):
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
                "aggregationRule": {"clusterRoleSelectors": selectors}}
        assert call(http, "POST", base, role).status_code == 201  # upstream accepts both
    plain = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "h-plain"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    assert call(http, "POST", base, plain).status_code == 201
    for name in ("h-agg-null", "h-agg-empty", "h-plain"):
        assert call(http, "DELETE", f"{base}/{name}").status_code == 200


def test_bad_bytes_and_numbers_are_4xx(http):
    r = call(http, "GET", f"{NS}/configmaps?limit=99999999999999999999")
    assert r.status_code == 400
    for value in ("1_0", " 5", "٣"):
        assert call(http, "GET", f"{NS}/configmaps?limit={value}").status_code == 400
    assert call(http, "GET", f"{NS}/configmaps?resourceVersion=99999999999999999999").status_code == 400
    assert call(http, "GET", f"{NS}/configmaps?watch=1&timeoutSeconds=99999999999999999999").status_code == 400
    r = call(http, "GET", f"{NS}/configmaps", headers={"Impersonate-User": b"a\xffb"})
    assert r.status_code == 403 and "a\ufffdb" in r.json()["message"]
    r = call(http, "POST", f"{NS}/configmaps", b'{"metadata":{"name":"h-ct"}}',
             headers={"Content-Type": b"application/\xffjson"})
    assert r.status_code == 415
    r = call(http, "POST", f"{NS}/configmaps", {"metadata": {"name": "h-ua"}}, headers={"User-Agent": b"agent\xff/1"})
    assert r.status_code == 201
    managers = [m["manager"] for m in r.json()["metadata"].get("managedFields") or ()]
    assert all("\ufffd" in m or m.isascii() for m in managers)
    call(http, "DELETE", f"{NS}/configmaps/h-ua")
    r = call(http, "PATCH", f"{NS}/configmaps/h-ssa?fieldManager=m",
             json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "P1D"}), "application/apply-patch+yaml")
    assert r.status_code == 400
    r = call(http, "PATCH", f"{NS}/configmaps/h-ssa?fieldManager=m",
             json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h-ssa"}, "data": [1]}),
             "application/apply-patch+yaml")
    assert r.status_code == 400


# ---------------------------------------------------------------- the fuzzer

SEEDS = {
    ("", "Pod"): pod("f"),
    ("", "ConfigMap"): {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f", "labels": {"a": "b"}},
                        "data": {"k": "v"}},
    ("", "Service"): {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "f"},
                      "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"a": "b"}}},
    ("", "Node"): {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "f"},
                   "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
    ("apps", "Deployment"): {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "f"},
                             "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "f"}},
                                      "template": {"metadata": {"labels": {"a": "f"}},
                                                   "spec": {"containers": [{"name": "c", "image": "x"}],
                                                            "tolerations": [{"operator": "Exists"}]}}}},
    ("apps", "DaemonSet"): {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "f"},
                            "spec": {"selector": {"matchLabels": {"a": "f"}},
                                     "template": {"metadata": {"labels": {"a": "f"}},
                                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
    ("rbac.authorization.k8s.io", "ClusterRole"): {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "f"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    ("networking.k8s.io", "Ingress"): {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "f"},
        "spec": {"rules": [{"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "s", "port": {"number": 80}}}}]}}]}},
}
NASTY = [None, [None], [{}], {}, "", "x", 2**31, 2**63, -(2**31) - 1, 1.5, True, [1], {"a": None}, "1Gi"]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def mutate(obj, rng):
    """A copy of obj with one random field (or a new list item) replaced by a nasty value."""
    out = copy.deepcopy(obj)
    paths = [p for p in _paths(out) if p and p[0] not in ("apiVersion", "kind") and p[:2] != ("metadata", "name")]
    path = rng.choice(paths)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    value = copy.deepcopy(rng.choice(NASTY))
    if isinstance(parent[path[-1]], list) and rng.random() < 0.5:
        parent[path[-1]].append(value)
    else:
        parent[path[-1]] = value
    return out


def _url(rt, name=""):
    prefix = "/api/v1" if rt.group == "" else f"/apis/{rt.group}/{rt.version}"
    ns = "/namespaces/default" if rt.namespaced else ""
    return f"{prefix}{ns}/{rt.resource}" + (f"/{name}" if name else "")


def test_fuzz_no_5xx_and_stored_objects_validate(http):
    rng = random.Random(16)
    deadline = time.monotonic() + 40
    tried = stored = 0
    for n in range(1500):
        if time.monotonic() > deadline:
            break
        key = rng.choice(sorted(SEEDS))
        rt = next(r for r in BUILTIN if (r.group, r.kind) == key)
        obj = mutate(SEEDS[key], rng)
        name = f"fz-{n}"
        obj.setdefault("metadata", {})
        if isinstance(obj["metadata"], dict):
            obj["metadata"]["name"] = name
        how = rng.choice(("create", "merge", "apply"))
        if how == "create":
            r = call(http, "POST", _url(rt), obj)
        else:
            seed = copy.deepcopy(SEEDS[key])
            seed["metadata"]["name"] = name
            if call(http, "POST", _url(rt), seed).status_code != 201:
                continue
            if how == "merge":
                r = call(http, "PATCH", _url(rt, name), obj, "application/merge-patch+json")
            else:
                r = call(http, "PATCH", _url(rt, name) + "?fieldManager=fuzz&force=true", json.dumps(obj),
                         "application/apply-patch+yaml")
        tried += 1
        got = call(http, "GET", _url(rt, name))
        if got.status_code == 200:
            stored += 1
            back = got.json()
            apply_defaults(rt, back)
            validation.validate(rt, back)  # what the server kept fits the schema and the rules
            call(http, "DELETE", _url(rt, name) + "?gracePeriodSeconds=0")
        assert r.status_code < 500
    assert tried > 50 and stored > 0
    assert call(http, "GET", "/readyz").status_code == 200
