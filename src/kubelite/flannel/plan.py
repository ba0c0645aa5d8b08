"""The node's routes, VXLAN device, neighbour and FDB entries: desired state from the Node objects, current
state from `ip -j …` / `bridge -j fdb` output, and the commands that turn one into the other (all pure).

As flannel lays it out:
- host-gw: `<podCIDR> via <node IP>` for every other node, only when that IP is on a directly connected
  network (one L2 segment); other nodes are skipped with a warning.
- vxlan: the device `flannel.1` (`type vxlan id <vni> local <public ip> dstport 8472 nolearning`) holding
  `<own podCIDR network address>/32`; for every other node a route `<podCIDR> via <its .0> dev flannel.1
  onlink`, a permanent neighbour entry `<its .0> → its VTEP MAC` and an FDB entry `its VTEP MAC → dst
  <its public IP>`. Nothing is learned or flooded: the kernel finds every peer in these tables.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import FlannelConfig
from .subnets import Lease, node_lease, normalize_mac, pod_cidr

Obj = dict[str, Any]
Command = list[str]


@dataclass(frozen=True)
class Route:
    dst: str
    gateway: str
    dev: str | None = None  # None: whatever interface reaches the gateway
    onlink: bool = False

    def matches(self, have: Route) -> bool:
        return (self.gateway == have.gateway and self.onlink == have.onlink
                and (self.dev is None or self.dev == have.dev))


@dataclass(frozen=True)
class Neigh:
    ip: str
    mac: str


@dataclass(frozen=True)
class Fdb:
    mac: str
    dst: str


@dataclass(frozen=True)
class Device:
    """The VXLAN device as wanted."""

    name: str
    vni: int
    local: str
    port: int
    mac: str
    address: str  # "<own podCIDR network address>/32"
    mtu: int | None = None
    underlay: str | None = None


@dataclass
class Link:
    """A link as read back (`ip -j -d addr show dev …`)."""

    name: str
    kind: str | None = None
    vni: int | None = None
    local: str | None = None
    port: int | None = None
    underlay: str | None = None
    learning: bool | None = None
    mac: str | None = None
    mtu: int | None = None
    up: bool = False
    addresses: list[str] = field(default_factory=list)  # "ip/prefix", IPv4 only


@dataclass
class Desired:
    ready: bool  # False: this node has no Node object / podCIDR yet: touch nothing
    reason: str = ""
    pod_cidr: ipaddress.IPv4Network | None = None
    device: Device | None = None
    routes: dict[str, Route] = field(default_factory=dict)  # by dst
    neighs: dict[str, Neigh] = field(default_factory=dict)  # by IP
    fdbs: dict[str, Fdb] = field(default_factory=dict)  # by MAC
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (node, why)


@dataclass
class Current:
    device: Link | None = None
    routes: dict[str, Route] = field(default_factory=dict)  # ours only, by dst
    neighs: dict[str, Neigh] = field(default_factory=dict)
    fdbs: dict[str, Fdb] = field(default_factory=dict)


def _net(value: Any) -> ipaddress.IPv4Network | None:
    if not isinstance(value, str) or value == "default":
        return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def is_direct(ip: str, connected: Iterable[ipaddress.IPv4Network]) -> bool:
    """Whether `ip` is on one of the directly connected networks (reachable without a gateway)."""
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in connected)


def desired_state(config: FlannelConfig, nodes: Iterable[Obj], *, public_ip: str | None, vtep_mac: str | None = None,
                  connected: Sequence[ipaddress.IPv4Network] = (), mtu: int | None = None,
                  underlay: str | None = None) -> Desired:
    """What this node should program, given every Node object (this one's included)."""
    nodes = sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name") or "")
    own = next((n for n in nodes if (n.get("metadata") or {}).get("name") == config.node_name), None)
    if own is None:
        return Desired(False, f"node {config.node_name!r} not found")
    subnet = pod_cidr(own)
    if subnet is None:
        return Desired(False, f"node {config.node_name!r} has no IPv4 podCIDR yet")
    if not subnet.subnet_of(config.network):
        return Desired(False, f"node {config.node_name!r} podCIDR {subnet} is outside the cluster CIDR "
                              f"{config.cluster_cidr}")
    if not public_ip:
        return Desired(False, f"node {config.node_name!r} has no IPv4 InternalIP and no public IP is configured")
    out = Desired(True, pod_cidr=subnet)
    if config.backend == "vxlan":
        mac = normalize_mac(vtep_mac)
        if mac is None:
            return Desired(False, "the VTEP MAC is not known")
        out.device = Device(config.iface, config.vni, public_ip, config.port, mac,
                            f"{subnet.network_address}/32", mtu, underlay)
    taken: dict[ipaddress.IPv4Network, str] = {subnet: config.node_name}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name") or ""
        if name == config.node_name:
            continue
        lease, why = node_lease(node)
        if lease is None:
            out.skipped.append((name, why))
            continue
        why = _skip_reason(config, lease, taken, public_ip)
        if why:
            out.skipped.append((name, why))
            continue
        taken[lease.subnet] = name
        why = _add_peer(config, out, lease, connected)
        if why:
            del taken[lease.subnet]
            out.skipped.append((name, why))
    return out


def _skip_reason(config: FlannelConfig, lease: Lease, taken: dict[ipaddress.IPv4Network, str],
                 public_ip: str) -> str:
    if not lease.subnet.subnet_of(config.network):
        return f"podCIDR {lease.subnet} is outside the cluster CIDR {config.cluster_cidr}"
    for net, owner in taken.items():
        if net.overlaps(lease.subnet):
            return f"podCIDR {lease.subnet} overlaps {net} of node {owner!r}"
    if lease.public_ip == public_ip:
        return f"public IP {lease.public_ip} is this node's own"
    return ""


def _add_peer(config: FlannelConfig, out: Desired, lease: Lease, connected: Sequence[ipaddress.IPv4Network]) -> str:
    dst = str(lease.subnet)
    direct = is_direct(lease.public_ip, connected)
    if config.backend == "host-gw":
        if lease.backend_type not in (None, "host-gw"):
            return f"backend-type {lease.backend_type!r}, not host-gw"
        if not direct:
            return (f"public IP {lease.public_ip} is not on a directly connected network "
                    "(host-gw needs all nodes on one L2 segment; use vxlan)")
        out.routes[dst] = Route(dst, lease.public_ip)
        return ""
    if lease.backend_type is None:
        return "not annotated by its pod network agent yet"
    if lease.backend_type != "vxlan":
        return f"backend-type {lease.backend_type!r}, not vxlan"
    if config.direct_routing and direct:
        out.routes[dst] = Route(dst, lease.public_ip)
        return ""
    if lease.vtep_mac is None:
        return "no VtepMAC in its backend-data annotation"
    if lease.vni is not None and lease.vni != config.vni:
        return f"VNI {lease.vni}, not {config.vni}"
    gw = str(lease.subnet.network_address)
    out.routes[dst] = Route(dst, gw, config.iface, True)
    out.neighs[gw] = Neigh(gw, lease.vtep_mac)
    out.fdbs[lease.vtep_mac] = Fdb(lease.vtep_mac, lease.public_ip)
    return ""


# --- reading the current state ----------------------------------------------------------------------------

def parse_link(addr_json: Any) -> Link | None:
    """The first link of `ip -j -d addr show dev <name>` output."""
    if not isinstance(addr_json, list) or not addr_json:
        return None
    raw = addr_json[0]
    info = raw.get("linkinfo") or {}
    data = info.get("info_data") or {}
    flags = raw.get("flags") or []
    return Link(
        name=raw.get("ifname") or "", kind=info.get("info_kind"),
        vni=data.get("id"), local=data.get("local"), port=data.get("port"), underlay=data.get("link"),
        learning=data.get("learning"), mac=normalize_mac(raw.get("address")), mtu=raw.get("mtu"),
        up="UP" in flags,
        addresses=[f"{a['local']}/{a['prefixlen']}" for a in raw.get("addr_info") or []
                   if a.get("family") == "inet" and a.get("local")])


def parse_routes(routes_json: Any, config: FlannelConfig) -> dict[str, Route]:
    """Our routes in `ip -j -4 route show` output: inside the cluster CIDR and either carrying our protocol or
    going through our VXLAN device."""
    out: dict[str, Route] = {}
    for r in routes_json if isinstance(routes_json, list) else []:
        net = _net(r.get("dst"))
        if net is None or not net.subnet_of(config.network) or not r.get("gateway"):
            continue
        if str(r.get("protocol")) != str(config.route_protocol) and r.get("dev") != config.iface:
            continue
        out[str(net)] = Route(str(net), r["gateway"], r.get("dev"), "onlink" in (r.get("flags") or []))
    return out


def connected_networks(routes_json: Any, config: FlannelConfig) -> list[ipaddress.IPv4Network]:
    """Directly connected networks (link-scope routes without gateway) outside the cluster CIDR: the node's
    L2 segments, where host-gw routes can point."""
    out = []
    for r in routes_json if isinstance(routes_json, list) else []:
        net = _net(r.get("dst"))
        if (net is None or r.get("gateway") or r.get("scope") != "link" or r.get("dev") == config.iface
                or net.overlaps(config.network)):
            continue
        out.append(net)
    return out


def parse_neighs(neigh_json: Any) -> dict[str, Neigh]:
    """Permanent entries of `ip -j neigh show dev <vxlan>`."""
    out = {}
    for n in neigh_json if isinstance(neigh_json, list) else []:
        mac = normalize_mac(n.get("lladdr"))
        if mac and n.get("dst") and "PERMANENT" in (n.get("state") or []):
            out[n["dst"]] = Neigh(n["dst"], mac)
    return out


def parse_fdb(fdb_json: Any) -> dict[str, Fdb]:
    """Unicast entries with a remote of `bridge -j fdb show dev <vxlan>`."""
    out = {}
    for f in fdb_json if isinstance(fdb_json, list) else []:
        mac = normalize_mac(f.get("mac"))
        if mac and mac != "00:00:00:00:00:00" and f.get("dst"):
            out[mac] = Fdb(mac, f["dst"])
    return out


# --- the diff ---------------------------------------------------------------------------------------------

def route_add(config: FlannelConfig, r: Route) -> Command:
    argv = ["ip", "route", "replace", r.dst, "via", r.gateway]
    if r.dev:
        argv += ["dev", r.dev]
    if r.onlink:
        argv.append("onlink")
    return argv + ["proto", str(config.route_protocol)]


def route_del(r: Route) -> Command:
    return ["ip", "route", "del", r.dst, "via", r.gateway] + (["dev", r.dev] if r.dev else [])


def device_add(d: Device) -> Command:
    argv = ["ip", "link", "add", d.name, "address", d.mac]
    if d.mtu:
        argv += ["mtu", str(d.mtu)]
    argv += ["type", "vxlan", "id", str(d.vni), "local", d.local]
    if d.underlay:
        argv += ["dev", d.underlay]
    return argv + ["dstport", str(d.port), "nolearning"]


def plan(config: FlannelConfig, desired: Desired, current: Current) -> list[Command]:
    """The commands (without `command_prefix`) that make `current` what `desired` says. Empty when they agree.

    Deletions come first (routes before the entries they use), additions last with routes after the
    neighbour/FDB entries they rely on, as flannel orders them."""
    if not desired.ready:
        return []
    cmds: list[Command] = []
    iface = config.iface
    cur = current.device
    routes = dict(current.routes)
    neighs, fdbs = dict(current.neighs), dict(current.fdbs)
    dev = desired.device

    def drop_device_state() -> None:
        for dst in [d for d, r in routes.items() if r.dev == iface]:
            del routes[dst]
        neighs.clear()
        fdbs.clear()

    recreate = False
    if dev is None:
        if cur is not None:
            cmds.append(["ip", "link", "del", iface])
            drop_device_state()
    else:
        recreate = cur is None or not _same_device(dev, cur)
    for dst, have in sorted(routes.items()):
        if dst not in desired.routes:  # a changed route is replaced in place below
            cmds.append(route_del(have))
    for ip, n in sorted(neighs.items()):
        if ip not in desired.neighs and not recreate:
            cmds.append(["ip", "neigh", "del", n.ip, "dev", iface])
    for mac, f in sorted(fdbs.items()):
        if mac not in desired.fdbs and not recreate:
            cmds.append(["bridge", "fdb", "del", f.mac, "dev", iface, "dst", f.dst, "self"])
    if dev is not None:
        assert cur is not None or recreate
        if recreate:
            if cur is not None:
                cmds.append(["ip", "link", "del", iface])
            cmds.append(device_add(dev))
            drop_device_state()
            addresses: list[str] = []
            up = False
        else:
            assert cur is not None
            if cur.mac != dev.mac:
                cmds.append(["ip", "link", "set", "dev", iface, "address", dev.mac])
            if dev.mtu and cur.mtu != dev.mtu:
                cmds.append(["ip", "link", "set", "dev", iface, "mtu", str(dev.mtu)])
            addresses, up = cur.addresses, cur.up
        for a in addresses:
            if a != dev.address:
                cmds.append(["ip", "addr", "del", a, "dev", iface])
        if dev.address not in addresses:
            cmds.append(["ip", "addr", "add", dev.address, "dev", iface])
        if not up:
            cmds.append(["ip", "link", "set", "dev", iface, "up"])
    for ip, n in sorted(desired.neighs.items()):
        if neighs.get(ip) != n:
            cmds.append(["ip", "neigh", "replace", n.ip, "lladdr", n.mac, "dev", iface, "nud", "permanent"])
    for mac, f in sorted(desired.fdbs.items()):
        if fdbs.get(mac) != f:
            cmds.append(["bridge", "fdb", "replace", f.mac, "dev", iface, "dst", f.dst, "self", "permanent"])
    for dst, r in sorted(desired.routes.items()):
        have = routes.get(dst)
        if have is None or not r.matches(have):
            cmds.append(route_add(config, r))
    return cmds


def _same_device(want: Device, have: Link) -> bool:
    return (have.kind == "vxlan" and have.vni == want.vni and have.local == want.local and have.port == want.port
            and have.learning is False and (want.underlay is None or have.underlay == want.underlay))


__all__ = ["Current", "Desired", "Device", "Fdb", "Link", "Neigh", "Route", "connected_networks", "desired_state",
           "device_add", "is_direct", "parse_fdb", "parse_link", "parse_neighs", "parse_routes", "plan", "route_add",
           "route_del"]
