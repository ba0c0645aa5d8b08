"""Jobs against a real API server with the controller-manager, the scheduler and simulated nodes in the
test's event loop: completion (what `kubectl get jobs` shows), Indexed mode, backoffLimit, TTL."""

from __future__ import annotations

import asyncio
import contextlib
import time

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.controllers import job_util as ju
from kubelite.controllers.manager import ControllerManagerConfig, run_controller_manager
from kubelite.kubelet.agent import run_simulated_nodes
from kubelite.kubelet.simulated import SimulatedConfig
from kubelite.scheduler import SchedulerConfig, run_scheduler

R = Registry()
PODS = R.get("", "v1", "pods")
JOBS = R.get("batch", "v1", "jobs")
EVENTS = R.get("", "v1", "events")

SIM = SimulatedConfig(start_seconds=0.05, run_seconds=0.3, termination_seconds=0.2, status_coalesce_seconds=0.0)
CONTROLLERS = ["job-controller", "ttl-after-finished-controller", "garbage-collector-controller"]


@contextlib.asynccontextmanager
async def control_plane(cluster, controllers=CONTROLLERS, nodes=("sim-a", "sim-b"), **extra):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    stop = asyncio.Event()
    config = ControllerManagerConfig(leader_elect=False, extra={"job_backoff_base": 0.2, **extra})
    tasks = [asyncio.ensure_future(run_controller_manager(client, stop=stop, config=config, controllers=controllers)),
             asyncio.ensure_future(run_scheduler(client, stop=stop, config=SchedulerConfig(leader_elect=False))),
             asyncio.ensure_future(run_simulated_nodes(client, names=list(nodes), stop=stop, config=SIM))]
    try:
        yield client
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()
        await client.close()


async def wait_for(fn, timeout=20.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


def job(name, *, completions=None, parallelism=None, backoff_limit=None, annotations=None, **spec):
    s = {"template": {"metadata": {"annotations": annotations or {}},
                      "spec": {"restartPolicy": "Never",
                               "containers": [{"name": "pi", "image": "perl:5.34"}]}}, **spec}
    for k, v in (("completions", completions), ("parallelism", parallelism), ("backoffLimit", backoff_limit)):
        if v is not None:
            s[k] = v
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": s}


def condition_types(j):
    return [c["type"] for c in (j.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]


async def events_for(client, name):
    evs = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return [(e["reason"], e["message"]) for e in evs["items"]]


async def test_job_completes_and_kubectl_shows_complete(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(JOBS, job("pi"), "default")

        async def complete():
            j = await client.get(JOBS, "default", "pi")
            return j if "Complete" in condition_types(j) else None

        j = await wait_for(complete)
        st = j["status"]
        assert st["succeeded"] == 1 and st.get("active", 0) == 0 and st["ready"] == 0 and st["terminating"] == 0
        assert st["uncountedTerminatedPods"] == {}
        assert st["startTime"] and st["completionTime"]
        assert condition_types(j) == ["SuccessCriteriaMet", "Complete"]
        complete_cond = [c for c in st["conditions"] if c["type"] == "Complete"][0]
        assert (complete_cond["reason"], complete_cond["message"]) == ("CompletionsReached",
                                                                       "Reached expected number of succeeded pods")
        pods = (await client.list(PODS, "default"))["items"]
        assert len(pods) == 1
        p = pods[0]
        assert p["metadata"]["name"].startswith("pi-")
        labels = p["metadata"]["labels"]
        uid = j["metadata"]["uid"]
        assert labels[ju.CONTROLLER_UID_LABEL] == uid and labels[ju.JOB_NAME_LABEL] == "pi"
        assert labels["controller-uid"] == uid and labels["job-name"] == "pi"
        assert ju.TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or [])
        assert p["status"]["phase"] == "Succeeded"

        async def events():
            evs = await events_for(client, "pi")
            return evs if ("Completed", "Job completed") in evs else None

        evs = await wait_for(events)
        assert ("SuccessfulCreate", f"Created pod: {p['metadata']['name']}") in evs

        out = fresh_cluster.kubectl("get", "jobs", check=True).stdout
        assert header(out)[:3] == ["NAME", "STATUS", "COMPLETIONS"]
        assert rows(out)[0][:3] == ["pi", "Complete", "1/1"]


async def test_parallel_completions_and_indexed_mode(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(JOBS, job("batch", completions=5, parallelism=2), "default")
        await client.create(JOBS, job("idx", completions=3, parallelism=3, completionMode="Indexed"), "default")

        async def done(name):
            j = await client.get(JOBS, "default", name)
            return j if "Complete" in condition_types(j) else None

        b = await wait_for(lambda: done("batch"), timeout=30)
        assert b["status"]["succeeded"] == 5 and "failed" not in b["status"]
        i = await wait_for(lambda: done("idx"), timeout=30)
        assert i["status"]["succeeded"] == 3 and i["status"]["completedIndexes"] == "0-2"
        pods = (await client.list(PODS, "default", label_selector="batch.kubernetes.io/job-name=idx"))["items"]
        by_index = {p["metadata"]["annotations"][ju.COMPLETION_INDEX]: p for p in pods}
        assert sorted(by_index) == ["0", "1", "2"]
        for idx, p in by_index.items():
            assert p["spec"]["hostname"] == f"idx-{idx}"
            assert p["metadata"]["labels"][ju.COMPLETION_INDEX] == idx
            assert p["metadata"]["name"].startswith(f"idx-{idx}-")
        out = fresh_cluster.kubectl("get", "jobs", check=True).stdout
        got = {r[0]: r[1:3] for r in rows(out)}
        assert got == {"batch": ["Complete", "5/5"], "idx": ["Complete", "3/3"]}


async def test_backoff_limit_exceeded(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(JOBS, job("fail", backoff_limit=1,
                                      annotations={"kubelite.io/simulate-exit-code": "1"}), "default")

        async def failed():
            j = await client.get(JOBS, "default", "fail")
            return j if "Failed" in condition_types(j) else None

        j = await wait_for(failed, timeout=30)
        assert j["status"]["failed"] == 2 and "succeeded" not in j["status"]
        cond = [c for c in j["status"]["conditions"] if c["type"] == "Failed"][0]
        assert (cond["reason"], cond["message"]) == ("BackoffLimitExceeded",
                                                     "Job has reached the specified backoff limit")
        assert "FailureTarget" in condition_types(j)
        assert "completionTime" not in j["status"]
        pods = (await client.list(PODS, "default"))["items"]
        assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)

        async def event():
            evs = await events_for(client, "fail")
            return ("BackoffLimitExceeded", "Job has reached the specified backoff limit") in evs

        await wait_for(event)
        out = fresh_cluster.kubectl("get", "jobs", check=True).stdout
        assert rows(out)[0][:3] == ["fail", "Failed", "0/1"]


async def test_ttl_after_finished_deletes_the_job_and_its_pods(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(JOBS, job("short", ttlSecondsAfterFinished=1), "default")

        async def gone():
            try:
                await client.get(JOBS, "default", "short")
            except ClientError as e:
                return e.is_not_found
            return False

        await wait_for(gone, timeout=30)

        async def no_pods():
            return not (await client.list(PODS, "default"))["items"]

        await wait_for(no_pods, timeout=15)


async def test_suspended_job_creates_no_pods_until_resumed(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await client.create(JOBS, job("later", suspend=True), "default")

        async def suspended():
            j = await client.get(JOBS, "default", "later")
            return j if "Suspended" in condition_types(j) else None

        j = await wait_for(suspended)
        assert "startTime" not in j["status"]
        assert not (await client.list(PODS, "default"))["items"]
        await client.patch(JOBS, "default", "later", {"spec": {"suspend": False}}, patch_type="merge")

        async def complete():
            j = await client.get(JOBS, "default", "later")
            return j if "Complete" in condition_types(j) else None

        j = await wait_for(complete)
        resumed = [c for c in j["status"]["conditions"] if c["type"] == "Suspended"][0]
        assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")
