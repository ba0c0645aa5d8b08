"""Node objects for the pod network tests."""

from __future__ import annotations

import json
from typing import Any

from kubelite.flannel.config import (
    BACKEND_DATA_ANNOTATION,
    BACKEND_TYPE_ANNOTATION,
    PUBLIC_IP_ANNOTATION,
    SUBNET_MANAGER_ANNOTATION,
)


def node(name: str, cidr: str | None, ip: str | None, *, backend: str | None = None, mac: str | None = None,
         vni: int = 1, public_ip: str | None = None, extra_addresses: list[dict] | None = None) -> dict[str, Any]:
    ann: dict[str, str] = {}
    if backend:
        ann[BACKEND_TYPE_ANNOTATION] = backend
        ann[BACKEND_DATA_ANNOTATION] = json.dumps({"VNI": vni, "VtepMAC": mac}) if backend == "vxlan" else "null"
        ann[PUBLIC_IP_ANNOTATION] = public_ip or ip or ""
        ann[SUBNET_MANAGER_ANNOTATION] = "true"
    addresses = list(extra_addresses or [])
    if ip:
        addresses.append({"type": "InternalIP", "address": ip})
    addresses.append({"type": "Hostname", "address": name})
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "annotations": ann},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {},
            "status": {"addresses": addresses}}
