"""kubeadm's mark-control-plane phase: once the control plane's own node has registered, label it (ROLES shows
`control-plane`) and, as `kubeadm init` does, taint it so ordinary pods go to the workers.

A kubelet may not set `node-role.kubernetes.io/*` labels on its own Node (NodeRestriction), so this runs with
the administrator's credentials, as kubeadm's phase does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError

log = logging.getLogger("kubelite.bootstrap.controlplane")

NODES = Registry().get("", "v1", "nodes")
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}
UNTAINT_HINT = f"kubectl taint nodes --all {CONTROL_PLANE_LABEL}:NoSchedule-"


def marked(node: dict, *, taint: bool, exclude_from_lb: bool) -> dict | None:
    """The node with the control-plane label (and taint), or None when it already has them."""
    meta = node.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    wanted = {CONTROL_PLANE_LABEL: ""}
    if exclude_from_lb:
        wanted[EXCLUDE_FROM_LB_LABEL] = ""
    spec = dict(node.get("spec") or {})
    taints = [t for t in spec.get("taints") or [] if isinstance(t, dict)]
    has_taint = any(t.get("key") == CONTROL_PLANE_LABEL and t.get("effect") == "NoSchedule" for t in taints)
    if all(k in labels for k in wanted) and (has_taint or not taint):
        return None
    for k, v in wanted.items():
        labels.setdefault(k, v)
    if taint and not has_taint:
        taints.append(dict(CONTROL_PLANE_TAINT))
        spec["taints"] = taints
    return {**node, "metadata": {**meta, "labels": labels}, "spec": spec}


async def mark_control_plane(client: ApiClient, node_name: str, *, taint: bool, exclude_from_lb: bool = False,
                             timeout: float = 120.0, poll: float = 0.2) -> bool:
    """Wait for the node to register, then mark it; False when it never appeared within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            node = await client.get(NODES, None, node_name)
        except ClientError as e:
            if not e.is_not_found:
                log.warning("mark-control-plane: reading node %s: %s", node_name, e.message)
            await asyncio.sleep(poll)
            continue
        except OSError:
            await asyncio.sleep(poll)
            continue
        new = marked(node, taint=taint, exclude_from_lb=exclude_from_lb)
        if new is None:
            return True
        with contextlib.suppress(ClientError):
            await client.update(NODES, new)
            return True
        await asyncio.sleep(poll)  # a conflict with the kubelet's own writes: read again
    return False
