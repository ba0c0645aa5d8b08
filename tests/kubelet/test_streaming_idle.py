"""KUBELET-08: an exec session with no traffic is closed after streamingConnectionIdleTimeout."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from kubelite.kubelet import streaming


async def _server(idle_timeout: float) -> tuple[web.AppRunner, int]:
    async def exec_handler(request: web.Request) -> web.StreamResponse:
        async def spawn(**kw):  # a process that waits for stdin, like an idle shell
            return await asyncio.create_subprocess_exec("cat", **kw)

        return await streaming.serve_exec(request, spawn, tty=False, stdin=True, stdout=True, stderr=True,
                                          idle_timeout=idle_timeout)

    app = web.Application()
    app.router.add_get("/exec", exec_handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_idle_exec_session_is_closed():
    runner, port = await _server(idle_timeout=1.0)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"http://127.0.0.1:{port}/exec", protocols=("v5.channel.k8s.io",)) as ws:
                began = time.monotonic()
                # traffic keeps it open: echo once through the process
                await ws.send_bytes(bytes([streaming.STDIN]) + b"hi\n")
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == bytes([streaming.STDOUT]) + b"hi\n"
                # then nothing: the kubelet ends the session about a second later
                kinds = []
                while True:
                    msg = await ws.receive(timeout=10)
                    kinds.append(msg.type)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        break
                elapsed = time.monotonic() - began
                assert 1.0 <= elapsed < 6.0, elapsed
    finally:
        await runner.cleanup()
