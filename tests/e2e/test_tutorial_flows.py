"""tutorial.md C.1/C.7, C.2, C.8 and C.9 (the object side) with the real kubectl.

Pods do not run yet (no controllers, no nodes), so the figures are the ones upstream shows before the
deployment controller acts: `0/1 0 0`, Pending pods, `<pending>` load balancers.
"""

from __future__ import annotations

import json
import re

from kubectl_output import header, rows
from tutorial_manifests import NGINX_DEPLOYMENT, NGINX_NODEPORT_SERVICE

AGE = re.compile(r"\d+[smhdy]")
CLUSTER_IP = re.compile(r"10\.96\.\d+\.\d+|10\.\d+\.\d+\.\d+")


def _ns(cluster, name: str) -> str:
    cluster.kubectl("create", "namespace", name, check=True)
    return name


def test_c2_deployment_apply_get_describe_delete(cluster, tmp_path):
    ns = _ns(cluster, "tut-c2")
    path = tmp_path / "nginx-deployment.yaml"
    path.write_text(NGINX_DEPLOYMENT)
    apply = ("apply", "-f", str(path), "-n", ns)
    assert cluster.kubectl(*apply, check=True).stdout.strip() == "deployment.apps/nginx-deployment created"
    assert cluster.kubectl(*apply, check=True).stdout.strip() == "deployment.apps/nginx-deployment unchanged"
    path.write_text(NGINX_DEPLOYMENT.replace("image: nginx:latest", "image: nginx:1.25"))
    assert cluster.kubectl(*apply, check=True).stdout.strip() == "deployment.apps/nginx-deployment configured"
    assert cluster.kubectl(*apply, check=True).stdout.strip() == "deployment.apps/nginx-deployment unchanged"

    dep = json.loads(cluster.kubectl("get", "deploy", "nginx-deployment", "-n", ns, "-o", "json", check=True).stdout)
    last = json.loads(dep["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert dep["metadata"]["generation"] == 2

    out = cluster.kubectl("get", "deployments", "-n", ns, check=True).stdout
    assert header(out) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    (row,) = rows(out)
    assert row[:4] == ["nginx-deployment", "0/1", "0", "0"] and AGE.fullmatch(row[4])
    wide = cluster.kubectl("get", "deployments", "-n", ns, "-o", "wide", check=True).stdout
    assert header(wide) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert rows(wide)[0][5:] == ["nginx", "nginx:1.25", "app=nginx"]

    described = cluster.kubectl("describe", "deployment", "nginx-deployment", "-n", ns, check=True).stdout
    for line in (r"Name:\s+nginx-deployment", rf"Namespace:\s+{ns}", r"Labels:\s+app=nginx",
                 r"Selector:\s+app=nginx",
                 r"Replicas:\s+1 desired \| 0 updated \| 0 total \| 0 available \| 0 unavailable",
                 r"StrategyType:\s+RollingUpdate", r"MinReadySeconds:\s+0",
                 r"RollingUpdateStrategy:\s+25% max unavailable, 25% max surge",
                 r"Pod Template:", r"Image:\s+nginx:1.25", r"Port:\s+80/TCP", r"Events:\s+<none>"):
        assert re.search(line, described), (line, described)

    deleted = cluster.kubectl("delete", "deployment", "nginx-deployment", "-n", ns, check=True)
    assert deleted.stdout.strip() == 'deployment.apps "nginx-deployment" deleted'
    gone = cluster.kubectl("get", "deployment", "nginx-deployment", "-n", ns)
    assert gone.returncode == 1
    assert gone.stderr.strip() == 'Error from server (NotFound): deployments.apps "nginx-deployment" not found'


def test_c8_c9_deployment_and_nodeport_service_in_one_file_then_patch_to_loadbalancer(cluster, tmp_path):
    dep = tmp_path / "nginx-deployment.yaml"
    dep.write_text(NGINX_DEPLOYMENT)
    assert cluster.kubectl("apply", "-f", str(dep), check=True).stdout.strip() == \
        "deployment.apps/nginx-deployment created"
    dep.write_text(NGINX_DEPLOYMENT + NGINX_NODEPORT_SERVICE)
    out = cluster.kubectl("apply", "-f", str(dep), check=True).stdout.splitlines()
    assert out == ["deployment.apps/nginx-deployment unchanged", "service/nginx created"]
    out = cluster.kubectl("apply", "-f", str(dep), check=True).stdout.splitlines()
    assert out == ["deployment.apps/nginx-deployment unchanged", "service/nginx unchanged"]

    out = cluster.kubectl("get", "services", "-o", "wide", check=True).stdout
    assert header(out) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    table = {r[0]: r for r in rows(out)}
    svc = table["nginx"]
    assert svc[1] == "NodePort" and CLUSTER_IP.fullmatch(svc[2]) and svc[3] == "<none>"
    assert svc[4] == "8068:30068/TCP" and AGE.fullmatch(svc[5]) and svc[6] == "app=nginx"
    assert table["kubernetes"][1:5] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert table["kubernetes"][6] == "<none>"

    # C.9: the article's patch, with an address of this host
    patch = '{"spec": {"type": "LoadBalancer", "externalIPs": ["127.0.0.1"]}}'
    r = cluster.kubectl("patch", "svc", "nginx", "-n", "default", "-p", patch, check=True)
    assert r.stdout.strip() == "service/nginx patched"
    r = cluster.kubectl("patch", "svc", "nginx", "-n", "default", "-p", patch, check=True)
    assert r.stdout.strip() == "service/nginx patched (no change)"
    svc = {r[0]: r for r in rows(cluster.kubectl("get", "svc", check=True).stdout)}["nginx"]
    # the node port survives the type change; the external IP column lists spec.externalIPs
    assert svc[1:2] == ["LoadBalancer"] and svc[3] == "127.0.0.1" and svc[4] == "8068:30068/TCP"
    # no load balancer has answered and no external IP is set: upstream prints <pending>
    r = cluster.kubectl("patch", "svc", "nginx", "--type", "json", "-p",
                        '[{"op": "remove", "path": "/spec/externalIPs"}]', check=True)
    assert r.stdout.strip() == "service/nginx patched"
    svc = {r[0]: r for r in rows(cluster.kubectl("get", "svc", check=True).stdout)}["nginx"]
    assert svc[1] == "LoadBalancer" and svc[3] == "<pending>"

    described = cluster.kubectl("describe", "svc", "nginx", check=True).stdout
    for line in (r"Name:\s+nginx", r"Namespace:\s+default", r"Selector:\s+app=nginx", r"Type:\s+LoadBalancer",
                 r"IP Families:\s+IPv4", r"Port:\s+<unset>\s+8068/TCP", r"TargetPort:\s+80/TCP",
                 r"NodePort:\s+<unset>\s+30068/TCP", r"Session Affinity:\s+None",
                 r"External Traffic Policy:\s+Cluster", r"Events:\s+<none>"):
        assert re.search(line, described), (line, described)

    deleted = cluster.kubectl("delete", "-f", str(dep), check=True).stdout.splitlines()
    assert deleted == ['deployment.apps "nginx-deployment" deleted', 'service "nginx" deleted']


def test_c1_c7_run_and_expose_a_pod_on_a_node_port(cluster):
    ns = _ns(cluster, "tut-c1")
    r = cluster.kubectl("run", "hello", "--image=xxx/hello", "--port=5000", "-n", ns, check=True)
    assert r.stdout.strip() == "pod/hello created"
    out = cluster.kubectl("get", "pods", "-n", ns, check=True).stdout
    assert header(out) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows(out)[0][:4] == ["hello", "0/1", "Pending", "0"]

    r = cluster.kubectl("expose", "po", "hello", "--port=5000", "--target-port=5000", "--type=NodePort",
                        "--name", "hello-http", "-n", ns, check=True)
    assert r.stdout.strip() == "service/hello-http exposed"
    out = cluster.kubectl("get", "services", "-n", ns, check=True).stdout
    assert header(out) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    (row,) = rows(out)
    assert row[0:2] == ["hello-http", "NodePort"] and CLUSTER_IP.fullmatch(row[2]) and row[3] == "<none>"
    match = re.fullmatch(r"5000:(\d+)/TCP", row[4])
    assert match and 30000 <= int(match.group(1)) <= 32767
    svc = json.loads(cluster.kubectl("get", "svc", "hello-http", "-n", ns, "-o", "json", check=True).stdout)
    assert svc["spec"]["selector"] == {"run": "hello"} and svc["metadata"]["labels"] == {"run": "hello"}
    assert svc["spec"]["ports"][0]["targetPort"] == 5000

    # C.7: the same with the tutorial's nginx-http name, on port 80
    cluster.kubectl("run", "nginx", "--image=nginx", "-n", ns, check=True)
    r = cluster.kubectl("expose", "po", "nginx", "--port=80", "--target-port=80", "--type=NodePort",
                        "--name", "nginx-http", "-n", ns, check=True)
    assert r.stdout.strip() == "service/nginx-http exposed"
    row = {r[0]: r for r in rows(cluster.kubectl("get", "svc", "-n", ns, check=True).stdout)}["nginx-http"]
    assert row[1] == "NodePort" and re.fullmatch(r"80:3\d{4}/TCP", row[4])
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=True)
