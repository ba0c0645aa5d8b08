"""A cluster of several machines, timed: `kubelite join` → node Ready, → first pod Running on it (image from a
registry on the machines' own segment, 1 MB), and a Service hop's added latency (one HTTP GET on a fresh connection) (host → pod IP vs
host → ClusterIP → the same pod on another machine, over the VXLAN pod network).

Needs root, runc, the CNI plugins, iptables, docker-registry. The machines are network namespaces made by
tests/multinode.py; nothing in the root namespace is touched and everything is removed at the end.

    python bench/multinode.py [--rounds 3] [--connects 500] [--backend vxlan|host-gw]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from test_multinode import FAST_NODE_LIFECYCLE, ThreeMachines  # noqa: E402

import multinode  # noqa: E402
from real_node import wait_for  # noqa: E402

CONNECTS = """
import json, socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((ip, port), timeout=2)
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    while s.recv(65536):
        pass
    out.append(time.perf_counter() - t)
    s.close()
out.sort()
print(json.dumps([out[len(out) // 2] * 1e6, out[int(len(out) * 0.99)] * 1e6]))
"""


def pod_on(cluster: ThreeMachines, node: str, name: str) -> dict:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"nodeName": node, "containers": [{"name": "httpd", "image": "httpd"}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    return wait_for(lambda: (p := cluster.json("get", "pod", name))["status"].get("phase") == "Running" and p,
                    timeout=60, interval=0.05)


def join_round(machines: multinode.Machines, cluster: ThreeMachines, n: int, backend: str) -> tuple[float, float]:
    node = machines["node02"]
    began = time.monotonic()
    cluster.workers["node02"] = cluster.join("node02", backend)
    def ready() -> bool:
        r = cluster.kubectl("get", "node", "node02", "-o", "json", check=False)
        return r.returncode == 0 and any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in json.loads(r.stdout)["status"].get("conditions", []))
    wait_for(ready, timeout=60, interval=0.05)
    ready = time.monotonic() - began
    pod_on(cluster, "node02", f"first-{n}")
    running = time.monotonic() - began
    cluster.kubectl("delete", "pod", f"first-{n}", "--grace-period", "0", "--force")
    r = node.run([*multinode.kubelite_argv(), "reset", "--force", "--data-dir", node.data_dir], timeout=120)
    assert r.returncode == 0, r.stderr
    cluster.kubectl("delete", "node", "node02")
    return ready, running


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connects", type=int, default=300)
    ap.add_argument("--backend", default="vxlan", choices=("vxlan", "host-gw"))
    args = ap.parse_args()
    multinode.cleanup_stale()
    with multinode.Machines() as machines:
        cluster = ThreeMachines(machines, args.backend, workers=("node01",))
        cluster.kubectl("taint", "nodes", "master", "node-role.kubernetes.io/control-plane:NoSchedule-")
        joins = [join_round(machines, cluster, n, args.backend) for n in range(args.rounds)]
        ready = [j[0] for j in joins]
        running = [j[1] for j in joins]
        print(f"join -> node Ready:            median {statistics.median(ready):.2f} s  "
              f"({', '.join(f'{x:.2f}' for x in ready)})  target <= 3 s")
        print(f"join -> first pod Running:     median {statistics.median(running):.2f} s  "
              f"({', '.join(f'{x:.2f}' for x in running)})  target <= 5 s")

        pod = pod_on(cluster, "node01", "target")
        cluster.kubectl("expose", "pod", "target", "--port", "80")
        cluster_ip = cluster.json("get", "service", "target")["spec"]["clusterIP"]
        master = machines["master"]
        wait_for(lambda: master.http_get(f"http://{cluster_ip}/"), timeout=30)
        samples: dict[str, list[list[float]]] = {"pod IP": [], "ClusterIP": []}
        targets = {"pod IP": pod["status"]["podIP"], "ClusterIP": cluster_ip}
        for _ in range(5):  # interleaved, so both see the same machine load
            for label, ip in targets.items():
                r = master.run([sys.executable, "-c", CONNECTS, ip, "80", str(args.connects // 5)], check=True,
                               timeout=120)
                samples[label].append(json.loads(r.stdout))
        rows = [(label, statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                for label, v in samples.items()]
        print(f"HTTP/1.0 GET (connect, request, whole answer) from the master's host to a pod on node01 "
              f"({args.backend}, {args.connects} requests):")
        for label, p50, p99 in rows:
            print(f"  {label:<10} p50 {p50:7.0f} us   p99 {p99:7.0f} us")
        print(f"  Service hop adds {rows[1][1] - rows[0][1]:+.0f} us at p50")
        print(f"(load average {open('/proc/loadavg').read().split()[0]}; node lifecycle flags {FAST_NODE_LIFECYCLE})")
        for m in machines:
            m.run([*multinode.kubelite_argv(), "reset", "--force", "--data-dir", m.data_dir], timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
