"""What the kubelet does next for a pod — shared by every runtime (upstream's computePodActions, simplified).

`compute_pod_actions(pod, runtime, now=, backoff=)` reads the pod spec and the runtime's `PodRuntime` and says
which containers to start (init containers one at a time in order, sidecars before the next init container,
then all regular containers), which to stop, which must wait in CrashLoopBackOff and for how long, and
whether the pod has reached its end.  Restarts follow restartPolicy (Always / OnFailure / Never; sidecars are
always restarted) with upstream's exponential back-off: the first restart is immediate, then 10 s, 20 s, 40 s
… up to 5 min, reset once a container ran for twice the maximum without failing.  A container the runtime
failed to start (runc create failed: an exit with reason StartError, as containerd reports it) is a failed
container like any other; one whose creation failed before a container existed (`PodRuntime.failed_creates`,
CreateContainerError) is tried again on the same back-off, keeping its reason.

Also here: upstream's event reasons and message wording (v1.33) so every runtime says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .podstatus import CRASH_LOOP_BACK_OFF, PodRuntime, is_restartable_init, restart_policy, should_restart

Obj = dict[str, Any]

DEFAULT_BACKOFF_INITIAL = 10.0
DEFAULT_BACKOFF_MAX = 300.0


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for the values the kubelet prints: `10s`, `1m20s`, `5m0s`, `1.234s`, `500ms`."""
    if seconds == 0:
        return "0s"
    neg = seconds < 0
    s = abs(seconds)
    if s < 1:
        ms = s * 1000
        text = f"{ms:.3f}".rstrip("0").rstrip(".") + "ms" if ms >= 1 else f"{s * 1e6:.0f}µs"
        return ("-" if neg else "") + text
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    sec_text = f"{sec:.9f}".rstrip("0").rstrip(".")
    out = ""
    if h:
        out = f"{int(h)}h{int(m)}m{sec_text}s"
    elif m:
        out = f"{int(m)}m{sec_text}s"
    else:
        out = f"{sec_text}s"
    return ("-" if neg else "") + out


def format_pod(pod: Obj) -> str:
    """Upstream's `format.Pod`: name_namespace(uid)."""
    meta = pod.get("metadata", {})
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid', '')})"


@dataclass
class _Entry:
    backoff: float
    last_update: float


@dataclass
class BackOff:
    """client-go's flowcontrol.Backoff keyed by string: exponential per key, reset after 2×max of quiet."""

    initial: float = DEFAULT_BACKOFF_INITIAL
    maximum: float = DEFAULT_BACKOFF_MAX
    entries: dict[str, _Entry] = field(default_factory=dict)

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        e = self.entries.get(key)
        return e.backoff if e else 0.0

    def next(self, key: str, event_time: float, now: float) -> float:
        e = self.entries.get(key)
        if e is None or self._expired(event_time, e):
            e = self.entries[key] = _Entry(self.initial, now)
        else:
            e.backoff = min(e.backoff * 2, self.maximum)
            e.last_update = now
        return e.backoff

    def in_backoff_since(self, key: str, event_time: float, now: float) -> bool:
        """True while `now` is within the current back-off window that started at `event_time`."""
        e = self.entries.get(key)
        if e is None or self._expired(event_time, e):
            return False
        return now - event_time < e.backoff

    def in_backoff_since_update(self, key: str, now: float) -> bool:
        e = self.entries.get(key)
        if e is None or self._expired(now, e):
            return False
        return now - e.last_update < e.backoff

    def remaining(self, key: str, event_time: float, now: float) -> float:
        e = self.entries.get(key)
        return max(0.0, event_time + e.backoff - now) if e else 0.0

    def forget(self, prefix: str) -> None:
        """Drop every key starting with `prefix` (a deleted pod's uid)."""
        for k in [k for k in self.entries if k.startswith(prefix)]:
            del self.entries[k]

    def gc(self, now: float) -> None:
        for k in [k for k, e in self.entries.items() if now - e.last_update > 2 * self.maximum]:
            del self.entries[k]


@dataclass
class PodActions:
    start_init: list[str] = field(default_factory=list)  # init containers (incl. sidecars) to start now
    start: list[str] = field(default_factory=list)  # regular containers to start now
    kill: list[str] = field(default_factory=list)  # running containers to stop (names, init or regular)
    backoff: dict[str, str] = field(default_factory=dict)  # container -> CrashLoopBackOff message
    backoff_events: list[str] = field(default_factory=list)  # containers whose back-off started now
    wake_after: float | None = None  # seconds until a back-off ends
    terminal: bool = False  # nothing will run again: the pod is Succeeded or Failed

    @property
    def idle(self) -> bool:
        return not (self.start_init or self.start or self.kill)


def backoff_key(pod: Obj, name: str) -> str:
    return f"{pod['metadata'].get('uid', '')}/{name}"


def compute_pod_actions(pod: Obj, rt: PodRuntime, *, now: float, backoff: BackOff,
                        starting: set[str] | frozenset[str] = frozenset()) -> PodActions:
    """The next steps for a pod that is not being deleted.  `starting`: containers the runtime is already
    creating.  Records restarts in `backoff` and CrashLoopBackOff reasons in `rt.waiting`."""
    spec = pod.get("spec", {})
    policy = restart_policy(pod)
    acts = PodActions()

    def restart(name: str, finished_at: float | None, *, crash_loop: bool = True) -> bool:
        """Whether the container may start now; else it waits out its back-off (shown as CrashLoopBackOff
        unless `crash_loop` is False: a failed creation keeps its own reason, as upstream's)."""
        key = backoff_key(pod, name)
        ts = finished_at if finished_at is not None else now
        if backoff.in_backoff_since(key, ts, now):
            msg = (f"back-off {go_duration(backoff.get(key))} restarting failed container={name} "
                   f"pod={format_pod(pod)}")
            if crash_loop:
                if rt.waiting.get(name, ("",))[0] != CRASH_LOOP_BACK_OFF:
                    acts.backoff_events.append(name)
                rt.waiting[name] = (CRASH_LOOP_BACK_OFF, msg)
            acts.backoff[name] = msg
            wait = backoff.remaining(key, ts, now)
            acts.wake_after = wait if acts.wake_after is None else min(acts.wake_after, wait)
            return False
        backoff.next(key, ts, now)
        return True

    # init containers, strictly in order
    for c in spec.get("initContainers") or []:
        name = c["name"]
        cs = rt.init_containers.get(name)
        if name in starting:
            return acts
        sidecar = is_restartable_init(c)
        if cs is None:
            if name not in rt.failed_creates or restart(name, rt.failed_creates[name], crash_loop=False):
                acts.start_init.append(name)
            return acts
        if cs.state in ("running", "created"):
            if sidecar and cs.started:
                continue
            if sidecar and cs.state == "running" and _main_started(pod, rt):
                continue
            return acts
        # exited
        if sidecar:
            if _main_started(pod, rt):
                break  # restarted below with the regular containers
            if restart(name, cs.finished_at):
                acts.start_init.append(name)
            return acts
        if cs.exit_code == 0:
            continue
        if policy == "Never":
            acts.terminal = True
            acts.kill = _running(rt)
            return acts
        if restart(name, cs.finished_at):
            acts.start_init.append(name)
        return acts

    # sidecars that exited after initialization are restarted whatever the pod's policy
    for c in spec.get("initContainers") or []:
        cs = rt.init_containers.get(c["name"])
        if is_restartable_init(c) and cs is not None and cs.state == "exited" and c["name"] not in starting:
            if restart(c["name"], cs.finished_at):
                acts.start_init.append(c["name"])

    active = False
    for c in spec.get("containers") or []:
        name = c["name"]
        cs = rt.containers.get(name)
        if name in starting:
            active = True
            continue
        if cs is None:
            if name not in rt.failed_creates or restart(name, rt.failed_creates[name], crash_loop=False):
                acts.start.append(name)
            active = True
        elif cs.state in ("running", "created"):
            active = True
        elif should_restart(policy, cs.exit_code):
            active = True
            if restart(name, cs.finished_at):
                acts.start.append(name)
    if not active:
        acts.terminal = True
        acts.start_init = []
        acts.kill = [n for n, cs in rt.init_containers.items() if cs.state == "running"]
    return acts


def _main_started(pod: Obj, rt: PodRuntime) -> bool:
    return any(name in rt.containers for name in (c["name"] for c in pod.get("spec", {}).get("containers") or []))


def _running(rt: PodRuntime) -> list[str]:
    return [n for n, cs in list(rt.init_containers.items()) + list(rt.containers.items()) if cs.state == "running"]


# ---------------------------------------------------------------- events (reasons and wording of v1.33)

EV_PULLING = "Pulling"
EV_PULLED = "Pulled"
EV_CREATED = "Created"
EV_STARTED = "Started"
EV_KILLING = "Killing"
EV_BACKOFF = "BackOff"
EV_FAILED = "Failed"


def msg_pulling(image: str) -> str:
    return f'Pulling image "{image}"'


def msg_pulled(image: str, pull_seconds: float, total_seconds: float, size: int) -> str:
    return (f'Successfully pulled image "{image}" in {go_duration(round(pull_seconds, 3))} '
            f"({go_duration(round(total_seconds, 3))} including waiting). Image size: {size} bytes.")


def msg_already_present(image: str) -> str:
    return f'Container image "{image}" already present on machine'


def msg_created(name: str) -> str:
    return f"Created container: {name}"


def msg_started(name: str) -> str:
    return f"Started container {name}"


def msg_killing(name: str) -> str:
    return f"Stopping container {name}"


def msg_backoff_restart(name: str, pod: Obj) -> str:
    return f"Back-off restarting failed container {name} in pod {format_pod(pod)}"


def msg_backoff_pull(image: str) -> str:
    return f'Back-off pulling image "{image}"'


def msg_failed_pull(image: str, err: str) -> str:
    return f'Failed to pull image "{image}": {err}'


def msg_error(reason: str) -> str:
    return f"Error: {reason}"


def field_path(pod: Obj, name: str) -> str:
    """The event's involvedObject.fieldPath for a container: spec.containers{name} / spec.initContainers{name}."""
    for c in pod.get("spec", {}).get("initContainers") or []:
        if c["name"] == name:
            return f"spec.initContainers{{{name}}}"
    return f"spec.containers{{{name}}}"
