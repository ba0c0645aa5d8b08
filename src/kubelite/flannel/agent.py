"""The pod network's control loop: an informer on Nodes → `FlannelNetwork.sync`, and this node's flannel
annotations written once its VTEP exists."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from ..api.resources import Registry
from ..client import ApiClient, SharedInformerFactory
from .config import ANNOTATION_PREFIX, FlannelConfig
from .host import FlannelNetwork
from .subnets import annotations_patch

log = logging.getLogger("kubelite.flannel")

NODES = Registry().get("", "v1", "nodes")
FIELD_MANAGER = "kubelite-flannel"
MAX_RETRY_DELAY = 30.0

Obj = dict[str, Any]


def node_view(node: Obj) -> tuple:
    """The parts of a Node the network depends on (status heartbeats change none of them)."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    ann = meta.get("annotations") or {}
    return (spec.get("podCIDR"), tuple(spec.get("podCIDRs") or ()),
            tuple((a.get("type"), a.get("address")) for a in (node.get("status") or {}).get("addresses") or []),
            tuple(sorted((k, v) for k, v in ann.items() if k.startswith(ANNOTATION_PREFIX))))


async def _wait(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class FlannelAgent:
    """Feed it through `register(factory)` or call `request_sync()`; `run(stop)` loops until `stop`."""

    def __init__(self, client: ApiClient | None, config: FlannelConfig, network: FlannelNetwork | None = None) -> None:
        self.client, self.config = client, config
        self.network = network or FlannelNetwork(config)
        self.informer: Any = None
        self.wake = asyncio.Event()
        self.syncs = 0
        self.last_error: str | None = None

    def request_sync(self) -> None:
        self.wake.set()

    def register(self, factory: Any) -> None:
        self.informer = factory.informer(NODES)
        self.informer.add_handler(
            on_add=lambda n: self.request_sync(),
            on_update=lambda old, new: self.request_sync() if node_view(old) != node_view(new) else None,
            on_delete=lambda n: self.request_sync())

    async def sync_once(self) -> None:
        nodes = self.informer.list() if self.informer is not None else []
        result = await self.network.sync(nodes)
        self.syncs += 1
        if self.config.annotate and result.annotations and self.client is not None:
            own = self.informer.get(None, self.config.node_name) if self.informer is not None else None
            patch = annotations_patch(own, result.annotations)
            if own is not None and patch is not None:
                await self.client.patch(NODES, None, self.config.node_name, patch, patch_type="merge",
                                        field_manager=FIELD_MANAGER)
                log.info("node %s: flannel annotations set (%s, public IP %s)", self.config.node_name,
                         self.config.backend, result.public_ip)

    async def run(self, stop: asyncio.Event) -> None:
        await self.network.prepare_host()
        if self.informer is not None:
            while not stop.is_set() and not await self.informer.wait_for_sync(timeout=1.0):
                pass
        delay = 0.0
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.sync_once()
                self.last_error, delay = None, 0.0
            except Exception as e:  # any failure is retried with back-off
                delay = min(MAX_RETRY_DELAY, max(1.0, delay * 2))
                self.last_error = str(e)
                log.warning("pod network sync failed (retry in %.0fs): %s", delay, e)
            await _wait(stop, self.wake, delay or self.config.resync_period)
            if not stop.is_set() and self.config.min_sync_period > 0:
                await asyncio.sleep(self.config.min_sync_period)


async def run_flannel(client: ApiClient | None, *, stop: asyncio.Event, config: FlannelConfig,
                      informers: SharedInformerFactory | None = None) -> None:
    """Run this node's pod network until `stop` is set.

    backend "none": does nothing at all (no informer, no sysctl, no route, no rule) and waits for `stop`.
    Otherwise: sets net.ipv4.ip_forward=1, syncs on every relevant Node add/update/delete and every
    `resync_period`, writes this node's flannel annotations; with `cleanup_on_exit` removes everything when
    stopped. With `informers` given the caller starts and stops that factory; else one is made here."""
    if config.backend == "none":
        log.info("pod network: backend none: left to the CNI the user installs")
        await stop.wait()
        return
    if os.geteuid() != 0 and not config.command_prefix:
        log.warning("pod network: not running as root: ip/iptables calls will fail")
    own_factory = informers is None
    if informers is None:
        assert client is not None
        informers = SharedInformerFactory(client)
    agent = FlannelAgent(client, config)
    agent.register(informers)
    if own_factory:
        informers.start()
    try:
        await agent.run(stop)
    finally:
        if own_factory:
            with contextlib.suppress(Exception):
                await informers.stop()
        if config.cleanup_on_exit:
            removed = await asyncio.shield(agent.network.cleanup())
            log.info("pod network removed: %s", ", ".join(removed) or "nothing")


__all__ = ["FlannelAgent", "node_view", "run_flannel"]
