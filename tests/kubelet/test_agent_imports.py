"""The node agent's idle memory (issue 5: <= 40 MiB resident) depends on what its process imports: these modules
must stay out of it until they are needed."""

import json
import subprocess
import sys

from kubelite.api.quantity import parse_quantity
from kubelite.api.validation_kinds import parse_quantity as validation_parse_quantity

AGENT_MODULES = ["kubelite.cli", "kubelite.kubelet.runtime.node_agent", "kubelite.kubelet.runtime.runc_runtime",
                 "kubelite.kubelet.server", "kubelite.kubelet.images.puller", "kubelite.kubelet.images.rootfs",
                 "kubelite.kubelet.network", "kubelite.kubelet.volumes", "kubelite.kubelet.probes"]
NOT_AT_IDLE = ["cryptography", "aiohttp.web", "kubelite.kubelet.streaming", "kubelite.kubelet.selfsigned",
               "kubelite.kubelet.images.archive", "kubelite.api.validation_kinds", "kubelite.api.validation",
               "kubelite.api.schemas", "kubelite.pki.ca", "kubelite.pki.certs", "yaml"]


def test_agent_modules_leave_heavy_ones_out() -> None:
    code = ("import importlib, json, sys\n"
            f"for m in {AGENT_MODULES!r}: importlib.import_module(m)\n"
            "from kubelite.cli import main\n"
            "try:\n    main(['agent', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert not [m for m in NOT_AT_IDLE if m in loaded]


def test_streaming_idle_timeout_default_matches() -> None:
    from kubelite.kubelet import streaming
    from kubelite.kubelet.server import KubeletServer

    assert KubeletServer(None, None, "n").streaming_idle_timeout == streaming.STREAMING_IDLE_TIMEOUT


def test_parse_quantity_moved_not_changed() -> None:
    assert validation_parse_quantity is parse_quantity
    assert parse_quantity("64Mi") == 64 * 2**20
    assert str(parse_quantity("100m")) == "0.100"
    assert parse_quantity("1e3") == 1000
    assert parse_quantity(True) is None and parse_quantity("x") is None


def test_pki_package_names_still_resolve() -> None:
    import kubelite.pki as pki

    for name in pki.__all__:
        assert getattr(pki, name) is not None


async def test_kubelet_api_starts_serving_on_first_connection() -> None:
    import asyncio

    from kubelite.kubelet.server import KubeletServer

    server = KubeletServer(None, None, "n")
    port = await server.start("127.0.0.1", 0, None)
    assert port and server._runner is None  # listening, the HTTP server not set up yet
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 401")
    writer.close()
    await server.stop()

    idle = KubeletServer(None, None, "n")
    port = await idle.start("127.0.0.1", 0, None)
    await idle.stop()  # never connected to: the listener closes all the same
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    w.close()
    raise AssertionError("still listening after stop()")
