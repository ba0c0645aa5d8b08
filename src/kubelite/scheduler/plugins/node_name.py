"""NodeName: a pod that names its node fits that node only."""

from __future__ import annotations

from ..framework import SKIP, Plugin, Status, unresolvable

REASON = "node(s) didn't match the requested node name"


class NodeName(Plugin):
    name = "NodeName"

    def pre_filter(self, state, pod, cache) -> Status | None:
        return None if pod.node_name else Status(SKIP)

    def filter(self, state, pod, node) -> Status | None:
        if pod.node_name and pod.node_name != node.name:
            return unresolvable(self.name, REASON)
        return None
