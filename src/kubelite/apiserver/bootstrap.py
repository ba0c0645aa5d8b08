"""Objects every cluster has from the start: the system namespaces and the `kubernetes` Service."""

from __future__ import annotations

from typing import Any

from ..api import errors
from . import rest
from .context import ApiContext
from .request_info import RequestInfo

SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
API_SERVICE_PORT = 443


def _info(rt, namespace: str = "", name: str = "") -> RequestInfo:
    return RequestInfo(is_resource=True, path=rt.path(namespace, name), verb="create", group=rt.group,
                       version=rt.version, namespace=namespace, resource=rt.resource, name=name)


async def _ensure(ctx: ApiContext, group: str, resource: str, namespace: str, obj: dict[str, Any]) -> None:
    rt = ctx.registry.get(group, "v1", resource)
    assert rt is not None
    if await ctx.store.get(rt.key(namespace, obj["metadata"]["name"])) is not None:
        return
    try:
        await rest.create_object(ctx, rt, obj, _info(rt, namespace), dry=False)
    except errors.ApiError as e:
        if e.code != 409:
            raise


async def ensure_objects(ctx: ApiContext, advertise_address: str) -> None:
    for name in SYSTEM_NAMESPACES:
        await _ensure(ctx, "", "namespaces", "", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name,
                                                                "labels": {"kubernetes.io/metadata.name": name}}})
    port = ctx.config.port or 6443
    await _ensure(ctx, "", "services", "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ctx.allocators.first_ip if ctx.allocators else None,
                 "ports": [{"name": "https", "port": API_SERVICE_PORT, "protocol": "TCP", "targetPort": port}],
                 "sessionAffinity": "None", "type": "ClusterIP"}})
    # the default StorageClass, served by the local-path provisioner in the controller-manager (k3s ships
    # the same add-on); created here because no controller of upstream's is allowed to create classes
    await _ensure(ctx, "storage.k8s.io", "storageclasses", "", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"})
    await _ensure(ctx, "", "endpoints", "default", {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise_address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]})
