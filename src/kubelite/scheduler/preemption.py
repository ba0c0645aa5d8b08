"""DefaultPreemption, basic: find a node where evicting lower-priority pods lets the pod fit.

For every node the filters rejected in a way preemption can fix (Unschedulable, not
UnschedulableAndUnresolvable), all lower-priority pods are removed in a copy of the node; if the pod then
fits, victims are reprieved highest priority first while the pod still fits.  The candidate with the lowest
highest-victim priority, then the lowest priority sum, then the fewest victims wins.  The pre-filter state
(pod topology spread / inter-pod affinity counts) is not updated for removed victims, so those constraints
are judged conservatively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .algorithm import Algorithm
from .framework import (
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    Diagnosis,
    FitError,
    Status,
    fit_error_message,
    unresolvable,
)
from .podinfo import PodInfo

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass
class PreemptionResult:
    node: str = ""
    victims: list[PodInfo] = field(default_factory=list)
    message: str = ""  # the PostFilter message when no candidate was found


def eligible(pod: PodInfo, algorithm: Algorithm) -> str:
    """"" when the pod may preempt, else upstream's reason."""
    if pod.preemption_never:
        return "not eligible due to preemptionPolicy=Never."
    if pod.nominated_node:
        ni = algorithm.cache.nodes.get(pod.nominated_node)
        if ni is not None:
            for other in ni.pods.values():
                if other.terminating and other.priority < pod.priority:
                    return "not eligible due to a terminating pod on the nominated node."
    return ""


def preempt(algorithm: Algorithm, pod: PodInfo, error: FitError) -> PreemptionResult:
    reason = eligible(pod, algorithm)
    if reason:
        return PreemptionResult(message="preemption: " + reason)
    cache = algorithm.cache
    state: dict = {}
    try:
        active = algorithm.pre_filter(state, pod, Diagnosis())
    except FitError:
        active = None
    statuses: dict[str, Status] = {}
    candidates: list[tuple[tuple[int, int, int], str, list[PodInfo]]] = []
    for ni in cache.node_list:
        st = error.diagnosis.node_status.get(ni.name)
        if active is None or st is None or st.code == UNSCHEDULABLE_AND_UNRESOLVABLE:
            statuses[ni.name] = unresolvable("DefaultPreemption", NOT_HELPFUL)
            continue
        lower = [p for p in ni.pods.values() if p.priority < pod.priority]
        if not lower:
            statuses[ni.name] = unresolvable("DefaultPreemption", NO_VICTIMS)
            continue
        trial = ni.clone()
        trial.nominated = ni.nominated
        for p in lower:
            trial.remove_pod(p.uid)
        st2 = algorithm.run_filters(active, state, pod, trial)
        if st2 is not None:
            statuses[ni.name] = st2
            continue
        lower.sort(key=lambda p: (-p.priority, p.created))
        victims = []
        for p in lower:
            trial.add_pod(p)
            if algorithm.run_filters(active, state, pod, trial) is not None:
                trial.remove_pod(p.uid)
                victims.append(p)
        if not victims:
            statuses[ni.name] = unresolvable("DefaultPreemption", NO_VICTIMS)
            continue
        rank = (max(v.priority for v in victims), sum(v.priority for v in victims), len(victims))
        candidates.append((rank, ni.name, victims))
    if not candidates:
        msg = fit_error_message(len(cache.node_list), statuses, absent_reason=NOT_HELPFUL)
        return PreemptionResult(message="preemption: " + msg)
    candidates.sort(key=lambda c: c[0])
    _, node, victims = candidates[0]
    return PreemptionResult(node=node, victims=victims)
