import ipaddress

from flannel.nodes import node
from kubelite.flannel import FlannelConfig
from kubelite.flannel.plan import (
    Current,
    Fdb,
    Link,
    Neigh,
    Route,
    connected_networks,
    desired_state,
    parse_fdb,
    parse_link,
    parse_neighs,
    parse_routes,
    plan,
)

LAN = [ipaddress.ip_network("192.168.77.0/24")]
MAC_A, MAC_B, MAC_C = "0e:00:00:00:00:01", "0e:00:00:00:00:02", "0e:00:00:00:00:03"


def vx_nodes():
    return [node("a", "10.244.1.0/24", "192.168.77.11", backend="vxlan", mac=MAC_A),
            node("b", "10.244.2.0/24", "192.168.77.12", backend="vxlan", mac=MAC_B),
            node("c", "10.244.3.0/24", "192.168.78.13", backend="vxlan", mac=MAC_C)]


def vx_desired(nodes=None, **kw):
    cfg = FlannelConfig("a", **kw)
    return cfg, desired_state(cfg, nodes if nodes is not None else vx_nodes(), public_ip="192.168.77.11",
                              vtep_mac=MAC_A, connected=LAN, mtu=1450, underlay="eth0")


def test_host_gw_routes_only_on_the_same_l2():
    cfg = FlannelConfig("a", backend="host-gw")
    nodes = [node("a", "10.244.1.0/24", "192.168.77.11"), node("b", "10.244.2.0/24", "192.168.77.12"),
             node("c", "10.244.3.0/24", "192.168.78.13")]
    d = desired_state(cfg, nodes, public_ip="192.168.77.11", connected=LAN)
    assert d.ready and d.device is None and not d.neighs and not d.fdbs
    assert d.routes == {"10.244.2.0/24": Route("10.244.2.0/24", "192.168.77.12")}
    assert [n for n, _ in d.skipped] == ["c"] and "directly connected" in d.skipped[0][1]


def test_vxlan_device_routes_neighbours_fdb():
    cfg, d = vx_desired()
    assert d.device is not None
    assert (d.device.name, d.device.vni, d.device.local, d.device.port, d.device.mac, d.device.address) == \
        ("flannel.1", 1, "192.168.77.11", 8472, MAC_A, "10.244.1.0/32")
    assert d.routes == {"10.244.2.0/24": Route("10.244.2.0/24", "10.244.2.0", "flannel.1", True),
                        "10.244.3.0/24": Route("10.244.3.0/24", "10.244.3.0", "flannel.1", True)}
    assert d.neighs == {"10.244.2.0": Neigh("10.244.2.0", MAC_B), "10.244.3.0": Neigh("10.244.3.0", MAC_C)}
    assert d.fdbs == {MAC_B: Fdb(MAC_B, "192.168.77.12"), MAC_C: Fdb(MAC_C, "192.168.78.13")}
    assert d.skipped == []


def test_vxlan_direct_routing_uses_plain_routes_on_the_segment():
    _, d = vx_desired(direct_routing=True)
    assert d.routes["10.244.2.0/24"] == Route("10.244.2.0/24", "192.168.77.12")
    assert d.routes["10.244.3.0/24"].dev == "flannel.1"
    assert list(d.neighs) == ["10.244.3.0"]


def test_odd_nodes_are_skipped_with_a_reason():
    nodes = vx_nodes() + [
        node("d", None, "192.168.77.14"),  # no podCIDR yet
        node("e", "10.244.5.0/24", "192.168.77.15"),  # not annotated yet
        node("f", "10.244.6.0/24", None, extra_addresses=[{"type": "InternalIP", "address": "fd00::16"}]),  # IPv6 only
        node("g", "10.244.2.0/25", "192.168.77.17", backend="vxlan", mac="0e:00:00:00:00:07"),  # overlaps b
        node("h", "10.99.0.0/24", "192.168.77.18", backend="vxlan", mac="0e:00:00:00:00:08"),  # outside the cluster
        node("i", "10.244.9.0/24", "192.168.77.19", backend="host-gw"),  # other backend
        node("j", "10.244.10.0/24", "192.168.77.20", backend="vxlan", mac="0e:00:00:00:00:0a", vni=2),
        node("k", "10.244.11.0/24", "192.168.77.11", backend="vxlan", mac="0e:00:00:00:00:0b"),  # our own IP
    ]
    _, d = vx_desired(nodes)
    why = dict(d.skipped)
    assert set(why) == set("defghijk")
    assert why["d"] == "no IPv4 podCIDR"
    assert "not annotated" in why["e"]
    assert "InternalIP" in why["f"]
    assert "overlaps 10.244.2.0/24" in why["g"]
    assert "outside the cluster CIDR" in why["h"]
    assert "host-gw" in why["i"]
    assert "VNI 2" in why["j"]
    assert "own" in why["k"]
    assert set(d.routes) == {"10.244.2.0/24", "10.244.3.0/24"}


def test_not_ready_without_own_node_or_pod_cidr():
    cfg = FlannelConfig("a")
    assert not desired_state(cfg, [], public_ip="1.1.1.1", vtep_mac=MAC_A).ready
    d = desired_state(cfg, [node("a", None, "192.168.77.11")], public_ip="192.168.77.11", vtep_mac=MAC_A)
    assert not d.ready and "podCIDR" in d.reason
    assert plan(cfg, d, Current(device=Link("flannel.1"))) == []  # touches nothing while waiting
    d = desired_state(cfg, [node("a", "10.244.1.0/24", None)], public_ip=None, vtep_mac=MAC_A)
    assert not d.ready


def test_plan_from_scratch_orders_device_entries_routes():
    cfg, d = vx_desired()
    cmds = plan(cfg, d, Current())
    assert cmds[0] == ["ip", "link", "add", "flannel.1", "address", MAC_A, "mtu", "1450", "type", "vxlan", "id", "1",
                       "local", "192.168.77.11", "dev", "eth0", "dstport", "8472", "nolearning"]
    assert cmds[1] == ["ip", "addr", "add", "10.244.1.0/32", "dev", "flannel.1"]
    assert cmds[2] == ["ip", "link", "set", "dev", "flannel.1", "up"]
    kinds = [c[1] if c[0] == "ip" else "fdb" for c in cmds[3:]]
    assert kinds == ["neigh", "neigh", "fdb", "fdb", "route", "route"]
    assert ["ip", "neigh", "replace", "10.244.2.0", "lladdr", MAC_B, "dev", "flannel.1", "nud", "permanent"] in cmds
    assert ["bridge", "fdb", "replace", MAC_B, "dev", "flannel.1", "dst", "192.168.77.12", "self", "permanent"] in cmds
    assert ["ip", "route", "replace", "10.244.2.0/24", "via", "10.244.2.0", "dev", "flannel.1", "onlink",
            "proto", "75"] in cmds


def applied(d, cfg) -> Current:
    """The state as read back after applying `d`."""
    assert d.device is not None
    dev = Link("flannel.1", "vxlan", cfg.vni, d.device.local, cfg.port, "eth0", False, d.device.mac, 1450, True,
               [d.device.address])
    routes = {k: Route(r.dst, r.gateway, r.dev or "eth0", r.onlink) for k, r in d.routes.items()}
    return Current(dev, routes, dict(d.neighs), dict(d.fdbs))


def test_plan_is_empty_when_applied_and_removes_a_deleted_node():
    cfg, d = vx_desired()
    cur = applied(d, cfg)
    assert plan(cfg, d, cur) == []
    _, d2 = vx_desired(vx_nodes()[:2])  # node c removed
    assert plan(cfg, d2, cur) == [
        ["ip", "route", "del", "10.244.3.0/24", "via", "10.244.3.0", "dev", "flannel.1"],
        ["ip", "neigh", "del", "10.244.3.0", "dev", "flannel.1"],
        ["bridge", "fdb", "del", MAC_C, "dev", "flannel.1", "dst", "192.168.78.13", "self"],
    ]


def test_plan_updates_a_moved_node_and_a_changed_device():
    cfg, d = vx_desired()
    cur = applied(d, cfg)
    nodes = vx_nodes()
    nodes[1] = node("b", "10.244.2.0/24", "192.168.77.22", backend="vxlan", mac=MAC_B)
    _, d2 = vx_desired(nodes)
    assert plan(cfg, d2, cur) == [["bridge", "fdb", "replace", MAC_B, "dev", "flannel.1", "dst", "192.168.77.22",
                                   "self", "permanent"]]
    cur.device.addresses = ["10.244.1.0/32", "10.244.7.0/32"]
    cur.device.mtu = 1500
    assert plan(cfg, d, cur) == [["ip", "link", "set", "dev", "flannel.1", "mtu", "1450"],
                                 ["ip", "addr", "del", "10.244.7.0/32", "dev", "flannel.1"]]
    cur = applied(d, cfg)
    cur.device.vni = 7  # a device made with other settings is made again, with everything on it
    cmds = plan(cfg, d, cur)
    assert cmds[0] == ["ip", "link", "del", "flannel.1"] and cmds[1][:3] == ["ip", "link", "add"]
    assert sum(c[1] == "route" for c in cmds) == 2 and sum(c[0] == "bridge" for c in cmds) == 2


def test_switching_vxlan_to_host_gw_removes_the_device():
    cfg, d = vx_desired()
    cur = applied(d, cfg)
    hcfg = FlannelConfig("a", backend="host-gw")
    nodes = [node("a", "10.244.1.0/24", "192.168.77.11"), node("b", "10.244.2.0/24", "192.168.77.12")]
    hd = desired_state(hcfg, nodes, public_ip="192.168.77.11", connected=LAN)
    assert plan(hcfg, hd, cur) == [["ip", "link", "del", "flannel.1"],
                                   ["ip", "route", "replace", "10.244.2.0/24", "via", "192.168.77.12", "proto", "75"]]


def test_parsers_read_ip_json():
    cfg = FlannelConfig("a")
    routes = [
        {"dst": "10.244.2.0/24", "gateway": "10.244.2.0", "dev": "flannel.1", "protocol": "75", "flags": ["onlink"]},
        {"dst": "10.244.3.0/24", "gateway": "192.168.77.13", "dev": "eth0", "protocol": "75", "flags": []},
        {"dst": "10.244.4.0/24", "gateway": "192.168.77.14", "dev": "eth0", "protocol": "boot", "flags": []},
        {"dst": "10.244.1.0/24", "dev": "kubelite0", "protocol": "kernel", "scope": "link", "flags": []},
        {"dst": "192.168.77.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "flags": []},
        {"dst": "default", "gateway": "192.168.77.1", "dev": "eth0", "flags": []},
        {"dst": "10.0.0.5", "dev": "eth1", "scope": "link", "flags": []},
    ]
    assert parse_routes(routes, cfg) == {
        "10.244.2.0/24": Route("10.244.2.0/24", "10.244.2.0", "flannel.1", True),
        "10.244.3.0/24": Route("10.244.3.0/24", "192.168.77.13", "eth0", False)}
    assert connected_networks(routes, cfg) == [ipaddress.ip_network("192.168.77.0/24"),
                                               ipaddress.ip_network("10.0.0.5/32")]
    assert parse_neighs([{"dst": "10.244.2.0", "lladdr": "0E:00:00:00:00:02", "state": ["PERMANENT"]},
                         {"dst": "10.244.9.0", "lladdr": "0e:00:00:00:00:09", "state": ["STALE"]}]) == \
        {"10.244.2.0": Neigh("10.244.2.0", MAC_B)}
    assert parse_fdb([{"mac": MAC_B, "dst": "192.168.77.12", "flags": ["self"], "state": "permanent"},
                      {"mac": "00:00:00:00:00:00", "dst": "192.168.77.99"}, {"mac": "33:33:00:00:00:01"}]) == \
        {MAC_B: Fdb(MAC_B, "192.168.77.12")}
    link = parse_link([{"ifname": "flannel.1", "flags": ["BROADCAST", "UP"], "mtu": 1450, "address": MAC_A,
                        "linkinfo": {"info_kind": "vxlan", "info_data": {"id": 1, "local": "192.168.77.11",
                                                                         "link": "eth0", "port": 8472,
                                                                         "learning": False}},
                        "addr_info": [{"family": "inet", "local": "10.244.1.0", "prefixlen": 32},
                                      {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}])
    assert link == Link("flannel.1", "vxlan", 1, "192.168.77.11", 8472, "eth0", False, MAC_A, 1450, True,
                        ["10.244.1.0/32"])
    assert parse_link([]) is None
