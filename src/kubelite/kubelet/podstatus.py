"""A pod's API status computed from what the container runtime reports — shared by every kubelet runtime.

Pure functions, no I/O: the simulated runtime and the real (runc) kubelet both describe their containers with
`ContainerState` / `PodRuntime` and call `compute_pod_status`, so the two cannot diverge.  The rules follow
upstream's kubelet (`generateAPIPodStatus`, `getPhase`, `status/generate.go`, the status manager's
lastTransitionTime handling):

- container statuses: default `waiting` (ContainerCreating, or PodInitializing when the pod has init
  containers) until the runtime knows the container; a container that exited and will be restarted shows the
  reason it is waiting for (CrashLoopBackOff, ImagePullBackOff, ...) with the exit in `lastState`;
- phase: Pending / Running / Succeeded / Failed from init, sidecar and regular container states and the
  restart policy; terminal phases are sticky;
- conditions PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled in upstream's order,
  with upstream's reasons and messages; a condition keeps its lastTransitionTime while its status is unchanged;
  conditions the kubelet does not own (DisruptionTarget, readiness gates, ...) are kept as they are.

Times are epoch seconds (float) in the runtime structures and RFC 3339 strings in the API status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..api.quantity import parse_quantity

Obj = dict[str, Any]

# container waiting / terminated reasons used by the kubelet
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
COMPLETED = "Completed"
ERROR = "Error"

# pod condition reasons (status/generate.go)
UNKNOWN_CONTAINER_STATUSES = "UnknownContainerStatuses"
POD_COMPLETED = "PodCompleted"
POD_FAILED = "PodFailed"
CONTAINERS_NOT_READY = "ContainersNotReady"
CONTAINERS_NOT_INITIALIZED = "ContainersNotInitialized"
READINESS_GATES_NOT_READY = "ReadinessGatesNotReady"

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class ContainerState:
    """The runtime's view of the latest instance of one container (CRI-like: created, running or exited)."""

    name: str
    state: str = "running"  # "created" | "running" | "exited"
    exit_code: int = 0
    reason: str = ""  # for exited: Completed, Error, OOMKilled, ...
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    container_id: str = ""
    image: str = ""  # the image as the runtime resolved it, e.g. docker.io/library/nginx:latest
    image_id: str = ""  # docker.io/library/nginx@sha256:...
    restart_count: int = 0
    last_terminated: Obj | None = None  # API ContainerStateTerminated of the previous instance
    ready: bool = False  # readiness (probe) result while running
    started: bool = False  # startup-probe result while running (True when there is no startup probe)
    user: Obj | None = None  # API ContainerUser, when the runtime knows it

    def terminated_api(self) -> Obj:
        t: Obj = {"exitCode": self.exit_code,
                  "reason": self.reason or (COMPLETED if self.exit_code == 0 else ERROR)}
        if self.message:
            t["message"] = self.message
        t["startedAt"] = rfc3339(self.started_at)
        t["finishedAt"] = rfc3339(self.finished_at)
        if self.container_id:
            t["containerID"] = self.container_id
        return t


@dataclass
class PodRuntime:
    """Everything the runtime knows about one pod; the input of `compute_pod_status`."""

    sandbox_ready: bool = False  # the pod sandbox exists with its network configured
    pod_ips: list[str] = field(default_factory=list)
    start_time: float | None = None  # when the kubelet first acknowledged the pod
    init_containers: dict[str, ContainerState] = field(default_factory=dict)
    containers: dict[str, ContainerState] = field(default_factory=dict)
    # why a container that should run is not running (upstream's reasonCache): name -> (reason, message)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    # containers whose last creation failed before any container existed (CreateContainerError): name -> when;
    # they are tried again with the restart back-off (lifecycle.compute_pod_actions)
    failed_creates: dict[str, float] = field(default_factory=dict)


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_restartable_init(container: Obj) -> bool:
    """A sidecar: an init container with `restartPolicy: Always`."""
    return container.get("restartPolicy") == "Always"


def restart_policy(pod: Obj) -> str:
    return pod.get("spec", {}).get("restartPolicy") or "Always"


def should_restart(policy: str, exit_code: int) -> bool:
    """Whether an exited regular container is started again under the pod's restartPolicy."""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


# ---------------------------------------------------------------- container statuses


def container_status(container: Obj, cs: ContainerState | None, *, default_reason: str,
                     waiting: tuple[str, str] | None, will_restart: bool, init: bool = False) -> Obj:
    """One API ContainerStatus.  `will_restart`: an exited instance is going to be replaced (it then shows as
    waiting with `waiting`'s reason, or stays terminated until the replacement starts)."""
    name = container["name"]
    status: Obj = {"name": name}
    state: Obj
    last: Obj = {}
    ready = False
    started = False
    if cs is None:
        reason, message = waiting if waiting else (default_reason, "")
        state = {"waiting": _waiting(reason, message)}
    else:
        if cs.last_terminated:
            last = {"terminated": cs.last_terminated}
        if cs.state == "running":
            state = {"running": {"startedAt": rfc3339(cs.started_at)}}
            ready = cs.ready
            started = cs.started
        elif cs.state == "exited":
            if will_restart and waiting:
                state = {"waiting": _waiting(*waiting)}
                last = {"terminated": cs.terminated_api()}
            else:
                state = {"terminated": cs.terminated_api()}
                # a regular init container that succeeded counts as ready (upstream's probe manager)
                ready = init and not is_restartable_init(container) and cs.exit_code == 0
        else:  # created, not yet running
            state = {"waiting": _waiting(waiting[0], waiting[1]) if waiting else {}}
    status["state"] = state
    status["lastState"] = last
    status["ready"] = ready
    status["restartCount"] = cs.restart_count if cs else 0
    status["image"] = (cs.image if cs and cs.image else container.get("image", ""))
    status["imageID"] = cs.image_id if cs else ""
    if cs and cs.container_id:
        status["containerID"] = cs.container_id
    status["started"] = started
    resources = container.get("resources") or {}
    if cs and cs.state == "running" and (resources.get("requests") or resources.get("limits")):
        status["resources"] = {k: dict(v) for k, v in resources.items() if k in ("requests", "limits") and v}
    if cs and cs.user:
        status["user"] = cs.user
    mounts = [{"name": m["name"], "mountPath": m["mountPath"], **({"readOnly": True} if m.get("readOnly") else {}),
               **({"recursiveReadOnly": "Disabled"} if m.get("readOnly") else {})}
              for m in container.get("volumeMounts") or ()]
    if mounts:
        status["volumeMounts"] = mounts
    return status


def _waiting(reason: str, message: str) -> Obj:
    w: Obj = {"reason": reason} if reason else {}
    if message:
        w["message"] = message
    return w


def container_statuses(pod: Obj, rt: PodRuntime) -> tuple[list[Obj], list[Obj]]:
    """(initContainerStatuses in spec order, containerStatuses sorted by name, as upstream sorts them)."""
    spec = pod.get("spec", {})
    inits = spec.get("initContainers") or []
    default = POD_INITIALIZING if inits else CONTAINER_CREATING
    policy = restart_policy(pod)
    init_out = []
    for c in inits:
        cs = rt.init_containers.get(c["name"])
        if is_restartable_init(c):
            restart = True
        else:
            restart = cs is not None and cs.state == "exited" and cs.exit_code != 0 and policy != "Never"
        init_out.append(container_status(c, cs, default_reason=default, waiting=rt.waiting.get(c["name"]),
                                         will_restart=restart, init=True))
    out = []
    for c in spec.get("containers") or []:
        cs = rt.containers.get(c["name"])
        restart = cs is not None and cs.state == "exited" and should_restart(policy, cs.exit_code)
        out.append(container_status(c, cs, default_reason=default, waiting=rt.waiting.get(c["name"]),
                                    will_restart=restart))
    out.sort(key=lambda s: s["name"])
    return init_out, out


# ---------------------------------------------------------------- phase


def _find(statuses: list[Obj], name: str) -> Obj | None:
    for s in statuses:
        if s["name"] == name:
            return s
    return None


def has_any_regular_container_started(pod: Obj, statuses: list[Obj]) -> bool:
    for c in pod.get("spec", {}).get("containers") or []:
        s = _find(statuses, c["name"])
        if s and (s["state"].get("running") is not None or s["state"].get("terminated") is not None
                  or (s.get("lastState") or {}).get("terminated") is not None):
            return True
    return False


def get_phase(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], pod_is_terminal: bool = False) -> str:
    """Upstream's getPhase over API container statuses."""
    spec = pod.get("spec", {})
    policy = restart_policy(pod)
    pending_init = failed_init = 0
    inits = spec.get("initContainers") or []
    for c in inits:
        if is_restartable_init(c):
            continue
        s = _find(init_statuses, c["name"])
        if s is None:
            pending_init += 1
            continue
        st = s["state"]
        if st.get("running") is not None:
            pending_init += 1
        elif st.get("terminated") is not None:
            if st["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif st.get("waiting") is not None:
            last = (s.get("lastState") or {}).get("terminated")
            if last is not None:
                if last.get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1

    unknown = running = waiting = stopped = succeeded = 0
    for c in inits:
        if not is_restartable_init(c):
            continue
        s = _find(init_statuses, c["name"])
        if s is None:
            unknown += 1
            continue
        st = s["state"]
        if st.get("running") is not None:
            if not s.get("started"):
                pending_init += 1
            running += 1
        elif st.get("terminated") is not None:
            pass
        elif st.get("waiting") is not None:
            if (s.get("lastState") or {}).get("terminated") is None:
                pending_init += 1
                waiting += 1
        else:
            pending_init += 1
            unknown += 1

    for c in spec.get("containers") or []:
        s = _find(statuses, c["name"])
        if s is None:
            unknown += 1
            continue
        st = s["state"]
        if st.get("running") is not None:
            running += 1
        elif st.get("terminated") is not None:
            stopped += 1
            if st["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif st.get("waiting") is not None:
            if (s.get("lastState") or {}).get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init > 0 and policy == "Never":
        return "Failed"
    if (pending_init > 0 and not has_any_regular_container_started(pod, statuses)) or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


# ---------------------------------------------------------------- conditions


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"  # Go's %s of a []string


def containers_ready_condition(pod: Obj, all_statuses: list[Obj], phase: str) -> Obj:
    spec = pod.get("spec", {})
    unknown: list[str] = []
    unready: list[str] = []
    for c in [c for c in spec.get("initContainers") or [] if is_restartable_init(c)] + list(spec.get("containers")
                                                                                              or []):
        s = _find(all_statuses, c["name"])
        if s is None:
            unknown.append(c["name"])
        elif not s.get("ready"):
            unready.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return {"type": "ContainersReady", "status": "False", "reason": POD_COMPLETED}
    if phase == "Failed":
        return {"type": "ContainersReady", "status": "False", "reason": POD_FAILED}
    msgs = []
    if unknown:
        msgs.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        msgs.append(f"containers with unready status: {_names(unready)}")
    if msgs:
        return {"type": "ContainersReady", "status": "False", "reason": CONTAINERS_NOT_READY,
                "message": ", ".join(msgs)}
    return {"type": "ContainersReady", "status": "True"}


def ready_condition(pod: Obj, conditions: list[Obj], all_statuses: list[Obj], phase: str) -> Obj:
    cr = containers_ready_condition(pod, all_statuses, phase)
    if cr["status"] != "True":
        return {**cr, "type": "Ready"}
    msgs = []
    for gate in pod.get("spec", {}).get("readinessGates") or []:
        ctype = gate.get("conditionType")
        c = next((c for c in conditions if c.get("type") == ctype), None)
        if c is None:
            msgs.append(f'corresponding condition of pod readiness gate "{ctype}" does not exist.')
        elif c.get("status") != "True":
            msgs.append(f'the status of pod readiness gate "{ctype}" is not "True", but {c.get("status")}')
    if msgs:
        return {"type": "Ready", "status": "False", "reason": READINESS_GATES_NOT_READY, "message": ", ".join(msgs)}
    return {"type": "Ready", "status": "True"}


def initialized_condition(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], phase: str) -> Obj:
    inits = pod.get("spec", {}).get("initContainers") or []
    unknown: list[str] = []
    incomplete: list[str] = []
    for c in inits:
        s = _find(init_statuses, c["name"])
        if s is None:
            unknown.append(c["name"])
            continue
        done = bool(s.get("started")) if is_restartable_init(c) else _init_succeeded(s)
        if not done:
            incomplete.append(c["name"])
    if phase == "Succeeded" and not unknown and inits:
        return {"type": "Initialized", "status": "True", "reason": POD_COMPLETED}
    if has_any_regular_container_started(pod, statuses):
        return {"type": "Initialized", "status": "True"}
    msgs = []
    if unknown:
        msgs.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        msgs.append(f"containers with incomplete status: {_names(incomplete)}")
    if msgs:
        return {"type": "Initialized", "status": "False", "reason": CONTAINERS_NOT_INITIALIZED,
                "message": ", ".join(msgs)}
    return {"type": "Initialized", "status": "True"}


def _init_succeeded(s: Obj) -> bool:
    # upstream reads `ready`, which the kubelet sets for an init container that exited 0
    t = s["state"].get("terminated")
    return bool(s.get("ready")) or (t is not None and t.get("exitCode", 0) == 0)


def merge_conditions(old: list[Obj], generated: list[Obj], now: float) -> list[Obj]:
    """Conditions not owned by the kubelet as they were, then the kubelet's own in upstream's order, each keeping
    its lastTransitionTime while its status is unchanged."""
    by_type = {c.get("type"): c for c in old or ()}
    out = [c for c in old or () if c.get("type") not in KUBELET_CONDITIONS]
    stamp = rfc3339(now)
    for c in generated:
        prev = by_type.get(c["type"])
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            ltt = prev["lastTransitionTime"]
        else:
            ltt = stamp
        item = {"type": c["type"], "status": c["status"], "lastProbeTime": None, "lastTransitionTime": ltt}
        if c.get("reason"):
            item["reason"] = c["reason"]
        if c.get("message"):
            item["message"] = c["message"]
        out.append(item)
    return out


# ---------------------------------------------------------------- QoS


_QOS_RESOURCES = ("cpu", "memory")


def qos_class(pod: Obj) -> str:
    """Guaranteed / Burstable / BestEffort, from the cpu and memory requests and limits of all containers."""
    spec = pod.get("spec", {})
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        res = c.get("resources") or {}
        for name, q in (res.get("requests") or {}).items():
            if name in _QOS_RESOURCES:
                v = parse_quantity(q)
                if v:
                    requests[name] = requests.get(name, Decimal(0)) + v
        found = set()
        for name, q in (res.get("limits") or {}).items():
            if name in _QOS_RESOURCES:
                v = parse_quantity(q)
                if v:
                    found.add(name)
                    limits[name] = limits.get(name, Decimal(0)) + v
        if found != set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(requests.get(k) == limits.get(k) for k in requests) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# ---------------------------------------------------------------- the whole status


def compute_pod_status(pod: Obj, rt: PodRuntime, *, host_ips: list[str], now: float,
                       pod_is_terminal: bool = False) -> Obj:
    """The pod's full API status as the kubelet would write it now (pass the pod as last read from the API)."""
    old = pod.get("status") or {}
    init_st, st = container_statuses(pod, rt)
    phase = get_phase(pod, init_st, st, pod_is_terminal)
    old_phase = old.get("phase")
    if old_phase in TERMINAL_PHASES and phase != old_phase:
        phase = old_phase  # pods never leave a terminal phase
    all_st = init_st + st
    generated = [{"type": "PodReadyToStartContainers", "status": "True" if rt.sandbox_ready else "False"},
                 initialized_condition(pod, init_st, st, phase)]
    old_conditions = old.get("conditions") or []
    generated.append(ready_condition(pod, old_conditions, all_st, phase))
    generated.append(containers_ready_condition(pod, all_st, phase))
    generated.append({"type": "PodScheduled", "status": "True"})
    status: Obj = {"phase": phase, "conditions": merge_conditions(old_conditions, generated, now)}
    if old.get("reason") and phase == old_phase:
        status["reason"] = old["reason"]
    if old.get("message") and phase == old_phase:
        status["message"] = old["message"]
    if host_ips:
        status["hostIP"] = host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in host_ips]
    ips = rt.pod_ips or ([] if not pod.get("spec", {}).get("hostNetwork") else list(host_ips))
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    start = old.get("startTime") or rfc3339(rt.start_time if rt.start_time is not None else now)
    status["startTime"] = start
    if init_st:
        status["initContainerStatuses"] = init_st
    status["containerStatuses"] = st
    status["qosClass"] = qos_class(pod)
    return status


def status_patch(old: Obj, new: Obj) -> Obj | None:
    """A strategic-merge patch body turning status `old` into `new`, or None when nothing changed.

    Conditions merge by type on the server, so fields a condition lost (reason, message) are sent as null;
    container status lists are atomic and sent whole."""
    patch: Obj = {}
    for k, v in new.items():
        if old.get(k) != v:
            patch[k] = v
    for k in old:
        if k not in new and k not in ("resize", "nominatedNodeName", "ephemeralContainerStatuses",
                                      "resourceClaimStatuses", "observedGeneration"):
            patch[k] = None
    if not patch:
        return None
    if "conditions" in patch:
        old_by_type = {c.get("type"): c for c in old.get("conditions") or ()}
        conds = []
        for c in new["conditions"]:
            prev = old_by_type.get(c["type"])
            if prev == c:
                continue
            item = dict(c)
            for f in ("reason", "message"):
                if f not in item and prev is not None and f in prev:
                    item[f] = None
            conds.append(item)
        if conds:
            patch["conditions"] = conds
        else:
            del patch["conditions"]
    return {"status": patch} if patch else None
