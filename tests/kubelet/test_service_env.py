"""Service environment variables (kubelet.service_env), by the kubelet's rule."""

from __future__ import annotations

from kubelite.kubelet.service_env import service_env


def svc(ns: str, name: str, ip: str, ports: list[dict]) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"clusterIP": ip, "ports": ports}}


MASTER = svc("default", "kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])
WEB = svc("app", "my-web", "10.96.0.7", [{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53,
                                                                        "protocol": "UDP"}])
HEADLESS = svc("app", "db", "None", [{"port": 5432}])
OTHER_NS = svc("other", "cache", "10.96.0.9", [{"port": 6379}])


def test_master_service_and_links():
    env = service_env([MASTER, WEB, HEADLESS, OTHER_NS], "app")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_PROTO"] == "tcp" and env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert env["MY_WEB_SERVICE_HOST"] == "10.96.0.7" and env["MY_WEB_SERVICE_PORT"] == "80"
    assert env["MY_WEB_SERVICE_PORT_DNS_UDP"] == "53"
    assert env["MY_WEB_PORT"] == "tcp://10.96.0.7:80"
    assert env["MY_WEB_PORT_53_UDP"] == "udp://10.96.0.7:53" and env["MY_WEB_PORT_53_UDP_PORT"] == "53"
    assert not any(k.startswith(("DB_", "CACHE_")) for k in env)


def test_without_service_links_only_the_master_service():
    env = service_env([MASTER, WEB], "app", enable_service_links=False)
    assert env and all(k.startswith("KUBERNETES_") for k in env)


def test_a_same_named_service_of_the_namespace_wins():
    own = svc("app", "kubernetes", "10.96.0.50", [{"port": 8443}])
    assert service_env([MASTER, own], "app")["KUBERNETES_SERVICE_HOST"] == "10.96.0.50"
    assert service_env([own, MASTER], "app")["KUBERNETES_SERVICE_HOST"] == "10.96.0.50"
