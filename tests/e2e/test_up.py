"""`kubelite up`: the whole control plane plus a simulated node, driven through tutorial.md C.2 and C.11."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from kubectl_output import header, rows
from kubelite_cluster import Cluster, free_port
from tutorial_manifests import NGINX_DEPLOYMENT


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    base = tmp_path_factory.mktemp("up")
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"), command="up",
                extra_args=["--node-runtime", "simulated", "--cluster-dns-port", "0", "--ingress-http-port", "0",
                            "--ingress-https-port", "0"])
    c.start()
    yield c
    c.stop()


def wait_for(fn, timeout=30.0, interval=0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last: {last!r}")


def test_status_and_node(up):
    r = subprocess.run([sys.executable, "-m", "kubelite.cli", "status", "--data-dir", up.data_dir],
                       capture_output=True, text=True, timeout=30)
    out = wait_for(lambda: up.kubectl("get", "nodes").stdout if "Ready" in up.kubectl("get", "nodes").stdout
                   else None)
    assert header(out) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows(out)[0][1] == "Ready"
    assert "apiserver" in r.stdout
    info = up.kubectl("cluster-info", check=True).stdout
    assert "Kubernetes control plane is running at" in info and "CoreDNS is running at" in info


def test_deployment_runs_and_heals(up, tmp_path):
    path = tmp_path / "nginx-deployment.yaml"
    path.write_text(NGINX_DEPLOYMENT)
    assert up.kubectl("apply", "-f", str(path), check=True).stdout.strip() == \
        "deployment.apps/nginx-deployment created"

    def ready():
        out = up.kubectl("get", "deployments", check=True).stdout
        row = next((r for r in rows(out) if r[0] == "nginx-deployment"), None)
        return out if row and row[1:4] == ["1/1", "1", "1"] else None

    wait_for(ready)
    pods = up.kubectl("get", "pods", "-l", "app=nginx", "--show-labels", check=True).stdout
    (name, readiness, status, *_rest, labels), = rows(pods)
    assert readiness == "1/1" and status == "Running"
    assert name.startswith("nginx-deployment-") and "pod-template-hash=" in labels
    r = up.kubectl("rollout", "status", "deployment/nginx-deployment", "--timeout=30s", check=True)
    assert 'deployment "nginx-deployment" successfully rolled out' in r.stdout

    # deleting the pod: the ReplicaSet makes a new one with a new name
    up.kubectl("delete", "pod", name, check=True)

    def replaced():
        out = up.kubectl("get", "pods", "-l", "app=nginx", check=True).stdout
        names = [(r[0], r[2]) for r in rows(out)]
        return names if names and all(n != name and s == "Running" for n, s in names) else None

    wait_for(replaced)

    # rolling update through a new ReplicaSet, then undo
    up.kubectl("set", "image", "deployment/nginx-deployment", "nginx=nginx:1.25", check=True)
    up.kubectl("rollout", "status", "deployment/nginx-deployment", "--timeout=60s", check=True)
    rs = rows(up.kubectl("get", "replicasets.apps", check=True).stdout)
    assert len([r for r in rs if r[0].startswith("nginx-deployment-")]) == 2
    history = up.kubectl("rollout", "history", "deployment/nginx-deployment", check=True).stdout
    assert "REVISION" in history and "2" in history
    up.kubectl("rollout", "undo", "deployment/nginx-deployment", check=True)
    up.kubectl("rollout", "status", "deployment/nginx-deployment", "--timeout=60s", check=True)
    dep = json.loads(up.kubectl("get", "deploy", "nginx-deployment", "-o", "json", check=True).stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:latest"
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    # scaling and deleting cascade to the pods
    up.kubectl("scale", "deployment", "nginx-deployment", "--replicas=3", check=True)
    wait_for(lambda: len([r for r in rows(up.kubectl("get", "pods", "-l", "app=nginx").stdout)
                          if r[2] == "Running"]) == 3)
    up.kubectl("delete", "deployment", "nginx-deployment", check=True)
    wait_for(lambda: "No resources found" in up.kubectl("get", "pods", "-l", "app=nginx").stderr)


def test_namespace_deletion_empties_it(up):
    up.kubectl("create", "namespace", "doomed", check=True)
    up.kubectl("create", "configmap", "c1", "-n", "doomed", check=True)
    up.kubectl("create", "deployment", "d1", "--image=nginx", "-n", "doomed", check=True)
    wait_for(lambda: up.kubectl("get", "sa", "default", "-n", "doomed").returncode == 0)
    r = up.kubectl("delete", "namespace", "doomed", "--timeout=60s", check=True)
    assert r.stdout.strip() == 'namespace "doomed" deleted'
    assert up.kubectl("get", "namespace", "doomed").returncode == 1
