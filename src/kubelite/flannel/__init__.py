"""The built-in pod network between nodes (what k3s bundles flannel for): host-gw routes or a kernel VXLAN
overlay between the nodes' `spec.podCIDR`s, masquerade for traffic leaving the cluster CIDR.

    from kubelite.flannel import FlannelConfig, run_flannel, cleanup

A node component: it imports api/ and client/ only."""

from .agent import FlannelAgent, run_flannel
from .config import BACKENDS, FlannelConfig
from .host import FlannelError, FlannelNetwork, Host, SyncResult, cleanup

__all__ = ["BACKENDS", "FlannelAgent", "FlannelConfig", "FlannelError", "FlannelNetwork", "Host", "SyncResult",
           "cleanup", "run_flannel"]
