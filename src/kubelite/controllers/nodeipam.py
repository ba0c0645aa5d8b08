"""Node IPAM (upstream's pkg/controller/nodeipam, the range allocator): every Node gets `spec.podCIDR` /
`spec.podCIDRs`, a /24 (`node_cidr_mask_size`) of `cluster_cidr` (10.244.0.0/16), handed out in order; a
deleted node's range is free again, and the ranges nodes already hold are taken back into account at start.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from kubelite.client import ClientError

from .endpoints import controller_config
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.nodeipam")

Obj = dict[str, Any]


@dataclass
class NodeIpamConfig:
    # --allocate-node-cidrs is false upstream by default; kubelite has no other pod-network IPAM, so it is on
    allocate_node_cidrs: bool = True
    cluster_cidr: str = "10.244.0.0/16"  # --cluster-cidr
    node_cidr_mask_size: int = 24  # --node-cidr-mask-size (IPv4)
    workers: int = 1


class CIDRSet:
    """Subnets of size /mask within a cluster CIDR; `allocate` hands out the next free one after the last
    allocated (as upstream's cidrset), `occupy` marks one taken, `release` frees it."""

    def __init__(self, cluster_cidr: str, mask: int) -> None:
        self.net = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask < self.net.prefixlen:
            raise ValueError(f"node CIDR mask /{mask} is larger than the cluster CIDR {cluster_cidr}")
        self.mask = mask
        self.count = 2 ** (mask - self.net.prefixlen)
        self.step = 2 ** (self.net.max_prefixlen - mask)
        self.used: set[int] = set()
        self.next = 0

    def _cidr(self, index: int) -> str:
        return f"{ipaddress.ip_address(int(self.net.network_address) + index * self.step)}/{self.mask}"

    def _index(self, cidr: str) -> int | None:
        try:
            sub = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if sub.version != self.net.version or not sub.subnet_of(self.net) or sub.prefixlen != self.mask:
            return None
        return (int(sub.network_address) - int(self.net.network_address)) // self.step

    def allocate(self) -> str | None:
        for i in range(self.count):
            idx = (self.next + i) % self.count
            if idx not in self.used:
                self.used.add(idx)
                self.next = (idx + 1) % self.count
                return self._cidr(idx)
        return None

    def occupy(self, cidr: str) -> bool:
        idx = self._index(cidr)
        if idx is None:
            return False
        self.used.add(idx)
        return True

    def release(self, cidr: str) -> None:
        idx = self._index(cidr)
        if idx is not None:
            self.used.discard(idx)

    def __len__(self) -> int:
        return len(self.used)


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or ())
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


class NodeIpamController(Controller):
    name = "node-ipam-controller"
    aliases = ("nodeipam",)
    event_component = "cidrAllocator"

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: NodeIpamConfig = controller_config(ctx, self.name, NodeIpamConfig)
        super().__init__(ctx, workers=self.cfg.workers)
        self.node_rt = ctx.rt("", "v1", "nodes")
        self.cidrs = CIDRSet(self.cfg.cluster_cidr, self.cfg.node_cidr_mask_size)
        self.owner: dict[str, str] = {}  # cidr → node holding it
        self.nodes = self.informer(self.node_rt)
        self.nodes.add_handler(self.enqueue, self._node_updated, self._node_deleted)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if not node_cidrs(new):
            self.enqueue(new)

    def _node_deleted(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        for cidr in node_cidrs(node):
            if self.owner.get(cidr) == name:
                self.cidrs.release(cidr)
                del self.owner[cidr]
        for cidr in [c for c, n in self.owner.items() if n == name]:  # allocated, not yet seen on the node
            self.cidrs.release(cidr)
            del self.owner[cidr]

    async def start(self) -> None:
        # the ranges nodes already hold, before anything new is handed out
        for node in self.nodes.list():
            for cidr in node_cidrs(node):
                if self.cidrs.occupy(cidr):
                    self.owner[cidr] = node["metadata"]["name"]

    async def sync(self, key: str) -> None:
        if not self.cfg.allocate_node_cidrs:
            return
        node = self.nodes.get(None, key)
        if node is None:
            return
        held = node_cidrs(node)
        if held:
            for cidr in held:
                if self.cidrs.occupy(cidr):
                    self.owner[cidr] = key
            return
        mine = next((c for c, n in self.owner.items() if n == key), None)
        cidr = mine or self.cidrs.allocate()
        if cidr is None:
            self.recorder.event({"kind": "Node", "apiVersion": "v1", "name": key, "uid": key}, "Normal",
                                "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
            log.warning("no pod CIDR left in %s for node %s", self.cfg.cluster_cidr, key)
            return
        self.owner[cidr] = key
        try:
            await self.client.patch(self.node_rt, None, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except ClientError as e:
            if e.is_not_found:
                self.cidrs.release(cidr)
                self.owner.pop(cidr, None)
                return
            raise
