"""`kubelite up` with a real runc node, kube-proxy, cluster DNS and ingress, driven through tutorial.md C.1,
C.2, C.6, C.7, C.8, C.10 and C.13 with real traffic, and a ConfigMap update reaching a mounted file. Needs root and the packages .ci/run installs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from kubectl_output import rows
from kubelite_cluster import KUBECTL, free_port
from real_node import http_get, iptables_chains, requirements, up_with_real_node, wait_for
from tutorial_manifests import NGINX_DEPLOYMENT, NGINX_NODEPORT_SERVICE

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

pytestmark = requirements()

NGINX = NGINX_DEPLOYMENT + NGINX_NODEPORT_SERVICE


@pytest.fixture(scope="module")
def real():
    before_chains = iptables_chains()
    with up_with_real_node("kubelite-up-real-", "real-up", [
            "--ingress-http-port", str(free_port()), "--ingress-https-port", "0"]) as cluster:
        yield cluster
    # everything the cluster created on the host is gone
    assert iptables_chains() <= before_chains, iptables_chains() - before_chains
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "kubelite0" not in links
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "kubelite" not in netns


def test_node_is_real_and_ready(real):
    out = wait_for(lambda: real.kubectl("get", "nodes", "-o", "wide").stdout
                   if " Ready " in real.kubectl("get", "nodes", "-o", "wide").stdout else None)
    assert "runc://" in out


def test_c2_c8_deployment_and_nodeport_service(real, tmp_path):
    path = tmp_path / "nginx.yaml"
    path.write_text(NGINX)
    out = real.kubectl("apply", "-f", str(path), check=True).stdout
    assert "deployment.apps/nginx-deployment created" in out and "service/nginx created" in out
    real.kubectl("rollout", "status", "deployment/nginx-deployment", "--timeout=90s", check=True, timeout=120)
    pods = rows(real.kubectl("get", "pods", "-l", "app=nginx", "-o", "wide", check=True).stdout)
    assert pods[0][1:3] == ["1/1", "Running"] and re.fullmatch(r"10\.244\.\d+\.\d+", pods[0][5])
    # NodePort on the node's loopback, and the cluster IP, both reach the container
    wait_for(lambda: "hello from kubelite httpd" in http_get("http://127.0.0.1:30068/"), timeout=30)
    svc = json.loads(real.kubectl("get", "svc", "nginx", "-o", "json", check=True).stdout)
    assert "hello from kubelite httpd" in wait_for(
        lambda: http_get(f"http://{svc['spec']['clusterIP']}:8068/"), timeout=15)
    # from inside a pod: the service by its DNS name resolves to the cluster IP (C.8 inside the cluster)
    pod = pods[0][0]
    out = real.kubectl("exec", pod, "--", "nslookup", "nginx.default.svc.cluster.local", check=True).stdout
    assert svc["spec"]["clusterIP"] in out
    r = real.kubectl("exec", pod, "--", "sh", "-c", "exit 3")
    assert r.returncode == 3


def test_c1_c7_run_and_expose(real):
    real.kubectl("run", "hello", "--image=httpd", "--port=80", check=True)
    real.kubectl("wait", "--for=condition=Ready", "pod/hello", "--timeout=90s", check=True, timeout=120)
    out = real.kubectl("expose", "po", "hello", "--port=80", "--target-port=80", "--type=NodePort",
                       "--name", "hello-http", check=True).stdout
    assert out.strip() == "service/hello-http exposed"
    port = real.kubectl("get", "svc", "hello-http", "-o", "jsonpath={.spec.ports[0].nodePort}", check=True).stdout
    wait_for(lambda: "hello from kubelite httpd" in http_get(f"http://127.0.0.1:{port}/"), timeout=30)
    logs = real.kubectl("logs", "hello", check=True).stdout
    assert "response:200" in logs  # busybox httpd -v logs each request it served


def test_b1_dashboard_over_its_node_port_and_cluster_ip(real):
    """Tutorial B.1 on a real node: the dashboard answers HTTPS on its node port at a node address other than
    the one it listens on, and on its ClusterIP, through the proxy's rules."""
    import ssl
    import urllib.request

    def service():
        out = real.kubectl("-n", "kubernetes-dashboard", "get", "svc", "kubernetes-dashboard", "-o", "json").stdout
        return json.loads(out) if out else None

    svc = wait_for(service, timeout=30)
    node_port, cluster_ip = svc["spec"]["ports"][0]["nodePort"], svc["spec"]["clusterIP"]
    ca = ssl.create_default_context(cafile=os.path.join(real.data_dir, "pki", "ca.crt"))
    ca.check_hostname = False  # reached by addresses the serving certificate need not name
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ca))
    # the dashboard listens on the node port at 127.0.0.1 (its Endpoints); another address of this host reaches
    # it only through the proxy's NodePort rules
    endpoints = json.loads(real.kubectl("-n", "kubernetes-dashboard", "get", "endpoints", "kubernetes-dashboard",
                                        "-o", "json", check=True).stdout)
    assert endpoints["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    urls = [f"https://{cluster_ip}:443/"]
    urls += [f"https://{a}:{node_port}/" for a in addresses[:1] if ":" not in a and not a.startswith("127.")]
    for url in urls:
        page = wait_for(lambda u=url: opener.open(u, timeout=3).read().decode(), timeout=30)
        assert "<html" in page and "token" in page.lower(), url  # the sign-in page


def test_c6_port_forward(real):
    port = free_port()
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", real.kubeconfig, "--cache-dir", real.cache_dir,
                             "port-forward", "pod/hello", f"{port}:80"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith(f"Forwarding from 127.0.0.1:{port} -> 80")
        assert "hello from kubelite httpd" in wait_for(lambda: http_get(f"http://127.0.0.1:{port}/"), timeout=15)
    finally:
        proc.terminate()
        proc.wait(10)


def test_c10_ingress_routes_by_host(real, tmp_path):
    ingress = tmp_path / "ing.yaml"
    ingress.write_text("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: two-hosts
spec:
  rules:
  - host: nginx.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: nginx, port: {number: 8068}}}
  - host: hello.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: hello-http, port: {number: 80}}}
""")
    real.kubectl("apply", "-f", str(ingress), check=True)
    args = real.extra_args
    http_port = args[args.index("--ingress-http-port") + 1]
    for host in ("nginx.example.com", "hello.example.com"):
        body = wait_for(lambda h=host: http_get(f"http://127.0.0.1:{http_port}/", {"Host": h}), timeout=30)
        assert "hello from kubelite httpd" in body


def test_c13_containers_share_network_and_volumes(real, tmp_path):
    pod = tmp_path / "pair.yaml"
    pod.write_text("""apiVersion: v1
kind: Pod
metadata:
  name: pair
spec:
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: web
    image: httpd
    volumeMounts:
    - {name: shared, mountPath: /var/www}
  - name: writer
    image: busybox
    command: ["sh", "-c", "echo written-by-writer > /data/index.html; sleep 3600"]
    volumeMounts:
    - {name: shared, mountPath: /data}
""")
    real.kubectl("apply", "-f", str(pod), check=True)
    real.kubectl("wait", "--for=condition=Ready", "pod/pair", "--timeout=90s", check=True, timeout=120)
    # the second container reaches the first over the pod's own loopback, and sees the file it wrote
    out = wait_for(lambda: real.kubectl("exec", "pair", "-c", "writer", "--", "sh", "-c",
                                        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80").stdout
                   if "written-by-writer" in real.kubectl("exec", "pair", "-c", "writer", "--", "sh", "-c",
                                                          "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80"
                                                          ).stdout else None, timeout=30)
    assert "written-by-writer" in out
    ips = {real.kubectl("exec", "pair", "-c", c, "--", "hostname", "-i").stdout.strip() for c in ("web", "writer")}
    assert len(ips) == 1  # one network namespace, one IP


def test_config_map_update_reaches_the_mounted_file(real, tmp_path):
    real.kubectl("create", "configmap", "settings", "--from-literal=mode=first", check=True)
    pod = tmp_path / "reader.yaml"
    pod.write_text("""apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  volumes:
  - name: cfg
    configMap: {name: settings}
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: cfg, mountPath: /etc/settings}
""")
    real.kubectl("apply", "-f", str(pod), check=True)
    real.kubectl("wait", "--for=condition=Ready", "pod/reader", "--timeout=90s", check=True, timeout=120)
    assert real.kubectl("exec", "reader", "--", "cat", "/etc/settings/mode", check=True).stdout == "first"
    real.kubectl("patch", "configmap", "settings", "-p", '{"data":{"mode":"second"}}', check=True)
    wait_for(lambda: real.kubectl("exec", "reader", "--", "cat", "/etc/settings/mode").stdout == "second",
             timeout=60, interval=1.0)
