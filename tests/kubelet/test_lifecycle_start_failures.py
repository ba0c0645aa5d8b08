"""compute_pod_actions for containers the runtime failed to start: a runc create failure (an exited container,
128 StartError, as containerd reports it) loops with CrashLoopBackOff; a creation that failed before any
container existed (failed_creates) is retried on the same back-off and keeps its own reason."""

from __future__ import annotations

import pytest

from kubelite.kubelet.lifecycle import BackOff, compute_pod_actions
from kubelite.kubelet.podstatus import ContainerState, PodRuntime, compute_pod_status


def pod(policy: str = "Always", init: bool = False) -> dict:
    spec = {"restartPolicy": policy, "containers": [{"name": "main", "image": "busybox"}]}
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox"}]
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec,
            "status": {"phase": "Pending"}}


def start_error(at: float, restart: int = 0) -> ContainerState:
    return ContainerState(name="main", state="exited", exit_code=128, reason="StartError",
                          message="runc create failed: no cgroup mount found in mountinfo", finished_at=at,
                          restart_count=restart)


def test_start_error_restarts_then_backs_off_with_crash_loop():
    p, bo = pod(), BackOff(10.0, 300.0)
    rt = PodRuntime(sandbox_ready=True)
    rt.containers["main"] = start_error(100.0)
    rt.waiting["main"] = ("RunContainerError", "failed to create containerd task: …")
    acts = compute_pod_actions(p, rt, now=100.0, backoff=bo)
    assert acts.start == ["main"] and not acts.backoff  # the first restart is immediate, as for a crash
    rt.containers["main"] = start_error(100.5, restart=1)
    acts = compute_pod_actions(p, rt, now=100.5, backoff=bo)
    assert acts.start == [] and acts.backoff_events == ["main"]
    assert rt.waiting["main"][0] == "CrashLoopBackOff"
    assert rt.waiting["main"][1] == "back-off 10s restarting failed container=main pod=p_default(u1)"
    assert acts.wake_after == 10.0
    status = compute_pod_status(p, rt, host_ips=["10.0.0.1"], now=100.5)
    cs = status["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "StartError"
    assert cs["lastState"]["terminated"]["exitCode"] == 128
    # the back-off over, it is tried again; the next failure doubles it
    assert compute_pod_actions(p, rt, now=110.6, backoff=bo).start == ["main"]
    rt.containers["main"] = start_error(110.7, restart=2)
    acts = compute_pod_actions(p, rt, now=110.7, backoff=bo)
    assert acts.start == [] and acts.wake_after == pytest.approx(20.0)


def test_start_error_under_restart_policy_never_fails_the_pod():
    p = pod("Never")
    rt = PodRuntime(sandbox_ready=True)
    rt.containers["main"] = start_error(100.0)
    acts = compute_pod_actions(p, rt, now=100.0, backoff=BackOff())
    assert acts.terminal and not acts.start
    assert compute_pod_status(p, rt, host_ips=[], now=100.0, pod_is_terminal=True)["phase"] == "Failed"


def test_failed_create_is_retried_on_the_back_off_keeping_its_reason():
    p, bo = pod(), BackOff(1.0, 4.0)
    rt = PodRuntime(sandbox_ready=True)
    assert compute_pod_actions(p, rt, now=0.0, backoff=bo).start == ["main"]
    rt.failed_creates["main"] = 1.0
    rt.waiting["main"] = ("CreateContainerError", "no such file")
    assert compute_pod_actions(p, rt, now=1.0, backoff=bo).start == ["main"]  # immediate, once
    rt.failed_creates["main"] = 2.0
    delays = []
    now = 2.0
    for _ in range(4):
        acts = compute_pod_actions(p, rt, now=now, backoff=bo)
        assert acts.start == [] and acts.backoff_events == []
        assert rt.waiting["main"] == ("CreateContainerError", "no such file")  # not CrashLoopBackOff
        delays.append(acts.wake_after)
        now += acts.wake_after
        assert compute_pod_actions(p, rt, now=now, backoff=bo).start == ["main"]
        rt.failed_creates["main"] = now
    assert delays == [1.0, 2.0, 4.0, 4.0]  # exponential, capped at the configured maximum


def test_failed_create_of_an_init_container_waits_too():
    p, bo = pod(init=True), BackOff(10.0, 300.0)
    rt = PodRuntime(sandbox_ready=True)
    rt.failed_creates["setup"] = 5.0
    assert compute_pod_actions(p, rt, now=5.0, backoff=bo).start_init == ["setup"]
    rt.failed_creates["setup"] = 5.1
    acts = compute_pod_actions(p, rt, now=5.1, backoff=bo)
    assert acts.start_init == [] and acts.start == [] and acts.wake_after == 10.0


def test_after_an_agent_restart_a_fresh_back_off_retries_at_once():
    p = pod()
    rt = PodRuntime(sandbox_ready=True)
    rt.containers["main"] = start_error(50.0, restart=3)  # as adopted from the pod's state file
    acts = compute_pod_actions(p, rt, now=60.0, backoff=BackOff(10.0, 300.0))
    assert acts.start == ["main"]
