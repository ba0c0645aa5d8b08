"""Service environment variables of a container, by the kubelet's rule (docker-links style).

The `kubernetes` Service of the `default` namespace is always included (in-cluster clients find the API server
through KUBERNETES_SERVICE_HOST/PORT); with `enableServiceLinks` (the default) so is every Service of the
pod's namespace, which wins over the master service of the same name.  Services without a cluster IP
(headless, ExternalName) give none.  For a Service `my-svc` with ports 443/TCP "https":

    MY_SVC_SERVICE_HOST=10.96.0.5        MY_SVC_SERVICE_PORT=443        MY_SVC_SERVICE_PORT_HTTPS=443
    MY_SVC_PORT=tcp://10.96.0.5:443      MY_SVC_PORT_443_TCP=tcp://10.96.0.5:443
    MY_SVC_PORT_443_TCP_PROTO=tcp        MY_SVC_PORT_443_TCP_PORT=443   MY_SVC_PORT_443_TCP_ADDR=10.96.0.5
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)


def env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def variables_of(svc: Obj) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    ports = spec.get("ports") or []
    if ip in ("", "None") or not ports:
        return {}
    prefix = env_name(svc["metadata"]["name"])
    out = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for p in ports:
        if p.get("name"):
            out[f"{prefix}_SERVICE_PORT_{env_name(p['name'])}"] = str(p.get("port"))
    for i, p in enumerate(ports):
        proto = p.get("protocol") or "TCP"
        url = f"{proto.lower()}://{_host_port(ip, p.get('port'))}"
        if i == 0:
            out[f"{prefix}_PORT"] = url
        port_prefix = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
        out[port_prefix] = url
        out[f"{port_prefix}_PROTO"] = proto.lower()
        out[f"{port_prefix}_PORT"] = str(p.get("port"))
        out[f"{port_prefix}_ADDR"] = ip
    return out


def service_env(services: list[Obj], namespace: str, enable_service_links: bool = True) -> dict[str, str]:
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta = svc["metadata"]
        name, ns = meta["name"], meta.get("namespace")
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for svc in chosen.values():
        env.update(variables_of(svc))
    return env
