"""Resource types and small object builders shared by the client tests."""

from __future__ import annotations

from kubelite.api.resources import Registry

R = Registry()
NAMESPACES = R.get("", "v1", "namespaces")
CONFIGMAPS = R.get("", "v1", "configmaps")
PODS = R.get("", "v1", "pods")
EVENTS = R.get("", "v1", "events")
DEPLOYMENTS = R.get("apps", "v1", "deployments")
LEASES = R.get("coordination.k8s.io", "v1", "leases")


def cm(name: str, namespace: str, labels: dict | None = None, **data: str) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def pod(name: str, namespace: str, node: str | None = None, owner_uid: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                    "uid": owner_uid, "controller": True}]
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
