"""The node-local load balancer: connections go to the server in use, and to the next when it refuses."""

from __future__ import annotations

import asyncio

from kubelite.client.loadbalancer import LoadBalancer


async def _echo_server(tag: bytes):
    async def handle(reader, writer):
        data = await reader.read(100)
        writer.write(tag + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await writer.drain()
    data = await reader.read(100)
    writer.close()
    return data


def test_fails_over_to_the_next_server():
    async def run():
        a, port_a = await _echo_server(b"a:")
        b, port_b = await _echo_server(b"b:")
        lb = await LoadBalancer([f"https://127.0.0.1:{port_a}", f"https://127.0.0.1:{port_b}"], port=0).start()
        try:
            assert await _ask(lb.port) == b"a:ping"
            a.close()
            await a.wait_closed()
            assert await _ask(lb.port) == b"b:ping"
            lb.set_servers([("127.0.0.1", port_b)])
            assert await _ask(lb.port) == b"b:ping"
        finally:
            await lb.stop()
            b.close()

    asyncio.run(run())
