"""The `kubernetes` Service's endpoints when several API servers share one store (upstream's lease endpoint
reconciler): each API server keeps a Lease `kube-system/apiserver-<hash>` renewed (labelled as upstream's
API server identity leases), and writes `default/kubernetes`'s Endpoints as the addresses of the Leases that are
still fresh. A server that stops cleanly deletes its Lease and takes its address out at once; one that dies
drops out once its Lease is `LEASE_SECONDS` old. The EndpointSlice controller mirrors the Endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from datetime import UTC, datetime
from typing import Any

from ..api import errors
from ..api.timefmt import now_micro, parse_rfc3339
from . import rest
from .context import ApiContext
from .request_info import RequestInfo

log = logging.getLogger("kubelite.apiserver.endpoints")

LEASE_NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY = "kube-apiserver"
ADDRESS_ANNOTATION = "kubelite.io/apiserver-address"
LEASE_SECONDS = 15
RENEW_SECONDS = 5.0


def lease_name(address: str, port: int) -> str:
    return "apiserver-" + hashlib.sha256(f"{address}:{port}".encode()).hexdigest()[:16]


def live_addresses(leases: list[dict[str, Any]], now: datetime) -> list[str]:
    """The addresses of the leases renewed within their duration, sorted (as upstream sorts them)."""
    live = set()
    for lease in leases:
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        if (meta.get("labels") or {}).get(IDENTITY_LABEL) != IDENTITY:
            continue
        address = (meta.get("annotations") or {}).get(ADDRESS_ANNOTATION)
        renewed = parse_rfc3339(spec.get("renewTime"))
        if not address or renewed is None:
            continue
        if (now - renewed).total_seconds() <= float(spec.get("leaseDurationSeconds") or LEASE_SECONDS):
            live.add(address)
    return sorted(live, key=lambda a: tuple(int(p) if p.isdigit() else 0 for p in a.replace(":", ".").split(".")))


def endpoints_subsets(addresses: list[str], port: int) -> list[dict[str, Any]]:
    if not addresses:
        return []
    return [{"addresses": [{"ip": a} for a in addresses], "ports": [{"name": "https", "port": port,
                                                                   "protocol": "TCP"}]}]


def _info(rt, verb: str, namespace: str, name: str = "") -> RequestInfo:
    return RequestInfo(is_resource=True, path=rt.path(namespace, name), verb=verb, group=rt.group,
                       version=rt.version, namespace=namespace, resource=rt.resource, name=name)


class LeaseEndpointReconciler:
    def __init__(self, ctx: ApiContext, address: str, port: int, *, lease_seconds: int = LEASE_SECONDS,
                 renew_seconds: float = RENEW_SECONDS) -> None:
        self.ctx = ctx
        self.address = address
        self.port = port
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.name = lease_name(address, port)
        self.leases = ctx.registry.get("coordination.k8s.io", "v1", "leases")
        self.endpoints = ctx.registry.get("", "v1", "endpoints")
        self._task: asyncio.Task | None = None

    def _lease(self) -> dict[str, Any]:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                             "labels": {IDENTITY_LABEL: IDENTITY,
                                        "kubernetes.io/hostname": socket.gethostname().lower()},
                             "annotations": {ADDRESS_ANNOTATION: self.address}},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": self.lease_seconds,
                         "renewTime": now_micro()}}

    async def renew(self) -> None:
        info = _info(self.leases, "update", LEASE_NAMESPACE, self.name)

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            fresh = self._lease()
            current["metadata"].setdefault("labels", {}).update(fresh["metadata"]["labels"])
            current["metadata"].setdefault("annotations", {}).update(fresh["metadata"]["annotations"])
            current["spec"] = fresh["spec"]
            return current

        await rest.update_object(self.ctx, self.leases, info, mutate, create_missing=self._lease)

    async def live(self) -> list[str]:
        listed = await self.ctx.store.list(self.leases.prefix(LEASE_NAMESPACE))
        leases = [rest.decode_kv(self.leases, kv) for kv in listed.items]
        return live_addresses(leases, datetime.now(UTC))

    async def write_endpoints(self, addresses: list[str]) -> bool:
        """Set `default/kubernetes` to `addresses`; whether it changed."""
        wanted = endpoints_subsets(addresses, self.port)
        info = _info(self.endpoints, "update", "default", "kubernetes")
        changed = False

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            nonlocal changed
            changed = (current.get("subsets") or []) != wanted
            current["subsets"] = wanted
            return current

        def missing() -> dict[str, Any]:
            nonlocal changed
            changed = True
            return {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": "kubernetes", "namespace": "default",
                                 "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": wanted}

        await rest.update_object(self.ctx, self.endpoints, info, mutate, create_missing=missing)
        return changed

    async def reconcile(self) -> list[str]:
        await self.renew()
        addresses = await self.live()
        if self.address not in addresses:
            addresses = sorted({*addresses, self.address})
        if await self.write_endpoints(addresses):
            log.info("kubernetes endpoints: %s", ", ".join(addresses))
        return addresses

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store is unreachable for a while: try again next round
                log.warning("reconciling the kubernetes endpoints: %s", e)
            await asyncio.sleep(self.renew_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="endpoint-reconciler")

    async def stop(self) -> None:
        """Stop renewing; delete our Lease and take our address out of the endpoints."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._withdraw(), 3.0)

    async def _withdraw(self) -> None:
        with contextlib.suppress(errors.ApiError):
            await rest.delete_object(self.ctx, self.leases, _info(self.leases, "delete", LEASE_NAMESPACE, self.name),
                                     {}, False)
        addresses = [a for a in await self.live() if a != self.address]
        if addresses:  # the last server leaves its address: nobody else would serve it anyway
            await self.write_endpoints(addresses)
