"""Many simulated nodes and pods held by one `kubelite up` (issue 4 target: 1,000 nodes + 30,000 pods with a
total RSS ≤ 2 GiB, and `kubectl get pods -A | wc -l` ≤ 3 s).

    python bench/scale.py [--nodes 1000] [--pods 30000] [--per-deployment 3000] [--pods-only] [--workers 16]

The pods come from Deployments of `--per-deployment` replicas (the controllers, scheduler and kubelets all
at work), or with `--pods-only` are POSTed as bare pods (no controllers in the way: the fastest way to fill
the cluster). The figures: seconds until every pod is Running, the RSS of `kubelite up` and of all its
children, and how long `kubectl get pods -A | wc -l` takes (cold: a fresh kubectl cache; warm: again).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import requests  # noqa: E402

from kubelite_cluster import Cluster, free_port  # noqa: E402


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                found.extend(kids)
                todo.extend(kids)
        except FileNotFoundError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        return 0.0


def session(c: Cluster) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(c.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    return s


def wait_nodes(s: requests.Session, url: str, count: int) -> None:
    while True:
        items = s.get(url + "/api/v1/nodes").json()["items"]
        ready = [n for n in items for cond in n["status"].get("conditions", [])
                 if cond["type"] == "Ready" and cond["status"] == "True"]
        if len(ready) >= count:
            return
        time.sleep(0.5)


def running_pods(s: requests.Session, url: str) -> int:
    r = s.get(url + "/api/v1/pods", params={"fieldSelector": "status.phase=Running"})
    return len(r.json()["items"])


def pod_count(s: requests.Session, url: str) -> int:
    meta = s.get(url + "/api/v1/pods", params={"limit": "1"}).json()["metadata"]
    return 1 + int(meta.get("remainingItemCount") or 0) if meta.get("continue") else -1


def create_bare_pods(c: Cluster, total: int, workers: int) -> None:
    local = __import__("threading").local()

    def one(i: int) -> None:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = session(c)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "labels": {"app": "scale"}},
               "spec": {"containers": [{"name": "c", "image": "nginx",
                                        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]}}
        r = s.post(c.url + "/api/v1/namespaces/default/pods", json=pod)
        assert r.status_code == 201, r.text

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(total)))


def create_deployments(s: requests.Session, url: str, total: int, per: int) -> None:
    i = 0
    while total > 0:
        n = min(per, total)
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"scale-{i}"},
               "spec": {"replicas": n, "selector": {"matchLabels": {"app": f"scale-{i}"}},
                        "template": {"metadata": {"labels": {"app": f"scale-{i}"}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx",
                                                              "resources": {"requests": {"cpu": "1m",
                                                                                         "memory": "1Mi"}}}]}}}}
        r = s.post(url + "/apis/apps/v1/namespaces/default/deployments", json=dep)
        assert r.status_code == 201, r.text
        total -= n
        i += 1


def kubectl_get_pods(c: Cluster, cache_dir: str) -> tuple[float, int, float]:
    """(seconds, lines printed, kubectl's own CPU seconds)."""
    began = time.monotonic()
    proc = subprocess.Popen(["kubectl", "--kubeconfig", os.path.join(c.data_dir, "admin.kubeconfig"),
                             "--cache-dir", cache_dir, "get", "pods", "-A"], stdout=subprocess.PIPE)
    lines = 0
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):
        lines += chunk.count(b"\n")  # what `| wc -l` counts
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - began
    if status != 0:
        raise SystemExit(f"kubectl get pods -A failed ({status})")
    return took, lines, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--per-deployment", type=int, default=3000)
    parser.add_argument("--pods-only", action="store_true", help="POST bare pods instead of Deployments")
    parser.add_argument("--workers", type=int, default=16, help="concurrent POSTs with --pods-only")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--hold", type=float, default=0,
                        help="seconds to keep the cluster up after measuring (to inspect its processes)")
    parser.add_argument("--gets", type=int, default=2, help="how many `kubectl get pods -A` to time (first cold)")
    parser.add_argument("--profile", metavar="SVG",
                        help="record the API server with py-spy during the gets (a flame graph, or collapsed "
                        "stacks if the name ends in .txt; needs py-spy)")
    parser.add_argument("--data-dir", help="keep the cluster's data here; when it already holds the pods (an "
                        "earlier run), skip creating them: restart and measure the gets at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-") as tmp:
        data_dir = os.path.abspath(args.data_dir) if args.data_dir else os.path.join(tmp, "data")
        c = Cluster(data_dir=data_dir, port=free_port(), cache_dir=os.path.join(tmp, "cache"),
                    command="up", extra_args=["--node-runtime", "none", "--simulated-nodes", str(args.nodes),
                                              "--disable", "dns,servicelb,ingress"])
        began = time.monotonic()
        c.start(timeout=300)
        try:
            s = session(c)
            wait_nodes(s, c.url, args.nodes)
            print(f"nodes_ready_s                {time.monotonic() - began:.2f}  ({args.nodes} nodes)", flush=True)
            pid = c.proc.pid
            cpu0 = {p: cpu_seconds(p) for p in [pid, *descendants(pid)]}
            began = time.monotonic()
            if pod_count(s, c.url) >= args.pods:
                print("  the pods are there already (--data-dir of an earlier run)", flush=True)
            elif args.pods_only:
                create_bare_pods(c, args.pods, args.workers)
            else:
                create_deployments(s, c.url, args.pods, args.per_deployment)
            print(f"  t={time.monotonic() - began:7.2f}s created", flush=True)
            while True:
                n = running_pods(s, c.url)
                print(f"  t={time.monotonic() - began:7.2f}s running = {n}", flush=True)
                if n >= args.pods:
                    break
                exist = pod_count(s, c.url)
                if 0 <= exist < args.pods and n >= exist:
                    # bare pods are not replaced: a node that fell behind on its lease had its pods evicted
                    print(f"  only {exist} of {args.pods} pods left (evicted?); all of those are running", flush=True)
                    break
                if time.monotonic() - began > args.timeout:
                    raise SystemExit(f"only {n} pods running after {args.timeout} s")
                time.sleep(5)
            print(f"pods_running_s               {time.monotonic() - began:.2f}  ({n} pods)", flush=True)
            procs = [pid, *descendants(pid)]
            for p in procs:
                cpu = cpu_seconds(p) - cpu0.get(p, 0.0)
                print(f"  pid {p}: rss {rss_mib(p):8.1f} MiB, cpu {cpu:8.1f} s", flush=True)
            total = sum(rss_mib(p) for p in procs)
            print(f"total_rss_mib                {total:.1f}  (target <= 2048: {'ok' if total <= 2048 else 'MISSED'})",
                  flush=True)
            if args.hold:
                print(f"holding {args.hold:.0f} s: pids {' '.join(map(str, procs))}", flush=True)
                time.sleep(args.hold)
            cache = os.path.join(tmp, "kubectl-cache")
            spy = None
            if args.profile:
                fmt = ["--format", "raw"] if args.profile.endswith(".txt") else []
                spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-o", args.profile, "-r", "200",
                                        "--nonblocking", *fmt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            for i in range(args.gets):
                label = "cold" if i == 0 else "warm"
                cpu_before = cpu_seconds(pid)
                took, lines, kubectl_cpu = kubectl_get_pods(c, cache)
                verdict = "ok" if took <= 3.0 else "MISSED"
                print(f"kubectl_get_pods_A_{label}_s    {took:.2f}  ({lines} lines; target <= 3 s: {verdict}; "
                      f"cpu: API server {cpu_seconds(pid) - cpu_before:.2f} s, kubectl {kubectl_cpu:.2f} s)",
                      flush=True)
            if spy is not None:
                spy.send_signal(__import__("signal").SIGINT)
                spy.wait(timeout=60)
                print(f"profile written to {args.profile}", flush=True)
        finally:
            c.stop()


if __name__ == "__main__":
    main()
