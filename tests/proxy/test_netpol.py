"""NetworkPolicy enforcement: rule generation (pure) and real traffic between network-namespace pods."""

from __future__ import annotations

import pytest

from kubelite.proxy import NetworkPolicyController, ProxyConfig
from kubelite.proxy.netpol import NetpolOptions, build_netpol_rules, policy_types
from proxy.nettools import PREFIX, chains_left, remove_test_chains


def pod(name, ip, labels=None, ns="default", node="test-node", ports=None):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def namespace(name, labels=None):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}}


def policy(name, spec, ns="default"):
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


DENY_ALL_INGRESS = {"podSelector": {}, "policyTypes": ["Ingress"]}


def chain_rules(rs, chain):
    return [ln for ln in rs.rules if ln.startswith(f"-A {chain} ")]


# --- generation -------------------------------------------------------------------------------------------

def test_policy_types_default():
    assert policy_types(policy("p", {"podSelector": {}})) == ["Ingress"]
    assert policy_types(policy("p", {"podSelector": {}, "egress": [{}]})) == ["Ingress", "Egress"]
    assert policy_types(policy("p", {"podSelector": {}, "policyTypes": ["Egress"]})) == ["Egress"]


def test_unselected_pods_get_no_chain_and_default_deny_drops():
    pods = [pod("web", "10.1.0.2", {"app": "web"}), pod("db", "10.1.0.3", {"app": "db"})]
    rs = build_netpol_rules(pods, [namespace("default")],
                            [policy("deny", {"podSelector": {"matchLabels": {"app": "web"}}})])
    opts = NetpolOptions()
    web = opts.pod_chain("ingress", "default", "web")
    assert any(ln.endswith(f"-d 10.1.0.2 -j {web}") for ln in rs.rules)
    assert not any("10.1.0.3" in ln for ln in rs.rules)
    assert chain_rules(rs, web) == [f'-A {web} -m comment --comment "default/web ingress not allowed" -j DROP']
    assert rs.rules[0].endswith("-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")


def test_peers_ports_named_ports_and_end_port():
    pods = [pod("web", "10.1.0.2", {"app": "web"}, ports=[{"name": "http", "containerPort": 8080}]),
            pod("cli", "10.1.0.3", {"role": "client"}),
            pod("mon", "10.1.1.4", {"role": "monitor"}, ns="monitoring")]
    nss = [namespace("default"), namespace("monitoring", {"team": "ops"})]
    pol = policy("allow", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
         "ports": [{"port": "http"}, {"port": 9000, "endPort": 9010, "protocol": "UDP"}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]},
    ]})
    rs = build_netpol_rules(pods, nss, [pol])
    web = NetpolOptions().pod_chain("ingress", "default", "web")
    rules = chain_rules(rs, web)
    c = '-m comment --comment "default/allow ingress rule'
    assert rules == [
        f'-A {web} {c} 0" -s 10.1.0.3 -p tcp -m tcp --dport 8080 -j RETURN',
        f'-A {web} {c} 0" -s 10.1.0.3 -p udp -m udp --dport 9000:9010 -j RETURN',
        f'-A {web} {c} 1" -s 10.1.1.4 -j RETURN',
        f'-A {web} -m comment --comment "default/web ingress not allowed" -j DROP',
    ]


def test_ip_block_with_except_and_egress():
    pods = [pod("web", "10.1.0.2", {"app": "web"})]
    pol = policy("eg", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 53, "protocol": "UDP"}]},
        {"to": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]},
    ]})
    rs = build_netpol_rules(pods, [namespace("default")], [pol])
    opts = NetpolOptions()
    chain = opts.pod_chain("egress", "default", "web")
    block = opts.block_chain("default/eg/egress/0/0")
    assert any(ln.endswith(f"-s 10.1.0.2 -j {chain}") for ln in rs.rules)
    assert chain_rules(rs, block) == [f"-A {block} -d 10.1.0.0/16 -j RETURN",
                                      f"-A {block} -d 10.0.0.0/8 -j MARK --or-mark 0x10000"]
    rules = chain_rules(rs, chain)
    assert rules[0] == f"-A {chain} -j MARK --and-mark 0xfffeffff"
    assert rules[1].endswith(f"-p udp -m udp --dport 53 -j {block}")
    assert rules[2].endswith("-m mark --mark 0x10000/0x10000 -j RETURN")
    assert rules[3].endswith("-d 192.168.0.0/16 -j RETURN")


def test_only_this_nodes_pods_and_stale_chains_deleted():
    pods = [pod("a", "10.1.0.2", node="n1"), pod("b", "10.1.0.3", node="n2")]
    opts = NetpolOptions(node_name="n1")
    rs = build_netpol_rules(pods, [namespace("default")], [policy("d", DENY_ALL_INGRESS)], opts,
                            existing_chains=["KUBE-NPI-OLDOLDOLDOLDOLD1", "KUBE-SERVICES"])
    assert any("10.1.0.2" in ln for ln in rs.rules) and not any("10.1.0.3 -j" in ln for ln in rs.rules)
    assert "-X KUBE-NPI-OLDOLDOLDOLDOLD1" in rs.rules and "-X KUBE-SERVICES" not in rs.rules


# --- real traffic -----------------------------------------------------------------------------------------

@pytest.fixture
def enforcer(topo):
    ctl = NetworkPolicyController(ProxyConfig(node_name="test-node", chain_prefix=PREFIX, min_sync_period=0))
    ctl.on_namespace(namespace("default"))
    ctl.on_namespace(namespace("other", {"team": "x"}))
    yield ctl
    remove_test_chains()
    assert not chains_left()


async def test_default_deny_blocks_and_allow_rule_reopens(topo, enforcer):
    web, cli, stranger = topo.add_pod("web"), topo.add_pod("cli"), topo.add_pod("stranger")
    enforcer.on_pod(pod("web", web.ip, {"app": "web"}, ports=[{"name": "http", "containerPort": 8080}]))
    enforcer.on_pod(pod("cli", cli.ip, {"role": "client"}))
    enforcer.on_pod(pod("stranger", stranger.ip, {"role": "x"}, ns="other"))
    await enforcer.sync()
    assert cli.requests(web.ip, 8080) == [f"web from {cli.ip}"]  # no policy: open

    enforcer.on_policy(policy("deny", DENY_ALL_INGRESS))
    await enforcer.sync()
    assert cli.requests(web.ip, 8080, timeout=0.5) == ["ERROR TimeoutError"]
    # the policy selects every pod of "default" (cli too); "other" is not isolated and web's egress is open
    assert web.requests(stranger.ip, 8080) == [f"stranger from {web.ip}"]

    enforcer.on_policy(policy("allow-clients", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": "http"}]}]}))
    await enforcer.sync()
    assert cli.requests(web.ip, 8080) == [f"web from {cli.ip}"]
    assert stranger.requests(web.ip, 8080, timeout=0.5) == ["ERROR TimeoutError"]

    enforcer.on_policy(policy("allow-team-x", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}]}))
    await enforcer.sync()
    assert stranger.requests(web.ip, 8080) == [f"web from {stranger.ip}"]

    enforcer.on_policy_delete(policy("deny", {}))
    enforcer.on_policy_delete(policy("allow-clients", {}))
    enforcer.on_policy_delete(policy("allow-team-x", {}))
    await enforcer.sync()
    assert stranger.requests(web.ip, 8080) == [f"web from {stranger.ip}"]
    assert not [ln for ln in chains_left() if "NPI-" in ln]


async def test_egress_ip_block_except(topo, enforcer):
    a, b, c = topo.add_pod("a"), topo.add_pod("b"), topo.add_pod("c")
    for p in (a, b, c):
        enforcer.on_pod(pod(p.name, p.ip, {"name": p.name}))
    enforcer.on_policy(policy("a-out", {"podSelector": {"matchLabels": {"name": "a"}}, "policyTypes": ["Egress"],
                                        "egress": [{"to": [{"ipBlock": {"cidr": topo.cidr,
                                                                        "except": [f"{c.ip}/32"]}}]}]}))
    await enforcer.sync()
    assert a.requests(b.ip, 8080) == [f"b from {a.ip}"]
    assert a.requests(c.ip, 8080, timeout=0.5) == ["ERROR TimeoutError"]
    assert b.requests(c.ip, 8080) == [f"c from {b.ip}"]  # b is not selected
