"""The cluster's configuration where kubeadm keeps it, so that joining machines learn it instead of being told
again: `kube-system/kubeadm-config` (ClusterConfiguration: pod and Service ranges, DNS domain, control-plane
endpoint) and `kube-system/kubelet-config` (KubeletConfiguration: the cluster DNS address and domain).

`kubelite init` publishes both; `kubelite join` reads them with the bootstrap token (kubeadm's RBAC in
rbac_bootstrap.py) and uses them wherever the user gave no flag of their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import yaml

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError

log = logging.getLogger("kubelite.bootstrap.clusterconfig")

CONFIGMAPS = Registry().get("", "v1", "configmaps")
NAMESPACE = "kube-system"
KUBEADM_CONFIG = "kubeadm-config"
KUBELET_CONFIG = "kubelet-config"
KUBELITE_KEY = "KubeliteConfiguration"  # kubelite's own cluster-wide settings, next to kubeadm's


@dataclass
class ClusterNetwork:
    pod_subnet: str = "10.244.0.0/16"
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"
    cluster_dns: str = "10.96.0.10"
    control_plane_endpoint: str = ""
    kubernetes_version: str = "v1.33.1"
    bind_port: int = 6443
    external_etcd: list[str] | None = None  # the etcd endpoints of an external datastore; None: a local member


def cluster_configuration(net: ClusterNetwork) -> str:
    etcd = {"external": {"endpoints": net.external_etcd}} if net.external_etcd else {"local": {"dataDir": "etcd/data"}}
    return yaml.safe_dump({
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
        "kubernetesVersion": net.kubernetes_version, "controlPlaneEndpoint": net.control_plane_endpoint,
        "networking": {"serviceSubnet": net.service_subnet, "podSubnet": net.pod_subnet,
                       "dnsDomain": net.dns_domain},
        "etcd": etcd, "apiServer": {"bindPort": net.bind_port}}, sort_keys=False)


def kubelet_configuration(net: ClusterNetwork) -> str:
    return yaml.safe_dump({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                           "clusterDNS": [net.cluster_dns], "clusterDomain": net.dns_domain}, sort_keys=False)


async def publish(client: ApiClient, net: ClusterNetwork, kubelite: dict | None = None) -> None:
    """kubeadm's upload-config phase: create or update both ConfigMaps (`kubelite`: kubelite's own cluster-wide
    settings, e.g. the add-ons turned off, under a key of their own, for machines joining the control plane)."""
    kubeadm = {"ClusterConfiguration": cluster_configuration(net)}
    if kubelite:
        kubeadm[KUBELITE_KEY] = yaml.safe_dump(kubelite, sort_keys=False)
    for name, data in ((KUBEADM_CONFIG, kubeadm), (KUBELET_CONFIG, {"kubelet": kubelet_configuration(net)})):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
                "data": data}
        try:
            await client.create(CONFIGMAPS, body, NAMESPACE)
        except ClientError as e:
            if not e.is_already_exists:
                raise
            await client.patch(CONFIGMAPS, NAMESPACE, name, {"data": data})


def _load(cm: dict, key: str) -> dict:
    text = (cm.get("data") or {}).get(key) or ""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def read(client: ApiClient) -> ClusterNetwork | None:
    """The published configuration, or None when this cluster has none (not made by `kubelite init`)."""
    net = ClusterNetwork()
    found = False
    try:
        cluster = _load(await client.get(CONFIGMAPS, NAMESPACE, KUBEADM_CONFIG), "ClusterConfiguration")
        networking = cluster.get("networking") or {}
        net.pod_subnet = networking.get("podSubnet") or net.pod_subnet
        net.service_subnet = networking.get("serviceSubnet") or net.service_subnet
        net.dns_domain = networking.get("dnsDomain") or net.dns_domain
        net.control_plane_endpoint = cluster.get("controlPlaneEndpoint") or ""
        found = True
    except ClientError as e:
        if not (e.is_not_found or e.is_forbidden):
            raise
    try:
        kubelet = _load(await client.get(CONFIGMAPS, NAMESPACE, KUBELET_CONFIG), "kubelet")
        dns = kubelet.get("clusterDNS") or []
        if dns and isinstance(dns, list):
            net.cluster_dns = str(dns[0])
        net.dns_domain = kubelet.get("clusterDomain") or net.dns_domain
        found = True
    except ClientError as e:
        if not (e.is_not_found or e.is_forbidden):
            raise
    return net if found else None
