"""Service ClusterIP and NodePort allocation, rebuilt from the stored Services at start."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from ..api import errors
from ..storage.interface import Store
from . import codec

_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class ServiceAllocators:
    def __init__(self, cidr: str = "10.96.0.0/12", node_ports: tuple[int, int] = (30000, 32767)) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.cidr = str(self.network)
        self.node_ports = node_ports
        self.ips: set[str] = set()
        self.ports: set[tuple[int, str]] = set()
        # network and broadcast addresses are never handed out, as upstream's bitmap allocator
        self._first = int(self.network.network_address) + 1
        self._last = int(self.network.broadcast_address) - 1

    @property
    def first_ip(self) -> str:
        return str(ipaddress.ip_address(self._first))

    def nth_ip(self, n: int) -> str:
        return str(ipaddress.ip_address(int(self.network.network_address) + n))

    async def load(self, store: Store) -> None:
        result = await store.list("/registry/services/specs/")
        for kv in result.items:
            self._hold(codec.decode_kv(kv))

    def _hold(self, svc: dict[str, Any]) -> None:
        spec = svc.get("spec") or {}
        for ip in _cluster_ips(spec):
            self.ips.add(ip)
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                self.ports.add((int(port["nodePort"]), port.get("protocol", "TCP")))

    # ------------------------------------------------------------ IPs

    def _allocate_ip(self, name: str, requested: str | None) -> str:
        if requested:
            try:
                addr = ipaddress.ip_address(requested)
            except ValueError:
                raise _invalid(name, "spec.clusterIPs", f'[]string{{"{requested}"}}',
                               "must be a valid IP address") from None
            if addr not in self.network or int(addr) < self._first or int(addr) > self._last:
                raise _invalid(name, "spec.clusterIPs", f'[]string{{"{requested}"}}',
                               f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the "
                               f"valid range. The range of valid IPs is {self.cidr}")
            if requested in self.ips:
                raise _invalid(name, "spec.clusterIPs", f'[]string{{"{requested}"}}',
                               f"failed to allocate IP {requested}: provided IP is already allocated")
            self.ips.add(requested)
            return requested
        size = self._last - self._first + 1
        if len(self.ips) >= size:
            raise errors.ApiError(500, "InternalError",
                                  "Internal error occurred: failed to allocate a serviceIP: range is full")
        offset = random.randrange(size)
        for i in range(size):
            candidate = str(ipaddress.ip_address(self._first + (offset + i) % size))
            if candidate not in self.ips:
                self.ips.add(candidate)
                return candidate
        raise errors.ApiError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full")

    # ------------------------------------------------------------ ports

    def _allocate_port(self, name: str, index: int, protocol: str, requested: int | None) -> int:
        low, high = self.node_ports
        field = f"spec.ports[{index}].nodePort"
        if requested:
            if not low <= requested <= high:
                raise _invalid(name, field, str(requested),
                               f"provided port is not in the valid range. The range of valid ports is {low}-{high}")
            if (requested, protocol) in self.ports:
                raise _invalid(name, field, str(requested), "provided port is already allocated")
            self.ports.add((requested, protocol))
            return requested
        size = high - low + 1
        offset = random.randrange(size)
        for i in range(size):
            candidate = low + (offset + i) % size
            if (candidate, protocol) not in self.ports:
                self.ports.add((candidate, protocol))
                return candidate
        raise _invalid(name, field, "0", "range is full")

    # ------------------------------------------------------------ lifecycle

    def allocate(self, svc: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, Any]]:
        """Fill in clusterIP(s) and nodePorts on create or update; raise 422 on conflicts.

        Returns what was newly taken, for `free` if the write does not land."""
        spec = svc.setdefault("spec", {})
        name = svc["metadata"].get("name", "")
        svc_type = spec.get("type", "ClusterIP")
        old_spec = (old or {}).get("spec") or {}
        taken: list[tuple[str, Any]] = []
        try:
            if svc_type == "ExternalName":
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            elif old is not None and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
                spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
            else:
                requested = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
                if requested == "None":
                    spec["clusterIP"] = "None"
                    spec["clusterIPs"] = ["None"]
                else:
                    ip = self._allocate_ip(name, requested or None)
                    taken.append(("ip", ip))
                    spec["clusterIP"] = ip
                    spec["clusterIPs"] = [ip]
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                         for p in old_spec.get("ports") or [] if p.get("nodePort")}
            kept = set()
            for i, port in enumerate(spec.get("ports") or []):
                protocol = port.get("protocol", "TCP")
                if svc_type not in _NODE_PORT_TYPES:
                    port.pop("nodePort", None)
                    continue
                requested = port.get("nodePort")
                previous = old_ports.get((port.get("port"), protocol))
                if requested and (requested, protocol) in self._owned(old_spec):
                    kept.add((requested, protocol))
                    continue
                if not requested and previous:
                    port["nodePort"] = previous
                    kept.add((previous, protocol))
                    continue
                port["nodePort"] = self._allocate_port(name, i, protocol, requested)
                taken.append(("port", (port["nodePort"], protocol)))
        except errors.ApiError:
            self.free(taken)
            raise
        return taken

    @staticmethod
    def _owned(spec: dict[str, Any]) -> set[tuple[int, str]]:
        return {(p["nodePort"], p.get("protocol", "TCP")) for p in spec.get("ports") or [] if p.get("nodePort")}

    def free(self, taken: list[tuple[str, Any]]) -> None:
        for what, value in taken:
            if what == "ip":
                self.ips.discard(value)
            else:
                self.ports.discard(value)

    def committed(self, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """After a successful write: release what the old version held and the new one does not."""
        if old is None:
            return
        new_spec = new.get("spec") or {}
        old_spec = old.get("spec") or {}
        for ip in set(_cluster_ips(old_spec)) - set(_cluster_ips(new_spec)):
            self.ips.discard(ip)
        for port in self._owned(old_spec) - self._owned(new_spec):
            self.ports.discard(port)

    def release(self, svc: dict[str, Any]) -> None:
        spec = svc.get("spec") or {}
        for ip in _cluster_ips(spec):
            self.ips.discard(ip)
        for port in self._owned(spec):
            self.ports.discard(port)


def _cluster_ips(spec: dict[str, Any]) -> list[str]:
    ips = [ip for ip in (spec.get("clusterIPs") or []) if ip and ip != "None"]
    if not ips and spec.get("clusterIP") not in (None, "", "None"):
        ips = [spec["clusterIP"]]
    return ips


def _invalid(name: str, field: str, value: str, message: str) -> errors.ApiError:
    return errors.invalid("Service", "", name, [{"type": "FieldValueInvalid", "field": field,
                                                 "message": f"Invalid value: {value}: {message}"}])
