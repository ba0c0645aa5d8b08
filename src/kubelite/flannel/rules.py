"""The pod network's iptables rules as `iptables-restore --noflush` payloads (pure).

flannel's two chains, under our names:

nat   POSTROUTING → KUBELITE-FLANNEL-POSTRTG (flannel's FLANNEL-POSTRTG)
        RETURN  what kube-proxy marked (it masquerades that itself; no double NAT)
        RETURN  own pods → cluster CIDR, cluster CIDR → own pods (pod-to-pod keeps its source address)
        RETURN  outside → own pods (traffic that arrives for them from outside keeps its source)
        MASQUERADE  cluster CIDR → anything but multicast (pods leaving the cluster)
        MASQUERADE  outside → cluster CIDR (the host talking to remote pods)
filter FORWARD → KUBELITE-FLANNEL-FWD (flannel's FLANNEL-FWD): ACCEPT from and to the cluster CIDR

The jumps are appended (as flannel does): the NetworkPolicy chains that must see a packet first are
inserted at the top of FORWARD by the proxy.  Rules are written in `iptables-save`'s own spelling so that
a saved chain compares equal to the wanted one and an unchanged state costs no restore.
"""

from __future__ import annotations

import ipaddress

from .config import FlannelConfig

MASQ_COMMENT = "kubelite flannel masq"
FORWARD_COMMENT = "kubelite flannel forward"

Saved = dict[str, tuple[list[str], list[str]]]


def _c(comment: str) -> str:
    return f'-m comment --comment "{comment}"'


def masq_rules(config: FlannelConfig, pod_cidr: ipaddress.IPv4Network) -> list[str]:
    """The rule specs of the POSTROUTING chain (after `-A <chain> `)."""
    cc, pc, c = config.cluster_cidr, str(pod_cidr), _c(MASQ_COMMENT)
    masq = "MASQUERADE --random-fully" if config.random_fully else "MASQUERADE"
    return [
        f"-m mark --mark {config.kube_proxy_mark} {c} -j RETURN",
        f"-s {pc} -d {cc} {c} -j RETURN",
        f"-s {cc} -d {pc} {c} -j RETURN",
        f"! -s {cc} -d {pc} {c} -j RETURN",
        f"-s {cc} ! -d 224.0.0.0/4 {c} -j {masq}",
        f"! -s {cc} -d {cc} {c} -j {masq}",
    ]


def forward_rules(config: FlannelConfig) -> list[str]:
    c = _c(FORWARD_COMMENT)
    return [f"-s {config.cluster_cidr} {c} -j ACCEPT", f"-d {config.cluster_cidr} {c} -j ACCEPT"]


def parse_save(text: str) -> Saved:
    """`iptables-save` output → {table: (chain names, "-A …" rule lines)}."""
    tables: Saved = {}
    current: tuple[list[str], list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), ([], []))
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current[0].append(line[1:].split(" ", 1)[0])
        elif line.startswith("-A "):
            current[1].append(line)
    return tables


def _target(line: str) -> str | None:
    words = line.split()
    for i, w in enumerate(words[:-1]):
        if w in ("-j", "-g"):
            return words[i + 1]
    return None


def _wanted(config: FlannelConfig, pod_cidr: ipaddress.IPv4Network) -> dict[str, tuple[str, str, str, list[str]]]:
    """{table: (parent chain, our chain, comment, rule specs)}."""
    out = {"filter": ("FORWARD", config.forward_chain, FORWARD_COMMENT, forward_rules(config))}
    if config.ip_masq:
        out["nat"] = ("POSTROUTING", config.postrouting_chain, MASQ_COMMENT, masq_rules(config, pod_cidr))
    return out


def rules_payload(config: FlannelConfig, pod_cidr: ipaddress.IPv4Network, saved: str) -> str:
    """The restore payload bringing `saved` (iptables-save output) to the wanted chains and jumps; "" when
    they are already there."""
    tables = parse_save(saved)
    out: list[str] = []
    wanted = _wanted(config, pod_cidr)
    for table, (parent, chain, comment, specs) in sorted(wanted.items()):
        chains, lines = tables.get(table, ([], []))
        have = [ln for ln in lines if ln.startswith(f"-A {chain} ")]
        want = [f"-A {chain} {s}" for s in specs]
        jumps = [ln for ln in lines if ln.startswith(f"-A {parent} ") and _target(ln) == chain]
        body: list[str] = []
        if chain not in chains or have != want:
            body += [f":{chain} - [0:0]", *want]  # declaring a chain under --noflush empties it
        if not jumps:
            body.append(f"-A {parent} {_c(comment)} -j {chain}")
        if body:
            out += [f"*{table}", *body, "COMMIT"]
    if not config.ip_masq:
        out += _removal(tables, "nat", config.postrouting_chain)
    return "\n".join(out) + "\n" if out else ""


def _removal(tables: Saved, table: str, chain: str) -> list[str]:
    chains, lines = tables.get(table, ([], []))
    if chain not in chains:
        return []
    dels = ["-D" + ln[2:] for ln in lines if _target(ln) == chain and not ln.startswith(f"-A {chain} ")]
    return [f"*{table}", f":{chain} - [0:0]", *dels, f"-X {chain}", "COMMIT"]


def cleanup_payload(config: FlannelConfig, saved: str) -> str:
    """The restore payload removing our chains and every rule jumping to them; "" when none is there."""
    tables = parse_save(saved)
    out = _removal(tables, "nat", config.postrouting_chain) + _removal(tables, "filter", config.forward_chain)
    return "\n".join(out) + "\n" if out else ""


__all__ = ["FORWARD_COMMENT", "MASQ_COMMENT", "cleanup_payload", "forward_rules", "masq_rules", "parse_save",
           "rules_payload"]
