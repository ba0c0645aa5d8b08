"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules and defaults.

A contender reads the Lease; it may take it when nobody holds it, when it holds it already, or when the
holder has not renewed it for `leaseDurationSeconds` *as observed locally* (the time the contender last saw
the record change, so clocks need not agree).  Writes are conditional on the resourceVersion just read, so
of two contenders racing only one wins.  The leader renews every `retry_period`; if it cannot renew within
`renew_deadline` it stops leading.  On a clean exit the leader releases the Lease (empty holder) so another
contender takes over at once instead of waiting for expiry.

Two ways to use it:

    elector = LeaderElector(client, "kube-controller-manager", identity=host_id,
                            on_started_leading=run_controllers,   # async fn: cancelled when leadership ends
                            on_stopped_leading=lambda: ...)
    await elector.run()          # returns when leadership is lost (or raises CancelledError if cancelled)

    async with LeaderElector(client, "kube-scheduler") as elector:   # waits until leading
        ...                      # `elector.lost` is an asyncio.Event set if leadership is lost meanwhile
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..api.resources import Registry
from ..api.timefmt import now_micro
from .rest import ApiClient, ClientError

log = logging.getLogger("kubelite.client.leaderelection")

LEASES = Registry().get("coordination.k8s.io", "v1", "leases")


def default_identity() -> str:
    """hostname + "_" + a random UUID, as upstream components build theirs."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    def __init__(self, client: ApiClient, name: str, namespace: str = "kube-system", identity: str | None = None,
                 *, lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 on_started_leading: Callable[[], Any] | None = None,
                 on_stopped_leading: Callable[[], Any] | None = None,
                 on_new_leader: Callable[[str], Any] | None = None, release_on_cancel: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self.clock = clock
        self.leader: str = ""  # holder last observed ("" when none)
        self.is_leader = False
        self.lost = asyncio.Event()
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self._renewer: asyncio.Task | None = None

    # -- one attempt ----------------------------------------------------------------------------------

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self.clock()
        holder = spec.get("holderIdentity") or ""
        if holder != self.leader:
            self.leader = holder
            if self.on_new_leader is not None and holder:
                try:
                    self.on_new_leader(holder)
                except Exception:
                    log.exception("on_new_leader failed")

    async def try_acquire_or_renew(self) -> bool:
        """One read + conditional write; True when we hold the Lease afterwards."""
        now = now_micro()
        duration = max(1, math.ceil(self.lease_duration))
        try:
            lease = await self.client.get(LEASES, self.namespace, self.name)
        except ClientError as e:
            if not e.is_not_found:
                raise
            spec = {"holderIdentity": self.identity, "leaseDurationSeconds": duration,
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            try:
                self._lease = await self.client.create(LEASES, body, self.namespace)
            except ClientError as e2:
                if e2.is_already_exists or e2.is_conflict:
                    return False
                raise
            self._observe(self._lease["spec"])
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        held_for = spec.get("leaseDurationSeconds") or duration
        if holder and holder != self.identity and self._observed_at + held_for > self.clock():
            return False
        new_spec = dict(spec)
        new_spec.update(holderIdentity=self.identity, leaseDurationSeconds=duration, renewTime=now)
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        lease["spec"] = new_spec
        try:
            self._lease = await self.client.update(LEASES, lease)
        except ClientError as e:
            if e.is_conflict or e.is_not_found:
                return False
            raise
        self._observe(self._lease["spec"])
        return True

    def _next_try(self) -> float:
        """How long to wait before trying again: the retry period, or less when the holder's lease runs out
        sooner by our observation, so a dead leader's successor takes over as soon as the lease allows rather
        than up to a retry period later."""
        spec = self._observed_spec or {}
        expires = self._observed_at + (spec.get("leaseDurationSeconds") or self.lease_duration)
        left = expires - self.clock()
        if 0 < left < self.retry_period:
            return left + 0.01
        return self.retry_period

    async def _attempt(self, timeout: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("lease %s/%s: %s: %s", self.namespace, self.name, type(e).__name__, e)
            return False

    # -- loops ----------------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once we lead (retrying every retry_period)."""
        while not await self._attempt(self.renew_deadline):
            await asyncio.sleep(self._next_try())
        self.is_leader = True
        self.lost.clear()
        log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)

    async def renew_until_lost(self) -> None:
        """Renew every retry_period; return when a renewal did not succeed within renew_deadline."""
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = self.clock() + self.renew_deadline
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    log.warning("lease %s/%s lost by %s", self.namespace, self.name, self.identity)
                    self.is_leader = False
                    self.lost.set()
                    return
                if await self._attempt(remaining):
                    break
                if self.leader and self.leader != self.identity:
                    # somebody else holds it now (we were too slow): no point retrying
                    self.is_leader = False
                    self.lost.set()
                    return
                await asyncio.sleep(min(self.retry_period, max(deadline - self.clock(), 0)))

    async def release(self) -> None:
        """Give the Lease up if we hold it (empty holder, 1 s duration), so others need not wait for expiry."""
        was_leader, self.is_leader = self.is_leader, False
        lease = self._lease
        if not was_leader or lease is None:
            return
        now = now_micro()
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
        try:
            await asyncio.wait_for(self.client.update(LEASES, {**lease, "spec": spec}), self.renew_deadline)
        except Exception as e:
            log.info("lease %s/%s release failed: %s", self.namespace, self.name, e)

    async def run(self) -> None:
        """Acquire, call on_started_leading, renew; when leadership ends call on_stopped_leading and return.

        An async on_started_leading runs as a task cancelled when leadership ends; if it returns by itself
        the Lease is released and run() returns too. Cancelling run() releases the Lease (release_on_cancel)."""
        await self.acquire()
        lead_task: asyncio.Task | None = None
        renew: asyncio.Task | None = None
        try:
            if self.on_started_leading is not None:
                result = self.on_started_leading()
                if inspect.isawaitable(result):
                    lead_task = asyncio.ensure_future(result)
            renew = asyncio.ensure_future(self.renew_until_lost())
            waits = {renew} | ({lead_task} if lead_task is not None else set())
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if lead_task is not None and lead_task.done() and not lead_task.cancelled() and lead_task.exception():
                log.error("on_started_leading failed", exc_info=lead_task.exception())
        finally:
            for task in (renew, lead_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self.is_leader and self.release_on_cancel:
                await asyncio.shield(self.release())
            self.is_leader = False
            self.lost.set()
            if self.on_stopped_leading is not None:
                try:
                    result = self.on_stopped_leading()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("on_stopped_leading failed")

    async def __aenter__(self) -> LeaderElector:
        await self.acquire()
        self._renewer = asyncio.ensure_future(self.renew_until_lost())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self.is_leader and self.release_on_cancel:
            await self.release()
        self.is_leader = False
