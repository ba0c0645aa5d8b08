"""NodePorts: a hostPort (protocol, port) can be used once per host IP; 0.0.0.0 conflicts with every IP."""

from __future__ import annotations

from ..framework import SKIP, Plugin, Status, unschedulable

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"


def ports_conflict(wanted: list[tuple[str, str, int]], used: dict[tuple[str, int], set[str]]) -> bool:
    for ip, proto, port in wanted:
        ips = used.get((proto, port))
        if not ips:
            continue
        if ip == ANY_IP or ANY_IP in ips or ip in ips:
            return True
    return False


class NodePorts(Plugin):
    name = "NodePorts"

    def pre_filter(self, state, pod, cache) -> Status | None:
        return None if pod.host_ports else Status(SKIP)

    def filter(self, state, pod, node) -> Status | None:
        if ports_conflict(pod.host_ports, node.ports):
            return unschedulable(self.name, REASON)
        return None
