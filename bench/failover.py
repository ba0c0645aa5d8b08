"""Failover times of a highly available control plane (issue 12): three control-plane machines (network
namespaces, real etcd, simulated nodes), `kubelite init --cluster-init` + two `join --control-plane`.

  API server death → client back: kill -9 the machine's kubelite behind a node-local load balancer, time until
  `kubectl get --raw /readyz` through it succeeds again (target ≤ 5 s).
  controller leader death → new leader: from the kill until another machine holds the
  kube-controller-manager Lease (target ≤ lease duration 15 s + 2 s).

Needs root (network namespaces). Usage: python bench/failover.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))


def one_run() -> tuple[float, float, float]:
    from test_ha_controlplane import lb_kubeconfig, leader

    from ha_cluster import HOSTS, HACluster
    from multinode import Machines, cleanup_stale

    cleanup_stale()
    with Machines(HOSTS) as machines:
        began = time.monotonic()
        cluster = HACluster(machines)
        bring_up = time.monotonic() - began
        addresses = sorted(machines[n].address for n in HOSTS)
        cluster.wait(lambda: cluster.endpoints("cp3") == addresses, 30)
        victim = cluster.wait(lambda: leader(cluster, "cp3"), 30)
        survivor = next(n for n in HOSTS if n != victim)
        kubeconfig = lb_kubeconfig(cluster, survivor)
        cluster.kubectl(survivor, "get", "--raw", "/readyz", kubeconfig=kubeconfig)
        killed = time.monotonic()
        cluster.procs[victim].kill()
        api = cluster.wait(lambda: cluster.kubectl(survivor, "get", "--raw", "/readyz", kubeconfig=kubeconfig,
                                                   check=False, timeout=5).returncode == 0 and time.monotonic(),
                           30) - killed
        cluster.wait(lambda: leader(cluster, survivor) not in ("", victim), 40)
        controller = time.monotonic() - killed
        return bring_up, api, controller


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    results = [one_run() for _ in range(args.runs)]
    ups, apis, controllers = zip(*results, strict=True)
    print(f"{'figure':<48}{'median':>10}{'max':>10}  target")
    print(f"{'3 control planes up (init + 2 joins)':<48}{statistics.median(ups):>9.2f}s{max(ups):>9.2f}s  -")
    print(f"{'API server death -> client back (via LB)':<48}{statistics.median(apis):>9.2f}s{max(apis):>9.2f}s"
          f"  <= 5 s")
    print(f"{'controller leader death -> new leader':<48}{statistics.median(controllers):>9.2f}s"
          f"{max(controllers):>9.2f}s  <= 17 s (lease 15 s + 2 s)")


if __name__ == "__main__":
    main()
