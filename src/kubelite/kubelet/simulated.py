"""The simulated container runtime: no processes, containers pass through upstream's states on a timetable.

`SimulatedPod.step(pod, now, ...)` advances one pod to `now` and returns the kubelet events to emit and when
it next needs attention; the decisions (what to start, restart, back off) come from `lifecycle`, the status
from `podstatus` — the same code the real kubelet uses.  No I/O here: the agent does the API calls.

Pod annotations drive special behaviour (values are "true"/a number for every container, or
"name=value,name2=value2" for some containers; init containers always finish with exit code 0 after
`init_run_seconds` unless named):

- `kubelite.io/simulate-exit-code: "0"`  containers exit with that code after `run_seconds`
  (→ Completed / Succeeded, or Error / Failed / restarts according to restartPolicy);
- `kubelite.io/simulate-run-seconds: "5"`  how long containers run before such an exit or crash;
- `kubelite.io/simulate-crash: "true"`  containers exit 1 after `crash_seconds`, every time
  (→ Error, restarts with back-off, CrashLoopBackOff);
- `kubelite.io/simulate-image-pull-error: "true"` (or a message)  image pulls fail
  (→ ErrImagePull, then ImagePullBackOff with back-off);
- `kubelite.io/simulate-not-ready: "true"`  containers run but never become Ready;
- `kubelite.io/simulate-start-seconds: "2"`  ContainerCreating lasts that long.

Pods owned by a Job exit 0 after `run_seconds` unless an annotation says otherwise (`job_pods_complete`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import lifecycle as lc
from .podstatus import ContainerState, PodRuntime, is_restartable_init

Obj = dict[str, Any]

ANN_EXIT_CODE = "kubelite.io/simulate-exit-code"
ANN_RUN_SECONDS = "kubelite.io/simulate-run-seconds"
ANN_CRASH = "kubelite.io/simulate-crash"
ANN_PULL_ERROR = "kubelite.io/simulate-image-pull-error"
ANN_NOT_READY = "kubelite.io/simulate-not-ready"
ANN_START_SECONDS = "kubelite.io/simulate-start-seconds"


@dataclass
class SimulatedConfig:
    """Every timing of the simulated nodes (seconds)."""

    sandbox_seconds: float = 0.0  # pod sandbox + network (PodReadyToStartContainers)
    pull_seconds: float = 0.0  # a simulated image pull (reported in the Pulled event)
    start_seconds: float = 0.1  # ContainerCreating → Running
    ready_seconds: float = 0.0  # Running → Ready
    run_seconds: float = 1.0  # a container told to exit runs this long
    init_run_seconds: float = 0.1  # an init container runs this long, then exits 0
    crash_seconds: float = 1.0  # a crashing container runs this long, then exits 1
    termination_seconds: float = 1.0  # a deleted pod goes away after min(its grace period, this)
    backoff_initial: float = lc.DEFAULT_BACKOFF_INITIAL  # CrashLoopBackOff / ImagePullBackOff
    backoff_max: float = lc.DEFAULT_BACKOFF_MAX
    job_pods_complete: bool = True  # pods owned by a Job exit 0 after run_seconds
    # nodes
    capacity: dict[str, str] = field(default_factory=lambda: {
        "cpu": "32", "memory": "263958600Ki", "pods": "110", "ephemeral-storage": "102626232Ki",
        "hugepages-1Gi": "0", "hugepages-2Mi": "0"})
    labels: dict[str, str] = field(default_factory=dict)  # extra labels on every simulated node
    taints: list[Obj] = field(default_factory=list)
    node_ip_cidr: str = "172.30.0.0/16"  # node i gets the (i+2)-th address
    fallback_pod_cidr: str = "10.244.0.0/16"  # per-node /24s from the top, while a node has no spec.podCIDR
    pod_cidr_wait_seconds: float = 10.0  # real pod networks wait this long for the node's spec.podCIDR
    lease_duration_seconds: int = 40
    lease_renew_seconds: float | None = None  # default lease_duration_seconds / 4
    node_status_report_seconds: float = 300.0  # upstream nodeStatusReportFrequency (5 min)
    # the agent
    events: bool = True  # write the kubelet's Events (Pulling, Pulled, Created, Started, Killing, BackOff …)
    # All nodes of one process share one event budget, the upstream kubelet's eventRecordQPS / eventBurst:
    # a burst of thousands of pods does not flood the API server with Events; past it they are dropped.
    event_qps: float = 50.0
    event_burst: int = 100
    workers: int = 32  # concurrent pod syncs / status writes
    # a status whose next change is due this soon is not written; the next one carries both (fewer writes)
    status_coalesce_seconds: float = 0.25

    @property
    def renew_interval(self) -> float:
        return self.lease_renew_seconds if self.lease_renew_seconds else self.lease_duration_seconds / 4


@dataclass
class SimEvent:
    type: str
    reason: str
    message: str
    container: str | None = None  # sets involvedObject.fieldPath


@dataclass
class Behaviour:
    exit_codes: dict[str, int] = field(default_factory=dict)
    all_exit: int | None = None
    run_seconds: float = 1.0
    crash: set[str] | bool = False
    pull_error: str | None = None
    not_ready: bool = False
    start_seconds: float = 0.1

    def exit_code(self, name: str) -> int | None:
        return self.exit_codes.get(name, self.all_exit)

    def crashes(self, name: str) -> bool:
        return self.crash is True or (isinstance(self.crash, set) and name in self.crash)


def _per_container(value: str) -> tuple[str | None, dict[str, str]]:
    if "=" not in value:
        return value.strip(), {}
    named = {}
    for part in value.split(","):
        k, _, v = part.partition("=")
        if k.strip():
            named[k.strip()] = v.strip()
    return None, named


def _float(v: str | None, default: float) -> float:
    try:
        return float(v) if v not in (None, "") else default
    except ValueError:
        return default


def behaviour(pod: Obj, cfg: SimulatedConfig) -> Behaviour:
    ann = pod.get("metadata", {}).get("annotations") or {}
    b = Behaviour(run_seconds=_float(ann.get(ANN_RUN_SECONDS), cfg.run_seconds),
                  start_seconds=_float(ann.get(ANN_START_SECONDS), cfg.start_seconds))
    if ANN_EXIT_CODE in ann:
        whole, named = _per_container(ann[ANN_EXIT_CODE])
        try:
            if whole is not None:
                b.all_exit = int(whole)
            b.exit_codes = {k: int(v) for k, v in named.items()}
        except ValueError:
            pass
    elif cfg.job_pods_complete and any(r.get("kind") == "Job" for r in pod["metadata"].get("ownerReferences") or ()):
        b.all_exit = 0
    crash = ann.get(ANN_CRASH)
    if crash is not None and crash.lower() not in ("false", "0", "no"):
        b.crash = True if crash.lower() in ("true", "", "1", "yes") else {n.strip() for n in crash.split(",")}
    pull = ann.get(ANN_PULL_ERROR)
    if pull is not None and pull.lower() not in ("false", "0", "no"):
        b.pull_error = "" if pull.lower() in ("true", "", "1", "yes") else pull
    b.not_ready = (ann.get(ANN_NOT_READY) or "").lower() in ("true", "1", "yes")
    return b


@functools.lru_cache(maxsize=1024)  # every pod of a Deployment asks for the same few: one string each
def normalize_image(image: str) -> str:
    """docker.io/library/nginx:latest for "nginx", as containerd names images."""
    name, digest = image, ""
    if "@" in name:
        name, _, digest = name.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + ("@" + digest if digest else "")


def image_digest(image: str) -> str:
    return "sha256:" + hashlib.sha256(normalize_image(image).encode()).hexdigest()


@functools.lru_cache(maxsize=1024)
def image_id(image: str) -> str:
    repo = normalize_image(image).split("@")[0]
    base = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    return f"{base}@{image_digest(image)}"


def image_size(image: str) -> int:
    return 5_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:8], 16) % 95_000_000


def pull_error_message(image: str) -> str:
    ref = normalize_image(image)
    return (f"rpc error: code = NotFound desc = failed to pull and unpack image \"{ref}\": failed to resolve "
            f"reference \"{ref}\": {ref}: not found")


_ids = itertools.count(1)


def _container_id(uid: str, name: str) -> str:
    return "simulated://" + hashlib.sha256(f"{uid}/{name}/{next(_ids)}".encode()).hexdigest()


@dataclass
class _Starting:
    at: float  # when it runs
    began: float
    pulled: bool  # an image pull happened (Pulled "Successfully pulled" event on start)
    init: bool


class SimulatedPod:
    """The runtime state of one pod on a simulated node."""

    __slots__ = ("uid", "node_name", "cfg", "rt", "sandbox_at", "starting", "ready_at", "exit_at", "terminate_at",
                 "terminal", "ip")  # one per pod: tens of thousands

    def __init__(self, pod: Obj, cfg: SimulatedConfig, now: float) -> None:
        self.uid: str = pod["metadata"].get("uid", "")
        self.node_name: str = (pod.get("spec") or {}).get("nodeName") or ""
        self.cfg = cfg
        self.rt = PodRuntime(start_time=now)
        self.sandbox_at: float | None = None
        self.starting: dict[str, _Starting] = {}
        self.ready_at: dict[str, float] = {}
        self.exit_at: dict[str, tuple[float, int]] = {}
        self.terminate_at: float | None = None
        self.terminal = False
        self.ip: str | None = None

    # -- the timetable --------------------------------------------------------------------------------

    def step(self, pod: Obj, now: float, *, backoff: lc.BackOff, image_backoff: lc.BackOff,
             images: set[str], alloc_ip: Callable[[], str | None]) -> tuple[list[SimEvent], float | None]:
        """Advance to `now`; returns (events to emit, absolute time of the next change or None)."""
        events: list[SimEvent] = []
        for _ in range(8):  # zero-delay transitions chain within one step
            wake = self._step_once(pod, now, backoff, image_backoff, images, alloc_ip, events)
            if wake is None or wake > now:
                return events, wake
        return events, now

    def _step_once(self, pod: Obj, now: float, backoff: lc.BackOff, image_backoff: lc.BackOff,
                   images: set[str], alloc_ip: Callable[[], str | None], events: list[SimEvent]) -> float | None:
        cfg = self.cfg
        beh = behaviour(pod, cfg)
        rt = self.rt
        if pod["metadata"].get("deletionTimestamp"):
            return self._terminate(pod, now, events)
        if not rt.sandbox_ready:
            if self.sandbox_at is None:
                self.sandbox_at = now + cfg.sandbox_seconds
            if now < self.sandbox_at:
                return self.sandbox_at
            if not pod.get("spec", {}).get("hostNetwork"):
                self.ip = self.ip or alloc_ip()
                if self.ip is None:
                    return None  # no address yet (no pod CIDR); the agent retries
                rt.pod_ips = [self.ip]
            rt.sandbox_ready = True
        if self.terminal:
            return None
        specs = {c["name"]: c for c in pod.get("spec", {}).get("containers") or []}
        init_specs = {c["name"]: c for c in pod.get("spec", {}).get("initContainers") or []}

        # containers whose start completes
        for name, st in list(self.starting.items()):
            if st.at > now:
                continue
            del self.starting[name]
            spec = (init_specs if st.init else specs).get(name)
            if spec is None:
                continue
            table = rt.init_containers if st.init else rt.containers
            prev = table.get(name)
            image = spec.get("image", "")
            if st.pulled:
                dur = st.at - st.began
                events.append(SimEvent("Normal", lc.EV_PULLED, lc.msg_pulled(image, min(dur, cfg.pull_seconds),
                                                                             min(dur, cfg.pull_seconds),
                                                                             image_size(image)), name))
            cs = ContainerState(name=name, state="running", started_at=st.at, container_id=_container_id(self.uid, name),
                                image=normalize_image(image), image_id=image_id(image), started=True)
            if prev is not None:
                cs.restart_count = prev.restart_count + 1
                cs.last_terminated = prev.terminated_api() if prev.state == "exited" else prev.last_terminated
            table[name] = cs
            rt.waiting.pop(name, None)
            events.append(SimEvent("Normal", lc.EV_CREATED, lc.msg_created(name), name))
            events.append(SimEvent("Normal", lc.EV_STARTED, lc.msg_started(name), name))
            sidecar = st.init and is_restartable_init(spec)
            if st.init and not sidecar:
                code = beh.exit_codes.get(name, 0)
                self.exit_at[name] = (st.at + cfg.init_run_seconds, code)
            else:
                if beh.crashes(name):
                    self.exit_at[name] = (st.at + max(beh.run_seconds if ANN_RUN_SECONDS in
                                                      (pod["metadata"].get("annotations") or {}) else cfg.crash_seconds,
                                                      0.0), 1)
                elif not sidecar and beh.exit_code(name) is not None:
                    self.exit_at[name] = (st.at + beh.run_seconds, beh.exit_code(name))  # type: ignore[arg-type]
                if not beh.not_ready:
                    self.ready_at[name] = st.at + cfg.ready_seconds

        # readiness and exits
        for name, at in list(self.ready_at.items()):
            if at <= now:
                del self.ready_at[name]
                cs = rt.containers.get(name) or rt.init_containers.get(name)
                if cs is not None and cs.state == "running":
                    cs.ready = True
        for name, (at, code) in list(self.exit_at.items()):
            if at <= now:
                del self.exit_at[name]
                cs = rt.containers.get(name) or rt.init_containers.get(name)
                if cs is not None and cs.state == "running":
                    self._exit(cs, at, code)

        # what next
        acts = lc.compute_pod_actions(pod, rt, now=now, backoff=backoff, starting=set(self.starting))
        for name in acts.backoff_events:
            events.append(SimEvent("Warning", lc.EV_BACKOFF, lc.msg_backoff_restart(name, pod), name))
        for name in acts.kill:
            cs = rt.containers.get(name) or rt.init_containers.get(name)
            if cs is not None and cs.state == "running":
                events.append(SimEvent("Normal", lc.EV_KILLING, lc.msg_killing(name), name))
                self._exit(cs, now, 0)
        wake: float | None = None
        for name, init in [(n, True) for n in acts.start_init] + [(n, False) for n in acts.start]:
            spec = (init_specs if init else specs)[name]
            w = self._begin_start(pod, spec, init, now, beh, image_backoff, images, events)
            if w is not None:
                wake = w if wake is None else min(wake, w)
        if acts.terminal:
            self.terminal = True
        times = [s.at for s in self.starting.values()] + list(self.ready_at.values()) + \
            [a for a, _ in self.exit_at.values()]
        if acts.wake_after is not None:
            times.append(now + acts.wake_after)
        if wake is not None:
            times.append(wake)
        return min(times) if times else None

    def _exit(self, cs: ContainerState, at: float, code: int) -> None:
        cs.state = "exited"
        cs.exit_code = code
        cs.reason = "Completed" if code == 0 else "Error"
        cs.finished_at = at
        cs.ready = False
        cs.started = False
        self.ready_at.pop(cs.name, None)
        self.exit_at.pop(cs.name, None)

    def _begin_start(self, pod: Obj, spec: Obj, init: bool, now: float, beh: Behaviour, image_backoff: lc.BackOff,
                     images: set[str], events: list[SimEvent]) -> float | None:
        name, image = spec["name"], spec.get("image", "")
        if beh.pull_error is not None:
            key = f"{self.uid}_{image}"
            if image_backoff.in_backoff_since_update(key, now):
                prev = self.rt.waiting.get(name)
                if prev is None or prev[0] != "ImagePullBackOff":
                    err = beh.pull_error or pull_error_message(image)
                    msg = f"{lc.msg_backoff_pull(image)}: ErrImagePull: {err}"
                    self.rt.waiting[name] = ("ImagePullBackOff", msg)
                    events.append(SimEvent("Normal", lc.EV_BACKOFF, lc.msg_backoff_pull(image), name))
                    events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_error("ImagePullBackOff"), name))
                e = image_backoff.entries[key]
                return e.last_update + e.backoff
            err = beh.pull_error or pull_error_message(image)
            events.append(SimEvent("Normal", lc.EV_PULLING, lc.msg_pulling(image), name))
            events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_failed_pull(image, err), name))
            events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_error("ErrImagePull"), name))
            image_backoff.next(key, now, now)
            self.rt.waiting[name] = ("ErrImagePull", err)
            return now + min(1.0, image_backoff.get(key))  # show ErrImagePull briefly, then the back-off
        policy = spec.get("imagePullPolicy") or "IfNotPresent"
        pull = policy == "Always" or (policy == "IfNotPresent" and image not in images)
        if pull:
            events.append(SimEvent("Normal", lc.EV_PULLING, lc.msg_pulling(image), name))
            images.add(image)
            delay = self.cfg.pull_seconds + beh.start_seconds
        else:
            events.append(SimEvent("Normal", lc.EV_PULLED, lc.msg_already_present(image), name))
            delay = beh.start_seconds
        self.starting[name] = _Starting(at=now + delay, began=now, pulled=pull, init=init)
        return now + delay

    def _terminate(self, pod: Obj, now: float, events: list[SimEvent]) -> float | None:
        """Graceful deletion: Killing events, then everything stops after min(grace, termination_seconds).
        Returns the deadline; `done(now)` says when the agent may delete the pod."""
        if self.terminate_at is None:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
            phase = (pod.get("status") or {}).get("phase")
            wait = 0.0 if self.terminal or phase in ("Succeeded", "Failed") else min(float(grace),
                                                                                   self.cfg.termination_seconds)
            self.terminate_at = now + wait
            self.starting.clear()
            for cs in list(self.rt.containers.values()) + list(self.rt.init_containers.values()):
                if cs.state == "running":
                    events.append(SimEvent("Normal", lc.EV_KILLING, lc.msg_killing(cs.name), cs.name))
        if now >= self.terminate_at:
            for cs in list(self.rt.containers.values()) + list(self.rt.init_containers.values()):
                if cs.state == "running":
                    self._exit(cs, now, 0)
            return None
        return self.terminate_at

    def termination_done(self, now: float) -> bool:
        return self.terminate_at is not None and now >= self.terminate_at


class SimulatedRuntime:
    """The `runtime.base.Runtime` of simulated nodes: pods that follow the timetable above."""

    adopts_from_status = True

    def __init__(self, cfg: SimulatedConfig) -> None:
        self.cfg = cfg

    def attach(self, notify: Callable[[str], None], pod_cidr: Callable[[str], str]) -> None:
        pass

    def new_pod(self, pod: Obj, now: float) -> SimulatedPod:
        return SimulatedPod(pod, self.cfg, now)

    def release(self, handle: SimulatedPod) -> None:
        pass
