"""NodeResourcesFit (filter + LeastAllocated score) and NodeResourcesBalancedAllocation.

The filter compares the pod's requests with the node's allocatable minus what pods already there (and pods
nominated there by preemption with at least the pod's priority) request; a request larger than the whole
allocatable cannot be solved by preemption (UnschedulableAndUnresolvable), as upstream."""

from __future__ import annotations

from ..framework import MAX_NODE_SCORE, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, Plugin, Status
from ..podinfo import PodInfo


def insufficient(pod: PodInfo, node, *, with_nominated: bool = True) -> tuple[list[str], bool]:
    """(reasons, unresolvable) why `pod` does not fit `node`'s free resources."""
    reasons: list[str] = []
    unres = False
    r = pod.requests
    req = node.req
    cpu, mem, eph, npods = req.cpu, req.memory, req.ephemeral, len(node.pods)
    scal = req.scalars
    if with_nominated and node.nominated:
        scal = dict(scal)
        for other in node.nominated.values():
            if other.uid != pod.uid and other.priority >= pod.priority and other.uid not in node.pods:
                o = other.requests
                cpu += o.cpu
                mem += o.memory
                eph += o.ephemeral
                npods += 1
                for k, v in o.scalars.items():
                    scal[k] = scal.get(k, 0) + v
    if npods + 1 > node.alloc_pods:
        reasons.append("Too many pods")
        if node.alloc_pods < 1:
            unres = True
    if r.cpu > 0 and r.cpu > node.alloc_cpu - cpu:
        reasons.append("Insufficient cpu")
        unres = unres or r.cpu > node.alloc_cpu
    if r.memory > 0 and r.memory > node.alloc_mem - mem:
        reasons.append("Insufficient memory")
        unres = unres or r.memory > node.alloc_mem
    if r.ephemeral > 0 and r.ephemeral > node.alloc.ephemeral - eph:
        reasons.append("Insufficient ephemeral-storage")
        unres = unres or r.ephemeral > node.alloc.ephemeral
    for name, q in r.scalars.items():
        if q > 0:
            have = node.alloc.scalars.get(name, 0)
            if q > have - scal.get(name, 0):
                reasons.append(f"Insufficient {name}")
                unres = unres or q > have
    return reasons, unres


def least_allocated(pod: PodInfo, node) -> int:
    """Mean over cpu and memory of (allocatable - requested) * 100 / allocatable, non-zero requests."""
    total = 0
    for cap, used in ((node.alloc_cpu, node.nz_cpu + pod.nz_cpu), (node.alloc_mem, node.nz_mem + pod.nz_mem)):
        if cap > 0 and used <= cap:
            total += (cap - used) * MAX_NODE_SCORE // cap
    return total // 2


def balanced_allocation(pod: PodInfo, node) -> int:
    """(1 - std deviation of the cpu and memory request fractions) * 100, actual requests."""
    fractions = []
    for cap, used in ((node.alloc_cpu, node.req.cpu + pod.requests.cpu),
                      (node.alloc_mem, node.req.memory + pod.requests.memory)):
        if cap > 0:
            fractions.append(min(used / cap, 1.0))
    if len(fractions) < 2:
        return MAX_NODE_SCORE
    std = abs(fractions[0] - fractions[1]) / 2
    return int((1 - std) * MAX_NODE_SCORE)


class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"
    weight = 1

    def filter(self, state, pod, node) -> Status | None:
        reasons, unres = insufficient(pod, node)
        if reasons:
            return Status(UNSCHEDULABLE_AND_UNRESOLVABLE if unres else UNSCHEDULABLE, tuple(reasons), self.name)
        return None

    def score(self, state, pod, node) -> int:
        return least_allocated(pod, node)


class NodeResourcesBalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def score(self, state, pod, node) -> int:
        return balanced_allocation(pod, node)
