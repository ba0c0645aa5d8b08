"""The contract between the node agent (agent.py: informers, work queue, status patches, events, leases) and
a container runtime.  The agent owns every API call; a runtime owns processes, networks and files.

A runtime hands out one `PodHandle` per pod UID.  The agent calls `handle.step(pod, now, ...)` whenever the
pod may need work; the handle returns the kubelet events to emit and when it next needs attention.  The
decisions (what to start, restart, back off) come from `lifecycle.compute_pod_actions` and the status from
`podstatus.compute_pod_status`, so the simulated and the real runtime cannot diverge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..lifecycle import BackOff
from ..podstatus import PodRuntime

Obj = dict[str, Any]


class PodHandle(Protocol):
    uid: str
    node_name: str
    rt: PodRuntime
    ip: str | None
    terminal: bool

    def step(self, pod: Obj, now: float, *, backoff: BackOff, image_backoff: BackOff, images: set[str],
             alloc_ip: Callable[[], str | None]) -> Any:
        """(events, wake) — or an awaitable of it for runtimes that do I/O."""

    def termination_done(self, now: float) -> bool: ...


class Runtime(Protocol):
    #: the agent restores container states from the API status of a pod it already ran (simulated only; a
    #: real runtime re-adopts from its own state)
    adopts_from_status: bool

    def attach(self, notify: Callable[[str], None], pod_cidr: Callable[[str], str]) -> None:
        """`notify("ns/name")` asks the agent to sync a pod soon (a container exited, a probe changed);
        `pod_cidr(node)` is the node's pod CIDR."""

    def new_pod(self, pod: Obj, now: float) -> PodHandle: ...

    def release(self, handle: PodHandle) -> None | Awaitable[None]:
        """The pod left the API (or was replaced): free whatever is left of it."""
