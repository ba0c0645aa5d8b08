"""What the pod network reads from and writes to Node objects (pure).

A node's "lease", in flannel's words, is its `spec.podCIDR` (IPv4 entry of `spec.podCIDRs`), its public IP
(the `public-ip` annotation, else its InternalIP) and its backend's data from the annotations flannel's
kube subnet manager keeps: `backend-type`, `backend-data` (`{"VNI":1,"VtepMAC":"…"}` for vxlan, `null` for
host-gw), `public-ip`, `kube-subnet-manager: "true"`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from .config import (
    BACKEND_DATA_ANNOTATION,
    BACKEND_TYPE_ANNOTATION,
    PUBLIC_IP_ANNOTATION,
    SUBNET_MANAGER_ANNOTATION,
    FlannelConfig,
)

Obj = dict[str, Any]
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _ipv4(value: Any) -> ipaddress.IPv4Address | None:
    try:
        addr = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return addr if isinstance(addr, ipaddress.IPv4Address) else None


def pod_cidr(node: Obj) -> ipaddress.IPv4Network | None:
    """The node's IPv4 pod CIDR (`spec.podCIDRs` first, as dual-stack nodes list both families)."""
    spec = node.get("spec") or {}
    for cidr in [*(spec.get("podCIDRs") or []), spec.get("podCIDR")]:
        try:
            net = ipaddress.ip_network(cidr, strict=False) if isinstance(cidr, str) else None
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network):
            return net
    return None


def internal_ip(node: Obj) -> str | None:
    """The node's first IPv4 InternalIP."""
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP" and _ipv4(addr.get("address")):
            return str(_ipv4(addr["address"]))
    return None


def normalize_mac(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    mac = value.strip().lower().replace("-", ":")
    return mac if _MAC.match(mac) else None


def vtep_mac_for(node_name: str) -> str:
    """A stable, locally administered unicast MAC for the node's VTEP (kept across restarts, so peers' FDB
    and neighbour entries stay valid while the agent is down)."""
    b = bytearray(hashlib.sha256(("kubelite-vtep/" + node_name).encode()).digest()[:6])
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


@dataclass(frozen=True)
class Lease:
    """Another node as the network sees it."""

    node: str
    subnet: ipaddress.IPv4Network
    public_ip: str
    backend_type: str | None  # None: not annotated yet
    vtep_mac: str | None  # vxlan only
    vni: int | None


def node_lease(node: Obj) -> tuple[Lease | None, str]:
    """The node's lease, or None and why not."""
    name = (node.get("metadata") or {}).get("name") or ""
    subnet = pod_cidr(node)
    if subnet is None:
        return None, "no IPv4 podCIDR"
    ann = (node.get("metadata") or {}).get("annotations") or {}
    public = _ipv4(ann.get(PUBLIC_IP_ANNOTATION))
    public_ip = str(public) if public else internal_ip(node)
    if public_ip is None:
        return None, "no IPv4 public-ip annotation or InternalIP"
    backend_type = ann.get(BACKEND_TYPE_ANNOTATION) or None
    mac = vni = None
    raw = ann.get(BACKEND_DATA_ANNOTATION)
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict):
            mac = normalize_mac(data.get("VtepMAC"))
            vni = data.get("VNI") if isinstance(data.get("VNI"), int) else None
    return Lease(name, subnet, public_ip, backend_type, mac, vni), ""


def own_annotations(config: FlannelConfig, public_ip: str, vtep_mac: str | None) -> dict[str, str]:
    """The annotations this node writes on its own Node (flannel's spelling)."""
    if config.backend == "vxlan":
        data = json.dumps({"VNI": config.vni, "VtepMAC": vtep_mac}, separators=(",", ":"))
    else:
        data = "null"
    return {BACKEND_TYPE_ANNOTATION: config.backend, BACKEND_DATA_ANNOTATION: data,
            PUBLIC_IP_ANNOTATION: public_ip, SUBNET_MANAGER_ANNOTATION: "true"}


def annotations_patch(node: Obj | None, wanted: dict[str, str]) -> Obj | None:
    """A merge patch setting `wanted` on the node, or None when it already carries them."""
    have = ((node or {}).get("metadata") or {}).get("annotations") or {}
    diff = {k: v for k, v in wanted.items() if have.get(k) != v}
    return {"metadata": {"annotations": diff}} if diff else None


__all__ = ["Lease", "annotations_patch", "internal_ip", "node_lease", "normalize_mac", "own_annotations", "pod_cidr",
           "vtep_mac_for"]
