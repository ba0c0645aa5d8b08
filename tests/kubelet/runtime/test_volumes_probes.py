"""Atomic volume file sets (configMap updates reach the files) and probe thresholds."""

from __future__ import annotations

import asyncio
import os

from kubelite.kubelet.probes import ContainerProbes, http_get, tcp_socket
from kubelite.kubelet.volumes import write_atomic


def test_write_atomic_updates_through_data_symlink(tmp_path):
    d = str(tmp_path / "vol")
    write_atomic(d, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})
    assert open(os.path.join(d, "a")).read() == "1"
    assert os.readlink(os.path.join(d, "a")) == "..data/a"
    old = os.readlink(os.path.join(d, "..data"))
    write_atomic(d, {"a": (b"changed", 0o644)})
    assert open(os.path.join(d, "a")).read() == "changed"
    assert not os.path.lexists(os.path.join(d, "sub"))
    assert not os.path.exists(os.path.join(d, old))  # the previous generation is gone
    gen = os.readlink(os.path.join(d, "..data"))
    write_atomic(d, {"a": (b"changed", 0o644)})
    assert os.readlink(os.path.join(d, "..data")) == gen  # unchanged content: nothing rewritten


async def test_network_probes_and_thresholds():
    async def handle(reader, writer):
        line = await reader.readline()
        code = b"200 OK" if b" /ok " in line else b"500 Internal Server Error"
        writer.write(b"HTTP/1.1 " + code + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        assert (await http_get("127.0.0.1", {"path": "/ok", "port": port}, {}, 1)).ok
        bad = await http_get("127.0.0.1", {"path": "/bad", "port": "web"}, {"ports": [{"name": "web",
                                                                                        "containerPort": port}]}, 1)
        assert not bad.ok and bad.message == "HTTP probe failed with statuscode: 500"
        assert (await tcp_socket("127.0.0.1", {"port": port}, {}, 1)).ok
        srv.close()
        await srv.wait_closed()
        refused = await tcp_socket("127.0.0.1", {"port": port}, {}, 1)
        assert not refused.ok and "connection refused" in refused.message
    finally:
        srv.close()

    calls = []

    async def exec_fn(argv, timeout):
        calls.append(argv)
        return (1, b"nope") if argv == ["fail"] else (0, b"")
    c = {"name": "c", "livenessProbe": {"exec": {"command": ["fail"]}, "periodSeconds": 1, "failureThreshold": 2},
         "readinessProbe": {"exec": {"command": ["ok"]}, "periodSeconds": 1}}
    p = ContainerProbes(c, started_at=0.0)
    assert not p.ready
    await p.run_due(0.0, "127.0.0.1", exec_fn)
    assert p.ready and not p.liveness_failed
    await p.run_due(1.0, "127.0.0.1", exec_fn)
    assert p.liveness_failed == "nope" and p.kind_failed == "liveness"
