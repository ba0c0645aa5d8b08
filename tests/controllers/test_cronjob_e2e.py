"""CronJobs against a real API server with the controller-manager (cronjob + job controllers), scheduler
and simulated nodes.  The controller's clock is shifted so a schedule fires within a second or two."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient
from kubelite.controllers import cronjob_util as cj
from kubelite.controllers.manager import ControllerManagerConfig, run_controller_manager
from kubelite.kubelet.agent import run_simulated_nodes
from kubelite.kubelet.simulated import SimulatedConfig
from kubelite.scheduler import SchedulerConfig, run_scheduler

R = Registry()
JOBS = R.get("batch", "v1", "jobs")
CRONJOBS = R.get("batch", "v1", "cronjobs")
EVENTS = R.get("", "v1", "events")

SIM = SimulatedConfig(start_seconds=0.05, run_seconds=0.3, termination_seconds=0.2, status_coalesce_seconds=0.0)


class Clock:
    """Real time shifted so that "now" is one second before a minute boundary at the start."""

    def __init__(self) -> None:
        real = time.time()
        self.offset = math.ceil(real / 60) * 60 - 1.0 - real

    def __call__(self) -> float:
        return time.time() + self.offset


@contextlib.asynccontextmanager
async def control_plane(cluster, clock):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    stop = asyncio.Event()
    config = ControllerManagerConfig(leader_elect=False, extra={"cronjob_clock": clock})
    tasks = [asyncio.ensure_future(run_controller_manager(
                client, stop=stop, config=config,
                controllers=["cronjob-controller", "job-controller", "garbage-collector-controller"])),
             asyncio.ensure_future(run_scheduler(client, stop=stop, config=SchedulerConfig(leader_elect=False))),
             asyncio.ensure_future(run_simulated_nodes(client, names=["sim-a"], stop=stop, config=SIM))]
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


def hello(schedule="* * * * *", annotations=None, **spec):
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"},
            "spec": {"schedule": schedule, **spec,
                     "jobTemplate": {"spec": {"template": {
                         "metadata": {"annotations": annotations or {}},
                         "spec": {"restartPolicy": "OnFailure",
                                  "containers": [{"name": "hello", "image": "busybox:1.28"}]}}}}}}


async def events(client, name="hello"):
    evs = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return [(e["reason"], e["message"]) for e in evs["items"]]


async def test_cronjob_fires_and_tracks_the_job(fresh_cluster):
    clock = Clock()
    boundary = clock() + 1.0
    async with control_plane(fresh_cluster, clock) as client:
        await client.create(CRONJOBS, hello(), "default")

        async def job_created():
            return (await client.list(JOBS, "default"))["items"]

        jobs = await wait_for(job_created, timeout=10)
        assert len(jobs) == 1
        j = jobs[0]
        minutes = int(round(boundary)) // 60
        assert j["metadata"]["name"] == f"hello-{minutes}"
        assert j["metadata"]["annotations"][cj.SCHEDULED_TIMESTAMP_ANNOTATION] == time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(minutes * 60))
        ref = j["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "hello", True)

        async def completed_and_seen():
            c = await client.get(CRONJOBS, "default", "hello")
            st = c.get("status") or {}
            return st if st.get("lastSuccessfulTime") and not st.get("active") else None

        st = await wait_for(completed_and_seen, timeout=20)
        assert st["lastScheduleTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minutes * 60))
        evs = await wait_for(lambda: events(client))
        assert ("SuccessfulCreate", f"Created job hello-{minutes}") in evs

        async def saw_completed():
            evs = await events(client)
            return ("SawCompletedJob", f"Saw completed job: hello-{minutes}, condition: Complete") in evs

        await wait_for(saw_completed)
        out = fresh_cluster.kubectl("get", "cronjobs", check=True).stdout
        assert header(out)[:4] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND"]
        assert rows(out)[0][0] == "hello"  # (the schedule's spaces split the other columns)
        out = fresh_cluster.kubectl("get", "jobs", check=True).stdout
        assert rows(out)[0][:3] == [f"hello-{minutes}", "Complete", "1/1"]


async def test_forbid_and_replace(fresh_cluster):
    clock = Clock()
    async with control_plane(fresh_cluster, clock) as client:
        # jobs that run long: Forbid keeps the next activation from starting another
        await client.create(CRONJOBS, hello(concurrencyPolicy="Forbid",
                                            annotations={"kubelite.io/simulate-run-seconds": "600"}), "default")

        async def jobs():
            return (await client.list(JOBS, "default"))["items"]

        first = (await wait_for(jobs, timeout=10))[0]["metadata"]["name"]
        clock.offset += 60  # the next minute arrives
        await client.patch(CRONJOBS, "default", "hello", {"metadata": {"labels": {"poke": "1"}}}, patch_type="merge")

        async def forbidden():
            return ("JobAlreadyActive", "Not starting job because prior execution is running and concurrency "
                                        "policy is Forbid") in await events(client)

        await wait_for(forbidden)
        assert [j["metadata"]["name"] for j in await jobs()] == [first]

        # Replace: the running job is deleted and a new one started
        await client.patch(CRONJOBS, "default", "hello", {"spec": {"concurrencyPolicy": "Replace"}},
                           patch_type="merge")

        async def replaced():
            names = [j["metadata"]["name"] for j in await jobs() if not j["metadata"].get("deletionTimestamp")]
            return names if names and first not in names else None

        names = await wait_for(replaced)
        assert names == [f"hello-{int(clock()) // 60}"]
        assert ("SuccessfulDelete", f"Deleted job {first}") in await events(client)


async def test_successful_history_limit(fresh_cluster):
    clock = Clock()
    async with control_plane(fresh_cluster, clock) as client:
        await client.create(CRONJOBS, hello(successfulJobsHistoryLimit=1), "default")

        async def complete_jobs():
            items = (await client.list(JOBS, "default"))["items"]
            return [j["metadata"]["name"] for j in items
                    if any(c["type"] == "Complete" for c in (j.get("status") or {}).get("conditions") or [])]

        first = (await wait_for(complete_jobs, timeout=15))[0]
        clock.offset += 60
        await client.patch(CRONJOBS, "default", "hello", {"metadata": {"labels": {"poke": "1"}}}, patch_type="merge")

        async def rotated():
            names = await complete_jobs()
            return names if names and first not in names else None

        names = await wait_for(rotated, timeout=20)
        assert len(names) == 1
        assert ("SuccessfulDelete", f"Deleted job {first}") in await events(client)
