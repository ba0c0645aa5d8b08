import ipaddress

from kubelite.flannel import FlannelConfig
from kubelite.flannel.rules import cleanup_payload, masq_rules, rules_payload

POD = ipaddress.ip_network("10.244.1.0/24")
C = '-m comment --comment "kubelite flannel masq"'
F = '-m comment --comment "kubelite flannel forward"'


def test_masq_rules_shape():
    assert masq_rules(FlannelConfig("a"), POD) == [
        f"-m mark --mark 0x4000/0x4000 {C} -j RETURN",
        f"-s 10.244.1.0/24 -d 10.244.0.0/16 {C} -j RETURN",
        f"-s 10.244.0.0/16 -d 10.244.1.0/24 {C} -j RETURN",
        f"! -s 10.244.0.0/16 -d 10.244.1.0/24 {C} -j RETURN",
        f"-s 10.244.0.0/16 ! -d 224.0.0.0/4 {C} -j MASQUERADE --random-fully",
        f"! -s 10.244.0.0/16 -d 10.244.0.0/16 {C} -j MASQUERADE --random-fully",
    ]
    assert masq_rules(FlannelConfig("a", random_fully=False), POD)[-1].endswith("-j MASQUERADE")


def test_payload_from_nothing_then_nothing_to_do():
    cfg = FlannelConfig("a")
    p = rules_payload(cfg, POD, "")
    lines = p.splitlines()
    assert lines[:2] == ["*filter", ":KUBELITE-FLANNEL-FWD - [0:0]"]
    assert f"-A FORWARD {F} -j KUBELITE-FLANNEL-FWD" in lines
    assert f"-A POSTROUTING {C} -j KUBELITE-FLANNEL-POSTRTG" in lines
    assert f"-A KUBELITE-FLANNEL-FWD -s 10.244.0.0/16 {F} -j ACCEPT" in lines
    # the state iptables-save gives back after applying it: nothing left to do
    saved = "\n".join(["*filter", ":FORWARD ACCEPT [0:0]", ":KUBELITE-FLANNEL-FWD - [0:0]",
                       "-A FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES",
                       f"-A FORWARD {F} -j KUBELITE-FLANNEL-FWD",
                       *[f"-A KUBELITE-FLANNEL-FWD {s}" for s in (f"-s 10.244.0.0/16 {F} -j ACCEPT",
                                                                   f"-d 10.244.0.0/16 {F} -j ACCEPT")],
                       "COMMIT", "*nat", ":POSTROUTING ACCEPT [0:0]", ":KUBELITE-FLANNEL-POSTRTG - [0:0]",
                       f"-A POSTROUTING {C} -j KUBELITE-FLANNEL-POSTRTG",
                       *[f"-A KUBELITE-FLANNEL-POSTRTG {s}" for s in masq_rules(cfg, POD)], "COMMIT"])
    assert rules_payload(cfg, POD, saved) == ""
    # a changed pod CIDR rewrites the nat chain only, and keeps the jump
    p = rules_payload(cfg, ipaddress.ip_network("10.244.9.0/24"), saved)
    assert p.startswith("*nat\n:KUBELITE-FLANNEL-POSTRTG - [0:0]\n") and "-A POSTROUTING" not in p
    # a lost jump is appended again without touching the chain
    lost = saved.replace(f"-A POSTROUTING {C} -j KUBELITE-FLANNEL-POSTRTG\n", "")
    assert rules_payload(cfg, POD, lost) == f"*nat\n-A POSTROUTING {C} -j KUBELITE-FLANNEL-POSTRTG\nCOMMIT\n"
    # no masquerade wanted: the nat chain goes
    p = rules_payload(FlannelConfig("a", ip_masq=False), POD, saved)
    assert "*filter" not in p and "-X KUBELITE-FLANNEL-POSTRTG" in p
    assert f"-D POSTROUTING {C} -j KUBELITE-FLANNEL-POSTRTG" in p


def test_cleanup_payload():
    cfg = FlannelConfig("a")
    saved = "\n".join(["*filter", ":FORWARD ACCEPT [0:0]", ":KUBELITE-FLANNEL-FWD - [0:0]", ":OTHER - [0:0]",
                       f"-A FORWARD {F} -j KUBELITE-FLANNEL-FWD", "-A FORWARD -j OTHER",
                       f"-A KUBELITE-FLANNEL-FWD -s 10.244.0.0/16 {F} -j ACCEPT", "COMMIT"])
    assert cleanup_payload(cfg, saved) == "\n".join([
        "*filter", ":KUBELITE-FLANNEL-FWD - [0:0]", f"-D FORWARD {F} -j KUBELITE-FLANNEL-FWD",
        "-X KUBELITE-FLANNEL-FWD", "COMMIT"]) + "\n"
    assert cleanup_payload(cfg, "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n") == ""
