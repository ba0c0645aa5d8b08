"""The PersistentVolume binder (upstream's pkg/controller/volume/persistentvolume) and the default StorageClass.

At start the StorageClass `local-path` (default class, provisioner `rancher.io/local-path`,
WaitForFirstConsumer, reclaim Delete) is created when absent.  Claims without a class get the default one
(retroactive default class assignment).  An unbound claim is bound to the smallest Available volume that
matches (class, access modes, capacity, selector, volume mode, node affinity of the selected node); with none
and a class whose provisioner is external, the claim is annotated `volume.kubernetes.io/storage-provisioner`
for that provisioner (event ExternalProvisioning).  WaitForFirstConsumer claims wait for the
`volume.kubernetes.io/selected-node` annotation, which upstream's scheduler sets; while kubelite's scheduler
does not, `selected_node_fallback` sets it from the node of the first scheduled pod using the claim.
Binding writes `spec.claimRef` + phase Bound on the volume and `spec.volumeName` + phase Bound on the claim
with `pv.kubernetes.io/bind-completed` / `pv.kubernetes.io/bound-by-controller`.  A volume whose claim is
gone becomes Released; reclaim policy Retain keeps it so, Delete leaves it to its provisioner (volumes no
provisioner owns go Failed).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from kubelite.api.selectors import SelectorError, try_label_selector_from_dict
from kubelite.api.validation_kinds import parse_quantity
from kubelite.client import ClientError, split_key

from .controller_utils import now_rfc3339
from .endpoints import controller_config
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.persistentvolume")

Obj = dict[str, Any]

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
LOCAL_PATH_CLASS = "local-path"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass
class PersistentVolumeConfig:
    sync_period: float = 15.0  # --pvclaimbinder-sync-period
    create_default_storage_class: bool = True
    default_class_name: str = LOCAL_PATH_CLASS
    default_class_provisioner: str = LOCAL_PATH_PROVISIONER
    # kubelite's scheduler does not set volume.kubernetes.io/selected-node yet: take the node of the first
    # scheduled pod using the claim instead
    selected_node_fallback: bool = True
    workers: int = 1


def default_storage_class(name: str = LOCAL_PATH_CLASS, provisioner: str = LOCAL_PATH_PROVISIONER) -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": provisioner, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}


# ---------------------------------------------------------------------------------------- decisions


def is_default_class(sc: Obj) -> bool:
    ann = sc["metadata"].get("annotations") or {}
    return ann.get(DEFAULT_CLASS_ANNOTATION) == "true" or ann.get(BETA_DEFAULT_CLASS_ANNOTATION) == "true"


def pick_default_class(classes: list[Obj]) -> Obj | None:
    """The newest default class (upstream: most recent creationTimestamp, then name)."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]))


def claim_class(pvc: Obj) -> str:
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def volume_class(pv: Obj) -> str:
    return (pv.get("spec") or {}).get("storageClassName") or ""


def _storage(obj: dict | None) -> float:
    q = parse_quantity(str((obj or {}).get("storage", "0")))
    return float(q) if q is not None else 0.0


def claim_request(pvc: Obj) -> float:
    return _storage(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))


def volume_capacity(pv: Obj) -> float:
    return _storage((pv.get("spec") or {}).get("capacity"))


def node_affinity_allows(pv: Obj, node: Obj | None) -> bool:
    """Does the volume's required node affinity admit `node` (only checked when a node is known)?"""
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms"))
    if not terms or node is None:
        return True
    labels = node["metadata"].get("labels") or {}
    for term in terms:
        ok = True
        for expr in term.get("matchExpressions") or ():
            key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
            have = labels.get(key)
            if op == "In":
                ok = have in values
            elif op == "NotIn":
                ok = have not in values
            elif op == "Exists":
                ok = key in labels
            elif op == "DoesNotExist":
                ok = key not in labels
            else:
                ok = False
            if not ok:
                break
        if ok:
            return True
    return False


def volume_matches(pvc: Obj, pv: Obj, node: Obj | None = None) -> bool:
    """Could `pv` serve `pvc`: same class, access modes, enough capacity, selector, volume mode, node."""
    spec, pspec = pvc.get("spec") or {}, pv.get("spec") or {}
    if volume_class(pv) != claim_class(pvc):
        return False
    if not set(spec.get("accessModes") or ()) <= set(pspec.get("accessModes") or ()):
        return False
    if volume_capacity(pv) < claim_request(pvc):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (pspec.get("volumeMode") or "Filesystem"):
        return False
    if spec.get("selector") is not None:
        try:
            if not try_label_selector_from_dict(spec["selector"]).matches(pv["metadata"].get("labels")):
                return False
        except SelectorError:
            return False
    return node_affinity_allows(pv, node)


def claim_ref_matches(pv: Obj, pvc: Obj) -> bool:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    meta = pvc["metadata"]
    if ref.get("name") != meta["name"] or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def find_best_volume(pvc: Obj, volumes: list[Obj], node: Obj | None = None) -> Obj | None:
    """A volume pre-bound to this claim first; else the smallest matching unclaimed Available one."""
    best = None
    for pv in volumes:
        if pv["metadata"].get("deletionTimestamp"):
            continue
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref:
            if claim_ref_matches(pv, pvc) and volume_matches(pvc, pv, node):
                return pv
            continue
        if (pv.get("status") or {}).get("phase") not in (None, "", "Available"):
            continue
        if not volume_matches(pvc, pv, node):
            continue
        if best is None or volume_capacity(pv) < volume_capacity(best):
            best = pv
    return best


def pods_using_claim(pods: list[Obj], claim_name: str) -> list[Obj]:
    return [p for p in pods
            if any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim_name
                   for v in (p.get("spec") or {}).get("volumes") or ())]


def claim_reference(pvc: Obj) -> Obj:
    meta = pvc["metadata"]
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta.get("namespace"),
            "name": meta["name"], "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")}


# ---------------------------------------------------------------------------------------- controller


class PersistentVolumeBinderController(Controller):
    name = "persistentvolume-binder-controller"
    aliases = ("persistentvolume-binder",)
    event_component = "persistentvolume-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: PersistentVolumeConfig = controller_config(ctx, self.name, PersistentVolumeConfig)
        super().__init__(ctx, workers=self.cfg.workers)
        self.pv_rt = ctx.rt("", "v1", "persistentvolumes")
        self.pvc_rt = ctx.rt("", "v1", "persistentvolumeclaims")
        self.sc_rt = ctx.rt("storage.k8s.io", "v1", "storageclasses")
        self.pod_rt = ctx.rt("", "v1", "pods")
        self.volumes = self.informer(self.pv_rt)
        self.claims = self.informer(self.pvc_rt)
        self.classes = self.informer(self.sc_rt)
        self.pods = self.informer(self.pod_rt)
        self.nodes = self.informer(ctx.rt("", "v1", "nodes"))
        self.volumes.add_handler(self._volume_event, lambda o, n: self._volume_event(n), self._volume_event)
        self.claims.add_handler(self._claim_event, lambda o, n: self._claim_event(n), self._claim_deleted)
        self.classes.add_handler(lambda sc: self._resync_claims(), None, None)
        self.pods.add_handler(self._pod_event, self._pod_updated, None)

    # -- handlers ---------------------------------------------------------------------------------------

    def _volume_event(self, pv: Obj) -> None:
        self.queue.add("volume/" + pv["metadata"]["name"])
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref and ref.get("namespace") and ref.get("name"):
            self.queue.add(f"claim/{ref['namespace']}/{ref['name']}")

    def _claim_event(self, pvc: Obj) -> None:
        self.queue.add(f"claim/{pvc['metadata'].get('namespace')}/{pvc['metadata']['name']}")
        if (pvc.get("spec") or {}).get("volumeName"):
            self.queue.add("volume/" + pvc["spec"]["volumeName"])

    def _claim_deleted(self, pvc: Obj) -> None:
        name = (pvc.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add("volume/" + name)
        for pv in self.volumes.list():
            if claim_ref_matches(pv, pvc):
                self.queue.add("volume/" + pv["metadata"]["name"])

    def _resync_claims(self) -> None:
        for pvc in self.claims.list():
            if not (pvc.get("spec") or {}).get("volumeName"):
                self._claim_event(pvc)

    def _pod_event(self, pod: Obj) -> None:
        if not self.cfg.selected_node_fallback or not (pod.get("spec") or {}).get("nodeName"):
            return
        for v in (pod.get("spec") or {}).get("volumes") or ():
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                self.queue.add(f"claim/{pod['metadata'].get('namespace')}/{claim}")

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName"):
            self._pod_event(new)

    async def start(self) -> None:
        if self.cfg.create_default_storage_class and self.classes.get(None, self.cfg.default_class_name) is None:
            try:
                await self.client.create(self.sc_rt, default_storage_class(self.cfg.default_class_name,
                                                                           self.cfg.default_class_provisioner))
            except ClientError as e:
                if not e.is_already_exists:
                    log.warning("cannot create the default StorageClass: %s", e)
        self.run_periodic(self._resync, self.cfg.sync_period)

    async def _resync(self) -> None:
        for pv in self.volumes.list():
            self.queue.add("volume/" + pv["metadata"]["name"])
        for pvc in self.claims.list():
            self.queue.add(f"claim/{pvc['metadata'].get('namespace')}/{pvc['metadata']['name']}")

    # -- sync -------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "volume":
            pv = self.volumes.get(None, rest)
            if pv is not None:
                await self.sync_volume(pv)
        else:
            ns, name = split_key(rest)
            pvc = self.claims.get(ns, name)
            if pvc is not None:
                await self.sync_claim(pvc)

    def _class(self, name: str) -> Obj | None:
        return self.classes.get(None, name) if name else None

    async def sync_claim(self, pvc: Obj) -> None:
        meta, spec = pvc["metadata"], pvc.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        volume_name = spec.get("volumeName")
        if not volume_name:
            await self._sync_unbound_claim(pvc)
            return
        pv = self.volumes.get(None, volume_name)
        if pv is None:
            if (pvc.get("status") or {}).get("phase") == "Bound":
                await self._claim_status(pvc, "Lost")
                self.recorder.event(pvc, "Warning", "ClaimLost",
                                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref:
            pv = await self._bind_volume(pv, pvc)
            if pv is None:
                return
        elif not claim_ref_matches(pv, pvc):
            if (pvc.get("status") or {}).get("phase") != "Bound":
                self.recorder.event(pvc, "Warning", "FailedBinding",
                                    f'volume "{volume_name}" already bound to a different claim.')
            return
        await self._finish_claim(pvc, pv)

    async def _annotate_claim(self, pvc: Obj, annotations: dict[str, str]) -> None:
        # an update, as upstream's binder does: its RBAC role allows update on claims, not patch
        updated = copy.deepcopy(pvc)
        updated["metadata"].setdefault("annotations", {}).update(annotations)
        await self.client.update(self.pvc_rt, updated)

    async def _sync_unbound_claim(self, pvc: Obj) -> None:
        meta, spec = pvc["metadata"], pvc.get("spec") or {}
        if "storageClassName" not in spec or spec.get("storageClassName") is None:
            default = pick_default_class(self.classes.list())
            if default is not None:
                updated = copy.deepcopy(pvc)
                updated["spec"]["storageClassName"] = default["metadata"]["name"]
                await self.client.update(self.pvc_rt, updated)
                return
        cls = self._class(claim_class(pvc))
        ann = meta.get("annotations") or {}
        selected = ann.get(ANN_SELECTED_NODE)
        delayed = cls is not None and cls.get("volumeBindingMode") == "WaitForFirstConsumer"
        node = self.nodes.get(None, selected) if selected else None
        if not (pvc.get("status") or {}).get("phase"):
            await self._claim_status(pvc, "Pending")
        pv = find_best_volume(pvc, self.volumes.list(), node)
        if delayed and not selected:
            # the scheduler picks the node (and so the volume); without a pod there is nothing to do
            if self.cfg.selected_node_fallback:
                users = [p for p in pods_using_claim(self.pods.list(meta.get("namespace")), meta["name"])
                         if (p.get("spec") or {}).get("nodeName") and not p["metadata"].get("deletionTimestamp")]
                if users:
                    users.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
                    await self._annotate_claim(pvc, {ANN_SELECTED_NODE: users[0]["spec"]["nodeName"]})
                    return
            if pv is None or not (pv.get("spec") or {}).get("claimRef"):
                self.recorder.event(pvc, "Normal", "WaitForFirstConsumer",
                                    "waiting for first consumer to be created before binding")
                return
        if pv is not None:
            bound = await self._bind_volume(pv, pvc)
            if bound is not None:
                claim = await self._bind_claim(pvc, bound)
                if claim is not None:
                    await self._finish_claim(claim, bound)
            return
        if cls is not None and cls.get("provisioner") and cls["provisioner"] != "kubernetes.io/no-provisioner":
            provisioner = cls["provisioner"]
            if ann.get(ANN_STORAGE_PROVISIONER) != provisioner or ann.get(ANN_BETA_STORAGE_PROVISIONER) != provisioner:
                await self._annotate_claim(pvc, {ANN_STORAGE_PROVISIONER: provisioner,
                                                 ANN_BETA_STORAGE_PROVISIONER: provisioner})
            self.recorder.event(pvc, "Normal", "ExternalProvisioning",
                                f"Waiting for a volume to be created either by the external provisioner '{provisioner}' "
                                "or manually by the system administrator. If volume creation is delayed, please "
                                "verify that the provisioner is running and correctly registered.")
            return
        if cls is None and claim_class(pvc):
            self.recorder.event(pvc, "Warning", "ProvisioningFailed",
                                f"storageclass.storage.k8s.io \"{claim_class(pvc)}\" not found")
            return
        self.recorder.event(pvc, "Normal", "FailedBinding",
                            "no persistent volumes available for this claim and no storage class is set")

    async def _bind_volume(self, pv: Obj, pvc: Obj) -> Obj | None:
        """Point the volume at the claim (claimRef, bound-by-controller), phase Bound."""
        spec = pv.get("spec") or {}
        updated = pv
        if not spec.get("claimRef") or not (spec["claimRef"].get("uid")):
            updated = copy.deepcopy(pv)
            updated["spec"]["claimRef"] = claim_reference(pvc)
            if not spec.get("claimRef"):
                updated["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
            try:
                updated = await self.client.update(self.pv_rt, updated)
            except ClientError as e:
                if e.is_not_found:
                    return None
                raise
        return await self._volume_status(updated, "Bound")

    async def _bind_claim(self, pvc: Obj, pv: Obj) -> Obj | None:
        meta = pvc["metadata"]
        ann = meta.get("annotations") or {}
        if (pvc.get("spec") or {}).get("volumeName") == pv["metadata"]["name"] and ann.get(ANN_BIND_COMPLETED) == "yes":
            return pvc
        updated = copy.deepcopy(pvc)
        updated["spec"]["volumeName"] = pv["metadata"]["name"]
        new_ann = updated["metadata"].setdefault("annotations", {})
        new_ann[ANN_BIND_COMPLETED] = "yes"
        new_ann[ANN_BOUND_BY_CONTROLLER] = "yes"
        try:
            return await self.client.update(self.pvc_rt, updated)
        except ClientError as e:
            if e.is_not_found:
                return None
            raise

    async def _finish_claim(self, pvc: Obj, pv: Obj) -> None:
        ann = pvc["metadata"].get("annotations") or {}
        if ann.get(ANN_BIND_COMPLETED) != "yes":
            updated = copy.deepcopy(pvc)
            updated["metadata"].setdefault("annotations", {})[ANN_BIND_COMPLETED] = "yes"
            pvc = await self.client.update(self.pvc_rt, updated)
        status = pvc.get("status") or {}
        pspec = pv.get("spec") or {}
        want = {"phase": "Bound", "accessModes": pspec.get("accessModes") or [],
                "capacity": dict(pspec.get("capacity") or {})}
        if all(status.get(k) == v for k, v in want.items()):
            return
        updated = copy.deepcopy(pvc)
        updated.setdefault("status", {}).update(want)
        await self.client.update_status(self.pvc_rt, updated)
        if (pv.get("status") or {}).get("phase") != "Bound":
            await self._volume_status(pv, "Bound")

    async def _claim_status(self, pvc: Obj, phase: str) -> None:
        updated = copy.deepcopy(pvc)
        updated.setdefault("status", {})["phase"] = phase
        try:
            await self.client.update_status(self.pvc_rt, updated)
        except ClientError as e:
            if not e.is_not_found:
                raise

    async def _volume_status(self, pv: Obj, phase: str, message: str | None = None, reason: str | None = None
                             ) -> Obj:
        status = pv.get("status") or {}
        if status.get("phase") == phase and status.get("message") == message:
            return pv
        updated = copy.deepcopy(pv)
        st = updated.setdefault("status", {})
        if st.get("phase") != phase:
            st["lastPhaseTransitionTime"] = now_rfc3339()
        st["phase"] = phase
        for k, v in (("message", message), ("reason", reason)):
            if v:
                st[k] = v
            else:
                st.pop(k, None)
        return await self.client.update_status(self.pv_rt, updated)

    async def sync_volume(self, pv: Obj) -> None:
        if pv["metadata"].get("deletionTimestamp"):
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        if not ref:
            if phase != "Available":
                await self._volume_status(pv, "Available")
            return
        pvc = self.claims.get(ref.get("namespace"), ref.get("name") or "")
        if pvc is None or (ref.get("uid") and pvc["metadata"].get("uid") != ref.get("uid")):
            if not ref.get("uid"):
                if phase != "Available":
                    await self._volume_status(pv, "Available")  # pre-bound to a claim not yet created
                return
            await self._reclaim(pv)
            return
        if (pvc.get("spec") or {}).get("volumeName") == pv["metadata"]["name"]:
            if phase != "Bound":
                await self._volume_status(pv, "Bound")
        else:
            self.queue.add(f"claim/{pvc['metadata'].get('namespace')}/{pvc['metadata']['name']}")

    async def _reclaim(self, pv: Obj) -> None:
        """The claim is gone: Released, then the reclaim policy."""
        phase = (pv.get("status") or {}).get("phase")
        if phase not in ("Released", "Failed"):
            pv = await self._volume_status(pv, "Released")
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain" or phase == "Failed":
            return
        provisioner = (pv["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY)
        if policy == "Delete" and provisioner and provisioner not in ("kubernetes.io/host-path",):
            return  # the external provisioner deletes the volume
        msg = (f'error getting deleter volume plugin for volume "{pv["metadata"]["name"]}": no deletable volume '
               "plugin matched") if policy == "Delete" else "no volume plugin matched"
        await self._volume_status(pv, "Failed", msg)
        self.recorder.event(pv, "Warning", "VolumeFailedDelete" if policy == "Delete" else "VolumeFailedRecycle", msg)
