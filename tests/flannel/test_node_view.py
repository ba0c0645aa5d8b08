import copy

from flannel.nodes import node
from kubelite.flannel.agent import node_view


def test_heartbeats_do_not_wake_the_loop_but_network_fields_do():
    n = node("a", "10.244.1.0/24", "192.168.77.11", backend="vxlan", mac="0e:00:00:00:00:01")
    beat = copy.deepcopy(n)
    beat["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "now"}]
    beat["metadata"]["resourceVersion"] = "2"
    beat["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = "0"
    assert node_view(beat) == node_view(n)
    for change in (lambda x: x["spec"].update(podCIDR="10.244.9.0/24", podCIDRs=["10.244.9.0/24"]),
                   lambda x: x["status"]["addresses"].__setitem__(0, {"type": "InternalIP", "address": "1.1.1.1"}),
                   lambda x: x["metadata"]["annotations"].update({"flannel.alpha.coreos.com/public-ip": "1.1.1.1"})):
        other = copy.deepcopy(n)
        change(other)
        assert node_view(other) != node_view(n)
