"""The add-on's installation: namespace, NodePort Service and Endpoints, and the node port it falls back to."""

from __future__ import annotations

import random
import socket

from kubelite.client import ApiClient
from kubelite.dashboard.addon import (
    NAMESPACE,
    SERVICE,
    advertise_address,
    claim_node_port,
    ensure_endpoints,
    ensure_namespace,
)
from kubelite.dashboard.userapi import api_path


def _held_node_port() -> socket.socket:
    for _ in range(200):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", random.randint(30000, 32767)))
            s.listen(1)
            return s
        except OSError:
            s.close()
    raise RuntimeError("no free node port")


async def test_install_falls_back_to_a_free_node_port_and_reuses_it(cluster):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    held = _held_node_port()
    taken = held.getsockname()[1]
    try:
        await ensure_namespace(client)
        await ensure_namespace(client)  # idempotent
        sock, port = await claim_node_port(client, "127.0.0.1", taken)
        sock.close()
        assert port != taken and 30000 <= port <= 32767
        svc = await client.request("GET", api_path("", "v1", "services", NAMESPACE, SERVICE))
        assert svc["spec"]["type"] == "NodePort"
        assert svc["spec"]["ports"][0] == {"port": 443, "protocol": "TCP", "targetPort": port, "nodePort": port}
        await ensure_endpoints(client, advertise_address("127.0.0.1"), port)
        await ensure_endpoints(client, "127.0.0.1", port)  # unchanged: no write
        ep = await client.request("GET", api_path("", "v1", "endpoints", NAMESPACE, SERVICE))
        assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": port, "protocol": "TCP"}]}]
        uid = svc["metadata"]["uid"]
        # a restart keeps the Service and its port
        sock, again = await claim_node_port(client, "127.0.0.1", 0)
        sock.close()
        svc = await client.request("GET", api_path("", "v1", "services", NAMESPACE, SERVICE))
        assert again == port and svc["metadata"]["uid"] == uid
    finally:
        held.close()
        await client.request("DELETE", api_path("", "v1", "services", NAMESPACE, SERVICE))
        await client.close()


def test_advertise_address():
    assert advertise_address("127.0.0.1") == "127.0.0.1"
    assert advertise_address("localhost") == "127.0.0.1"
    assert advertise_address("192.0.2.7") == "192.0.2.7"
    assert not advertise_address("0.0.0.0").startswith("0.")
