"""Issue 14: the dashboard URL `kubelite up` prints answers on a machine with a real node, loopback included,
and so do the node's own address and the Service's cluster IP (the proxy's NodePort rules forward both to the
dashboard's own listener). Needs root and the packages .ci/run installs; run it under
`flock /tmp/kubelite-realnode.lock` (one real node per network namespace)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request

from kubelite.api.netaddr import default_route_address
from real_node import requirements, up_with_real_node, wait_for

pytestmark = requirements()


def _get(url: str, ctx: ssl.SSLContext) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(url, timeout=3) as r:
        return r.status


def test_dashboard_answers_on_loopback_node_address_and_cluster_ip():
    with up_with_real_node("kubelite-dash-reach-", "dash-reach", ["--dashboard-port", "0"]) as c:  # any free node port
        ctx = ssl.create_default_context(cafile=os.path.join(c.data_dir, "pki", "ca.crt"))
        ctx.check_hostname = False  # the certificate names these addresses, but the cluster IP is not in it
        svc = wait_for(lambda: json.loads(c.kubectl("-n", "kubernetes-dashboard", "get", "svc", "kubernetes-dashboard",
                                                    "-o", "json").stdout or "null"), timeout=30)
        node_port = svc["spec"]["ports"][0]["nodePort"]
        cluster_ip = svc["spec"]["clusterIP"]
        node_ip = default_route_address()  # the node's InternalIP is 127.0.0.1 here (API server bound there)
        assert not node_ip.startswith("127."), "needs a machine with a non-loopback address"
        wait_for(lambda: subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
                 .count(f"--dport {node_port}") > 0, timeout=30)
        for url in (f"https://127.0.0.1:{node_port}/login", f"https://{node_ip}:{node_port}/login",
                    f"https://{cluster_ip}:443/login"):
            assert wait_for(lambda u=url: _get(u, ctx) == 200, timeout=20), url

        # from another network namespace (a pod's): the node address and the cluster IP
        c.kubectl("run", "reach-client", "--image=busybox", "--", "sleep", "3600", check=True)
        pod_ip = wait_for(lambda: c.kubectl("get", "pod", "reach-client", "-o", "jsonpath={.status.podIP}").stdout,
                          timeout=60)
        netns = wait_for(lambda: _netns_with(pod_ip), timeout=10)
        for url in (f"https://{node_ip}:{node_port}/login", f"https://{cluster_ip}:443/login"):
            out = subprocess.run(["ip", "netns", "exec", netns, "curl", "-sk", "-m", "5", "-o", "/dev/null", "-w",
                                  "%{http_code}", url], capture_output=True, text=True)
            assert out.stdout == "200", (url, out.stdout, out.stderr)


def _netns_with(ip: str) -> str | None:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    for name in (line.split()[0] for line in names if line.strip()):
        addrs = subprocess.run(["ip", "netns", "exec", name, "ip", "-4", "-o", "addr"], capture_output=True,
                               text=True).stdout
        if f" {ip}/" in addrs:
            return name
    return None
