"""The thin shell around the pure parts: read the node's state with `ip -j` / `bridge -j` / `iptables-save`,
apply the planned commands and the rules payload (`iptables-restore -w --noflush`), remove it all again.

Every command runs behind `config.command_prefix` (e.g. `nsenter --net=/run/netns/x`)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .config import VXLAN_OVERHEAD, FlannelConfig
from .plan import (
    Command,
    Current,
    Desired,
    connected_networks,
    desired_state,
    parse_fdb,
    parse_link,
    parse_neighs,
    parse_routes,
    plan,
    route_del,
)
from .rules import cleanup_payload, rules_payload
from .subnets import internal_ip, own_annotations, vtep_mac_for

log = logging.getLogger("kubelite.flannel")

Obj = dict[str, Any]


class FlannelError(RuntimeError):
    pass


class Host:
    """Runs the network tools, behind a command prefix."""

    def __init__(self, prefix: Iterable[str] = ()) -> None:
        self.prefix = list(prefix)

    async def run(self, argv: list[str], *, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        full = [*self.prefix, *argv]
        try:
            proc = await asyncio.create_subprocess_exec(
                *full, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            raise FlannelError(f"{argv[0]}: {e}") from e
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        rc = proc.returncode or 0
        if check and rc != 0:
            raise FlannelError(f"`{' '.join(argv)}` failed ({rc}): {err.decode(errors='replace').strip()}")
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    async def json(self, argv: list[str], *, missing_ok: bool = False) -> Any:
        rc, out, err = await self.run(argv, check=not missing_ok)
        if rc != 0 or not out.strip():
            return []
        return json.loads(out)

    async def sysctl(self, name: str, value: str) -> None:
        if self.prefix:
            await self.run(["sysctl", "-q", "-w", f"{name}={value}"])
            return
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            with open(path) as f:
                if f.read().strip() == value:
                    return
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise FlannelError(f"cannot set {name}={value}: {e}") from e


@dataclass
class SyncResult:
    desired: Desired
    public_ip: str | None = None
    vtep_mac: str | None = None
    commands: list[Command] = field(default_factory=list)
    rules_payload: str = ""
    annotations: dict[str, str] = field(default_factory=dict)  # what this node should carry ({} if not ready)

    @property
    def changed(self) -> bool:
        return bool(self.commands or self.rules_payload)


class FlannelNetwork:
    """The pod network of one node: `sync(nodes)` programs it, `cleanup()` removes it."""

    def __init__(self, config: FlannelConfig, host: Host | None = None) -> None:
        self.config = config
        self.host = host or Host(config.command_prefix)
        self._skipped: dict[str, str] = {}

    @property
    def vtep_mac(self) -> str:
        return (self.config.vtep_mac or vtep_mac_for(self.config.node_name)).lower()

    def public_ip(self, nodes: Iterable[Obj]) -> str | None:
        if self.config.public_ip:
            return self.config.public_ip
        own = next((n for n in nodes if (n.get("metadata") or {}).get("name") == self.config.node_name), None)
        return internal_ip(own) if own else None

    async def underlay(self, public_ip: str) -> tuple[str | None, int | None]:
        """(interface holding `public_ip` or the configured one, its MTU)."""
        links = await self.host.json(["ip", "-j", "-4", "addr", "show"])
        for link in links:
            name = link.get("ifname")
            if self.config.underlay_iface:
                if name == self.config.underlay_iface:
                    return name, link.get("mtu")
            elif any(a.get("local") == public_ip for a in link.get("addr_info") or []):
                return name, link.get("mtu")
        return self.config.underlay_iface, None

    async def mtu(self, public_ip: str) -> int | None:
        """The MTU pods on this node should use: the VXLAN device's (underlay - 50) or the underlay's."""
        if self.config.backend == "vxlan" and self.config.mtu:
            return self.config.mtu
        _, mtu = await self.underlay(public_ip)
        if mtu is None:
            return None
        return mtu - VXLAN_OVERHEAD if self.config.backend == "vxlan" else mtu

    async def read_current(self, routes: Any = None) -> Current:
        """Our part of the node's state (`routes`: `ip -j -4 route show table main` output if already read)."""
        iface = self.config.iface
        if routes is None:
            routes = await self.host.json(["ip", "-j", "-4", "route", "show", "table", "main"])
        link = parse_link(await self.host.json(["ip", "-j", "-d", "addr", "show", "dev", iface], missing_ok=True))
        cur = Current(device=link, routes=parse_routes(routes, self.config))
        if link is not None:
            cur.neighs = parse_neighs(await self.host.json(["ip", "-j", "-4", "neigh", "show", "dev", iface]))
            cur.fdbs = parse_fdb(await self.host.json(["bridge", "-j", "fdb", "show", "dev", iface]))
        return cur

    async def desired(self, nodes: list[Obj], routes: Any = None) -> tuple[Desired, str | None]:
        public_ip = self.public_ip(nodes)
        if not public_ip:
            return desired_state(self.config, nodes, public_ip=None), None
        if routes is None:
            routes = await self.host.json(["ip", "-j", "-4", "route", "show", "table", "main"])
        underlay, mtu = (None, None)
        if self.config.backend == "vxlan":
            underlay, under_mtu = await self.underlay(public_ip)
            mtu = self.config.mtu or (under_mtu - VXLAN_OVERHEAD if under_mtu else None)
            if underlay is None:
                log.warning("no interface holds the public IP %s: VXLAN packets may leave by the wrong one", public_ip)
        d = desired_state(self.config, nodes, public_ip=public_ip, vtep_mac=self.vtep_mac,
                          connected=connected_networks(routes, self.config), mtu=mtu, underlay=underlay)
        return d, public_ip

    async def sync(self, nodes: Iterable[Obj]) -> SyncResult:
        """Program this node's routes, device, entries and rules for `nodes` (every Node object). Idempotent:
        with nothing to change it only reads."""
        nodes = list(nodes)
        routes = await self.host.json(["ip", "-j", "-4", "route", "show", "table", "main"])
        desired, public_ip = await self.desired(nodes, routes)
        result = SyncResult(desired, public_ip, self.vtep_mac if self.config.backend == "vxlan" else None)
        if not desired.ready:
            log.info("pod network: waiting: %s", desired.reason)
            return result
        skipped = dict(desired.skipped)
        for name, why in skipped.items():
            if self._skipped.get(name) != why:
                log.warning("pod network: node %s skipped: %s", name, why)
        self._skipped = skipped
        result.commands = plan(self.config, desired, await self.read_current(routes))
        errors = await self.apply(result.commands)
        _, saved, _ = await self.host.run(["iptables-save"])
        assert desired.pod_cidr is not None
        result.rules_payload = rules_payload(self.config, desired.pod_cidr, saved)
        if result.rules_payload:
            rc, _, err = await self.host.run(["iptables-restore", "-w", "--noflush"], stdin=result.rules_payload,
                                             check=False)
            if rc != 0:
                errors.append(f"iptables-restore: {err.strip()}")
        if errors:
            raise FlannelError("pod network sync: " + "; ".join(errors))
        if result.commands:
            log.info("pod network: %d change(s): %s", len(result.commands),
                     "; ".join(" ".join(c) for c in result.commands[:8]))
        result.annotations = own_annotations(self.config, public_ip or "", result.vtep_mac)
        return result

    async def apply(self, commands: list[Command]) -> list[str]:
        """Run the commands in order, each run of consecutive `ip` (or `bridge`) commands as one
        `-force -batch -` process (a 100-node first sync is a few processes, not 300). Returns the errors."""
        errors: list[str] = []
        i = 0
        while i < len(commands):
            tool = commands[i][0]
            j = i
            while j < len(commands) and commands[j][0] == tool:
                j += 1
            batch = "".join(" ".join(c[1:]) + "\n" for c in commands[i:j])
            rc, out, err = await self.host.run([tool, "-force", "-batch", "-"], stdin=batch, check=False)
            if rc != 0:
                errors.append(f"{tool} -batch: {(err or out).strip()}")
            i = j
        return errors

    async def cleanup(self) -> list[str]:
        """Remove what `sync` made: our routes, the VXLAN device (with its neighbour and FDB entries) when it
        is ours (its MAC is our VTEP MAC), our chains and the jumps to them. Returns what was removed."""
        removed: list[str] = []
        routes = parse_routes(await self.host.json(["ip", "-j", "-4", "route", "show", "table", "main"]), self.config)
        link = parse_link(await self.host.json(["ip", "-j", "-d", "addr", "show", "dev", self.config.iface],
                                               missing_ok=True))
        for r in routes.values():
            if r.dev == self.config.iface and link is not None:
                continue  # goes with the device
            rc, _, _ = await self.host.run(route_del(r), check=False)
            if rc == 0:
                removed.append(f"route {r.dst} via {r.gateway}")
        if link is not None and link.kind == "vxlan" and link.mac == self.vtep_mac:
            await self.host.run(["ip", "link", "del", self.config.iface])
            removed.append(f"link {self.config.iface}")
        elif link is not None:
            log.warning("%s is not ours (kind %s, MAC %s): left alone", self.config.iface, link.kind, link.mac)
        rc, saved, _ = await self.host.run(["iptables-save"], check=False)
        payload = cleanup_payload(self.config, saved) if rc == 0 else ""
        if payload:
            await self.host.run(["iptables-restore", "-w", "--noflush"], stdin=payload)
            removed += [f"chain {c}" for c in (self.config.postrouting_chain, self.config.forward_chain)
                        if f":{c} " in payload]
        return removed

    async def prepare_host(self) -> None:
        await self.host.sysctl("net.ipv4.ip_forward", "1")


async def cleanup(config: FlannelConfig) -> list[str]:
    """Remove this node's pod network (for `kubelite reset` / cleanup on exit). Safe to call when nothing is
    there, and on a node whose backend is "none" (it removes only what carries our marks)."""
    if os.geteuid() != 0 and not config.command_prefix:
        log.warning("not root: the pod network cannot be removed")
    return await FlannelNetwork(config).cleanup()


__all__ = ["FlannelError", "FlannelNetwork", "Host", "SyncResult", "cleanup"]
