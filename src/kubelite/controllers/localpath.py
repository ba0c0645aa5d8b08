"""The local-path provisioner (after rancher/local-path-provisioner): claims annotated for provisioner
`rancher.io/local-path` get a hostPath PersistentVolume `pvc-<uid>` at
`<storage_path>/pvc-<uid>_<namespace>_<name>` (DirectoryOrCreate) on the node the claim was scheduled to
(`volume.kubernetes.io/selected-node`), with required node affinity to that node, pre-bound to the claim; the
binder completes the binding.  Released volumes with reclaim policy Delete are deleted; the directory goes too
when the volume is on this machine's node (`local_node`, set by `kubelite up`), and is otherwise recorded in
`cleanups` (upstream runs a helper pod on that node to remove it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import shutil
from dataclasses import dataclass, field
from typing import Any

from kubelite.client import ClientError, split_key

from .endpoints import controller_config
from .manager import Controller, ControllerContext
from .persistentvolume import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    HOSTNAME_LABEL,
    LOCAL_PATH_PROVISIONER,
    claim_reference,
)

log = logging.getLogger("kubelite.controllers.localpath")

Obj = dict[str, Any]
ANN_LOCAL_SELECTED_NODE = "local.path.provisioner/selected-node"
SUPPORTED_ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")


@dataclass
class LocalPathConfig:
    provisioner_name: str = LOCAL_PATH_PROVISIONER
    # the base directory on the nodes: `kubelite controller-manager --default-local-storage-path` (default
    # below), `kubelite up` passes <data-dir>/storage as k3s does; the kubelet creates the directory
    storage_path: str = "/var/lib/kubelite/storage"
    # the node on the controller-manager's own machine (`kubelite up`): a deleted volume's directory there is
    # removed at once; on other nodes it is left (upstream runs a helper pod on the node for that)
    local_node: str = ""
    workers: int = 2


@dataclass
class Cleanup:
    node: str
    path: str
    volume: str


@dataclass
class ProvisionDecision:
    volume: Obj | None = None
    error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _within(path: str, base: str) -> bool:
    """`path` is a volume directory of ours: directly in `base`, named pvc-…, no link on the way out of it."""
    if not path or not base:
        return False
    real, root = os.path.realpath(path), os.path.realpath(base)
    return os.path.dirname(real) == root and os.path.basename(real).startswith("pvc-")


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def volume_name(pvc: Obj) -> str:
    return f"pvc-{pvc['metadata'].get('uid', '')}"


def volume_path(storage_path: str, pvc: Obj) -> str:
    meta = pvc["metadata"]
    return posixpath.join(storage_path, f"{volume_name(pvc)}_{meta.get('namespace')}_{meta['name']}")


def wants_provisioning(pvc: Obj, provisioner: str) -> bool:
    ann = pvc["metadata"].get("annotations") or {}
    return ((ann.get(ANN_STORAGE_PROVISIONER) or ann.get(ANN_BETA_STORAGE_PROVISIONER)) == provisioner
            and not (pvc.get("spec") or {}).get("volumeName") and not pvc["metadata"].get("deletionTimestamp"))


def provision(pvc: Obj, sc: Obj | None, cfg: LocalPathConfig) -> ProvisionDecision:
    """The PersistentVolume for a claim, or why there is none (the message of ProvisioningFailed)."""
    if sc is None:
        return ProvisionDecision(error=f'storageclass.storage.k8s.io "{(pvc.get("spec") or {}).get("storageClassName")}" '
                                       "not found")
    spec = pvc.get("spec") or {}
    modes = spec.get("accessModes") or []
    if any(m not in SUPPORTED_ACCESS_MODES for m in modes):
        return ProvisionDecision(error="NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes")
    if (spec.get("volumeMode") or "Filesystem") != "Filesystem":
        return ProvisionDecision(error="local-path-provisioner only supports the Filesystem volume mode")
    node = (pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
    if not node:
        return ProvisionDecision(error="configuration error, no node was specified")
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
    path = volume_path(cfg.storage_path, pvc)
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc),
                     "annotations": {ANN_PROVISIONED_BY: cfg.provisioner_name, ANN_LOCAL_SELECTED_NODE: node}},
        "spec": {
            "capacity": {"storage": request},
            "accessModes": list(modes) or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": claim_reference(pvc),
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}]}},
        },
    }
    if sc.get("mountOptions"):
        pv["spec"]["mountOptions"] = list(sc["mountOptions"])
    return ProvisionDecision(volume=pv)


def should_delete(pv: Obj, provisioner: str) -> bool:
    return ((pv["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY) == provisioner
            and (pv.get("status") or {}).get("phase") == "Released"
            and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"
            and not pv["metadata"].get("deletionTimestamp"))


class LocalPathProvisioner(Controller):
    name = "local-path-provisioner"
    aliases = ("localpath",)
    event_component = LOCAL_PATH_PROVISIONER
    service_account = "local-path-provisioner-service-account"  # k3s's, with its role (rbac_bootstrap.py)

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: LocalPathConfig = controller_config(ctx, self.name, LocalPathConfig)
        super().__init__(ctx, workers=self.cfg.workers)
        self.pv_rt = ctx.rt("", "v1", "persistentvolumes")
        self.pvc_rt = ctx.rt("", "v1", "persistentvolumeclaims")
        self.sc_rt = ctx.rt("storage.k8s.io", "v1", "storageclasses")
        self.volumes = self.informer(self.pv_rt)
        self.claims = self.informer(self.pvc_rt)
        self.classes = self.informer(self.sc_rt)
        self.cleanups: list[Cleanup] = []
        self.claims.add_handler(self._claim, lambda o, n: self._claim(n), None)
        self.volumes.add_handler(self._volume, lambda o, n: self._volume(n), None)

    def _claim(self, pvc: Obj) -> None:
        if wants_provisioning(pvc, self.cfg.provisioner_name):
            self.queue.add(f"claim/{pvc['metadata'].get('namespace')}/{pvc['metadata']['name']}")

    def _volume(self, pv: Obj) -> None:
        if should_delete(pv, self.cfg.provisioner_name):
            self.queue.add("volume/" + pv["metadata"]["name"])

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "volume":
            pv = self.volumes.get(None, rest)
            if pv is not None and should_delete(pv, self.cfg.provisioner_name):
                await self._delete(pv)
            return
        ns, name = split_key(rest)
        pvc = self.claims.get(ns, name)
        if pvc is None or not wants_provisioning(pvc, self.cfg.provisioner_name):
            return
        if self.volumes.get(None, volume_name(pvc)) is not None:
            return  # provisioned already; the binder binds it
        sc = self.classes.get(None, (pvc.get("spec") or {}).get("storageClassName") or "")
        if sc is not None and sc.get("provisioner") != self.cfg.provisioner_name:
            return
        key_text = f"{ns}/{name}"
        self.recorder.event(pvc, "Normal", "Provisioning",
                            f'External provisioner is provisioning volume for claim "{key_text}"')
        decision = provision(pvc, sc, self.cfg)
        if decision.volume is None:
            self.recorder.event(pvc, "Warning", "ProvisioningFailed",
                                f"failed to provision volume with StorageClass "
                                f'"{(pvc.get("spec") or {}).get("storageClassName")}": {decision.error}')
            return
        try:
            await self.client.create(self.pv_rt, decision.volume)
        except ClientError as e:
            if not e.is_already_exists:
                self.recorder.event(pvc, "Warning", "ProvisioningFailed",
                                    f"failed to provision volume with StorageClass "
                                    f'"{sc["metadata"]["name"]}": {e.message}')
                raise
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {volume_name(pvc)}")

    async def _delete(self, pv: Obj) -> None:
        meta, spec = pv["metadata"], pv.get("spec") or {}
        node = (meta.get("annotations") or {}).get(ANN_LOCAL_SELECTED_NODE, "")
        path = (spec.get("hostPath") or {}).get("path", "")
        try:
            await self.client.delete(self.pv_rt, None, meta["name"], preconditions={"uid": meta.get("uid", "")})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise
            return
        if node and node == self.cfg.local_node and _within(path, self.cfg.storage_path):
            await asyncio.get_running_loop().run_in_executor(None, _remove_tree, path)
            log.info("local-path: deleted volume %s and its directory %s", meta["name"], path)
            return
        self.cleanups.append(Cleanup(node=node, path=path, volume=meta["name"]))
        log.info("local-path: deleted volume %s; directory %s on node %s is left for the node to remove",
                 meta["name"], path, node)
