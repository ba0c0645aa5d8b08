"""The tutorial's cluster of three machines (tutorial.md A.2), with real containers: `kubelite init` on the master,
`kubelite join` on node01 and node02, each machine a network namespace (tests/multinode.py), driven with the real
kubectl. A Deployment spreads over the machines; pods reach each other by IP, ClusterIP and DNS name across the
built-in pod network (vxlan, host-gw, and vxlan across two routed segments); NodePorts and LoadBalancer
addresses answer on every machine; a dead node's pods move; `kubelite reset` leaves a worker clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

import multinode
from multinode import Machines, kubectl, parse_join_command
from real_node import requirements, wait_for

pytestmark = [*requirements(), *multinode.requirements()]

REGISTRY_PORT = 5000
# timings short enough for a test, with upstream's proportions: the lease renews every quarter of its duration
FAST_NODE_LIFECYCLE = ["--node-lease-duration-seconds", "4", "--node-monitor-period", "1",
                       "--node-monitor-grace-period", "8", "--default-not-ready-toleration-seconds", "4",
                       "--default-unreachable-toleration-seconds", "4"]


class SwitchRegistry:
    """The test images, served from the switch namespace on every segment's gateway address (:5000): one
    registry pushed to on the host's loopback, a second one in the switch serving the same storage."""

    def __init__(self, machines: Machines) -> None:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "images"))
        from build_test_image import LocalRegistry, push_standard_images

        self.root = os.path.join(machines.base_dir, "registry")
        pusher = LocalRegistry(root=self.root).start()
        try:
            asyncio.run(push_standard_images(pusher.host))
        finally:
            pusher.stop()
        config = os.path.join(self.root, "switch.yml")
        with open(config, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.root}/data\n"
                    f"http:\n  addr: 0.0.0.0:{REGISTRY_PORT}\n")
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{machines.switch}", "docker-registry", "serve",
                                      config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        machines.procs.append(multinode.Proc(["docker-registry"], self.proc, os.path.join(self.root, "registry.log")))

    def registries_yaml(self, machine) -> str:
        """A registries.yaml for `machine`: docker.io from its segment's gateway."""
        gateway = machine.interfaces[0].rsplit(".", 1)[0] + ".1"
        path = os.path.join(machine.dir, "registries.yaml")
        with open(path, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{gateway}:{REGISTRY_PORT}\n")
        return path


class ThreeMachines:
    """init + two joins; `kubectl(...)` as the administrator, from the master."""

    def __init__(self, machines: Machines, backend: str, workers: tuple[str, ...] = ("node01", "node02")) -> None:
        self.m = machines
        self.registry = SwitchRegistry(machines)
        master = machines["master"]
        self.kubeconfig = os.path.join(master.data_dir, "admin.kubeconfig")
        init = master.kubelite(
            "init", "--data-dir", master.data_dir, "--apiserver-advertise-address", master.address,
            "--node-name", "master", "--node-runtime", "runc", "--flannel-backend", backend,
            "--registries", self.registry.registries_yaml(master), *FAST_NODE_LIFECYCLE,
            wait=multinode.JOIN_LINE, timeout=90)
        self.init = init
        self.join_args = parse_join_command(init.output())
        self.workers = {}
        for name in workers:
            self.workers[name] = self.join(name, backend)
        self.wait_ready(["master", *workers])

    def join(self, name: str, backend: str, *extra: str):
        node = self.m[name]
        return node.kubelite("join", *self.join_args, "--data-dir", node.data_dir, "--node-name", name,
                             "--runtime", "runc", "--flannel-backend", backend,
                             "--registries", self.registry.registries_yaml(node), "--node-lease-duration-seconds", "4",
                             *extra, wait="This node has joined|has joined before", timeout=90)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return kubectl(self.m["master"], *args, kubeconfig=self.kubeconfig, check=check, input=input)

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def wait_ready(self, names: list[str], timeout: float = 90) -> None:
        def ready():
            nodes = self.json("get", "nodes")["items"]
            status = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                                 for c in n["status"].get("conditions", [])) for n in nodes}
            return all(status.get(n) for n in names)
        wait_for(ready, timeout=timeout)

    def pods(self, selector: str) -> list[dict]:
        return self.json("get", "pods", "-l", selector)["items"]

    def deploy_web(self, name: str = "web", replicas: int = 3) -> dict[str, dict]:
        """A Deployment of the test httpd spread one per node (topology spread over hostnames), Running;
        its pods by node."""
        manifest = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                        "whenUnsatisfiable": "DoNotSchedule",
                                                        "labelSelector": {"matchLabels": {"app": name}}}],
                         "containers": [{"name": "httpd", "image": "httpd", "ports": [{"containerPort": 80}]}]}}}}
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self.kubectl("expose", "deployment", name, "--port", "80", "--type", "NodePort")

        def running():
            pods = [p for p in self.pods(f"app={name}") if p["status"].get("phase") == "Running"
                    and not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")
                    and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])]
            return {p["spec"]["nodeName"]: p for p in pods} if len(pods) == replicas else None
        return wait_for(running, timeout=120)

    def exec(self, pod: str, script: str) -> str:
        r = self.kubectl("exec", pod, "--", "sh", "-c", script, check=False)
        if r.returncode != 0:  # say what happened to the pod, not only that exec failed
            described = self.kubectl("describe", "pod", pod, check=False).stdout
            raise AssertionError(f"exec in {pod} failed: {r.stderr}\n{described}")
        return r.stdout


def http_via_nc(address: str, port: int = 80) -> str:
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {port}"


def dns_query(machine, name: str, server: str = "10.96.0.10") -> str:
    """An A lookup from the machine itself (not a pod), through the cluster DNS Service."""
    code = ("import dnslib,socket,sys\n"
            "q=dnslib.DNSRecord.question(sys.argv[1]);s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.settimeout(3);s.sendto(q.pack(),(sys.argv[2],53))\n"
            "print(' '.join(str(r.rdata) for r in dnslib.DNSRecord.parse(s.recv(4096)).rr))")
    r = machine.run([sys.executable, "-c", code, name, server], timeout=20)
    if r.returncode != 0:
        raise OSError(r.stderr.strip())
    return r.stdout.strip()


def host_leftovers(machine) -> dict[str, list[str]]:
    """What kubelite may leave in a machine: links other than its own legs, routes to pod networks, KUBE-*,
    CNI-* and flannel chains."""
    links = json.loads(machine.run(["ip", "-j", "link", "show"], check=True).stdout)
    routes = json.loads(machine.run(["ip", "-j", "route", "show"], check=True).stdout)
    rules = machine.run(["iptables-save"], check=True).stdout
    return {
        "links": [link["ifname"] for link in links if link["ifname"] != "lo" and not link["ifname"].startswith("eth")],
        "routes": [r["dst"] for r in routes if r.get("dst", "").startswith("10.244.")],
        "chains": sorted({line.split()[0][1:] for line in rules.splitlines()
                          if line.startswith(":") and ("KUBE-" in line or "CNI-" in line or "FLANNEL" in line)}),
    }


# ------------------------------------------------------------------------------------------- vxlan, one segment

machines = multinode.fixture("machines")


@pytest.fixture
def cluster(machines):
    c = ThreeMachines(machines, "vxlan")
    yield c
    for name in ("node01", "node02", "master"):  # every machine as it was: `kubelite reset` is the way out
        machines[name].run([*multinode.kubelite_argv(), "reset", "--force", "--data-dir", machines[name].data_dir],
                           timeout=120)


def test_three_machines_as_the_tutorial_builds_them(cluster, machines):
    nodes = {n["metadata"]["name"]: n for n in cluster.json("get", "nodes")["items"]}
    addresses = {name: [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
                 for name, n in nodes.items()}
    assert addresses == {"master": ["192.168.77.10"], "node01": ["192.168.77.11"], "node02": ["192.168.77.12"]}
    wide = cluster.kubectl("get", "nodes", "-o", "wide").stdout
    assert "control-plane" in next(line for line in wide.splitlines() if line.startswith("master"))
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in nodes["master"]["spec"]["taints"]
    with open(cluster.kubeconfig) as f:
        assert "server: https://192.168.77.10:6443" in f.read()
    # the DNS Service's endpoints are a real address every node's proxy can reach, never 0.0.0.0
    slices = cluster.json("get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")
    assert [a for s in slices["items"] for e in s["endpoints"] for a in e["addresses"]] == ["192.168.77.10"]

    # the taint as kubeadm documents it; then the Deployment spreads over all three
    cluster.kubectl("taint", "nodes", "master", "node-role.kubernetes.io/control-plane:NoSchedule-")
    by_node = cluster.deploy_web()
    assert sorted(by_node) == ["master", "node01", "node02"]
    ips = {node: p["status"]["podIP"] for node, p in by_node.items()}
    assert len({ip.rsplit(".", 1)[0] for ip in ips.values()}) == 3  # each node's own podCIDR
    client = by_node["node01"]["metadata"]["name"]
    svc = cluster.json("get", "service", "web")
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]

    # pod on node01 -> pod on node02 by pod IP (the overlay), by ClusterIP and by DNS name
    assert "hello from kubelite httpd" in cluster.exec(client, http_via_nc(ips["node02"]))
    assert "hello from kubelite httpd" in cluster.exec(client, http_via_nc(ips["master"]))
    assert "hello from kubelite httpd" in cluster.exec(client, http_via_nc(cluster_ip))
    assert "hello from kubelite httpd" in cluster.exec(client, http_via_nc("web.default.svc.cluster.local"))
    assert "hello from kubelite httpd" in cluster.exec(client, http_via_nc("web"))

    # node02 saw the connection come from the client pod's own address, not its node's (no masquerade inside
    # the cluster range)
    seen = machines["node02"].run(["conntrack", "-L", "-p", "tcp", "-s", ips["node01"], "-d", ips["node02"]])
    assert ips["node01"] in seen.stdout, seen.stdout + seen.stderr

    # from every machine itself: DNS through the Service address, NodePort on every node's address
    for m in machines:
        assert wait_for(lambda m=m: dns_query(m, "web.default.svc.cluster.local"), timeout=20) == cluster_ip
        for target in machines:
            page = wait_for(lambda m=m, t=target: m.http_get(f"http://{t.address}:{node_port}/"), timeout=20)
            assert "hello from kubelite httpd" in page

    # a LoadBalancer address (the workers': kubeadm's control-plane label keeps the master out) from every machine
    cluster.kubectl("patch", "service", "web", "-p", '{"spec": {"type": "LoadBalancer"}}')
    ingress = wait_for(lambda: cluster.json("get", "service", "web")["status"].get("loadBalancer", {})
                       .get("ingress"), timeout=30)
    assert sorted(i["ip"] for i in ingress) == ["192.168.77.11", "192.168.77.12"]
    for m in machines:
        assert "hello from kubelite httpd" in wait_for(lambda m=m: m.http_get(f"http://{ingress[0]['ip']}/"),
                                                       timeout=20)


def test_a_dead_node_pods_move_and_it_comes_back_clean(cluster, machines):
    cluster.kubectl("taint", "nodes", "master", "node-role.kubernetes.io/control-plane:NoSchedule-")
    by_node = cluster.deploy_web(replicas=2)
    victim = next(n for n in ("node02", "node01") if n in by_node)
    old_pod = by_node[victim]["metadata"]["name"]
    cluster.workers[victim].kill()  # kill -9: no goodbye, containers keep running

    def not_ready():
        node = cluster.json("get", "node", victim)
        return any(c["type"] == "Ready" and c["status"] != "True" for c in node["status"]["conditions"])
    wait_for(not_ready, timeout=30)

    def moved():
        pods = [p for p in cluster.pods("app=web") if not p["metadata"].get("deletionTimestamp")
                and p["status"].get("phase") == "Running"]
        return len(pods) == 2 and all(p["spec"]["nodeName"] != victim for p in pods)
    wait_for(moved, timeout=60)

    # the machine comes back: same data dir, the agent finds its old pod deleted and removes it
    cluster.workers[victim] = cluster.join(victim, "vxlan")
    cluster.wait_ready([victim])
    wait_for(lambda: old_pod not in {p["metadata"]["name"] for p in cluster.pods("app=web")}, timeout=90)
    runc = machines[victim].run(["runc", "--root", os.path.join(machines[victim].data_dir, "agent", "runc"), "list",
                                 "-q"], check=True)
    assert runc.stdout.split() == []


def test_reset_takes_a_worker_out_and_leaves_nothing(cluster, machines):
    cluster.kubectl("taint", "nodes", "master", "node-role.kubernetes.io/control-plane:NoSchedule-")
    by_node = cluster.deploy_web()
    assert "node01" in by_node
    node01 = machines["node01"]
    assert host_leftovers(node01)["links"]  # the bridge, the VXLAN device and pod veths exist now
    r = node01.run([*multinode.kubelite_argv(), "reset", "--force", "--data-dir", node01.data_dir], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not cluster.workers["node01"].alive  # the running kubelite was stopped
    assert host_leftovers(node01) == {"links": [], "routes": [], "chains": []}
    pod_uid = by_node["node01"]["metadata"]["uid"].replace("-", "")[:16]
    assert not [ns for ns in os.listdir("/run/netns") if pod_uid in ns]  # the pod's network namespace
    assert not os.path.exists(node01.data_dir) or not os.listdir(node01.data_dir)
    # no container process of node01 is left (conmon and the containers ran with its data dir in their paths)
    left = subprocess.run(["pgrep", "-f", node01.data_dir], capture_output=True, text=True).stdout.split()
    assert left == []
    # without an administrator's credentials on the worker, the Node is the control plane's to delete
    assert "kubectl delete node node01" in r.stderr
    cluster.kubectl("delete", "node", "node01")


# ----------------------------------------------------------------- host-gw, and vxlan across two routed segments

two_segments = multinode.fixture("two_segments", multinode.TWO_SEGMENTS)


@pytest.mark.parametrize("backend,layout", [("host-gw", "one"), ("vxlan", "two")])
def test_pod_network_backends(backend, layout, request):
    machines = request.getfixturevalue("machines" if layout == "one" else "two_segments")
    cluster = ThreeMachines(machines, backend)
    try:
        cluster.kubectl("taint", "nodes", "master", "node-role.kubernetes.io/control-plane:NoSchedule-")
        by_node = cluster.deploy_web()
        client = by_node["node01"]["metadata"]["name"]
        for target in ("node02", "master"):
            ip = by_node[target]["status"]["podIP"]
            assert "hello from kubelite httpd" in cluster.exec(client, http_via_nc(ip)), (backend, layout, target)
        routes = machines["node01"].run(["ip", "route"], check=True).stdout
        if backend == "host-gw":
            assert "via 192.168.77.12" in routes and "flannel.1" not in routes
        else:
            assert "dev flannel.1" in routes
    finally:
        for m in machines:
            m.run([*multinode.kubelite_argv(), "reset", "--force", "--data-dir", m.data_dir], timeout=120)
