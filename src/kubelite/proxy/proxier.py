"""The proxy's control loop: informers on Services and EndpointSlices → atomic `iptables-restore` syncs.

As upstream's iptables proxier:
- handlers only record which Services changed and wake the sync loop;
- syncs are rate limited by a token bucket (`min_sync_period`, burst 2 — upstream's BoundedFrequencyRunner), so
  the first change after a quiet period is programmed at once and a storm of changes is batched;
- every `sync_period` a sync runs anyway; a *full* sync (every chain rewritten, jump rules re-ensured, stale
  chains found with `iptables-save`) runs at start, after a failure, every `full_sync_period`, and whenever
  there are fewer than `partial_sync_threshold` Services; otherwise only the changed Services' chains are
  written (the top-level KUBE-SERVICES / KUBE-NODEPORTS chains always are);
- each sync is one `iptables-restore -w --noflush` transaction for the filter and nat tables;
- after a sync, conntrack entries of UDP flows to endpoints that went away are deleted (UDP has no
  connection end, so a client would keep talking to a dead pod), as are entries of UDP services that just
  got their first endpoint (flows that were rejected meanwhile).

`NetworkPolicyController` runs next to it (pods, namespaces, networkpolicies → `netpol.build_netpol_rules`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..api.resources import Registry
from ..client import ApiClient, SharedInformerFactory
from .iptables import (
    Endpoint,
    JumpRule,
    Names,
    RuleOptions,
    ServicePort,
    ServicePortKey,
    build_rules,
    cleanup_payload,
    is_proxy_chain,
    jump_fixes,
    jump_rules,
    parse_save,
    service_ports,
    slice_endpoints,
    slice_service,
)
from .netpol import NetpolOptions, build_netpol_rules, existing_netpol_chains, is_netpol_chain

log = logging.getLogger("kubelite.proxy")

_REG = Registry()
SERVICES = _REG.get("", "v1", "services")
ENDPOINTSLICES = _REG.get("discovery.k8s.io", "v1", "endpointslices")
PODS = _REG.get("", "v1", "pods")
NAMESPACES = _REG.get("", "v1", "namespaces")
NETWORKPOLICIES = _REG.get("networking.k8s.io", "v1", "networkpolicies")

NETPOL_JUMP_COMMENT = "kubernetes network policy"


@dataclass
class ProxyConfig:
    """Settings of `run_proxy` (names as kube-proxy's flags/config where one exists)."""

    node_name: str = field(default_factory=socket.gethostname)  # --hostname-override
    node_ips: list[str] = field(default_factory=list)  # --node-ip (used for loadBalancerSourceRanges)
    cluster_cidr: str | None = "10.244.0.0/16"  # --cluster-cidr: off-cluster sources to a VIP get SNAT
    min_sync_period: float = 1.0  # --iptables-min-sync-period
    sync_period: float = 30.0  # --iptables-sync-period
    full_sync_period: float = 3600.0
    burst_syncs: int = 2
    partial_sync_threshold: int = 1000  # services; below it every sync is a full one
    cleanup: bool = False  # --cleanup: remove every rule and chain, then return
    cleanup_on_exit: bool = False  # remove them when `stop` is set
    masquerade_all: bool = False  # --masquerade-all
    masquerade_bit: int = 14  # --iptables-masquerade-bit → mark 0x4000
    localhost_nodeports: bool = True  # --iptables-localhost-nodeports (sets route_localnet=1)
    nodeport_addresses: list[str] | None = None  # None: every local address; else these IPs only
    network_policy: bool = True  # enforce NetworkPolicy for this node's pods
    netpol_deny_target: str = "DROP"
    chain_prefix: str = "KUBE-"
    iptables: str = "iptables"
    iptables_restore: str = "iptables-restore"
    iptables_save: str = "iptables-save"
    conntrack: str = "conntrack"

    @property
    def masquerade_mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"

    def rule_options(self) -> RuleOptions:
        return RuleOptions(node_name=self.node_name, cluster_cidr=self.cluster_cidr,
                           masquerade_all=self.masquerade_all, masquerade_mark=self.masquerade_mark,
                           localhost_nodeports=self.localhost_nodeports,
                           nodeport_addresses=tuple(self.nodeport_addresses or ()), prefix=self.chain_prefix)

    def netpol_options(self) -> NetpolOptions:
        return NetpolOptions(node_name=self.node_name, prefix=self.chain_prefix, deny_target=self.netpol_deny_target)


class IptablesError(RuntimeError):
    pass


class Iptables:
    """The iptables binaries, run as subprocesses (iptables-nft here; `-w` waits for the legacy lock)."""

    def __init__(self, iptables: str = "iptables", restore: str = "iptables-restore",
                 save: str = "iptables-save", conntrack: str = "conntrack") -> None:
        self.iptables, self.restore_bin, self.save_bin, self.conntrack_bin = iptables, restore, save, conntrack

    @classmethod
    def from_config(cls, config: ProxyConfig) -> Iptables:
        return cls(config.iptables, config.iptables_restore, config.iptables_save, config.conntrack)

    @staticmethod
    async def _exec(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def restore(self, payload: str) -> None:
        if not payload:
            return
        rc, _, err = await self._exec(self.restore_bin, "-w", "--noflush", stdin=payload)
        if rc != 0:
            raise IptablesError(f"iptables-restore failed ({rc}): {err.strip()}{_context(payload, err)}")

    async def save(self, table: str | None = None) -> str:
        argv = [self.save_bin] + (["-t", table] if table else [])
        rc, out, err = await self._exec(*argv)
        if rc != 0:
            raise IptablesError(f"iptables-save failed ({rc}): {err.strip()}")
        return out

    async def run(self, *args: str) -> tuple[int, str, str]:
        return await self._exec(self.iptables, "-w", *args)

    async def conntrack(self, *args: str) -> None:
        # exit status 1 just means no entry matched
        with contextlib.suppress(OSError):
            await self._exec(self.conntrack_bin, *args)


def _context(payload: str, err: str) -> str:
    """The payload lines around the one iptables-restore names in `err` ("line N failed")."""
    import re

    m = re.search(r"line:? (\d+)", err)
    if not m:
        return ""
    lines = payload.splitlines()
    n = int(m.group(1))
    return "\n" + "\n".join(f"{i + 1}: {lines[i]}" for i in range(max(0, n - 3), min(len(lines), n + 2)))


def set_sysctl(name: str, value: str) -> str | None:
    """Write /proc/sys/<name>; returns the previous value (None if the knob does not exist)."""
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path) as f:
            old = f.read().strip()
        if old != value:
            with open(path, "w") as f:
                f.write(value)
        return old
    except OSError:
        return None


class _Runner:
    """Upstream's BoundedFrequencyRunner: at most `burst` syncs back to back, then one per `min_interval`;
    at least one every `max_interval`."""

    def __init__(self, fn: Callable[[], Any], min_interval: float, max_interval: float, burst: int) -> None:
        self.fn, self.min_interval, self.max_interval, self.burst = fn, min_interval, max_interval, max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self.wake = asyncio.Event()
        self.retry_at: float | None = None

    def request(self) -> None:
        self.wake.set()

    def retry_after(self, delay: float) -> None:
        at = time.monotonic() + delay
        self.retry_at = at if self.retry_at is None else min(self.retry_at, at)

    async def run(self, stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            deadline = last + self.max_interval
            if self.retry_at is not None:
                deadline = min(deadline, self.retry_at)
            timeout = max(0.0, deadline - time.monotonic())
            if not self.wake.is_set() and timeout > 0:
                await _wait_any(stop, self.wake, timeout)
            if stop.is_set():
                return
            now = time.monotonic()
            if self.min_interval > 0:
                self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) / self.min_interval)
                self.stamp = now
                if self.tokens < 1.0:
                    await _wait_any(stop, None, (1.0 - self.tokens) * self.min_interval)
                    if stop.is_set():
                        return
                    now = time.monotonic()
                    self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) / self.min_interval)
                    self.stamp = now
                self.tokens -= 1.0
            self.wake.clear()
            self.retry_at = None
            last = time.monotonic()
            try:
                await self.fn()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed sync is retried, never fatal
                log.exception("sync failed")
                self.retry_after(max(self.min_interval, 1.0))


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class _Synced:
    """A generation counter a test or benchmark can wait on."""

    def __init__(self) -> None:
        self.generation = 0
        self._cond = asyncio.Condition()

    async def bump(self) -> None:
        async with self._cond:
            self.generation += 1
            self._cond.notify_all()

    async def wait_past(self, generation: int, timeout: float | None = None) -> bool:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: self.generation > generation)
        try:
            await asyncio.wait_for(_wait(), timeout)
            return True
        except TimeoutError:
            return False


class Proxier:
    """Service + EndpointSlice state → iptables, see the module docstring.

    Feed it through `register(factory)` (informers) or call the `on_*` handlers directly."""

    def __init__(self, config: ProxyConfig, ipt: Iptables | None = None) -> None:
        self.config = config
        self.ipt = ipt or Iptables.from_config(config)
        self.names = Names(config.chain_prefix)
        self.opts = config.rule_options()
        self._svc_objs: dict[tuple[str, str], dict] = {}
        self._slice_objs: dict[tuple[str, str], dict[str, dict]] = {}
        self._ports: dict[tuple[str, str], list[ServicePort]] = {}
        self._eps: dict[tuple[str, str], dict[ServicePortKey, list[Endpoint]]] = {}
        self._changed: set[tuple[str, str]] = set()
        self._need_full = True
        self._last_full = 0.0
        self._existing_nat: set[str] = set()
        self._programmed: dict[ServicePortKey, list[Endpoint]] = {}
        self._prev_ports: dict[ServicePortKey, ServicePort] = {}
        self._runner = _Runner(self.sync, config.min_sync_period, config.sync_period, config.burst_syncs)
        self._informers: list[Any] = []
        self.synced = _Synced()
        self.after_jumps: Callable[[], None] | None = None  # called when jump rules were (re)inserted
        self.stats: dict[str, Any] = {"syncs": 0, "full_syncs": 0, "last_sync_seconds": 0.0, "nat_rules": 0,
                                      "last_full": False, "failures": 0}

    # --- event handlers (sync, quick) -------------------------------------------------------------------

    def on_service(self, svc: dict) -> None:
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        self._svc_objs[key] = svc
        self._mark(key)

    def on_service_update(self, old: dict, new: dict) -> None:
        if old.get("spec") == new.get("spec") and old.get("status") == new.get("status"):
            return
        self.on_service(new)

    def on_service_delete(self, svc: dict) -> None:
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        self._svc_objs.pop(key, None)
        self._mark(key)

    def on_slice(self, slice_: dict) -> None:
        key = slice_service(slice_)
        if key is None:
            return
        self._slice_objs.setdefault(key, {})[(slice_.get("metadata") or {}).get("name") or ""] = slice_
        self._mark(key)

    def on_slice_update(self, old: dict, new: dict) -> None:
        old_key, new_key = slice_service(old), slice_service(new)
        if old_key != new_key:
            self.on_slice_delete(old)
        elif old.get("endpoints") == new.get("endpoints") and old.get("ports") == new.get("ports"):
            return
        self.on_slice(new)

    def on_slice_delete(self, slice_: dict) -> None:
        key = slice_service(slice_)
        if key is None:
            return
        slices = self._slice_objs.get(key, {})
        slices.pop((slice_.get("metadata") or {}).get("name") or "", None)
        if not slices:
            self._slice_objs.pop(key, None)
        self._mark(key)

    def _mark(self, key: tuple[str, str]) -> None:
        self._changed.add(key)
        self._runner.request()

    def register(self, factory: SharedInformerFactory) -> None:
        svc = factory.informer(SERVICES)
        svc.add_handler(self.on_service, self.on_service_update, self.on_service_delete)
        sl = factory.informer(ENDPOINTSLICES)
        sl.add_handler(self.on_slice, self.on_slice_update, self.on_slice_delete)
        self._informers = [svc, sl]

    def request_sync(self, full: bool = False) -> None:
        if full:
            self._need_full = True
        self._runner.request()

    # --- syncing --------------------------------------------------------------------------------------

    def _refresh(self, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            svc = self._svc_objs.get(key)
            ports = service_ports(svc) if svc is not None else []
            if ports:
                self._ports[key] = ports
                by_port = slice_endpoints(self._slice_objs.get(key, {}).values())
                self._eps[key] = {sp.key: by_port.get((sp.port_name, sp.protocol), []) for sp in ports}
            else:
                self._ports.pop(key, None)
                self._eps.pop(key, None)

    def service_count(self) -> int:
        return len(self._ports)

    async def sync(self) -> None:
        """One sync (`syncProxyRules`). Raises on failure (the runner retries, as a full sync)."""
        start = time.monotonic()
        changed, self._changed = self._changed, set()
        self._refresh(changed)
        full = (self._need_full or start - self._last_full > self.config.full_sync_period
                or len(self._ports) < self.config.partial_sync_threshold)
        try:
            fixes: dict[str, list[str]] = {}
            if full:
                # one save for both: stale chains to delete and jump rules to (re)insert, in the same restore
                saved = parse_save(await self.ipt.save())
                self._existing_nat = set(saved.get("nat", ([], []))[0])
                fixes = jump_fixes(saved, jump_rules(self.config.chain_prefix, self.config.localhost_nodeports))
            ports = [sp for sps in self._ports.values() for sp in sps]
            endpoints: dict[ServicePortKey, list[Endpoint]] = {}
            for m in self._eps.values():
                endpoints.update(m)
            rs = build_rules(ports, endpoints, self.opts, changed=None if full else changed,
                             existing_nat_chains=self._existing_nat)
            rs.jump_fixes = fixes
            await self.ipt.restore(rs.payload())
            if fixes and self.after_jumps is not None:
                self.after_jumps()
        except Exception:
            self._need_full = True
            self._changed |= changed
            self.stats["failures"] += 1
            raise
        self._existing_nat = set(rs.active_nat_chains) | set(self.names.nat_top_chains)
        if full:
            self._need_full = False
            self._last_full = start
        previous_programmed, previous_ports = self._programmed, self._prev_ports
        self._programmed = rs.programmed
        self._prev_ports = {sp.key: sp for sp in ports}
        self.stats.update(syncs=self.stats["syncs"] + 1, full_syncs=self.stats["full_syncs"] + int(full),
                          last_sync_seconds=time.monotonic() - start, nat_rules=rs.nat_rule_count, last_full=full,
                          services=len(self._ports))
        log.debug("synced %d service ports (%s) in %.1f ms", len(ports), "full" if full else "partial",
                  self.stats["last_sync_seconds"] * 1000)
        await self.synced.bump()
        await self._clear_conntrack(previous_programmed, previous_ports)

    async def _clear_conntrack(self, before: dict[ServicePortKey, list[Endpoint]],
                               before_ports: dict[ServicePortKey, ServicePort]) -> None:
        jobs: list[tuple[str, ...]] = []
        for key, sp in self._prev_ports.items():
            if sp.protocol != "UDP":
                continue
            now_ips = {e.ip for e in self._programmed.get(key, [])}
            old_ips = {e.ip for e in before.get(key, [])}
            vips = (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips)
            if now_ips and not old_ips and key in before_ports:
                for vip in vips:
                    jobs.append(("-D", "-p", "udp", "--orig-dst", vip, "--orig-port-dst", str(sp.port)))
                if sp.node_port:
                    jobs.append(("-D", "-p", "udp", "--orig-port-dst", str(sp.node_port)))
            for ip in old_ips - now_ips:
                for vip in vips:
                    jobs.append(("-D", "-p", "udp", "--orig-dst", vip, "--dst-nat", ip))
                if sp.node_port:
                    jobs.append(("-D", "-p", "udp", "--orig-port-dst", str(sp.node_port), "--dst-nat", ip))
        for key, sp in before_ports.items():
            if sp.protocol == "UDP" and key not in self._prev_ports:
                for ip in {e.ip for e in before.get(key, [])}:
                    jobs.append(("-D", "-p", "udp", "--orig-dst", sp.cluster_ip, "--dst-nat", ip))
        for job in jobs:
            await self.ipt.conntrack(*job)

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until `stop` is set (wait for the informers' first lists before the first sync, as upstream)."""
        for inf in self._informers:
            while not await inf.wait_for_sync(timeout=0.5):
                if stop.is_set():
                    return
        self._runner.request()
        await self._runner.run(stop)


class NetworkPolicyController:
    """Pods, Namespaces, NetworkPolicies → the filter-table chains of `netpol.build_netpol_rules`."""

    def __init__(self, config: ProxyConfig, ipt: Iptables | None = None) -> None:
        self.config = config
        self.ipt = ipt or Iptables.from_config(config)
        self.opts = config.netpol_options()
        self._pods: dict[tuple[str, str], dict] = {}
        self._namespaces: dict[str, dict] = {}
        self._policies: dict[tuple[str, str], dict] = {}
        self._existing: set[str] = set()
        self._need_full = True
        self._runner = _Runner(self.sync, config.min_sync_period, config.sync_period, config.burst_syncs)
        self._informers: list[Any] = []
        self.synced = _Synced()
        self.stats: dict[str, Any] = {"syncs": 0, "rules": 0, "last_sync_seconds": 0.0}

    @staticmethod
    def _key(obj: dict) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return (meta.get("namespace") or "", meta.get("name") or "")

    @staticmethod
    def _pod_view(pod: dict) -> tuple:
        """What of a pod the rules depend on (status heartbeats must not cause syncs)."""
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        ports = [(p.get("name"), p.get("containerPort"), p.get("protocol"))
                 for c in spec.get("containers") or [] for p in c.get("ports") or []]
        return ((pod.get("metadata") or {}).get("labels"), spec.get("nodeName"), spec.get("hostNetwork"),
                status.get("podIP"), status.get("podIPs"), status.get("phase"), ports)

    def on_pod(self, pod: dict) -> None:
        self._pods[self._key(pod)] = pod
        self._runner.request()

    def on_pod_update(self, old: dict, new: dict) -> None:
        self._pods[self._key(new)] = new
        if self._pod_view(old) != self._pod_view(new):
            self._runner.request()

    def on_pod_delete(self, pod: dict) -> None:
        self._pods.pop(self._key(pod), None)
        self._runner.request()

    def on_namespace(self, ns: dict) -> None:
        self._namespaces[self._key(ns)[1]] = ns
        self._runner.request()

    def on_namespace_update(self, old: dict, new: dict) -> None:
        self._namespaces[self._key(new)[1]] = new
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._runner.request()

    def on_namespace_delete(self, ns: dict) -> None:
        self._namespaces.pop(self._key(ns)[1], None)
        self._runner.request()

    def on_policy(self, pol: dict) -> None:
        self._policies[self._key(pol)] = pol
        self._runner.request()

    def on_policy_update(self, old: dict, new: dict) -> None:
        self.on_policy(new)

    def on_policy_delete(self, pol: dict) -> None:
        self._policies.pop(self._key(pol), None)
        self._runner.request()

    def register(self, factory: SharedInformerFactory) -> None:
        pods = factory.informer(PODS)
        pods.add_handler(self.on_pod, self.on_pod_update, self.on_pod_delete)
        nss = factory.informer(NAMESPACES)
        nss.add_handler(self.on_namespace, self.on_namespace_update, self.on_namespace_delete)
        pols = factory.informer(NETWORKPOLICIES)
        pols.add_handler(self.on_policy, self.on_policy_update, self.on_policy_delete)
        self._informers = [pods, nss, pols]

    def request_sync(self, full: bool = False) -> None:
        if full:
            self._need_full = True
        self._runner.request()

    def jump_rules(self) -> list[JumpRule]:
        return [JumpRule("filter", chain, self.opts.dispatch, NETPOL_JUMP_COMMENT) for chain in ("FORWARD", "INPUT")]

    async def sync(self) -> None:
        start = time.monotonic()
        try:
            saved = await self.ipt.save("filter")
            self._existing = set(existing_netpol_chains(saved, self.opts))
            rs = build_netpol_rules(self._pods.values(), self._namespaces.values(), self._policies.values(),
                                    self.opts, existing_chains=self._existing)
            # first in FORWARD/INPUT: nothing may accept a packet before the policies saw it
            rs.jump_fixes = jump_fixes(parse_save(saved), self.jump_rules(), first=True).get("filter", [])
            await self.ipt.restore(rs.payload())
        except Exception:
            self._need_full = True
            raise
        self._need_full = False
        self._existing = set(rs.active)
        self.stats.update(syncs=self.stats["syncs"] + 1, rules=sum(1 for r in rs.rules if r.startswith("-A ")),
                          last_sync_seconds=time.monotonic() - start)
        await self.synced.bump()

    async def run(self, stop: asyncio.Event) -> None:
        for inf in self._informers:
            while not await inf.wait_for_sync(timeout=0.5):
                if stop.is_set():
                    return
        self._runner.request()
        await self._runner.run(stop)


async def cleanup_rules(prefix: str = "KUBE-", *, proxy: bool = True, network_policy: bool = True,
                        ipt: Iptables | None = None) -> list[str]:
    """Remove every chain (and every jump to one) the proxy and/or the policy enforcer create, in one
    `iptables-restore` transaction (`kube-proxy --cleanup`). Returns the chains removed."""
    ipt = ipt or Iptables()
    preds = ([is_proxy_chain(prefix)] if proxy else []) + ([is_netpol_chain(prefix)] if network_policy else [])

    def ours(table: str, chain: str) -> bool:
        return any(p(table, chain) for p in preds)

    saved = await ipt.save()
    payload = cleanup_payload(saved, ours)
    await ipt.restore(payload)
    return [f"{t}/{c}" for t, (chains, _) in parse_save(saved).items() for c in chains if ours(t, c)]


class ProxyServer:
    """The proxier and the policy enforcer of one node, sharing one informer factory."""

    def __init__(self, client: ApiClient | None, config: ProxyConfig,
                 informers: SharedInformerFactory | None = None, ipt: Iptables | None = None) -> None:
        self.client, self.config = client, config
        self.ipt = ipt or Iptables.from_config(config)
        self.factory = informers
        self.own_factory = informers is None
        self.proxier = Proxier(config, self.ipt)
        self.netpol = NetworkPolicyController(config, self.ipt) if config.network_policy else None
        if self.netpol is not None:
            self.proxier.after_jumps = lambda: self.netpol.request_sync(full=True)

    def prepare_host(self) -> None:
        if self.config.localhost_nodeports:
            old = set_sysctl("net.ipv4.conf.all.route_localnet", "1")
            if old is None:
                log.warning("cannot set net.ipv4.conf.all.route_localnet: node ports on 127.0.0.1 will not work")
            elif old != "1":
                log.info("set net.ipv4.conf.all.route_localnet=1 (node ports on 127.0.0.1)")
        if self.netpol is not None:
            try:
                with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
                    if f.read().strip() != "1":
                        log.warning("net.bridge.bridge-nf-call-iptables is 0: policies cannot see bridged pod traffic")
            except OSError:
                log.warning("br_netfilter is not loaded: policies cannot see bridged pod traffic")

    async def run(self, stop: asyncio.Event) -> None:
        if self.config.cleanup:
            removed = await cleanup_rules(self.config.chain_prefix, ipt=self.ipt)
            log.info("removed %d chains", len(removed))
            return
        self.prepare_host()
        if self.factory is None:
            assert self.client is not None
            self.factory = SharedInformerFactory(self.client)
        self.proxier.register(self.factory)
        if self.netpol is not None:
            self.netpol.register(self.factory)
        if self.own_factory:
            self.factory.start()
        tasks = [asyncio.ensure_future(self.proxier.run(stop))]
        if self.netpol is not None:
            tasks.append(asyncio.ensure_future(self.netpol.run(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            if self.own_factory and self.factory is not None:
                await self.factory.stop()
            if self.config.cleanup_on_exit:
                await asyncio.shield(cleanup_rules(self.config.chain_prefix, ipt=self.ipt))


async def run_proxy(client: ApiClient | None, *, stop: asyncio.Event, config: ProxyConfig,
                    informers: SharedInformerFactory | None = None) -> None:
    """Run the node's service proxy (and NetworkPolicy enforcement) until `stop` is set.

    With `config.cleanup` it only removes every rule and chain it would create, then returns. Needs root
    (iptables, conntrack, /proc/sys writes)."""
    if os.geteuid() != 0 and not config.cleanup:
        log.warning("kubelite proxy is not running as root: iptables calls will fail")
    await ProxyServer(client, config, informers).run(stop)


__all__ = ["Iptables", "IptablesError", "NetworkPolicyController", "ProxyConfig", "ProxyServer", "Proxier",
           "cleanup_rules", "run_proxy", "set_sysctl"]
