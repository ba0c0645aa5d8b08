"""One scheduling decision: PreFilter → Filter (a sample of nodes) → Score → pick the best node.

As upstream's schedulePod: nodes are searched from a rotating start index and the search stops once
`numFeasibleNodesToFind` nodes fit; a pod's nominated node (from preemption) is tried first.  Pods that no
optional plugin concerns, on nodes without filtering taints, take a fused fast path that checks only the
resource aggregates and computes LeastAllocated + BalancedAllocation inline: plugins that would give every
node the same score are left out, which cannot change the winner.
"""

from __future__ import annotations

import random

from .cache import Cache, NodeInfo
from .config import SchedulerConfig
from .framework import (
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    Diagnosis,
    FitError,
    Plugin,
    Status,
    num_feasible_nodes_to_find,
)
from .plugins import default_plugins
from .podinfo import PodInfo

NO_NODES = "no nodes available to schedule pods"
_FAST_FILTERS = frozenset({"NodeUnschedulable", "TaintToleration", "NodeResourcesFit"})


class NoNodesAvailable(Exception):
    def __str__(self) -> str:
        return NO_NODES


class Algorithm:
    def __init__(self, cache: Cache, config: SchedulerConfig | None = None,
                 rng: random.Random | None = None) -> None:
        self.cache = cache
        self.config = config or SchedulerConfig()
        self.rng = rng or random.Random(self.config.seed)
        self.filters, self.scorers = default_plugins()
        self.next_start = 0

    # -- filters --------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, diagnosis: Diagnosis) -> list[Plugin]:
        active = []
        for pl in self.filters:
            st = pl.pre_filter(state, pod, self.cache)
            if st is None:
                active.append(pl)
            elif st.code != SKIP:
                diagnosis.pre_filter_msg = st.message
                diagnosis.unschedulable_plugins.add(pl.name)
                raise FitError(pod, len(self.cache.node_list), diagnosis)
        return active

    @staticmethod
    def run_filters(active: list[Plugin], state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for pl in active:
            st = pl.filter(state, pod, node)
            if st is not None:
                return st
        return None

    def find_feasible(self, state: CycleState, pod: PodInfo, active: list[Plugin],
                      diagnosis: Diagnosis) -> tuple[list[NodeInfo], bool]:
        nodes = self.cache.node_list
        n = len(nodes)
        want = num_feasible_nodes_to_find(n, self.config.percentage_of_nodes_to_score,
                                          self.config.min_feasible_nodes_to_find)
        fast = pod.spec_simple and all(pl.name in _FAST_FILTERS for pl in active)
        start = self.next_start % n
        order = nodes[start:] + nodes[:start] if start else nodes
        r = pod.requests
        feasible: list[NodeInfo] = []
        statuses = diagnosis.node_status
        if fast and not r.ephemeral and not r.scalars:
            # one C-speed pass finds the nodes the fast check cannot clear; only those get the full filters
            rc = r.cpu if r.cpu else -(1 << 62)
            rm = r.memory if r.memory else -(1 << 62)
            slow = [i for i, ni in enumerate(order) if ni.f_pods <= 0 or rc > ni.f_cpu or rm > ni.f_mem]
        else:
            slow = list(range(n))
        processed = n
        prev = 0
        slow.append(n)
        for i in slow:
            if i > prev:
                need = want - len(feasible)
                if i - prev >= need:
                    feasible.extend(order[prev:prev + need])
                    processed = prev + need
                    break
                feasible.extend(order[prev:i])
            if i == n:
                break
            ni = order[i]
            for pl in active:
                st = pl.filter(state, pod, ni)
                if st is not None:
                    statuses[ni.name] = st
                    diagnosis.unschedulable_plugins.add(pl.name)
                    break
            else:
                feasible.append(ni)
                if len(feasible) >= want:
                    processed = i + 1
                    break
            prev = i + 1
        self.next_start = (start + processed) % n
        return feasible, fast

    # -- scores ---------------------------------------------------------------------------------------

    def _fast_scores(self, pod: PodInfo, feasible: list[NodeInfo]) -> list[int]:
        pc, pm = pod.nz_cpu, pod.nz_mem
        rc, rm = pod.requests.cpu, pod.requests.memory
        sig = (pc, pm, rc, rm)
        out = [ni.memo.get(sig, -1) for ni in feasible]
        for i, ni in enumerate(feasible):
            if out[i] >= 0:
                continue
            ac, am = ni.alloc_cpu, ni.alloc_mem
            uc, um = ni.nz_cpu + pc, ni.nz_mem + pm
            least = ((ac - uc) * MAX_NODE_SCORE // ac if 0 < ac and uc <= ac else 0)
            least += ((am - um) * MAX_NODE_SCORE // am if 0 < am and um <= am else 0)
            if ac > 0 and am > 0:
                fc = (ni.req.cpu + rc) / ac
                fm = (ni.req.memory + rm) / am
                if fc > 1.0:
                    fc = 1.0
                if fm > 1.0:
                    fm = 1.0
                balanced = int((1 - abs(fc - fm) / 2) * MAX_NODE_SCORE)
            else:
                balanced = MAX_NODE_SCORE
            out[i] = ni.memo[sig] = least // 2 + balanced
        return out

    def score(self, state: CycleState, pod: PodInfo, feasible: list[NodeInfo], fast: bool) -> list[int]:
        if fast and not any(ni.soft_taints for ni in feasible):
            return self._fast_scores(pod, feasible)
        totals = [0] * len(feasible)
        for pl in self.scorers:
            st = pl.pre_score(state, pod, feasible, self.cache)
            if st is not None:
                continue
            scores = [pl.score(state, pod, ni) for ni in feasible]
            pl.normalize(state, pod, scores)
            w = pl.weight
            for i, s in enumerate(scores):
                totals[i] += s * w
        return totals

    def select_host(self, feasible: list[NodeInfo], totals: list[int]) -> NodeInfo:
        """The highest total; ties broken uniformly at random, as upstream's selectHost."""
        best = max(totals)
        ties = [i for i, t in enumerate(totals) if t == best]
        return feasible[ties[0] if len(ties) == 1 else self.rng.choice(ties)]

    # -- the whole decision ---------------------------------------------------------------------------

    def schedule(self, pod: PodInfo) -> tuple[NodeInfo, CycleState]:
        """The chosen node (raises FitError / NoNodesAvailable)."""
        if not self.cache.node_list:
            raise NoNodesAvailable()
        state: CycleState = {}
        diagnosis = Diagnosis()
        active = self.pre_filter(state, pod, diagnosis)
        nominated = pod.nominated_node or self.cache.nominated.get(pod.uid, "")
        if nominated:
            ni = self.cache.nodes.get(nominated)
            if ni is not None and ni.node is not None and self.run_filters(active, state, pod, ni) is None:
                return ni, state
        feasible, fast = self.find_feasible(state, pod, active, diagnosis)
        if not feasible:
            raise FitError(pod, len(self.cache.node_list), diagnosis)
        if len(feasible) == 1:
            return feasible[0], state
        totals = self.score(state, pod, feasible, fast)
        return self.select_host(feasible, totals), state

    def filters_for(self, state: CycleState, pod: PodInfo) -> list[Plugin]:
        """The active filters for `pod` (pre-filter run again), for preemption's what-ifs."""
        return self.pre_filter(state, pod, Diagnosis())
