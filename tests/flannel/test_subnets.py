import ipaddress
import json

import pytest

from flannel.nodes import node
from kubelite.flannel import FlannelConfig
from kubelite.flannel.subnets import (
    annotations_patch,
    internal_ip,
    node_lease,
    normalize_mac,
    own_annotations,
    pod_cidr,
    vtep_mac_for,
)


def test_pod_cidr_prefers_the_ipv4_entry_of_pod_cidrs():
    n = node("a", None, "192.168.77.11")
    n["spec"] = {"podCIDR": "fd00:10:244:1::/64", "podCIDRs": ["fd00:10:244:1::/64", "10.244.1.0/24"]}
    assert pod_cidr(n) == ipaddress.ip_network("10.244.1.0/24")
    assert pod_cidr(node("a", None, "1.2.3.4")) is None
    assert pod_cidr({"metadata": {"name": "x"}}) is None
    assert pod_cidr({"spec": {"podCIDR": "garbage"}}) is None


def test_internal_ip_skips_ipv6_and_other_types():
    n = node("a", "10.244.1.0/24", "192.168.77.11",
             extra_addresses=[{"type": "InternalIP", "address": "fd00::11"}, {"type": "ExternalIP", "address": "8.8.8.8"}])
    assert internal_ip(n) == "192.168.77.11"
    assert internal_ip(node("a", "10.244.1.0/24", None, extra_addresses=[{"type": "InternalIP", "address": "fd00::1"}])) is None


def test_lease_from_annotations_with_fallbacks():
    lease, why = node_lease(node("b", "10.244.2.0/24", "192.168.77.12", backend="vxlan", mac="0E:00:00:00:00:02",
                                 public_ip="10.0.0.12"))
    assert why == "" and lease is not None
    assert (lease.public_ip, lease.vtep_mac, lease.vni, lease.backend_type) == ("10.0.0.12", "0e:00:00:00:00:02", 1, "vxlan")
    # not annotated yet: public IP from InternalIP, no backend data
    lease, _ = node_lease(node("b", "10.244.2.0/24", "192.168.77.12"))
    assert lease is not None and (lease.public_ip, lease.backend_type, lease.vtep_mac) == ("192.168.77.12", None, None)
    assert node_lease(node("b", None, "192.168.77.12")) == (None, "no IPv4 podCIDR")
    assert node_lease(node("b", "10.244.2.0/24", None))[1] == "no IPv4 public-ip annotation or InternalIP"
    bad = node("b", "10.244.2.0/24", "192.168.77.12", backend="vxlan", mac="nonsense")
    bad["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"] = "{not json"
    lease, _ = node_lease(bad)
    assert lease is not None and lease.vtep_mac is None


def test_own_annotations_are_spelled_as_flannel_writes_them():
    cfg = FlannelConfig("a")
    ann = own_annotations(cfg, "192.168.77.11", "0e:00:00:00:00:01")
    assert ann == {"flannel.alpha.coreos.com/backend-type": "vxlan",
                   "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}',
                   "flannel.alpha.coreos.com/public-ip": "192.168.77.11",
                   "flannel.alpha.coreos.com/kube-subnet-manager": "true"}
    assert json.loads(ann["flannel.alpha.coreos.com/backend-data"]) == {"VNI": 1, "VtepMAC": "0e:00:00:00:00:01"}
    hg = own_annotations(FlannelConfig("a", backend="host-gw"), "192.168.77.11", None)
    assert hg["flannel.alpha.coreos.com/backend-data"] == "null"
    assert hg["flannel.alpha.coreos.com/backend-type"] == "host-gw"


def test_annotations_patch_only_what_differs():
    wanted = own_annotations(FlannelConfig("a"), "192.168.77.11", "0e:00:00:00:00:01")
    n = node("a", "10.244.1.0/24", "192.168.77.11")
    assert annotations_patch(n, wanted) == {"metadata": {"annotations": wanted}}
    n["metadata"]["annotations"] = dict(wanted, other="x")
    assert annotations_patch(n, wanted) is None
    n["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"] = "1.1.1.1"
    assert annotations_patch(n, wanted) == {"metadata": {"annotations": {"flannel.alpha.coreos.com/public-ip": "192.168.77.11"}}}


def test_vtep_mac_is_stable_local_unicast():
    mac = vtep_mac_for("node01")
    assert mac == vtep_mac_for("node01") != vtep_mac_for("node02")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01
    assert normalize_mac(mac.upper()) == mac


@pytest.mark.parametrize("kw", [{"backend": "calico"}, {"cluster_cidr": "fd00::/48"}, {"vni": 0},
                                {"postrouting_chain": "X" * 29}, {"iface": "a-very-long-interface"}])
def test_config_rejects(kw):
    with pytest.raises(ValueError):
        FlannelConfig("a", **kw)
