"""Containers that fail to start are retried with the restart back-off and fresh events, before and after an
agent restart (issue 11 item 6).  A pod whose command is a script on a hostPath that does not exist yet: runc
create fails (RunContainerError, then CrashLoopBackOff with lastState StartError, as containerd reports it)
until the test writes the script.  Needs root and the packages .ci/run installs; run under
`flock /tmp/kubelite-realnode.lock` (the bridge and iptables of the root namespace)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile

import pytest

from kubelite_cluster import Cluster, free_port
from real_node import AgentThread, requirements, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "images"))

pytestmark = requirements()

NODE = "retry-node"


@pytest.fixture(scope="module")
def setup():
    from build_test_image import LocalRegistry, push_standard_images

    from kubelite.kubelet.runtime.node_agent import AgentConfig

    base = tempfile.mkdtemp(prefix="kubelite-retry-")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        ip_forward = f.read()
    registry = LocalRegistry().start()
    cluster = Cluster(data_dir=f"{base}/data", port=free_port(), cache_dir=f"{base}/cache", command="up",
                      extra_args=["--node-runtime", "none", "--disable", "dns,servicelb,ingress"])
    runner = None
    try:
        asyncio.run(push_standard_images(registry.host))
        regfile = f"{base}/registries.yaml"
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cluster.start(timeout=60)
        cfg = AgentConfig(kubeconfig=cluster.kubeconfig, node_name=NODE, data_dir=f"{base}/agent", runtime="runc",
                          node_ip="127.0.0.1", kubelet_address="127.0.0.1", kubelet_port=free_port(),
                          registries=regfile, backoff_initial=1.0, backoff_max=2.0)
        runner = AgentThread(cfg)
        runner.start()
        wait_for(lambda: json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout or "{}")
                 .get("spec", {}).get("podCIDR"), timeout=30, interval=0.2)
        yield cluster, runner, base
    finally:
        if runner is not None:
            if runner.agent is None:
                runner.start()
            runner.stop(stop_containers=True)
            runner.close()
        cluster.stop()
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(ip_forward)


def manifest(name: str, host_dir: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: ["/scripts/run.sh"]
  volumes:
  - name: scripts
    hostPath:
      path: {host_dir}
      type: DirectoryOrCreate
"""


def with_mount(text: str) -> str:
    return text.replace('    command: ["/scripts/run.sh"]\n',
                        '    command: ["/scripts/run.sh"]\n    volumeMounts:\n    - name: scripts\n'
                        '      mountPath: /scripts\n')


def pod(cluster: Cluster, name: str) -> dict:
    r = cluster.kubectl("get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def events(cluster: Cluster, name: str) -> list[dict]:
    r = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json",
                        check=True)
    return json.loads(r.stdout)["items"]


def seen(cluster: Cluster, name: str, reason: str) -> dict[str, int]:
    """Event name -> count, for the pod's events with `reason`."""
    return {e["metadata"]["name"]: e.get("count", 1) for e in events(cluster, name) if e["reason"] == reason}


def write_script(host_dir: str) -> None:
    path = os.path.join(host_dir, "run.sh")
    with open(path + ".tmp", "w") as f:
        f.write("#!/bin/sh\necho started\nexec sleep 3600\n")
    os.chmod(path + ".tmp", 0o755)
    os.replace(path + ".tmp", path)


def status_of(cluster: Cluster, name: str) -> dict:
    return ((pod(cluster, name).get("status") or {}).get("containerStatuses") or [{}])[0]


def test_start_failure_is_retried_with_back_off_until_it_succeeds(setup):
    cluster, _, base = setup
    host_dir = os.path.join(base, "scripts-a")
    cluster.kubectl("apply", "-f", "-", input=with_mount(manifest("flaky", host_dir)), check=True)
    # runc create fails: the first attempt and its immediate retry, then the back-off (CrashLoopBackOff)
    cs = wait_for(lambda: (s := status_of(cluster, "flaky")).get("state", {}).get("waiting", {}).get("reason")
                  == "CrashLoopBackOff" and s, timeout=60, interval=0.2)
    last = cs["lastState"]["terminated"]
    assert last["reason"] == "StartError" and last["exitCode"] == 128
    assert "run.sh" in last["message"] and cs["containerID"].startswith("runc://")
    assert cs["state"]["waiting"]["message"].startswith("back-off 1s restarting failed container=main pod=flaky_")
    failed = wait_for(lambda: seen(cluster, "flaky", "Failed"), timeout=10, interval=0.2)
    msg = next(e for e in events(cluster, "flaky") if e["reason"] == "Failed")["message"]
    assert msg.startswith("Error: failed to create containerd task: failed to create shim task: OCI runtime "
                          "create failed: ") and "run.sh" in msg
    backoff = wait_for(lambda: seen(cluster, "flaky", "BackOff"), timeout=10, interval=0.2)
    ev = next(e for e in events(cluster, "flaky") if e["reason"] == "BackOff")
    assert ev["type"] == "Warning" and ev["message"].startswith("Back-off restarting failed container main in pod "
                                                                "flaky_default(")
    # it keeps trying (max back-off 2 s here): more attempts, each with its events
    wait_for(lambda: sum(seen(cluster, "flaky", "Failed").values()) > sum(failed.values()) + 1
             and sum(seen(cluster, "flaky", "BackOff").values()) > sum(backoff.values()), timeout=20, interval=0.3)
    restarts = status_of(cluster, "flaky")["restartCount"]
    assert restarts >= 2
    # the cause removed, the next attempt starts it
    write_script(host_dir)
    cs = wait_for(lambda: (s := status_of(cluster, "flaky")).get("state", {}).get("running") and s, timeout=20,
                  interval=0.2)
    assert cs["restartCount"] >= restarts and cs["lastState"]["terminated"]["reason"] == "StartError"
    assert pod(cluster, "flaky")["status"]["phase"] == "Running"
    assert cluster.kubectl("logs", "flaky", check=True).stdout == "started\n"
    cluster.kubectl("delete", "pod", "flaky", "--timeout=30s", check=True)


def test_failing_pod_is_picked_up_again_after_an_agent_restart(setup):
    cluster, runner, base = setup
    host_dir = os.path.join(base, "scripts-b")
    cluster.kubectl("apply", "-f", "-", input=with_mount(manifest("stuck", host_dir)), check=True)
    wait_for(lambda: seen(cluster, "stuck", "BackOff"), timeout=60, interval=0.2)
    restarts = status_of(cluster, "stuck")["restartCount"]

    runner.stop(stop_containers=False)
    before = {**seen(cluster, "stuck", "Failed"), **seen(cluster, "stuck", "BackOff")}
    runner.start()
    # the restarted agent tries again: fresh Failed and BackOff events, restartCount goes on
    def new_events() -> bool:
        now = {**seen(cluster, "stuck", "Failed"), **seen(cluster, "stuck", "BackOff")}
        return any(before.get(k, 0) < v for k, v in now.items()) and now
    wait_for(new_events, timeout=30, interval=0.3)
    wait_for(lambda: status_of(cluster, "stuck")["restartCount"] > restarts, timeout=30, interval=0.3)
    write_script(host_dir)
    wait_for(lambda: status_of(cluster, "stuck").get("state", {}).get("running"), timeout=20, interval=0.2)
    cluster.kubectl("delete", "pod", "stuck", "--timeout=30s", check=True)
