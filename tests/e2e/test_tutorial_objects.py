"""tutorial.md C.3, C.4, C.5 with the real kubectl, checking output shapes as upstream prints them."""

from __future__ import annotations

import json
import re

import pytest

from kubectl_output import header, rows

NGINX_POD = """apiVersion: v1
kind: Pod
metadata:
  name: nginx
  labels:
    name: nginx
spec:
  containers:
  - name: nginx
    image: nginx:latest
    ports:
      - containerPort: 80
"""

CUS_NS = """apiVersion: v1
kind: Namespace
metadata:
  name: cus-ns
"""


@pytest.fixture
def pod_file(tmp_path):
    path = tmp_path / "nginx-pod.yaml"
    path.write_text(NGINX_POD)
    return str(path)


def test_get_namespaces_lists_the_system_namespaces(cluster):
    out = cluster.kubectl("get", "ns", check=True).stdout
    assert header(out) == ["NAME", "STATUS", "AGE"]
    names = {r[0]: r[1] for r in rows(out)}
    for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
        assert names[ns] == "Active"


def test_pod_create_get_yaml_json_delete(cluster, pod_file):
    r = cluster.kubectl("create", "-f", pod_file, check=True)
    assert r.stdout.strip() == "pod/nginx created"
    again = cluster.kubectl("create", "-f", pod_file)
    assert again.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating' in again.stderr
    assert 'pods "nginx" already exists' in again.stderr

    out = cluster.kubectl("get", "pods", check=True).stdout
    assert header(out) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = next(r for r in rows(out) if r[0] == "nginx")
    assert row[1:4] == ["0/1", "Pending", "0"]
    assert re.fullmatch(r"\d+s", row[4])

    wide = cluster.kubectl("get", "pods", "-o", "wide", check=True).stdout
    assert header(wide) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                            "READINESS GATES"]

    y = cluster.kubectl("get", "po", "nginx", "-o", "yaml", check=True).stdout
    assert "kind: Pod" in y and "name: nginx" in y and "image: nginx:latest" in y
    obj = json.loads(cluster.kubectl("get", "po", "nginx", "-o", "json", check=True).stdout)
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Pod"
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["labels"] == {"name": "nginx"}
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"]) and int(meta["resourceVersion"]) > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    spec = obj["spec"]
    # upstream's defaults
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert obj["status"]["phase"] == "Pending"

    jp = cluster.kubectl("get", "po", "nginx", "-o", "jsonpath={.spec.containers[0].image}", check=True).stdout
    assert jp == "nginx:latest"

    r = cluster.kubectl("delete", "-f", pod_file, check=True)
    assert r.stdout.strip() == 'pod "nginx" deleted'
    gone = cluster.kubectl("get", "po", "nginx")
    assert gone.returncode == 1
    assert gone.stderr.strip() == 'Error from server (NotFound): pods "nginx" not found'


def test_labels_flow(cluster, tmp_path):
    pod = NGINX_POD.replace("name: nginx\n  labels", "name: labelled\n  labels")
    path = tmp_path / "p.yaml"
    path.write_text(pod)
    cluster.kubectl("create", "-f", str(path), check=True)
    out = cluster.kubectl("get", "pods", "--show-labels", check=True).stdout
    assert header(out)[-1] == "LABELS"
    assert next(r for r in rows(out) if r[0] == "labelled")[-1] == "name=nginx"

    assert cluster.kubectl("label", "pods", "labelled", "version=latest", check=True).stdout.strip() == \
        "pod/labelled labeled"
    out = cluster.kubectl("get", "pods", "-l", "version=latest", "--show-labels", check=True).stdout
    assert [r[0] for r in rows(out)] == ["labelled"]
    assert rows(out)[0][-1] == "name=nginx,version=latest"

    refused = cluster.kubectl("label", "pods", "labelled", "version=1")
    assert refused.returncode != 0 and "--overwrite is false" in refused.stderr
    cluster.kubectl("label", "pods", "labelled", "version=1", "--overwrite", check=True)
    out = cluster.kubectl("get", "pods", "-l", "version=1", "--show-labels", check=True).stdout
    assert rows(out)[0][-1] == "name=nginx,version=1"
    assert cluster.kubectl("get", "pods", "-l", "version=latest").stderr.strip() == \
        "No resources found in default namespace."

    assert cluster.kubectl("label", "pods", "labelled", "version-", check=True).stdout.strip() == \
        "pod/labelled unlabeled"
    out = cluster.kubectl("get", "pod", "labelled", "--show-labels", check=True).stdout
    assert rows(out)[0][-1] == "name=nginx"
    cluster.kubectl("delete", "pod", "labelled", check=True)


def test_namespaces_flow(cluster, tmp_path, pod_file):
    ns_file = tmp_path / "cus-ns.yaml"
    ns_file.write_text(CUS_NS)
    assert cluster.kubectl("create", "-f", str(ns_file), check=True).stdout.strip() == "namespace/cus-ns created"
    out = cluster.kubectl("get", "ns", check=True).stdout
    assert "cus-ns" in [r[0] for r in rows(out)]
    ns = json.loads(cluster.kubectl("get", "ns", "cus-ns", "-o", "json", check=True).stdout)
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "cus-ns"
    assert ns["spec"]["finalizers"] == ["kubernetes"] and ns["status"]["phase"] == "Active"
    assert cluster.kubectl("create", "-f", pod_file, "-n", "cus-ns", check=True).stdout.strip() == \
        "pod/nginx created"
    out = cluster.kubectl("get", "pods", "-n", "cus-ns", check=True).stdout
    assert [r[0] for r in rows(out)] == ["nginx"]
    missing = cluster.kubectl("create", "-f", pod_file, "-n", "no-such-ns")
    assert missing.returncode == 1 and 'namespaces "no-such-ns" not found' in missing.stderr
    cluster.kubectl("delete", "pod", "nginx", "-n", "cus-ns", check=True)
