"""`--kubelet-arg KEY=VALUE` (k3s's flag): the kubelet settings a security lab weakens on purpose.

Names are the upstream kubelet's flags.  Defaults are those of the kubelet's configuration file
(KubeletConfiguration v1beta1, which kubeadm and k3s use): anonymous requests refused, authorization by
SubjectAccessReview (Webhook), no read-only port.  The bare kubelet binary's own flag defaults
(`--anonymous-auth=true`, `--authorization-mode=AlwaysAllow`, `--read-only-port=10255`) are the weak side.

    parse_kubelet_args(["anonymous-auth=true", "authorization-mode=AlwaysAllow", "read-only-port=10255"])
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kubelite.kubelet.args")

DEFAULTS = {"anonymous-auth": "false", "authorization-mode": "Webhook", "read-only-port": "0", "address": "0.0.0.0"}


@dataclass
class KubeletArgs:
    anonymous_auth: bool = False
    authorization_mode: str = "Webhook"  # Webhook | AlwaysAllow
    read_only_port: int = 0  # 0: closed
    address: str = ""  # where the kubelet API listens; "" keeps the node's --kubelet-address


def parse_kubelet_args(items: list[str] | None) -> KubeletArgs:
    """ValueError naming the bad item."""
    out = KubeletArgs()
    for item in items or []:
        key, sep, value = item.lstrip("-").partition("=")
        if not sep:
            raise ValueError(f"--kubelet-arg {item!r}: want KEY=VALUE")
        if key == "anonymous-auth":
            if value not in ("true", "false"):
                raise ValueError(f"--kubelet-arg anonymous-auth takes true or false, got {value!r}")
            out.anonymous_auth = value == "true"
        elif key == "authorization-mode":
            if value not in ("Webhook", "AlwaysAllow"):
                raise ValueError(f"--kubelet-arg authorization-mode takes Webhook or AlwaysAllow, got {value!r}")
            out.authorization_mode = value
        elif key == "read-only-port":
            try:
                out.read_only_port = int(value)
            except ValueError:
                raise ValueError(f"--kubelet-arg read-only-port takes a port number, got {value!r}") from None
            if not 0 <= out.read_only_port <= 65535:
                raise ValueError(f"--kubelet-arg read-only-port {value} is out of range")
        elif key == "address":
            import ipaddress

            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"--kubelet-arg address takes an IP address, got {value!r}") from None
            out.address = value
        else:
            raise ValueError(f"--kubelet-arg {key!r}: kubelite's kubelet takes {', '.join(sorted(DEFAULTS))}")
    return out


def apply_to_server(server: Any, args: KubeletArgs) -> None:
    """Set the authentication and authorization knobs of a `KubeletServer`."""
    server.anonymous = args.anonymous_auth
    server.authorization_mode = args.authorization_mode
    if args.anonymous_auth or args.authorization_mode == "AlwaysAllow":
        log.warning("kubelet API weakened on purpose: anonymous-auth=%s authorization-mode=%s",
                    str(args.anonymous_auth).lower(), args.authorization_mode)


class ReadOnlyPort:
    """The kubelet's plain-HTTP read-only port (10255 when on): /pods, /healthz and /stats/summary with no
    authentication at all, as upstream's `--read-only-port` serves them."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self._runner: Any = None

    async def start(self, host: str, port: int) -> int:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/pods", self.server.pods)
        app.router.add_get("/pods/", self.server.pods)
        app.router.add_get("/healthz", self.server.healthz)
        app.router.add_get("/stats/summary", self.server.stats_summary)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
        await web.SockSite(self._runner, sock).start()
        log.warning("kubelet read-only port open on %s:%d (no authentication)", host, sock.getsockname()[1])
        return sock.getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.wait_for(runner.cleanup(), 5)
