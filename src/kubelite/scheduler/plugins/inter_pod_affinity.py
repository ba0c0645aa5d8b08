"""InterPodAffinity: required pod affinity / anti-affinity (the pod's own and existing pods' anti-affinity)
by topology domain; preferred terms (both ways) score."""

from __future__ import annotations

from ..framework import MAX_NODE_SCORE, SKIP, Plugin, Status, unresolvable, unschedulable

REASON_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI = "node(s) didn't match pod anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"
    weight = 2

    def pre_filter(self, state, pod, cache) -> Status | None:
        if not pod.affinity and not pod.anti_affinity and cache.pods_with_anti_affinity == 0:
            return Status(SKIP)
        ns_labels = cache.namespace_labels
        existing_anti: dict[tuple[str, str], int] = {}
        affinity: dict[tuple[str, str], int] = {}
        anti: dict[tuple[str, str], int] = {}
        for node in cache.nodes.values():
            if node.node is None:
                continue
            labels = node.labels
            for ep in node.pods_with_anti_affinity.values():
                for t in ep.anti_affinity:
                    if t.topology_key in labels and t.matches(pod, ns_labels):
                        k = (t.topology_key, labels[t.topology_key])
                        existing_anti[k] = existing_anti.get(k, 0) + 1
            if not pod.affinity and not pod.anti_affinity:
                continue
            for ep in node.pods.values():
                if pod.affinity and all(t.matches(ep, ns_labels) for t in pod.affinity):
                    for t in pod.affinity:
                        if t.topology_key in labels:
                            k = (t.topology_key, labels[t.topology_key])
                            affinity[k] = affinity.get(k, 0) + 1
                for t in pod.anti_affinity:
                    if t.topology_key in labels and t.matches(ep, ns_labels):
                        k = (t.topology_key, labels[t.topology_key])
                        anti[k] = anti.get(k, 0) + 1
        # the first pod of a group that selects itself may go anywhere the rest allows
        self_ok = not affinity and all(t.matches(pod, ns_labels) for t in pod.affinity)
        state["ipa"] = (existing_anti, affinity, anti, self_ok)
        return None

    def filter(self, state, pod, node) -> Status | None:
        existing_anti, affinity, anti, self_ok = state["ipa"]
        labels = node.labels
        if existing_anti:
            for (key, value) in existing_anti:
                if labels.get(key) == value:
                    return unschedulable(self.name, REASON_EXISTING_ANTI)
        if pod.affinity:
            for t in pod.affinity:
                value = labels.get(t.topology_key)
                if value is None or (not self_ok and affinity.get((t.topology_key, value), 0) <= 0):
                    return unresolvable(self.name, REASON_AFFINITY)
        for t in pod.anti_affinity:
            value = labels.get(t.topology_key)
            if value is not None and anti.get((t.topology_key, value), 0) > 0:
                return unschedulable(self.name, REASON_ANTI)
        return None

    def pre_score(self, state, pod, nodes, cache) -> Status | None:
        mine = pod.preferred_affinity or pod.preferred_anti_affinity
        if not mine and cache.pods_with_affinity == 0:
            return Status(SKIP)
        ns_labels = cache.namespace_labels
        scores: dict[tuple[str, str], int] = {}

        def add(key: str, labels: dict[str, str], w: int) -> None:
            if key in labels:
                k = (key, labels[key])
                scores[k] = scores.get(k, 0) + w

        for node in cache.nodes.values():
            if node.node is None:
                continue
            labels = node.labels
            existing = node.pods.values() if mine else node.pods_with_affinity.values()
            for ep in existing:
                for t in pod.preferred_affinity:
                    if t.matches(ep, ns_labels):
                        add(t.topology_key, labels, t.weight)
                for t in pod.preferred_anti_affinity:
                    if t.matches(ep, ns_labels):
                        add(t.topology_key, labels, -t.weight)
                for t in ep.affinity:
                    if t.matches(pod, ns_labels):
                        add(t.topology_key, labels, HARD_POD_AFFINITY_WEIGHT)
                for t in ep.preferred_affinity:
                    if t.matches(pod, ns_labels):
                        add(t.topology_key, labels, t.weight)
                for t in ep.preferred_anti_affinity:
                    if t.matches(pod, ns_labels):
                        add(t.topology_key, labels, -t.weight)
        if not scores:
            return Status(SKIP)
        state["ipa.score"] = scores
        return None

    def score(self, state, pod, node) -> int:
        total = 0
        labels = node.labels
        for (key, value), w in state["ipa.score"].items():
            if labels.get(key) == value:
                total += w
        return total

    def normalize(self, state, pod, scores) -> None:
        if not scores:
            return
        top, low = max(scores), min(scores)
        spread = top - low
        for i, s in enumerate(scores):
            scores[i] = MAX_NODE_SCORE * (s - low) // spread if spread else 0
