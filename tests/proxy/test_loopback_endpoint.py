"""Issue 14: a Service whose endpoint is a loopback listener of this host (the dashboard add-on bound to
127.0.0.1) stays reachable from 127.0.0.1: a loopback client of a loopback endpoint is not masqueraded."""

from __future__ import annotations

from kubelite.proxy.iptables import Endpoint, RuleOptions, ServicePort, build_rules

RETURN = ('-A KUBE-POSTROUTING -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment '
          '"loopback client of a loopback endpoint: no SNAT" -j RETURN')


def _rules(ip: str) -> list[str]:
    sp = ServicePort("kubernetes-dashboard", "kubernetes-dashboard", "", "TCP", 443, "10.96.0.20", node_port=31213)
    rs = build_rules([sp], {sp.key: [Endpoint(ip, 31213)]}, RuleOptions(node_name="n1"))
    return [r for r in rs.nat_rules if r.startswith("-A KUBE-POSTROUTING")]


def test_loopback_endpoint_skips_masquerade_for_loopback_clients_only():
    rules = _rules("127.0.0.1")
    assert rules.index(RETURN) == 2  # after the mark is cleared, before MASQUERADE
    assert "MASQUERADE" in rules[3]


def test_ordinary_endpoints_keep_upstream_postrouting():
    assert RETURN not in _rules("10.244.0.5")
    assert len(_rules("10.244.0.5")) == 3
