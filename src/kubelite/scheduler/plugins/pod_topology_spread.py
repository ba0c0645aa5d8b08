"""PodTopologySpread: DoNotSchedule constraints filter by skew, ScheduleAnyway constraints score.

Domains are the values of `topologyKey` on nodes that pass the pod's node affinity/selector (nodeAffinityPolicy
Honor, the default) and carry every constraint's key; matching pods are the non-terminating pods of the
pod's namespace selected by the constraint.  With fewer domains than `minDomains`, the global minimum counts
as 0, as upstream."""

from __future__ import annotations

import math

from ..framework import MAX_NODE_SCORE, SKIP, Plugin, Status, unresolvable, unschedulable
from ..podinfo import PodInfo, SpreadConstraint, tolerates_any
from .node_affinity import node_matches

REASON_SKEW = "node(s) didn't match pod topology spread constraints"
REASON_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"


def _eligible(pod: PodInfo, cons: list[SpreadConstraint], node) -> bool:
    if node.node is None:
        return False
    for c in cons:
        if c.topology_key not in node.labels:
            return False
    if any(c.honor_node_affinity for c in cons) and not node_matches(pod, node.labels, node.name):
        return False
    if any(c.honor_taints for c in cons):
        for t in node.hard_taints:
            if not tolerates_any(pod.tolerations, t):
                return False
    return True


def _count(pod: PodInfo, c: SpreadConstraint, node) -> int:
    n = 0
    for other in node.pods.values():
        if other.namespace == pod.namespace and not other.terminating and c.selector.matches(other.labels):
            n += 1
    return n


def _domain_counts(pod: PodInfo, cons: list[SpreadConstraint], cache) -> list[dict[str, int]]:
    counts: list[dict[str, int]] = [{} for _ in cons]
    for node in cache.node_list:
        if not _eligible(pod, cons, node):
            continue
        for i, c in enumerate(cons):
            value = node.labels[c.topology_key]
            counts[i][value] = counts[i].get(value, 0) + _count(pod, c, node)
    return counts


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"
    weight = 2

    def pre_filter(self, state, pod, cache) -> Status | None:
        hard = [c for c in pod.spread if c.hard]
        if not hard:
            return Status(SKIP)
        counts = _domain_counts(pod, hard, cache)
        mins = []
        for i, c in enumerate(hard):
            values = counts[i].values()
            m = min(values) if values else 0
            if len(counts[i]) < c.min_domains:
                m = 0
            mins.append(m)
        state["pts.filter"] = (hard, counts, mins)
        return None

    def filter(self, state, pod, node) -> Status | None:
        hard, counts, mins = state["pts.filter"]
        for c in hard:
            if c.topology_key not in node.labels:
                return unresolvable(self.name, REASON_LABEL)
        for i, c in enumerate(hard):
            value = node.labels[c.topology_key]
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skew = counts[i].get(value, 0) + self_match - mins[i]
            if skew > c.max_skew:
                return unschedulable(self.name, REASON_SKEW)
        return None

    def pre_score(self, state, pod, nodes, cache) -> Status | None:
        soft = [c for c in pod.spread if not c.hard]
        if not soft:
            return Status(SKIP)
        counts = _domain_counts(pod, soft, cache)
        weights = [math.log(len(counts[i]) + 2) for i in range(len(soft))]
        state["pts.score"] = (soft, counts, weights)
        return None

    def score(self, state, pod, node) -> int:
        soft, counts, weights = state["pts.score"]
        total = 0.0
        for i, c in enumerate(soft):
            value = node.labels.get(c.topology_key)
            if value is None:
                return -1  # scored 0 after normalizing
            total += counts[i].get(value, 0) * weights[i] + (c.max_skew - 1)
        return int(round(total))

    def normalize(self, state, pod, scores) -> None:
        valid = [s for s in scores if s >= 0]
        if not valid:
            return
        top, low = max(valid), min(valid)
        for i, s in enumerate(scores):
            if s < 0:
                scores[i] = 0
            elif top == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (top + low - s) // top
