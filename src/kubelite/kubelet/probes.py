"""Liveness, readiness and startup probes (exec, httpGet, tcpSocket, grpc) with upstream's timing fields
(initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold, failureThreshold) and results.

`ContainerProbes` keeps the state of one running container instance; the pod worker calls `run_due(now)`
from its sync and reads `ready`, `started` and `liveness_failed`.  The exec probe runs through a callable the
runtime provides (`runc exec`), the network probes go to the pod IP from the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
ExecFn = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]  # (argv, timeout) -> (rc, output)


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


def _port(container: Obj, port: Any) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port {port} in container")


@functools.cache
def _unverified_tls() -> ssl.SSLContext:
    """HTTPS probes do not verify the server, as upstream's; one context for all of them (no CA store loaded)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def http_get(host: str, spec: Obj, container: Obj, timeout: float) -> ProbeResult:
    try:
        port = _port(container, spec.get("port"))
    except ValueError as e:
        return ProbeResult(False, str(e))
    target = spec.get("host") or host
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers = {"Host": f"{target}:{port}", "User-Agent": "kube-probe/1.33", "Accept": "*/*", "Connection": "close"}
    for h in spec.get("httpHeaders") or []:
        headers[h["name"]] = h.get("value", "")
    try:
        async with asyncio.timeout(timeout):
            if (spec.get("scheme") or "HTTP").upper() == "HTTPS":
                reader, writer = await asyncio.open_connection(target, port, ssl=_unverified_tls())
            else:
                reader, writer = await asyncio.open_connection(target, port)
            req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(req.encode())
            await writer.drain()
            line = await reader.readline()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    except TimeoutError:
        return ProbeResult(False, f'Get "http://{target}:{port}{path}": context deadline exceeded (Client.Timeout '
                                  f"exceeded while awaiting headers)")
    except OSError as e:
        return ProbeResult(False, f'Get "http://{target}:{port}{path}": dial tcp {target}:{port}: connect: '
                                  f"{_errno_text(e)}")
    parts = line.decode("latin-1").split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if 200 <= code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


def _errno_text(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    return (e.strerror or str(e)).lower()


async def tcp_socket(host: str, spec: Obj, container: Obj, timeout: float) -> ProbeResult:
    try:
        port = _port(container, spec.get("port"))
    except ValueError as e:
        return ProbeResult(False, str(e))
    target = spec.get("host") or host
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(target, port)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return ProbeResult(True)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {target}:{port}: i/o timeout")
    except OSError as e:
        return ProbeResult(False, f"dial tcp {target}:{port}: connect: {_errno_text(e)}")


async def grpc_check(host: str, spec: Obj, container: Obj, timeout: float) -> ProbeResult:
    # no gRPC stack in the agent: the port accepting connections stands in for the health service's SERVING
    return await tcp_socket(host, {"port": spec.get("port")}, container, timeout)


async def exec_probe(exec_fn: ExecFn, spec: Obj, timeout: float) -> ProbeResult:
    try:
        rc, out = await exec_fn(list(spec.get("command") or []), timeout)
    except TimeoutError:
        return ProbeResult(False, f"command timed out: \"{' '.join(spec.get('command') or [])}\" timed out after "
                                  f"{timeout:g}s")
    except Exception as e:  # noqa: BLE001 — any failure to run the probe is a failed probe
        return ProbeResult(False, str(e))
    return ProbeResult(rc == 0, out.decode("utf-8", "replace").strip() if rc else "")


async def run_probe(probe: Obj, container: Obj, host: str, exec_fn: ExecFn) -> ProbeResult:
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "exec" in probe:
        return await exec_probe(exec_fn, probe["exec"], timeout)
    if "httpGet" in probe:
        return await http_get(host, probe["httpGet"], container, timeout)
    if "tcpSocket" in probe:
        return await tcp_socket(host, probe["tcpSocket"], container, timeout)
    if "grpc" in probe:
        return await grpc_check(host, probe["grpc"], container, timeout)
    return ProbeResult(True)


@dataclass
class _State:
    probe: Obj
    next_at: float
    successes: int = 0
    failures: int = 0
    result: bool | None = None
    message: str = ""


@dataclass
class ContainerProbes:
    """Probe state of one running container instance started at `started_at`."""

    container: Obj
    started_at: float
    states: dict[str, _State] = field(default_factory=dict)
    liveness_failed: str = ""  # message once liveness (or startup) gave up: the container must be restarted
    kind_failed: str = ""

    def __post_init__(self) -> None:
        for kind in ("startup", "liveness", "readiness"):
            p = self.container.get(f"{kind}Probe")
            if p:
                self.states[kind] = _State(p, self.started_at + float(p.get("initialDelaySeconds") or 0))

    @property
    def started(self) -> bool:
        s = self.states.get("startup")
        return s is None or s.result is True

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        s = self.states.get("readiness")
        return s is None or s.result is True

    def next_due(self) -> float | None:
        times = [s.next_at for k, s in self.states.items() if self._active(k)]
        return min(times) if times else None

    def _active(self, kind: str) -> bool:
        if kind == "startup":
            return not self.started
        return self.started  # liveness and readiness wait for the startup probe

    async def run_due(self, now: float, host: str, exec_fn: ExecFn) -> bool:
        """Run the probes that are due; True if a result changed."""
        changed = False
        for kind, s in self.states.items():
            if not self._active(kind) or s.next_at > now:
                continue
            res = await run_probe(s.probe, self.container, host, exec_fn)
            period = float(s.probe.get("periodSeconds") or 10)
            s.next_at = now + period
            if res.ok:
                s.successes += 1
                s.failures = 0
                threshold = int(s.probe.get("successThreshold") or 1)
                if s.result is not True and s.successes >= threshold:
                    s.result, changed = True, True
            else:
                s.failures += 1
                s.successes = 0
                s.message = res.message
                threshold = int(s.probe.get("failureThreshold") or 3)
                if s.failures >= threshold and s.result is not False:
                    s.result, changed = False, True
                    if kind in ("liveness", "startup"):
                        self.liveness_failed = res.message
                        self.kind_failed = kind
                elif kind == "readiness" and s.result is None:
                    pass
        return changed


def probe_event_message(kind: str, message: str) -> str:
    """The Unhealthy event's message as upstream writes it."""
    return f"{kind.capitalize()} probe failed: {message}"


def liveness_kill_message(name: str, kind: str) -> str:
    return f"Container {name} failed {kind} probe, will be restarted"
