"""The Node authorizer and the NodeRestriction admission plugin.

A kubelet (`system:node:<name>` in group `system:nodes`) may read a secret, configmap, PVC or PV, or ask a
ServiceAccount token, only when a pod bound to its node uses it; everything else it may do is the fixed
node rule set (upstream's NodeRules), further narrowed at admission: only its own Node object (no
`node-restriction.kubernetes.io/` labels, no taint changes), the status of its own pods, mirror pods only.

Upstream keeps a graph fed by informers; we answer from the store, which is always current (a request
from a node costs a scan of the pods in one namespace, or of all pods for PVs).
"""

from __future__ import annotations

from typing import Any

from ..api import errors
from . import codec
from .authn import UserInfo
from .rbac import Attrs, rules_allow
from .rbac_bootstrap import NODE_RULES

NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
NODE_LEASE_NAMESPACE = "kube-node-lease"


def node_identity(user: UserInfo) -> tuple[str, bool]:
    """(node name, is a node): upstream's NodeIdentifier."""
    if not user.name.startswith(NODE_PREFIX) or NODES_GROUP not in user.groups:
        return "", False
    return user.name[len(NODE_PREFIX):], True


# ---------------------------------------------------------------- what a pod references


def _containers(spec: dict[str, Any]):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or ()


def pod_secret_names(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    names = {s.get("name", "") for s in spec.get("imagePullSecrets") or ()}
    for c in _containers(spec):
        for src in c.get("envFrom") or ():
            if src.get("secretRef"):
                names.add(src["secretRef"].get("name", ""))
        for env in c.get("env") or ():
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref.get("name", ""))
    for vol in spec.get("volumes") or ():
        if vol.get("secret"):
            names.add(vol["secret"].get("secretName", ""))
        for src in (vol.get("projected") or {}).get("sources") or ():
            if src.get("secret"):
                names.add(src["secret"].get("name", ""))
        for plugin in ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos"):
            ref = (vol.get(plugin) or {}).get("secretRef")
            if ref:
                names.add(ref.get("name", ""))
        if vol.get("azureFile"):
            names.add(vol["azureFile"].get("secretName", ""))
        ref = (vol.get("csi") or {}).get("nodePublishSecretRef")
        if ref:
            names.add(ref.get("name", ""))
    names.discard("")
    return names


def pod_configmap_names(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for c in _containers(spec):
        for src in c.get("envFrom") or ():
            if src.get("configMapRef"):
                names.add(src["configMapRef"].get("name", ""))
        for env in c.get("env") or ():
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                names.add(ref.get("name", ""))
    for vol in spec.get("volumes") or ():
        if vol.get("configMap"):
            names.add(vol["configMap"].get("name", ""))
        for src in (vol.get("projected") or {}).get("sources") or ():
            if src.get("configMap"):
                names.add(src["configMap"].get("name", ""))
    names.discard("")
    return names


def pod_pvc_names(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    pod_name = (pod.get("metadata") or {}).get("name", "")
    names: set[str] = set()
    for vol in spec.get("volumes") or ():
        if vol.get("persistentVolumeClaim"):
            names.add(vol["persistentVolumeClaim"].get("claimName", ""))
        if vol.get("ephemeral"):
            names.add(f"{pod_name}-{vol.get('name', '')}")
    names.discard("")
    return names


# ---------------------------------------------------------------- the authorizer


class NodeAuthorizer:
    def __init__(self, store) -> None:
        self.store = store

    async def _pods_on(self, node: str, namespace: str | None) -> list[dict[str, Any]]:
        prefix = f"/registry/pods/{namespace}/" if namespace else "/registry/pods/"
        result = await self.store.list(prefix)
        pods = []
        for kv in result.items:
            pod = codec.decode_kv(kv)
            if (pod.get("spec") or {}).get("nodeName") == node:
                pods.append(pod)
        return pods

    async def authorize(self, user: UserInfo, attrs: Attrs) -> tuple[str, str]:
        """("allow" | "no-opinion", reason)."""
        node, is_node = node_identity(user)
        if not is_node:
            return "no-opinion", ""
        if not node:
            return "no-opinion", f'unknown node for user "{user.name}"'
        if attrs.is_resource and attrs.group == "":
            r = attrs.resource
            if r in ("secrets", "configmaps"):
                return await self._read_namespaced(node, attrs)
            if r == "persistentvolumeclaims":
                if attrs.subresource == "status":
                    return await self._pvc_status(node, attrs)
                return await self._get(node, attrs)
            if r == "persistentvolumes":
                return await self._get(node, attrs)
            if r == "serviceaccounts":
                return await self._create_token(node, attrs)
        if attrs.is_resource and attrs.group == "coordination.k8s.io" and attrs.resource == "leases":
            return self._lease(node, attrs)
        if attrs.is_resource and attrs.group == "storage.k8s.io" and attrs.resource == "csinodes":
            return self._csinode(node, attrs)
        if rules_allow(attrs, NODE_RULES):
            return "allow", ""
        return "no-opinion", ""

    def _no_relationship(self, node: str) -> tuple[str, str]:
        return "no-opinion", f"no relationship found between node '{node}' and this object"

    async def _read_namespaced(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if attrs.verb not in ("get", "list", "watch"):
            return "no-opinion", "can only read resources of this type"
        if attrs.subresource:
            return "no-opinion", "cannot read subresource"
        if not attrs.namespace:
            return "no-opinion", "can only read namespaced object of this type"
        return await self._related(node, attrs)

    async def _get(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if attrs.verb != "get":
            return "no-opinion", "can only get individual resources of this type"
        if attrs.subresource:
            return "no-opinion", "cannot get subresource"
        return await self._related(node, attrs)

    async def _pvc_status(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if attrs.verb not in ("update", "patch"):
            return "no-opinion", "can only get/update/patch this type"
        return await self._related(node, attrs)

    async def _create_token(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if attrs.verb != "create" or not attrs.name:
            return "no-opinion", "can only create tokens for individual service accounts"
        if attrs.subresource != "token":
            return "no-opinion", "can only create token subresource of serviceaccount"
        return await self._related(node, attrs)

    def _lease(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return "no-opinion", "can only get, create, update, patch, or delete a node lease"
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return "no-opinion", f"can only access leases in the {NODE_LEASE_NAMESPACE} system namespace"
        if attrs.verb != "create" and attrs.name != node:
            return "no-opinion", "can only access node lease with the same name as the requesting node"
        return "allow", ""

    def _csinode(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return "no-opinion", "can only get, create, update, patch, or delete a CSINode"
        if attrs.subresource:
            return "no-opinion", "cannot authorize CSINode subresources"
        if attrs.verb != "create" and attrs.name != node:
            return "no-opinion", "can only access CSINode with the same name as the requesting node"
        return "allow", ""

    async def _related(self, node: str, attrs: Attrs) -> tuple[str, str]:
        if not attrs.name:
            return "no-opinion", "No Object name found"
        r, name = attrs.resource, attrs.name
        if r == "persistentvolumes":
            for pod in await self._pods_on(node, None):
                ns = pod["metadata"].get("namespace", "")
                for claim in pod_pvc_names(pod):
                    kv = await self.store.get(f"/registry/persistentvolumeclaims/{ns}/{claim}")
                    if kv is not None and (codec.decode_kv(kv).get("spec") or {}).get("volumeName") == name:
                        return "allow", ""
            return self._no_relationship(node)
        for pod in await self._pods_on(node, attrs.namespace):
            if r == "secrets" and name in pod_secret_names(pod):
                return "allow", ""
            if r == "configmaps" and name in pod_configmap_names(pod):
                return "allow", ""
            if r == "persistentvolumeclaims" and name in pod_pvc_names(pod):
                return "allow", ""
            if r == "serviceaccounts" and (pod.get("spec") or {}).get("serviceAccountName", "default") == name:
                return "allow", ""
        return self._no_relationship(node)


# ---------------------------------------------------------------- NodeRestriction admission

# Labels a kubelet may set on its own Node (upstream's kubelet label allow-list).
_KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os", "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
})
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _is_kubelet_label(key: str) -> bool:
    if key in _KUBELET_LABELS:
        return True
    ns = _label_namespace(key)
    return any(ns == n or ns.endswith("." + n) for n in _KUBELET_LABEL_NAMESPACES)


def _is_kubernetes_label(key: str) -> bool:
    ns = _label_namespace(key)
    return ns in ("kubernetes.io", "k8s.io") or ns.endswith((".kubernetes.io", ".k8s.io"))


def forbidden_labels(new: dict[str, str], old: dict[str, str]) -> list[str]:
    modified = {k for k, v in new.items() if old.get(k) != v} | {k for k, v in old.items() if new.get(k) != v}
    bad = set()
    for key in modified:
        ns = _label_namespace(key)
        if ns == "node-restriction.kubernetes.io" or ns.endswith(".node-restriction.kubernetes.io"):
            bad.add(key)
        if _is_kubernetes_label(key) and not _is_kubelet_label(key):
            bad.add(key)
    return sorted(bad)


def _forbidden(rt, name: str, why: str) -> errors.ApiError:
    return errors.forbidden(rt.resource, rt.group, name, why)


def make_node_restriction(current_user):
    """The NodeRestriction admission plugin; `current_user()` gives the requesting user."""

    async def node_restriction(ctx, op, rt, obj, old, info, dry) -> None:
        user = current_user()
        if user is None:
            return
        node, is_node = node_identity(user)
        if not is_node:
            return
        name = info.name or ((obj or {}).get("metadata") or {}).get("name", "")
        if not node:
            raise _forbidden(rt, name, f'could not determine node from user "{user.name}"')
        if rt.group == "" and rt.resource == "pods":
            await _admit_pod(ctx, node, op, rt, obj, old, info, name)
        elif rt.group == "" and rt.resource == "nodes":
            _admit_node(node, op, rt, obj, old, name)
        elif rt.group == "" and rt.resource == "persistentvolumeclaims" and info.subresource != "status":
            raise _forbidden(rt, name, "may only update PVC status")

    return node_restriction


async def _admit_pod(ctx, node, op, rt, obj, old, info, name) -> None:
    sub = info.subresource
    if sub == "status":
        if op != "UPDATE":
            raise _forbidden(rt, name, f'unexpected operation "{op.capitalize()}"')
        if ((old or {}).get("spec") or {}).get("nodeName") != node:
            raise _forbidden(rt, name, f'node "{node}" can only update pod status for pods with spec.nodeName '
                                       f"set to itself")
        if ((obj or {}).get("metadata") or {}).get("labels") != ((old or {}).get("metadata") or {}).get("labels"):
            raise _forbidden(rt, name, f'node "{node}" cannot update labels through pod status')
        return
    if sub == "eviction":
        return
    if sub:
        raise _forbidden(rt, name, f"unexpected pod subresource \"{sub}\", only 'status' and 'eviction' are allowed")
    if op == "DELETE":
        if ((old or {}).get("spec") or {}).get("nodeName") != node:
            raise _forbidden(rt, name, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        return
    if op != "CREATE":
        raise _forbidden(rt, name, f'unexpected operation "{op.capitalize()}", node "{node}" can only create and '
                                   f"delete mirror pods")
    pod = obj or {}
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
        raise _forbidden(rt, name, f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only '
                                   f"create mirror pods")
    if spec.get("nodeName") != node:
        raise _forbidden(rt, name, f'node "{node}" can only create pods with spec.nodeName set to itself')
    owners = meta.get("ownerReferences") or []
    if len(owners) > 1:
        raise _forbidden(rt, name, f'node "{node}" can only create pods with a single owner reference set to itself')
    if not owners or owners[0].get("apiVersion") != "v1" or owners[0].get("kind") != "Node" \
            or owners[0].get("name") != node:
        raise _forbidden(rt, name, f'node "{node}" can only create pods with an owner reference set to itself')
    if not owners[0].get("controller"):
        raise _forbidden(rt, name, f'node "{node}" can only create pods with a controller owner reference set to '
                                   f"itself")
    if owners[0].get("blockOwnerDeletion"):
        raise _forbidden(rt, name, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
    kv = await ctx.store.get(f"/registry/minions/{node}")
    if kv is None:
        raise errors.not_found("nodes", "", node)
    uid = codec.decode_kv(kv)["metadata"].get("uid")
    if owners[0].get("uid") != uid:
        raise _forbidden(rt, name, f"node {node} UID mismatch: expected {uid} got {owners[0].get('uid')}")
    if spec.get("serviceAccountName"):
        raise _forbidden(rt, name, f'node "{node}" can not create pods that reference a service account')
    if pod_secret_names(pod):
        raise _forbidden(rt, name, f'node "{node}" can not create pods that reference secrets')
    if pod_configmap_names(pod):
        raise _forbidden(rt, name, f'node "{node}" can not create pods that reference configmaps')
    if any(v.get("persistentVolumeClaim") for v in spec.get("volumes") or ()):
        raise _forbidden(rt, name, f'node "{node}" can not create pods that reference persistentvolumeclaims')


def _admit_node(node, op, rt, obj, old, name) -> None:
    if name != node:
        raise _forbidden(rt, name, f'node "{node}" is not allowed to modify node "{name}"')
    new_node = obj or {}
    labels = (new_node.get("metadata") or {}).get("labels") or {}
    if op == "CREATE":
        if (new_node.get("spec") or {}).get("configSource") is not None:
            raise _forbidden(rt, name, f'node "{node}" is not allowed to create pods with a non-nil configSource')
        bad = forbidden_labels(labels, {})
        if bad:
            raise _forbidden(rt, name, f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}')
    elif op == "UPDATE":
        old_node = old or {}
        new_source = (new_node.get("spec") or {}).get("configSource")
        if new_source is not None and new_source != (old_node.get("spec") or {}).get("configSource"):
            raise _forbidden(rt, name, f'node "{node}" is not allowed to update configSource to a new non-nil '
                                       f"configSource")
        if (new_node.get("spec") or {}).get("taints") != (old_node.get("spec") or {}).get("taints"):
            raise _forbidden(rt, name, f'node "{node}" is not allowed to modify taints')
        bad = forbidden_labels(labels, (old_node.get("metadata") or {}).get("labels") or {})
        if bad:
            raise _forbidden(rt, name, f"is not allowed to modify labels: {', '.join(bad)}")
