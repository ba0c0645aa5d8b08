"""`kube-public/cluster-info`: the public, token-signed starting point of a join (kubeadm's
bootstrap-token phase publishes it; the bootstrap signer adds the `jws-kubeconfig-<id>` signatures).

Its `kubeconfig` key holds a kubeconfig with the cluster's endpoint and CA and no credentials, in the shape
kubeadm writes (one cluster with an empty name, no contexts, no users).
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError

from .jws import CLUSTER_INFO, KUBECONFIG_KEY, PUBLIC_NAMESPACE, SIGNATURE_PREFIX

Obj = dict[str, Any]
CONFIGMAPS = Registry().get("", "v1", "configmaps")


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    config = {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                                  "server": server}, "name": ""}],
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def parse_cluster_info_kubeconfig(text: str) -> tuple[str, bytes]:
    """(server, CA PEM) of the first cluster; ValueError when the kubeconfig lacks them."""
    try:
        config = yaml.safe_load(text)
        cluster = config["clusters"][0]["cluster"]
        server = cluster["server"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"], validate=True)
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as e:
        raise ValueError(f"the kubeconfig in the {CLUSTER_INFO} ConfigMap cannot be read: {e}") from None
    if not isinstance(server, str) or not server:
        raise ValueError(f"the kubeconfig in the {CLUSTER_INFO} ConfigMap has no server")
    return server, ca_pem


async def publish_cluster_info(client: ApiClient, server: str, ca_pem: bytes) -> Obj:
    """Create or update `kube-public/cluster-info` with the endpoint and CA; signatures stay when the
    kubeconfig is unchanged (otherwise the signer re-signs it)."""
    content = cluster_info_kubeconfig(server, ca_pem)
    try:
        cm = await client.get(CONFIGMAPS, PUBLIC_NAMESPACE, CLUSTER_INFO)
    except ClientError as e:
        if not e.is_not_found:
            raise
        return await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": CLUSTER_INFO, "namespace": PUBLIC_NAMESPACE},
                                                "data": {KUBECONFIG_KEY: content}}, PUBLIC_NAMESPACE)
    data = dict(cm.get("data") or {})
    if data.get(KUBECONFIG_KEY) == content:
        return cm
    data = {k: v for k, v in data.items() if not k.startswith(SIGNATURE_PREFIX)}
    data[KUBECONFIG_KEY] = content
    cm["data"] = data
    return await client.update(CONFIGMAPS, cm)
