"""Service networking under `kubelite up` with a real runc node and real traffic between pods: a pod reaching a
ClusterIP, tutorial.md C.9 (patch to LoadBalancer with an external IP of this host), hairpin, a StatefulSet
pod's stable DNS name through a headless Service, and NetworkPolicy default-deny plus an allow rule.
Needs root and the packages .ci/run installs (like test_real_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kubelite_cluster import Cluster, free_port
from real_node import http_get, iptables_chains, requirements, up_with_real_node, wait_for
from tutorial_manifests import NGINX_DEPLOYMENT, NGINX_NODEPORT_SERVICE

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

pytestmark = requirements()

PAGE = "hello from kubelite httpd"

NGINX = NGINX_DEPLOYMENT + NGINX_NODEPORT_SERVICE + """---
apiVersion: v1
kind: Pod
metadata:
  name: client
  labels:
    role: client
spec:
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
"""

STATEFULSET = """apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - name: web
    port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:latest
        ports:
        - containerPort: 80
          name: web
"""

NETPOL_PODS = """apiVersion: v1
kind: Namespace
metadata:
  name: np
---
apiVersion: v1
kind: Pod
metadata:
  name: srv
  namespace: np
  labels:
    app: srv
spec:
  containers:
  - name: httpd
    image: httpd
    ports:
    - containerPort: 80
      name: http
---
apiVersion: v1
kind: Pod
metadata:
  name: cli
  namespace: np
  labels:
    role: client
spec:
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: other
  namespace: np
spec:
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
"""

DEFAULT_DENY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: np
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

ALLOW_CLIENT = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-client
  namespace: np
spec:
  podSelector:
    matchLabels:
      app: srv
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: client
    ports:
    - protocol: TCP
      port: 80
"""


def host_address() -> str | None:
    """A global IPv4 address of this host (not loopback, not a bridge the cluster made)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and not parts[1].startswith(("kubelite", "cni", "veth")):
            return parts[3].split("/")[0]
    return None


def other_real_nodes() -> bool:
    """Whether another kubelite with a real node runs on this host (other test sessions share the bridge and
    the KUBE- chains, so only what our pods made can be checked then)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kubelite" in cmd and (b"--node-runtime runc" in cmd or b'"node_runtime": "runc"' in cmd
                                   or cmd.startswith(b"/usr/bin/conmon ")):
            return True
    return False


def node_ready_with_pod_cidr(cluster: Cluster, name: str) -> bool:
    r = cluster.kubectl("get", "node", name, "-o", "json")
    if r.returncode != 0:
        return False
    node = json.loads(r.stdout)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
    return ready and bool(node["spec"].get("podCIDR"))


@pytest.fixture(scope="module")
def real():
    before_chains = iptables_chains()
    our_netns: set[str] = set()
    with up_with_real_node("kubelite-up-net-", "real-net", [
            "--ingress-http-port", str(free_port()), "--ingress-https-port", "0"]) as cluster:
        # pods made before the node has its spec.podCIDR get addresses from the kubelet's fallback range, and
        # the bridge keeps that address: start from a node that is Ready with its range
        wait_for(lambda: node_ready_with_pod_cidr(cluster, "real-net"), timeout=60)
        try:
            yield cluster
        finally:
            uids = cluster.kubectl("get", "pods", "-A", "-o", "jsonpath={.items[*].metadata.uid}").stdout.split()
            our_netns = {"kl-" + uid.replace("-", "")[:16] for uid in uids}
    # everything the cluster created on the host is gone
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left = {line.split()[0] for line in netns.splitlines() if line.strip()}
    assert our_netns and not our_netns & left, our_netns & left
    if other_real_nodes() or any(n.startswith("kl-") for n in left):
        return
    assert iptables_chains() <= before_chains, iptables_chains() - before_chains
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "kubelite0" not in links
    assert "kubelite" not in netns


def nc_get(cluster: Cluster, pod: str, host: str, port: int | str, namespace: str = "default",
           timeout: int = 3) -> subprocess.CompletedProcess:
    """An HTTP GET from inside `pod` with busybox nc (its wget is not usable here)."""
    script = f"printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | nc -w {timeout} {host} {port}"
    return cluster.kubectl("exec", "-n", namespace, pod, "--", "sh", "-c", script)


def reaches(cluster: Cluster, pod: str, host: str, port: int | str, namespace: str = "default") -> bool:
    return PAGE in nc_get(cluster, pod, host, port, namespace).stdout


def pod_ip(cluster: Cluster, name: str, namespace: str = "default") -> str:
    return cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.podIP}", check=True).stdout


def nginx_pod(cluster: Cluster) -> str:
    return cluster.kubectl("get", "pods", "-l", "app=nginx", "-o", "jsonpath={.items[0].metadata.name}",
                           check=True).stdout


def cluster_ip(cluster: Cluster, name: str) -> str:
    return cluster.kubectl("get", "svc", name, "-o", "jsonpath={.spec.clusterIP}", check=True).stdout


def test_pod_reaches_cluster_ip(real, tmp_path):
    path = tmp_path / "nginx.yaml"
    path.write_text(NGINX)
    real.kubectl("apply", "-f", str(path), check=True)
    real.kubectl("rollout", "status", "deployment/nginx-deployment", "--timeout=90s", check=True, timeout=100)
    real.kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s", check=True)
    ip = cluster_ip(real, "nginx")
    # C.8 inside the cluster: another pod → <clusterIP>:8068, and by the Service's name
    wait_for(lambda: reaches(real, "client", ip, 8068), timeout=30)
    assert reaches(real, "client", "nginx.default.svc.cluster.local", 8068)
    assert reaches(real, "client", "nginx", 8068)  # search path of the pod's resolv.conf


def test_pod_reaches_the_api_server_service(real):
    # the `kubernetes` Service's endpoint is the API server; a TLS client is not in busybox (its wget is not
    # usable here), so this checks the name, the token and a TCP connection through the Service
    out = real.kubectl("exec", "client", "--", "nslookup", "kubernetes.default.svc.cluster.local", check=True).stdout
    assert "10.96.0.1" in out
    token = real.kubectl("exec", "client", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token",
                         check=True).stdout
    assert token.count(".") == 2
    r = real.kubectl("exec", "client", "--", "sh", "-c", "echo | nc -w 3 kubernetes.default 443")
    assert r.returncode == 0, r.stderr


def test_hairpin_pod_reaches_its_own_service(real):
    pod = nginx_pod(real)
    wait_for(lambda: reaches(real, pod, cluster_ip(real, "nginx"), 8068), timeout=30)
    # the answer came back through the Service to the very pod that asked
    logs = real.kubectl("logs", pod, check=True).stdout
    assert "response:200" in logs


def test_c9_patch_to_load_balancer_with_external_ip(real):
    address = host_address()
    if address is None:
        pytest.skip("this host has no global IPv4 address to use as an external IP")
    patch = json.dumps({"spec": {"type": "LoadBalancer", "externalIPs": [address]}})
    out = real.kubectl("patch", "svc", "nginx", "-n", "default", "-p", patch, check=True).stdout
    assert out.strip() == "service/nginx patched"
    # the built-in service load balancer publishes the address, kubectl shows it as EXTERNAL-IP
    status = wait_for(lambda: json.loads(real.kubectl("get", "svc", "nginx", "-o", "json", check=True).stdout)
                      ["status"].get("loadBalancer", {}).get("ingress"), timeout=30)
    assert {"ip": address, "ipMode": "VIP"} in status or any(i.get("ip") == address for i in status)
    wide = real.kubectl("get", "svc", "nginx", check=True).stdout
    assert "LoadBalancer" in wide and address in wide and "8068:30068/TCP" in wide
    # HTTP to that address and the service port reaches the pod, from the host and from a pod
    assert PAGE in wait_for(lambda: http_get(f"http://{address}:8068/"), timeout=30)
    wait_for(lambda: reaches(real, "client", address, 8068), timeout=30)
    # the node port still works after the type change
    assert PAGE in wait_for(lambda: http_get("http://127.0.0.1:30068/"), timeout=30)


def test_statefulset_stable_dns_name(real, tmp_path):
    # the tutorial's StatefulSet uses a headless Service named nginx: replace the NodePort one
    real.kubectl("delete", "svc", "nginx", check=True)
    path = tmp_path / "web.yaml"
    path.write_text(STATEFULSET)
    real.kubectl("apply", "-f", str(path), check=True)
    real.kubectl("rollout", "status", "statefulset/web", "--timeout=90s", check=True, timeout=100)
    ip = pod_ip(real, "web-0")
    assert ip

    def resolved() -> str | None:
        out = real.kubectl("exec", "client", "--", "nslookup", "web-0.nginx.default.svc.cluster.local").stdout
        return out if ip in out else None

    out = wait_for(resolved, timeout=30)
    assert "web-0.nginx.default.svc.cluster.local" in out
    # the headless Service's name answers with the pod's address too, and the stable name is reachable
    out = real.kubectl("exec", "client", "--", "nslookup", "nginx.default.svc.cluster.local", check=True).stdout
    assert ip in out
    assert reaches(real, "client", "web-0.nginx", 80)


def test_network_policy_default_deny_then_allow(real, tmp_path):
    pods = tmp_path / "np.yaml"
    pods.write_text(NETPOL_PODS)
    real.kubectl("apply", "-f", str(pods), check=True)
    real.kubectl("wait", "-n", "np", "--for=condition=Ready", "pod/srv", "pod/cli", "pod/other", "--timeout=60s",
                 check=True)
    srv = pod_ip(real, "srv", "np")
    wait_for(lambda: reaches(real, "cli", srv, 80, "np"), timeout=30)
    assert reaches(real, "other", srv, 80, "np")

    deny = tmp_path / "deny.yaml"
    deny.write_text(DEFAULT_DENY)
    real.kubectl("apply", "-f", str(deny), check=True)
    wait_for(lambda: not reaches(real, "cli", srv, 80, "np"), timeout=30)
    assert not reaches(real, "other", srv, 80, "np")

    allow = tmp_path / "allow.yaml"
    allow.write_text(ALLOW_CLIENT)
    real.kubectl("apply", "-f", str(allow), check=True)
    wait_for(lambda: reaches(real, "cli", srv, 80, "np"), timeout=30)
    # only the selected peers: a pod without the label stays blocked
    assert not reaches(real, "other", srv, 80, "np")

    real.kubectl("delete", "networkpolicy", "default-deny", "allow-client", "-n", "np", check=True)
    wait_for(lambda: reaches(real, "other", srv, 80, "np"), timeout=30)
