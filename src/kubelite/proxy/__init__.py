"""kubelite's node proxy: kube-proxy's iptables mode plus NetworkPolicy enforcement.

    from kubelite.proxy import ProxyConfig, run_proxy
    await run_proxy(client, stop=stop_event, config=ProxyConfig(node_name="node-1", cluster_cidr="10.244.0.0/16"))

`run_proxy` needs root. `ProxyConfig(cleanup=True)` removes every rule and chain and returns at once
(`kube-proxy --cleanup`); `cleanup_on_exit=True` does the same when `stop` is set. Rule generation is pure
(`kubelite.proxy.iptables.build_rules`, `kubelite.proxy.netpol.build_netpol_rules`).
"""

from .proxier import (
    Iptables,
    IptablesError,
    NetworkPolicyController,
    Proxier,
    ProxyConfig,
    ProxyServer,
    cleanup_rules,
    run_proxy,
)

__all__ = ["Iptables", "IptablesError", "NetworkPolicyController", "Proxier", "ProxyConfig", "ProxyServer",
           "cleanup_rules", "run_proxy"]
