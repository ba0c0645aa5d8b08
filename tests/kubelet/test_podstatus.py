"""Pure pod-status and lifecycle rules (phase, conditions, back-off, restart policy, init order, sidecars)."""

from __future__ import annotations

from kubelite.kubelet import lifecycle as lc
from kubelite.kubelet.podstatus import (
    ContainerState,
    PodRuntime,
    compute_pod_status,
    get_phase,
    qos_class,
    status_patch,
)

NOW = 1_700_000_000.0


def mkpod(containers=("app",), inits=(), policy="Always", **meta):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
            "spec": {"restartPolicy": policy,
                     "containers": [{"name": n, "image": "nginx"} for n in containers],
                     "initContainers": [dict(c) for c in inits]}}


def running(name, ready=True):
    return ContainerState(name=name, state="running", started_at=NOW - 5, ready=ready, started=True)


def exited(name, code, restarts=0):
    return ContainerState(name=name, state="exited", exit_code=code, started_at=NOW - 5, finished_at=NOW - 1,
                          restart_count=restarts)


def status(pod, rt, terminal=False):
    return compute_pod_status(pod, rt, host_ips=["172.30.0.2"], now=NOW, pod_is_terminal=terminal)


def conds(st):
    return {c["type"]: c for c in st["conditions"]}


def test_pending_before_sandbox_then_running_ready():
    pod = mkpod()
    st = status(pod, PodRuntime())
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    c = conds(st)
    assert c["PodReadyToStartContainers"]["status"] == "False"
    assert c["Ready"]["reason"] == "ContainersNotReady"
    assert c["Ready"]["message"] == "containers with unready status: [app]"
    assert c["Initialized"]["status"] == "True"
    assert [x["type"] for x in st["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                       "ContainersReady", "PodScheduled"]
    rt = PodRuntime(sandbox_ready=True, pod_ips=["10.244.1.2"], containers={"app": running("app")})
    st = status(pod, rt)
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.244.1.2" and st["hostIPs"] == [{"ip": "172.30.0.2"}]
    assert conds(st)["Ready"]["status"] == "True" and "reason" not in conds(st)["Ready"]


def test_last_transition_time_kept_while_status_unchanged():
    pod = mkpod()
    rt = PodRuntime(sandbox_ready=True, containers={"app": running("app")})
    first = compute_pod_status(pod, rt, host_ips=[], now=NOW)
    pod["status"] = first
    later = compute_pod_status(pod, rt, host_ips=[], now=NOW + 100)
    assert conds(later)["Ready"]["lastTransitionTime"] == conds(first)["Ready"]["lastTransitionTime"]
    rt.containers["app"].ready = False
    changed = compute_pod_status(pod, rt, host_ips=[], now=NOW + 100)
    assert conds(changed)["Ready"]["lastTransitionTime"] != conds(first)["Ready"]["lastTransitionTime"]
    assert conds(changed)["PodScheduled"]["lastTransitionTime"] == conds(first)["PodScheduled"]["lastTransitionTime"]
    assert changed["startTime"] == first["startTime"]


def test_foreign_conditions_kept_and_readiness_gates():
    pod = mkpod()
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}]
    pod["status"] = {"conditions": [{"type": "example.com/lb", "status": "False"}]}
    rt = PodRuntime(sandbox_ready=True, containers={"app": running("app")})
    st = status(pod, rt)
    c = conds(st)
    assert c["example.com/lb"]["status"] == "False"
    assert c["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert c["Ready"]["message"] == 'the status of pod readiness gate "example.com/lb" is not "True", but False'
    assert c["ContainersReady"]["status"] == "True"


def test_phase_by_restart_policy():
    for policy, code, want in [("Never", 0, "Succeeded"), ("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded"),
                               ("OnFailure", 1, "Running"), ("Always", 0, "Running")]:
        pod = mkpod(policy=policy)
        rt = PodRuntime(sandbox_ready=True, containers={"app": exited("app", code)})
        assert status(pod, rt)["phase"] == want, (policy, code)


def test_completed_pod_conditions():
    pod = mkpod(policy="Never")
    rt = PodRuntime(sandbox_ready=True, containers={"app": exited("app", 0)})
    st = status(pod, rt)
    assert conds(st)["Ready"] == {**conds(st)["Ready"], "status": "False", "reason": "PodCompleted"}
    t = st["containerStatuses"][0]["state"]["terminated"]
    assert t["reason"] == "Completed" and t["exitCode"] == 0
    # a terminal phase is sticky
    pod["status"] = st
    rt.containers["app"] = running("app")
    assert status(pod, rt)["phase"] == "Succeeded"


def test_crash_loop_status_and_backoff_timing():
    pod = mkpod()
    rt = PodRuntime(sandbox_ready=True, containers={"app": exited("app", 1)})
    bo = lc.BackOff(10, 300)
    first = lc.compute_pod_actions(pod, rt, now=NOW, backoff=bo)
    assert first.start == ["app"]  # the first restart is immediate
    rt.containers["app"] = ContainerState(name="app", state="exited", exit_code=1, started_at=NOW,
                                          finished_at=NOW + 1, restart_count=1)
    second = lc.compute_pod_actions(pod, rt, now=NOW + 1, backoff=bo)
    assert second.start == [] and second.backoff_events == ["app"]
    assert second.backoff["app"] == "back-off 10s restarting failed container=app pod=p_ns(u1)"
    assert 9.9 < second.wake_after <= 10
    st = status(pod, rt)
    cs = st["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert st["phase"] == "Running"
    assert lc.compute_pod_actions(pod, rt, now=NOW + 11.5, backoff=bo).start == ["app"]
    delays = []
    for i in range(7):
        bo.next("k", NOW + i, NOW + i)
        delays.append(bo.get("k"))
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_go_duration():
    assert [lc.go_duration(s) for s in (10, 80, 300, 1.234, 0.5, 0)] == ["10s", "1m20s", "5m0s", "1.234s", "500ms",
                                                                         "0s"]


def test_init_containers_in_order_and_sidecars():
    inits = [{"name": "a", "image": "x"}, {"name": "side", "image": "y", "restartPolicy": "Always"},
             {"name": "b", "image": "z"}]
    pod = mkpod(inits=inits)
    bo = lc.BackOff()
    rt = PodRuntime(sandbox_ready=True)
    assert lc.compute_pod_actions(pod, rt, now=NOW, backoff=bo).start_init == ["a"]
    st = status(pod, rt)
    assert st["phase"] == "Pending"
    assert conds(st)["Initialized"]["message"] == "containers with incomplete status: [a side b]"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    rt.init_containers["a"] = running("a")
    assert lc.compute_pod_actions(pod, rt, now=NOW, backoff=bo).idle
    rt.init_containers["a"] = exited("a", 0)
    assert lc.compute_pod_actions(pod, rt, now=NOW, backoff=bo).start_init == ["side"]
    rt.init_containers["side"] = running("side")
    assert lc.compute_pod_actions(pod, rt, now=NOW, backoff=bo).start_init == ["b"]
    rt.init_containers["b"] = exited("b", 0)
    acts = lc.compute_pod_actions(pod, rt, now=NOW, backoff=bo)
    assert acts.start == ["app"] and not acts.start_init
    rt.containers["app"] = running("app")
    st = status(pod, rt)
    assert st["phase"] == "Running"
    assert conds(st)["Initialized"]["status"] == "True"
    assert conds(st)["Ready"]["status"] == "True"
    assert [s["name"] for s in st["initContainerStatuses"]] == ["a", "side", "b"]
    assert st["initContainerStatuses"][0]["ready"] is True


def test_failed_init_container_never_fails_pod_and_onfailure_restarts():
    pod = mkpod(inits=[{"name": "a", "image": "x"}], policy="Never")
    rt = PodRuntime(sandbox_ready=True, init_containers={"a": exited("a", 2)})
    acts = lc.compute_pod_actions(pod, rt, now=NOW, backoff=lc.BackOff())
    assert acts.terminal
    assert status(pod, rt, terminal=True)["phase"] == "Failed"
    pod = mkpod(inits=[{"name": "a", "image": "x"}], policy="OnFailure")
    acts = lc.compute_pod_actions(pod, rt, now=NOW, backoff=lc.BackOff())
    assert acts.start_init == ["a"]
    assert status(pod, rt)["phase"] == "Pending"


def test_job_like_pod_ends_and_sidecars_are_stopped():
    pod = mkpod(inits=[{"name": "side", "image": "y", "restartPolicy": "Always"}], policy="Never")
    rt = PodRuntime(sandbox_ready=True, init_containers={"side": running("side")},
                    containers={"app": exited("app", 0)})
    acts = lc.compute_pod_actions(pod, rt, now=NOW, backoff=lc.BackOff())
    assert acts.terminal and acts.kill == ["side"]


def test_qos_classes():
    pod = mkpod()
    assert qos_class(pod) == "BestEffort"
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    assert qos_class(pod) == "Burstable"
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "0.1", "memory": "64Mi"},
                                                 "limits": {"cpu": "100m", "memory": "64Mi"}}
    assert qos_class(pod) == "Guaranteed"


def test_get_phase_waiting_is_pending():
    pod = mkpod(containers=("a", "b"))
    statuses = [{"name": "a", "state": {"running": {}}}, {"name": "b", "state": {"waiting": {}}}]
    assert get_phase(pod, [], statuses) == "Pending"


def test_status_patch_nulls_lost_condition_fields():
    old = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                               "message": "m"}]}
    new = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    patch = status_patch(old, new)
    assert patch == {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                                                                    "reason": None, "message": None}]}}
    assert status_patch(new, new) is None


def test_event_messages():
    assert lc.msg_pulled("nginx", 1.2, 1.2, 123) == \
        'Successfully pulled image "nginx" in 1.2s (1.2s including waiting). Image size: 123 bytes.'
    assert lc.msg_created("nginx") == "Created container: nginx"
    assert lc.msg_started("nginx") == "Started container nginx"
    assert lc.msg_killing("nginx") == "Stopping container nginx"
    assert lc.msg_backoff_restart("nginx", mkpod()) == "Back-off restarting failed container nginx in pod p_ns(u1)"
