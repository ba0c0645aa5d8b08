"""The root CA publisher: a `kube-root-ca.crt` ConfigMap holding the cluster CA in every namespace, so pods
can verify the API server (upstream's pkg/controller/certificates/rootcacertpublisher).  Edits to the
ConfigMap are reverted and deleted ones recreated.  The CA comes from the config (`root_ca_pem`, or
`root_ca_file`: `<data_dir>/pki/ca.crt`)."""

from __future__ import annotations

import copy
import logging
from typing import Any

from kubelite.client import ClientError

from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.rootca")

Obj = dict[str, Any]
CONFIGMAP_NAME = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. "
               "No other usage is guaranteed across distributions of Kubernetes clusters.")


class RootCACertPublisher(Controller):
    name = "root-ca-certificate-publisher-controller"
    aliases = ("root-ca-cert-publisher",)
    event_component = "root-ca-cert-publisher"
    service_account = "root-ca-cert-publisher"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=ctx.config.concurrent_root_ca_syncs)
        self.ca = ctx.config.ca_bundle()
        self.ns_rt = ctx.rt("", "v1", "namespaces")
        self.cm_rt = ctx.rt("", "v1", "configmaps")
        self.namespaces = self.informer(self.ns_rt)
        self.namespaces.add_handler(self.enqueue, self.enqueue_update, None)
        self.configmaps = self.informer(self.cm_rt, field_selector=f"metadata.name={CONFIGMAP_NAME}")
        self.configmaps.add_handler(None, self._cm_changed, self._cm_changed)

    def _cm_changed(self, *objs: Obj) -> None:
        cm = objs[-1]
        if cm["metadata"].get("name") == CONFIGMAP_NAME:
            self.queue.add(cm["metadata"]["namespace"])

    async def start(self) -> None:
        if not self.ca:
            log.warning("root-ca-cert-publisher: no CA bundle configured; not publishing %s", CONFIGMAP_NAME)

    async def sync(self, key: str) -> None:
        if not self.ca:
            return
        ns = self.namespaces.get(None, key)
        if ns is None or ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            return
        data = {"ca.crt": self.ca}
        cm = self.configmaps.get(key, CONFIGMAP_NAME)
        if cm is None:
            try:
                await self.client.create(self.cm_rt, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": CONFIGMAP_NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": data}, key)
            except ClientError as e:
                if not (e.is_already_exists or e.is_forbidden or e.is_not_found):
                    raise
            return
        annotations = cm["metadata"].get("annotations") or {}
        if cm.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION) == DESCRIPTION:
            return
        updated = copy.deepcopy(cm)
        updated["data"] = data
        updated.pop("binaryData", None)
        updated["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
        try:
            await self.client.update(self.cm_rt, updated)
        except ClientError as e:
            if not e.is_not_found:
                raise
