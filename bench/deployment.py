"""A Deployment of N replicas on M simulated nodes under `kubelite up`: time until all Running and the
Deployment Available (issue 4 target: 3,000 replicas on 100 nodes in ≤ 10 s), and the process's RSS.

    python bench/deployment.py [--replicas 3000] [--nodes 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import requests  # noqa: E402

from kubelite_cluster import Cluster, free_port  # noqa: E402


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process: steadier than wall time on a busy machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        return 0.0


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids.extend(int(x) for x in f.read().split())
    return kids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=3000)
    parser.add_argument("--nodes", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-") as tmp:
        c = Cluster(data_dir=os.path.join(tmp, "data"), port=free_port(), cache_dir=os.path.join(tmp, "cache"),
                    command="up", extra_args=["--node-runtime", "none", "--simulated-nodes", str(args.nodes),
                                              "--disable", "dns,servicelb,ingress"])
        c.start(timeout=120)
        try:
            s = requests.Session()
            s.trust_env = False
            pki = os.path.join(c.data_dir, "pki")
            s.verify = os.path.join(pki, "ca.crt")
            s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
            nodes_url = c.url + "/api/v1/nodes"
            while True:
                items = s.get(nodes_url).json()["items"]
                ready = [n for n in items for cond in n["status"].get("conditions", [])
                         if cond["type"] == "Ready" and cond["status"] == "True"]
                if len(ready) >= args.nodes:
                    break
                time.sleep(0.2)
            print(f"nodes_ready                  {args.nodes}", flush=True)
            dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
                   "spec": {"replicas": args.replicas, "selector": {"matchLabels": {"app": "big"}},
                            "template": {"metadata": {"labels": {"app": "big"}},
                                         "spec": {"containers": [{"name": "c", "image": "nginx",
                                                                  "resources": {"requests": {"cpu": "10m"}}}]}}}}
            procs = [c.proc.pid, *children(c.proc.pid)]  # the API server, then the components process
            cpu0 = [cpu_seconds(p) for p in procs]
            began = time.monotonic()
            r = s.post(c.url + "/apis/apps/v1/namespaces/default/deployments", json=dep)
            assert r.status_code == 201, r.text
            url = c.url + "/apis/apps/v1/namespaces/default/deployments/big"
            last = None
            while True:
                status = s.get(url).json().get("status", {})
                seen = (status.get("replicas"), status.get("readyReplicas"), status.get("availableReplicas"))
                if seen != last:
                    print(f"  t={time.monotonic() - began:6.2f}s replicas/ready/available = {seen}", flush=True)
                    last = seen
                if status.get("availableReplicas") == args.replicas:
                    break
                if time.monotonic() - began > 300:
                    raise SystemExit("not available after 300 s")
                time.sleep(0.25)
            elapsed = time.monotonic() - began
            target = 10.0 if (args.replicas, args.nodes) == (3000, 100) else None
            verdict = f"  (target <= {target}s: {'ok' if elapsed <= target else 'MISSED'})" if target else ""
            print(f"deployment_available_s       {elapsed:.2f}{verdict}", flush=True)
            cpu = [cpu_seconds(p) - c0 for p, c0 in zip(procs, cpu0, strict=True)]
            print(f"apiserver_cpu_s              {cpu[0]:.2f}", flush=True)
            print(f"components_cpu_s             {sum(cpu[1:]):.2f}", flush=True)
            print(f"up_rss_mib                   {rss_mib(c.proc.pid):.1f}", flush=True)
        finally:
            c.stop()


if __name__ == "__main__":
    main()
