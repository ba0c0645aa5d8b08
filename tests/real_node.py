"""What the tests of real containers share: the skip conditions, waiting, HTTP without proxies, and the
host state they must leave as they found it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request

import pytest

NEEDED = ("runc", "conmon", "docker-registry", "iptables", "conntrack")


def requirements(needed: tuple[str, ...] = NEEDED) -> list:
    """pytest marks: these tests need root, the binaries and the CNI plugins that .ci/run installs."""
    return [
        pytest.mark.skipif(os.geteuid() != 0, reason="real containers need root (runc, network namespaces, iptables)"),
        pytest.mark.skipif(any(shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}") for b in needed)
                           or not os.path.exists("/usr/lib/cni/bridge"),
                           reason=f"needs {', '.join(needed)} and containernetworking-plugins"),
    ]


def wait_for(fn, timeout=60.0, interval=0.5):
    """fn() until it returns something true; connection errors count as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except OSError as e:  # not serving yet (rules being programmed, container starting)
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"not met in {timeout}s; last: {last!r}")


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def http_get(url: str, headers: dict | None = None) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with _OPENER.open(req, timeout=5) as r:
        return r.read().decode()


def iptables_chains() -> set[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {line.split()[0][1:] for line in out.splitlines() if line.startswith(":KUBE-")}
