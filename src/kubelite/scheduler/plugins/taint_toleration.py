"""TaintToleration: NoSchedule/NoExecute taints must be tolerated; untolerated PreferNoSchedule taints
lower the score.  Not-ready and unreachable nodes carry the node controller's taints, so they are
filtered here too, as upstream relies on."""

from __future__ import annotations

from ..framework import Plugin, Status, default_normalize, unresolvable
from ..podinfo import tolerates, tolerates_any


def untolerated_message(taint: dict) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '') or ''}}}"


class TaintToleration(Plugin):
    name = "TaintToleration"
    weight = 3

    def filter(self, state, pod, node) -> Status | None:
        for taint in node.hard_taints:
            if not tolerates_any(pod.tolerations, taint):
                return unresolvable(self.name, untolerated_message(taint))
        return None

    def pre_score(self, state, pod, nodes, cache) -> Status | None:
        state["taint.prefer"] = [t for t in pod.tolerations if (t.get("effect") or "PreferNoSchedule")
                                 == "PreferNoSchedule"]
        return None

    def score(self, state, pod, node) -> int:
        tols = state.get("taint.prefer", [])
        return sum(1 for t in node.soft_taints if not any(tolerates(x, t) for x in tols))

    def normalize(self, state, pod, scores) -> None:
        default_normalize(scores, reverse=True)
