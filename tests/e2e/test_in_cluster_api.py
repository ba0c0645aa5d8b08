"""Issue 7 item 6: a pod calls the API server over HTTPS with its service-account token, through the cluster DNS
name `kubernetes.default.svc` and the `kubernetes` Service's cluster IP (kube-proxy's rules), verifying the
server with the mounted ca.crt — with plain urllib and with the official client's in-cluster config.

Our busybox image has no usable TLS client, so the pod runs this host's Python, mounted read-only from the
host (hostPath), and the test execs into it.  Needs root and the packages .ci/run installs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import pytest

from kubelite_cluster import Cluster
from real_node import iptables_chains, requirements, up_with_real_node, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

pytestmark = requirements()

NS = "ic"
PYTHON = os.path.realpath(sys.executable)
PY_PREFIX = os.path.realpath(sys.base_prefix)


def host_python_mounts() -> list[tuple[str, str]]:
    """(volume name, host path) for what the interpreter needs: the shared libraries and its own tree."""
    paths = ["/usr", "/lib", "/lib64", PY_PREFIX]
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    if not site.startswith(PY_PREFIX + "/"):
        paths.append(site)  # a venv's site-packages
    return [(f"host{i}", p) for i, p in enumerate(paths) if os.path.exists(p)]


def client_pod() -> str:
    mounts = host_python_mounts()
    vm = "".join(f"    - name: {n}\n      mountPath: {p}\n      readOnly: true\n" for n, p in mounts)
    vols = "".join(f"  - name: {n}\n    hostPath:\n      path: {p}\n" for n, p in mounts)
    return f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: reader
  namespace: {NS}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: {NS}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
{vm}  volumes:
{vols}"""


RBAC = f"""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: {NS}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader-reads-pods
  namespace: {NS}
subjects:
- kind: ServiceAccount
  name: reader
  namespace: {NS}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: pod-reader
"""

# what an in-cluster client does by hand: token, CA and namespace from the projected volume
URLLIB_CALL = """
import json, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read()
ns = open(sa + "/namespace").read()
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
req = urllib.request.Request(sys.argv[1] + "/api/v1/namespaces/" + ns + "/pods",
                             headers={"Authorization": "Bearer " + token})
try:
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        body = json.load(r)
        print(json.dumps({"code": r.status, "names": [p["metadata"]["name"] for p in body["items"]]}))
except urllib.error.HTTPError as e:
    print(json.dumps({"code": e.code, "status": json.load(e)}))
"""

OFFICIAL_CLIENT = """
from kubernetes import client, config
config.load_incluster_config()
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
print(" ".join(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod(ns).items))
"""


@pytest.fixture(scope="module")
def real():
    before_chains = iptables_chains()
    with up_with_real_node("kubelite-incluster-", "real-ic", ["--disable", "servicelb,ingress"]) as cluster:
        wait_for(lambda: json.loads(cluster.kubectl("get", "node", "real-ic", "-o", "json").stdout or "{}")
                 .get("spec", {}).get("podCIDR"), timeout=60)
        yield cluster
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if not any(line.startswith("kl-") for line in netns.splitlines()):  # no other real node on this host
        assert iptables_chains() <= before_chains, iptables_chains() - before_chains


def in_pod(cluster: Cluster, script: str, *args: str) -> str:
    r = cluster.kubectl("exec", "-n", NS, "client", "--", PYTHON, "-c", script, *args, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def test_pod_calls_the_api_server_with_its_token(real):
    real.kubectl("create", "namespace", NS, check=True)
    real.kubectl("apply", "-f", "-", input=client_pod(), check=True)
    real.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/client", "--timeout=60s", check=True, timeout=70)
    svc_ip = real.kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}", check=True).stdout
    env = real.kubectl("exec", "-n", NS, "client", "--", "env", check=True).stdout.splitlines()
    assert f"KUBERNETES_SERVICE_HOST={svc_ip}" in env and "KUBERNETES_SERVICE_PORT=443" in env
    assert f"KUBERNETES_PORT_443_TCP=tcp://{svc_ip}:443" in env

    # no RoleBinding yet: the token authenticates, RBAC says no, with upstream's message
    out = json.loads(in_pod(real, URLLIB_CALL, "https://kubernetes.default.svc"))
    assert out["code"] == 403, out
    assert out["status"]["reason"] == "Forbidden"
    assert out["status"]["message"] == (f'pods is forbidden: User "system:serviceaccount:{NS}:reader" cannot list '
                                        f'resource "pods" in API group "" in the namespace "{NS}"')

    real.kubectl("apply", "-f", "-", input=RBAC, check=True)

    def allowed(url: str) -> dict | None:
        result = json.loads(in_pod(real, URLLIB_CALL, url))
        return result if result["code"] == 200 else None
    # by the cluster DNS name and by the cluster IP; the server's certificate verifies for both
    assert wait_for(lambda: allowed("https://kubernetes.default.svc"), timeout=15)["names"] == ["client"]
    assert allowed(f"https://{svc_ip}")["names"] == ["client"]
    assert allowed("https://kubernetes.default.svc.cluster.local:443")["names"] == ["client"]

    # the official Python client's in-cluster config (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt)
    assert in_pod(real, OFFICIAL_CLIENT).split() == ["client"]
    real.kubectl("delete", "namespace", NS, "--wait=false", check=True)
