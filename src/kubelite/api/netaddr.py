"""This host's addresses as other machines see them: which local address routes to a destination, and the
address a bind-to-everything listener should advertise.  Every entry point (API server, node, add-ons) asks
here, so a node's InternalIP, the `kubernetes` endpoint and the kubeconfigs agree."""

from __future__ import annotations

import contextlib
import socket

# not routed anywhere: connecting a UDP socket to it only makes the kernel pick the outbound interface
_PROBE = "10.255.255.255"


def route_address(destination: str = _PROBE) -> str:
    """The local address the kernel would send from to reach `destination` (no packet is sent);
    127.0.0.1 when there is no route."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((destination, 1))
        return s.getsockname()[0]
    return "127.0.0.1"


def default_route_address() -> str:
    """The address of the default-route interface (what kubeadm and k3s advertise when none is given);
    127.0.0.1 on a machine without a default route."""
    addr = route_address()
    return "127.0.0.1" if addr.startswith("127.") else addr


def advertised(bind: str) -> str:
    """What a listener bound to `bind` advertises: the bind address itself, loopback for loopback (never
    widening exposure), the default-route address when bound to every address."""
    if bind in ("", "localhost", "127.0.0.1"):
        return "127.0.0.1"
    if bind == "::1":
        return "::1"
    if bind in ("0.0.0.0", "::"):
        return default_route_address()
    return bind
