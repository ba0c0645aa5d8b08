"""Simulated nodes against a real API server: registration, pods Running/Ready with IPs, graceful deletion,
the special behaviours driven by annotations, and what the real kubectl shows."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.kubelet.agent import SimulatedNodes
from kubelite.kubelet.simulated import SimulatedConfig

REG = Registry()
PODS = REG.get("", "v1", "pods")
NODES = REG.get("", "v1", "nodes")
LEASES = REG.get("coordination.k8s.io", "v1", "leases")
EVENTS = REG.get("", "v1", "events")


def parse_table(text: str) -> list[dict[str, str]]:
    cols = header(text)
    return [dict(zip(cols, r, strict=False)) for r in rows(text)]


def pod(name: str, node: str, annotations: dict | None = None, **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"nodeName": node, "containers": [{"name": "nginx", "image": "nginx"}],
                     "terminationGracePeriodSeconds": 30, **spec}}
    return body


async def wait_for(fn, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last value: {last!r}")


async def get_pod(client: ApiClient, name: str) -> dict | None:
    try:
        return await client.get(PODS, "default", name)
    except ClientError as e:
        if e.code == 404:
            return None
        raise


FAST = SimulatedConfig(start_seconds=0.05, run_seconds=0.3, crash_seconds=0.2, termination_seconds=0.5,
                       backoff_initial=0.5, backoff_max=2.0)


@pytest.fixture
async def sim(fresh_cluster):
    client = ApiClient.from_kubeconfig(fresh_cluster.kubeconfig)
    nodes = SimulatedNodes(client, ["sim-a", "sim-b"], FAST)
    await nodes.start()
    yield fresh_cluster, client, nodes
    await nodes.stop()
    await client.close()


def running_ready(p: dict | None) -> bool:
    if not p:
        return False
    st = p.get("status") or {}
    ready = {c["type"]: c["status"] for c in st.get("conditions") or []}
    return st.get("phase") == "Running" and ready.get("Ready") == "True" and bool(st.get("podIP"))


async def test_nodes_register_with_leases_and_kubectl_shows_ready(sim):
    cluster, client, nodes = sim
    node = await client.get(NODES, None, "sim-a")
    conds = {c["type"]: c for c in node["status"]["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "KubeletReady"
    assert conds["Ready"]["message"] == "kubelet is posting ready status"
    assert conds["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert conds["PIDPressure"]["status"] == "False"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.0"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "sim-a"
    lease = await client.get(LEASES, "kube-node-lease", "sim-a")
    assert lease["spec"]["holderIdentity"] == "sim-a"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]

    out = cluster.kubectl("get", "nodes", check=True).stdout
    rows = parse_table(out)
    assert list(rows[0].keys()) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    by_name = {r["NAME"]: r for r in rows}
    assert by_name["sim-a"]["STATUS"] == "Ready"
    assert by_name["sim-b"]["VERSION"] == "v1.33.0"


async def test_pods_run_with_ips_and_are_deleted_after_grace(sim):
    cluster, client, nodes = sim
    await client.create(PODS, pod("web-1", "sim-a"), "default")
    await client.create(PODS, pod("web-2", "sim-b"), "default")
    p1 = await wait_for(lambda: _ready(client, "web-1"))
    p2 = await wait_for(lambda: _ready(client, "web-2"))
    st = p1["status"]
    assert st["hostIP"] == nodes.nodes["sim-a"].spec.internal_ip
    assert st["podIPs"] == [{"ip": st["podIP"]}]
    assert st["podIP"] != p2["status"]["podIP"]
    assert st["qosClass"] == "BestEffort"
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
    assert cs["image"] == "docker.io/library/nginx:latest"
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
    types = [c["type"] for c in st["conditions"]]
    assert types == ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]

    out = cluster.kubectl("get", "pods", "-o", "wide", check=True).stdout
    rows = {r["NAME"]: r for r in parse_table(out)}
    assert rows["web-1"]["READY"] == "1/1"
    assert rows["web-1"]["STATUS"] == "Running"
    assert rows["web-1"]["NODE"] == "sim-a"
    assert rows["web-1"]["IP"] == st["podIP"]

    async def started_event():
        events = await client.list(EVENTS, "default", field_selector="involvedObject.name=web-1")
        reasons = {e["reason"]: e["message"] for e in events["items"]}
        return reasons if "Started" in reasons else None

    reasons = await wait_for(started_event)
    assert reasons.get("Started") == "Started container nginx"
    assert reasons.get("Created") == "Created container: nginx"
    assert reasons.get("Pulling") == 'Pulling image "nginx"'

    t0 = time.monotonic()
    await client.delete(PODS, "default", "web-1")
    terminating = await client.get(PODS, "default", "web-1")
    assert terminating["metadata"].get("deletionTimestamp")
    await wait_for(lambda: _gone(client, "web-1"), timeout=10)
    assert time.monotonic() - t0 >= 0.3  # min(grace 30 s, termination_seconds 0.5 s)


async def _ready(client, name):
    p = await get_pod(client, name)
    return p if running_ready(p) else None


async def _gone(client, name):
    return await get_pod(client, name) is None


async def test_exit_code_annotation_completes_or_fails(sim):
    cluster, client, nodes = sim
    await client.create(PODS, pod("done", "sim-a", {"kubelite.io/simulate-exit-code": "0"}, restartPolicy="Never"),
                        "default")
    await client.create(PODS, pod("bad", "sim-b", {"kubelite.io/simulate-exit-code": "3"}, restartPolicy="Never"),
                        "default")

    async def phase(name, want):
        p = await get_pod(client, name)
        return p if p and p["status"].get("phase") == want else None

    done = await wait_for(lambda: phase("done", "Succeeded"))
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    ready = {c["type"]: c for c in done["status"]["conditions"]}
    assert ready["Ready"]["reason"] == "PodCompleted"
    bad = await wait_for(lambda: phase("bad", "Failed"))
    assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    rows = {r["NAME"]: r for r in parse_table(cluster.kubectl("get", "pods", check=True).stdout)}
    assert rows["done"]["STATUS"] == "Completed"
    assert rows["bad"]["STATUS"] == "Error"


async def test_crash_loop_back_off(sim):
    cluster, client, nodes = sim
    await client.create(PODS, pod("crash", "sim-a", {"kubelite.io/simulate-crash": "true"}), "default")

    async def looping():
        p = await get_pod(client, "crash")
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
        w = (cs[0].get("state") or {}).get("waiting") or {}
        return p if w.get("reason") == "CrashLoopBackOff" else None

    p = await wait_for(looping)
    cs = p["status"]["containerStatuses"][0]
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["state"]["waiting"]["message"].startswith("back-off 500ms restarting failed container=nginx pod=crash_default(")
    assert p["status"]["phase"] == "Running"
    rows = {r["NAME"]: r for r in parse_table(cluster.kubectl("get", "pods", check=True).stdout)}
    assert rows["crash"]["STATUS"] == "CrashLoopBackOff"
    assert rows["crash"]["READY"] == "0/1"


async def test_image_pull_error(sim):
    cluster, client, nodes = sim
    await client.create(PODS, pod("nopull", "sim-b", {"kubelite.io/simulate-image-pull-error": "true"}), "default")

    async def backoff():
        p = await get_pod(client, "nopull")
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
        w = (cs[0].get("state") or {}).get("waiting") or {}
        return p if w.get("reason") == "ImagePullBackOff" else None

    p = await wait_for(backoff)
    msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert msg.startswith('Back-off pulling image "nginx": ErrImagePull: rpc error: code = NotFound')
    assert p["status"]["phase"] == "Pending"


async def test_init_containers_then_main(sim):
    cluster, client, nodes = sim
    body = pod("withinit", "sim-a")
    body["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"},
                                      {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    await client.create(PODS, body, "default")
    p = await wait_for(lambda: _ready(client, "withinit"))
    inits = {s["name"]: s for s in p["status"]["initContainerStatuses"]}
    assert inits["setup"]["state"]["terminated"]["reason"] == "Completed"
    assert inits["proxy"]["state"].get("running")
    rows = {r["NAME"]: r for r in parse_table(cluster.kubectl("get", "pods", check=True).stdout)}
    assert rows["withinit"]["READY"] == "2/2"
