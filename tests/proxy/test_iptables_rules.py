"""Rule generation (pure): chain names, layout and rule text against upstream kube-proxy's iptables mode."""

from __future__ import annotations

from kubelite.proxy.iptables import (
    Endpoint,
    RuleOptions,
    build_rules,
    categorize_endpoints,
    cleanup_payload,
    is_proxy_chain,
    jump_rules,
    port_proto_hash,
    service_ports,
    slice_endpoints,
)


def svc(name="svc1", ns="ns1", ip="172.30.0.41", ports=None, type_="ClusterIP", **spec):
    ports = ports or [{"name": "p80", "port": 80, "protocol": "TCP"}]
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"type": type_, "clusterIP": ip, "clusterIPs": [ip], "ports": ports, **spec}}


def eslice(svc_name, ns, endpoints, ports=None, name=None):
    ports = ports or [{"name": "p80", "port": 80, "protocol": "TCP"}]
    return {"metadata": {"namespace": ns, "name": name or f"{svc_name}-abc",
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints}


def ep(ip, ready=True, node=None, serving=None, terminating=None):
    cond = {"ready": ready}
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    return {"addresses": [ip], "conditions": cond, **({"nodeName": node} if node else {})}


def rules_for(services, slices, **opts):
    ports = [sp for s in services for sp in service_ports(s)]
    by_svc = {}
    for sl in slices:
        key = (sl["metadata"]["namespace"], sl["metadata"]["labels"]["kubernetes.io/service-name"])
        by_svc.setdefault(key, []).append(sl)
    endpoints = {}
    for sp in ports:
        endpoints[sp.key] = slice_endpoints(by_svc.get(sp.service_key, [])).get((sp.port_name, sp.protocol), [])
    opts.setdefault("cluster_cidr", "10.0.0.0/8")
    return build_rules(ports, endpoints, RuleOptions(**opts))


def test_chain_hashes_match_upstream():
    # values seen on every kubeadm cluster and in upstream's proxier tests
    assert port_proto_hash("default/kubernetes:https", "tcp") == "NPX46M4PTMTKRN6Y"
    assert port_proto_hash("kube-system/kube-dns:dns", "udp") == "TCOU7JCQXEZGVUNU"
    assert port_proto_hash("kube-system/kube-dns:dns-tcp", "tcp") == "ERIFXISQEP7F7OF4"
    assert port_proto_hash("ns1/svc1:p80", "tcp") == "XPGD46QRK7WJZT7O"
    assert port_proto_hash("ns1/svc1:p80", "tcp" + "10.180.0.1:80") == "SXIVWICOYRO3J4NJ"


# upstream's documented output (proxier_test.go, "basic" ClusterIP + NodePort with two endpoints), with our
# hash for the second endpoint
GOLDEN_NAT = """\
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-LXVODXWDISEETFEF - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"""

GOLDEN_FILTER = """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""


def test_golden_clusterip_nodeport_two_endpoints():
    s = svc(type_="NodePort", ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}])
    sl = eslice("svc1", "ns1", [ep("10.180.0.1"), ep("10.180.0.2")])
    rs = rules_for([s], [sl])
    assert rs.payload() == GOLDEN_FILTER + GOLDEN_NAT
    assert rs.active_nat_chains == {"KUBE-EXT-XPGD46QRK7WJZT7O", "KUBE-SVC-XPGD46QRK7WJZT7O",
                                    "KUBE-SEP-SXIVWICOYRO3J4NJ", "KUBE-SEP-LXVODXWDISEETFEF"}


def test_probabilities_are_one_over_remaining():
    sl = eslice("svc1", "ns1", [ep(f"10.180.0.{i}") for i in range(1, 5)])
    rs = rules_for([svc()], [sl])
    probs = [ln.split("--probability ")[1].split()[0] for ln in rs.nat_rules if "--probability" in ln]
    assert probs == ["0.2500000000", "0.3333333333", "0.5000000000"]
    jumps = [ln for ln in rs.nat_rules if ln.startswith("-A KUBE-SVC-") and "-> " in ln]
    assert len(jumps) == 4 and "statistic" not in jumps[-1]


def test_no_endpoints_rejects_in_filter_and_writes_no_nat_chains():
    s = svc(type_="NodePort", ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}],
            externalIPs=["192.168.99.11"])
    rs = rules_for([s], [eslice("svc1", "ns1", [ep("10.180.0.1", ready=False)])])
    assert rs.active_nat_chains == set()
    assert ('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp '
            "-d 172.30.0.41 --dport 80 -j REJECT") in rs.filter_rules
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp '
            "-d 192.168.99.11 --dport 80 -j REJECT") in rs.filter_rules
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype '
            "--dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT") in rs.filter_rules
    assert not [ln for ln in rs.nat_rules if "ns1/svc1" in ln]


def test_terminating_serving_endpoints_used_when_none_ready():
    sl = eslice("svc1", "ns1", [ep("10.180.0.1", ready=False, serving=True, terminating=True),
                                ep("10.180.0.2", ready=False, serving=False, terminating=True)])
    rs = rules_for([svc()], [sl])
    assert any("DNAT --to-destination 10.180.0.1:80" in ln for ln in rs.nat_rules)
    assert not any("10.180.0.2" in ln for ln in rs.nat_rules)


def test_session_affinity_recent_module():
    s = svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    rs = rules_for([s], [eslice("svc1", "ns1", [ep("10.180.0.1"), ep("10.180.0.2")])])
    svc_chain = "KUBE-SVC-XPGD46QRK7WJZT7O"
    sep1 = "KUBE-SEP-SXIVWICOYRO3J4NJ"
    lines = [ln for ln in rs.nat_rules if ln.startswith(f"-A {svc_chain} ")]
    assert lines[1] == (f'-A {svc_chain} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name {sep1} '
                        f"--rcheck --seconds 600 --reap -j {sep1}")
    assert "statistic" in lines[3]  # affinity checks first, then the random split
    assert (f"-A {sep1} -m comment --comment ns1/svc1:p80 -m recent --name {sep1} --set -m tcp -p tcp "
            "-j DNAT --to-destination 10.180.0.1:80") in rs.nat_rules


def test_external_ips_and_load_balancer_ingress():
    s = svc(type_="LoadBalancer", ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}],
            externalIPs=["192.168.99.11"], loadBalancerSourceRanges=["203.0.113.0/25"])
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"}]}}
    rs = rules_for([s], [eslice("svc1", "ns1", [ep("10.180.0.1")])])
    ext, fw = "KUBE-EXT-XPGD46QRK7WJZT7O", "KUBE-FW-XPGD46QRK7WJZT7O"
    assert (f'-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 external IP" -m tcp -p tcp -d 192.168.99.11 '
            f"--dport 80 -j {ext}") in rs.nat_rules
    assert (f'-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 '
            f"--dport 80 -j {fw}") in rs.nat_rules
    assert not any("5.6.7.8" in ln for ln in rs.nat_rules)  # ipMode Proxy: not captured
    assert f'-A {fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 203.0.113.0/25 -j {ext}' in rs.nat_rules
    assert any(ln.startswith("-A KUBE-PROXY-FIREWALL ") and "-d 1.2.3.4" in ln and ln.endswith("-j DROP")
               for ln in rs.filter_rules)


def test_external_traffic_policy_local():
    s = svc(type_="NodePort", ports=[{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}],
            externalTrafficPolicy="Local")
    sl = eslice("svc1", "ns1", [ep("10.180.0.1", node="node-a"), ep("10.180.0.2", node="node-b")])
    rs = rules_for([s], [sl], node_name="node-a")
    h = "XPGD46QRK7WJZT7O"
    ext = [ln for ln in rs.nat_rules if ln.startswith(f"-A KUBE-EXT-{h} ")]
    assert ext == [
        f'-A KUBE-EXT-{h} -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" '
        f"-s 10.0.0.0/8 -j KUBE-SVC-{h}",
        f'-A KUBE-EXT-{h} -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" '
        f"-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        f'-A KUBE-EXT-{h} -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" '
        f"-m addrtype --src-type LOCAL -j KUBE-SVC-{h}",
        f"-A KUBE-EXT-{h} -j KUBE-SVL-{h}",
    ]
    svl = [ln for ln in rs.nat_rules if ln.startswith(f"-A KUBE-SVL-{h} ")]
    assert len(svl) == 1 and "10.180.0.1:80" in svl[0]  # only the local endpoint
    # on a node without local endpoints, external traffic that is not short-circuited is dropped
    rs_b = rules_for([s], [eslice("svc1", "ns1", [ep("10.180.0.2", node="node-b")])], node_name="node-a")
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype '
            "--dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP") in rs_b.filter_rules
    assert f"-A KUBE-EXT-{h} -j KUBE-SVL-{h}" not in rs_b.nat_rules


def test_internal_traffic_policy_local():
    s = svc(internalTrafficPolicy="Local")
    sl = eslice("svc1", "ns1", [ep("10.180.0.1", node="node-a"), ep("10.180.0.2", node="node-b")])
    rs = rules_for([s], [sl], node_name="node-a")
    h = "XPGD46QRK7WJZT7O"
    assert any(ln.startswith("-A KUBE-SERVICES ") and ln.endswith(f"-j KUBE-SVL-{h}") for ln in rs.nat_rules)
    assert f"KUBE-SVC-{h}" not in rs.active_nat_chains
    rs_c = rules_for([s], [sl], node_name="node-c")
    assert any('"ns1/svc1:p80 has no local endpoints"' in ln and ln.endswith("-j DROP") for ln in rs_c.filter_rules)


def test_categorize_endpoints_union_for_mixed_policies():
    s = service_ports(svc(type_="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 3001}],
                          externalTrafficPolicy="Local"))[0]
    eps = [Endpoint("10.0.0.1", 80, node_name="a"), Endpoint("10.0.0.2", 80, node_name="b")]
    cluster, local, reachable, has_any = categorize_endpoints(eps, s, "a")
    assert [str(e) for e in cluster] == ["10.0.0.1:80", "10.0.0.2:80"]
    assert [str(e) for e in local] == ["10.0.0.1:80"]
    assert len(reachable) == 2 and has_any


def test_headless_externalname_and_ipv6_are_skipped():
    assert service_ports(svc(ip="None")) == []
    assert service_ports({"metadata": {"name": "x", "namespace": "d"},
                          "spec": {"type": "ExternalName", "externalName": "example.com"}}) == []
    assert service_ports(svc(ip="fd00::10")) == []


def test_slices_merge_and_dedupe():
    a = eslice("svc1", "ns1", [ep("10.0.0.2"), ep("10.0.0.1")], name="a")
    b = eslice("svc1", "ns1", [ep("10.0.0.1", ready=False), ep("10.0.0.3")], name="b")
    got = slice_endpoints([a, b])[("p80", "TCP")]
    assert [(str(e), e.ready) for e in got] == [("10.0.0.1:80", True), ("10.0.0.2:80", True), ("10.0.0.3:80", True)]


def test_partial_sync_leaves_unchanged_services_out():
    s1, s2 = svc("a", ip="10.96.0.5"), svc("b", ip="10.96.0.6")
    sl = [eslice("a", "ns1", [ep("10.0.0.1")]), eslice("b", "ns1", [ep("10.0.0.2")])]
    full = rules_for([s1, s2], sl)
    ports = [sp for s in (s1, s2) for sp in service_ports(s)]
    endpoints = {sp.key: slice_endpoints([x for x in sl if x["metadata"]["labels"]["kubernetes.io/service-name"]
                                          == sp.name]).get(("p80", "TCP"), []) for sp in ports}
    partial = build_rules(ports, endpoints, RuleOptions(cluster_cidr="10.0.0.0/8"), changed={("ns1", "a")},
                          existing_nat_chains=full.active_nat_chains | {"KUBE-SEP-STALESTALESTALE1"})
    # both services' KUBE-SERVICES rules are there, only a's own chains are
    assert sum(1 for ln in partial.nat_rules if ln.startswith("-A KUBE-SERVICES ") and "cluster IP" in ln) == 2
    b_chain = "KUBE-SVC-" + port_proto_hash("ns1/b:p80", "tcp")
    assert f":{b_chain} - [0:0]" not in partial.nat_chains and b_chain in partial.active_nat_chains
    assert "-X KUBE-SEP-STALESTALESTALE1" in partial.nat_rules
    assert partial.skipped_rules > 0


def test_large_cluster_mode_drops_endpoint_comments():
    sl = eslice("svc1", "ns1", [ep(f"10.1.{i // 250}.{i % 250 + 1}") for i in range(5)])
    rs = rules_for([svc()], [sl], large_cluster_endpoints=3)
    sep_rules = [ln for ln in rs.nat_rules if ln.startswith("-A KUBE-SEP-")]
    assert sep_rules and not any("comment" in ln for ln in sep_rules)


def test_prefix_and_jump_rules():
    rs = rules_for([svc()], [eslice("svc1", "ns1", [ep("10.0.0.1")])], prefix="KTEST-")
    assert not any("KUBE-" in ln for ln in rs.payload().splitlines())
    jr = {(j.table, j.source, j.target) for j in jump_rules()}
    assert ("nat", "PREROUTING", "KUBE-SERVICES") in jr and ("nat", "POSTROUTING", "KUBE-POSTROUTING") in jr
    assert ("filter", "FORWARD", "KUBE-FORWARD") in jr and ("filter", "INPUT", "KUBE-FIREWALL") in jr


def test_cleanup_payload_deletes_jumps_then_chains():
    saved = """\
*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:DOCKER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -j DOCKER
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -j KUBE-SVC-XPGD46QRK7WJZT7O
COMMIT
*filter
:INPUT ACCEPT [0:0]
COMMIT
"""
    payload = cleanup_payload(saved, is_proxy_chain())
    assert payload.splitlines() == [
        "*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]",
        '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-X KUBE-SERVICES", "-X KUBE-SVC-XPGD46QRK7WJZT7O", "COMMIT"]


def test_jump_fixes_insert_missing_and_move_to_front():
    from kubelite.proxy.iptables import JumpRule, jump_fixes, parse_save

    saved = parse_save("""\
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m comment --comment "kubernetes network policy" -j KUBE-NETPOL
COMMIT
""")
    fwd = JumpRule("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules")
    pol = JumpRule("filter", "FORWARD", "KUBE-NETPOL", "kubernetes network policy")
    new = JumpRule("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals")
    assert jump_fixes(saved, [fwd, new]) == {
        "nat": ['-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']}
    assert jump_fixes(saved, [pol], first=True) == {"filter": [
        '-D FORWARD -m comment --comment "kubernetes network policy" -j KUBE-NETPOL',
        '-I FORWARD 1 -m comment --comment "kubernetes network policy" -j KUBE-NETPOL']}
