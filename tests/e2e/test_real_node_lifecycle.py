"""A real node's life beyond one pod: tutorial.md C.12 (a StatefulSet's data on its local-path PVC survives the
pod), the node agent restarted while pods run (containers re-adopted, orphans cleaned up), and container log
rotation.  `kubelite up` runs the control plane without a node; the node agent runs in this process so the
test can stop and start it.  Needs root and the packages .ci/run installs."""

from __future__ import annotations

import asyncio
import gc
import glob
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from kubelite_cluster import Cluster, free_port
from real_node import AgentThread, requirements, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

pytestmark = requirements()

NODE = "life-node"

STATEFULSET = """apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector:
    app: db
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sleep", "3600"]
        readinessProbe:
          exec:
            command: ["true"]
          periodSeconds: 1
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 64Mi
"""


def pod_manifest(name: str, command: str, grace: int = 1) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", {json.dumps(command)}]
"""


@pytest.fixture(scope="module")
def life():
    from build_test_image import LocalRegistry, push_standard_images

    from kubelite.kubelet.runtime.node_agent import AgentConfig

    base = tempfile.mkdtemp(prefix="kubelite-life-")
    storage = f"{base}/storage"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        ip_forward = f.read()  # the bridge plugin turns forwarding on; put it back as it was
    registry = LocalRegistry().start()
    cluster = Cluster(data_dir=f"{base}/data", port=free_port(), cache_dir=f"{base}/cache", command="up",
                      extra_args=["--node-runtime", "none", "--disable", "dns,servicelb,ingress",
                                  "--default-local-storage-path", storage])
    runner = None
    try:
        asyncio.run(push_standard_images(registry.host))
        regfile = f"{base}/registries.yaml"
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cluster.start(timeout=60)
        cfg = AgentConfig(kubeconfig=cluster.kubeconfig, node_name=NODE, data_dir=f"{base}/agent", runtime="runc",
                          node_ip="127.0.0.1", kubelet_address="127.0.0.1", kubelet_port=free_port(),
                          registries=regfile, backoff_initial=1.0, backoff_max=4.0,
                          container_log_max_size="4Ki", container_log_max_files=3,
                          container_log_monitor_interval=0.5)
        runner = AgentThread(cfg)
        runner.start()
        wait_for(lambda: json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout or "{}")
                 .get("spec", {}).get("podCIDR"), timeout=30, interval=0.2)
        yield cluster, runner, storage
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


def get_json(cluster: Cluster, *what: str) -> dict:
    r = cluster.kubectl("get", *what, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def running_container(cluster: Cluster, name: str) -> dict | None:
    pod = get_json(cluster, "pod", name)
    st = pod.get("status") or {}
    cs = (st.get("containerStatuses") or [{}])[0]
    if st.get("phase") == "Running" and "running" in (cs.get("state") or {}):
        return {"uid": pod["metadata"]["uid"], **cs}
    return None


def test_c12_statefulset_data_survives_the_pod(life):
    cluster, runner, storage = life
    cluster.kubectl("apply", "-f", "-", input=STATEFULSET, check=True)
    cluster.kubectl("rollout", "status", "statefulset/db", "--timeout=90s", check=True, timeout=100)
    pods = get_json(cluster, "pods", "-l", "app=db")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1"]
    started = {p["metadata"]["name"]: p["status"]["startTime"] for p in pods}
    assert started["db-0"] <= started["db-1"]  # ordered start: db-1 waited for db-0 to be Ready
    pvc = get_json(cluster, "pvc", "data-db-0")
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == "local-path"
    pv = get_json(cluster, "pv", pvc["spec"]["volumeName"])
    path = pv["spec"]["hostPath"]["path"]
    assert path.startswith(storage + "/pvc-") and path.endswith("_default_data-db-0")
    assert os.path.isdir(path)  # created on the node by the kubelet

    cluster.kubectl("exec", "db-0", "--", "sh", "-c", "echo kept-on-the-pvc > /data/file", check=True)
    with open(os.path.join(path, "file")) as f:
        assert f.read() == "kept-on-the-pvc\n"
    old_uid = get_json(cluster, "pod", "db-0")["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "db-0", check=True)
    wait_for(lambda: (c := running_container(cluster, "db-0")) and c["uid"] != old_uid, timeout=60, interval=0.3)
    out = cluster.kubectl("exec", "db-0", "--", "cat", "/data/file", check=True).stdout
    assert out == "kept-on-the-pvc\n"
    assert get_json(cluster, "pvc", "data-db-0")["spec"]["volumeName"] == pv["metadata"]["name"]

    # deleting the StatefulSet keeps its claims (persistentVolumeClaimRetentionPolicy: Retain)
    cluster.kubectl("delete", "statefulset", "db", check=True)
    wait_for(lambda: not get_json(cluster, "pods", "-l", "app=db").get("items"), timeout=30, interval=0.3)
    claims = sorted(c["metadata"]["name"] for c in get_json(cluster, "pvc")["items"])
    assert claims == ["data-db-0", "data-db-1"]
    # the claims gone, the provisioner deletes their volumes (reclaim policy Delete)
    cluster.kubectl("delete", "pvc", "--all", check=True)
    wait_for(lambda: not get_json(cluster, "pv").get("items"), timeout=30, interval=0.3)


def test_agent_restart_keeps_running_pods(life):
    cluster, runner, _ = life
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("keeper", "echo started; exec sleep 3600"), check=True)
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("doomed", "exec sleep 3600"), check=True)
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("leaving", "exec sleep 3600"), check=True)
    before = {n: wait_for(lambda n=n: running_container(cluster, n), timeout=60, interval=0.2)
              for n in ("keeper", "doomed", "leaving")}
    runtime = runner.agent.runtime
    cid = before["keeper"]["containerID"].removeprefix("runc://")
    pid = runner.call(runtime.runc.state(cid))["pid"]
    doomed = runtime.find("default", "doomed")
    doomed_cid, doomed_netns, doomed_dir = doomed.container_id("main"), doomed.netns, doomed.pod_dir
    leaving_cid = runtime.find("default", "leaving").container_id("main")

    runner.stop(stop_containers=False)
    del doomed
    gc.collect()  # nothing of the stopped agent (its conmon handles included) takes the containers down
    assert runner.call(runtime.runc.state(cid))["status"] == "running"
    # while the agent is away: one pod is force-deleted (gone from the API at once), one deleted gracefully
    cluster.kubectl("delete", "pod", "doomed", "--grace-period=0", "--force", check=True)
    cluster.kubectl("delete", "pod", "leaving", "--wait=false", check=True)
    time.sleep(1.0)
    assert runner.call(runtime.runc.state(cid))["pid"] == pid  # the container outlived the agent

    runner.start()
    runtime = runner.agent.runtime
    gc.collect()  # the old agent's objects are gone now
    # the gracefully deleted pod is terminated and removed once the agent is back
    wait_for(lambda: cluster.kubectl("get", "pod", "leaving").returncode != 0, timeout=30, interval=0.3)
    assert runner.call(runtime.runc.state(leaving_cid)) is None
    # the force-deleted one is an orphan: its container, network namespace and pod dir are cleaned up
    wait_for(lambda: runner.call(runtime.runc.state(doomed_cid)) is None, timeout=30, interval=0.3)
    wait_for(lambda: not os.path.exists(doomed_netns) and not os.path.exists(doomed_dir), timeout=10, interval=0.2)
    # the kept pod is the same container: same ID, same process, no restart
    after = running_container(cluster, "keeper")
    assert after["containerID"] == before["keeper"]["containerID"] and after["restartCount"] == 0
    assert after["ready"] is True
    assert runner.call(runtime.runc.state(cid))["pid"] == pid
    assert cluster.kubectl("logs", "keeper", check=True).stdout == "started\n"
    # conmon still holds the container's stdout: what it writes now reaches the log
    cluster.kubectl("exec", "keeper", "--", "sh", "-c", "echo after-restart > /proc/1/fd/1", check=True)
    wait_for(lambda: cluster.kubectl("logs", "keeper").stdout == "started\nafter-restart\n", timeout=5,
             interval=0.1)
    out = cluster.kubectl("exec", "keeper", "--", "sh", "-c", "echo $((6 * 7))", check=True).stdout
    assert out == "42\n"
    # and it is still managed: deleting it stops it
    cluster.kubectl("delete", "pod", "keeper", "--timeout=30s", check=True)
    assert runner.call(runtime.runc.state(cid)) is None


def test_container_log_rotation(life):
    cluster, runner, _ = life
    # ~100 bytes a line (with the CRI prefix) every 20 ms: past the 4 KiB limit within a second or so
    script = "i=0; while true; do i=$((i+1)); echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; sleep 0.02; done"
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("chatty", script), check=True)
    wait_for(lambda: running_container(cluster, "chatty"), timeout=60, interval=0.2)
    log_path = runner.agent.runtime.find("default", "chatty").log_path("main")
    follower = subprocess.Popen(["kubectl", "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir,
                                 "logs", "-f", "chatty"], stdout=subprocess.PIPE, text=True)
    try:
        def rotated_compressed():
            files = glob.glob(log_path + ".*")
            return any(f.endswith(".gz") for f in files) and files
        files = wait_for(rotated_compressed, timeout=30, interval=0.2)
        names = sorted(os.path.basename(f) for f in files)
        # 0.log.<YYYYMMDD-HHMMSS>[.gz]; max files 3: at most one compressed and one plain besides 0.log
        assert all(re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.gz)?", n) for n in names), names
        assert len(names) <= 2 and os.path.exists(log_path)
        gz = next(f for f in files if f.endswith(".gz"))
        with gzip.open(gz, "rt") as f:
            first = f.readline()
        assert " stdout F line-" in first
        # kubectl logs reads the current file: it starts past the rotated lines and keeps growing
        current = cluster.kubectl("logs", "chatty", check=True).stdout.splitlines()
        assert current and current[0] != "line-1-" + "a" * 49
        n = int(current[-1].split("-")[1])
        wait_for(lambda: int(cluster.kubectl("logs", "chatty", "--tail=1").stdout.split("-")[1]) > n, timeout=10,
                 interval=0.2)
    finally:
        follower.terminate()
        out, _ = follower.communicate(timeout=10)
    # the follower went on across rotations without a gap: consecutive line numbers from 1
    numbers = [int(line.split("-")[1]) for line in out.splitlines() if line.startswith("line-")]
    assert numbers[:3] == [1, 2, 3] and numbers == list(range(1, len(numbers) + 1)), numbers[-5:]
    assert numbers[-1] > 60  # well past the first rotation
    log_dir = os.path.dirname(os.path.dirname(log_path))
    cluster.kubectl("delete", "pod", "chatty", "--timeout=30s", check=True)
    assert not os.path.exists(log_dir)  # the pod's logs, rotated ones included, go with it
