"""The default plugin set, in upstream's default filter order."""

from __future__ import annotations

from ..framework import Plugin
from .inter_pod_affinity import InterPodAffinity
from .node_affinity import NodeAffinity
from .node_name import NodeName
from .node_ports import NodePorts
from .node_resources import NodeResourcesBalancedAllocation, NodeResourcesFit
from .node_unschedulable import NodeUnschedulable
from .pod_topology_spread import PodTopologySpread
from .taint_toleration import TaintToleration

__all__ = ["InterPodAffinity", "NodeAffinity", "NodeName", "NodePorts", "NodeResourcesBalancedAllocation",
           "NodeResourcesFit", "NodeUnschedulable", "PodTopologySpread", "TaintToleration", "default_plugins"]


def default_plugins() -> tuple[list[Plugin], list[Plugin]]:
    """(filter plugins in order, score plugins)."""
    unsched, name, taint, aff = NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity()
    ports, fit, pts, ipa = NodePorts(), NodeResourcesFit(), PodTopologySpread(), InterPodAffinity()
    balanced = NodeResourcesBalancedAllocation()
    filters: list[Plugin] = [unsched, name, taint, aff, ports, fit, pts, ipa]
    scores: list[Plugin] = [taint, aff, fit, pts, ipa, balanced]
    return filters, scores
