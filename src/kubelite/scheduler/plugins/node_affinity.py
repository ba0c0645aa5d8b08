"""NodeAffinity: spec.nodeSelector and required node affinity filter; preferred terms score."""

from __future__ import annotations

from ..framework import SKIP, Plugin, Status, default_normalize, unresolvable
from ..podinfo import PodInfo, term_matches

REASON = "node(s) didn't match Pod's node affinity/selector"


def node_matches(pod: PodInfo, labels: dict[str, str], node_name: str) -> bool:
    for k, v in pod.node_selector.items():
        if labels.get(k) != v:
            return False
    if pod.required_terms is not None:
        return any(term_matches(t, labels, node_name) for t in pod.required_terms)
    return True


class NodeAffinity(Plugin):
    name = "NodeAffinity"
    weight = 2

    def pre_filter(self, state, pod, cache) -> Status | None:
        if not pod.node_selector and pod.required_terms is None:
            return Status(SKIP)
        return None

    def filter(self, state, pod, node) -> Status | None:
        if not node_matches(pod, node.labels, node.name):
            return unresolvable(self.name, REASON)
        return None

    def pre_score(self, state, pod, nodes, cache) -> Status | None:
        return None if pod.preferred_terms else Status(SKIP)

    def score(self, state, pod, node) -> int:
        total = 0
        for weight, term in pod.preferred_terms:
            if weight and term_matches(term, node.labels, node.name):
                total += weight
        return total

    def normalize(self, state, pod, scores) -> None:
        default_normalize(scores)
