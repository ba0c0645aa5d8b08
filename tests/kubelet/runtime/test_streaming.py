"""exec over websocket (v5.channel.k8s.io) and port-forward over SPDY/3.1 in a websocket, against an aiohttp
server on 127.0.0.1 — no containers needed."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib

import aiohttp
from aiohttp import web

from kubelite.kubelet import streaming as st


def test_spdy_dictionary_and_header_round_trip():
    assert len(st.SPDY_DICT) == 1423
    comp = zlib.compressobj(zdict=st.SPDY_DICT)
    decomp = zlib.decompressobj(zdict=st.SPDY_DICT)
    for h in ({"streamtype": "error", "port": "80", "requestid": "0"}, {"streamtype": "data", "port": "80"}):
        assert st.decode_headers(decomp, st.encode_headers(comp, h)) == h


async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/x"


async def test_exec_channels_and_exit_status():
    async def handler(request):
        async def spawn(**kw):
            return await asyncio.create_subprocess_exec("sh", "-c", "cat; echo err >&2; exit 3", **kw)
        return await st.serve_exec(request, spawn, tty=False, stdin=True, stdout=True, stderr=True)
    runner, url = await _serve(handler)
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(url, protocols=["v5.channel.k8s.io"]) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00hello\n")
            await ws.send_bytes(b"\xff\x00")  # close stdin
            got: dict[int, bytes] = {}
            async for msg in ws:
                got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
        assert got[1] == b"hello\n" and got[2] == b"err\n"
        status = json.loads(got[3])
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    finally:
        await runner.cleanup()


async def test_port_forward_spdy_session():
    async def echo(reader, writer):
        data = await reader.read(100)
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()
    echo_srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = echo_srv.sockets[0].getsockname()[1]

    async def handler(request):
        async def connect(port):
            if port != 1:
                raise ConnectionRefusedError("connection refused")
            return await asyncio.open_connection("127.0.0.1", echo_port)
        return await st.serve_portforward(request, connect)
    runner, url = await _serve(handler)
    comp = zlib.compressobj(zdict=st.SPDY_DICT)
    decomp = zlib.decompressobj(zdict=st.SPDY_DICT)

    def syn(sid, headers):
        body = struct.pack(">IIH", sid, 0, 0) + st.encode_headers(comp, headers)
        return st.control_frame(st.SYN_STREAM, 0, body)
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(url, protocols=[st.PORTFORWARD_PROTOCOL]) as ws:
            await ws.send_bytes(syn(1, {"streamtype": "error", "port": "1", "requestid": "0"}))
            # the data stream's SYN and its first bytes in one message, split oddly: boundaries are arbitrary
            blob = syn(3, {"streamtype": "data", "port": "1", "requestid": "0"}) + st.data_frame(3, 0, b"ping")
            await ws.send_bytes(blob[:7])
            await ws.send_bytes(blob[7:])
            await ws.send_bytes(st.control_frame(st.PING, 0, b"\x00\x00\x00\x01"))
            buf, data, replies, pings, fin = b"", b"", set(), 0, False
            while not fin:
                msg = await asyncio.wait_for(ws.receive(), 5)
                buf += msg.data
                while len(buf) >= 8 and len(buf) >= 8 + (struct.unpack_from(">I", buf, 4)[0] & 0xFFFFFF):
                    n = 8 + (struct.unpack_from(">I", buf, 4)[0] & 0xFFFFFF)
                    frame, buf = buf[:n], buf[n:]
                    first, second = struct.unpack_from(">II", frame)
                    if first & 0x80000000:
                        ftype = first & 0xFFFF
                        if ftype == st.SYN_REPLY:
                            replies.add(struct.unpack_from(">I", frame, 8)[0])
                            st.decode_headers(decomp, frame[12:])
                        elif ftype == st.PING:
                            pings += 1
                    elif first == 3:
                        data += frame[8:]
                        fin = bool(second >> 24 & st.FLAG_FIN)
            assert replies == {1, 3} and pings == 1
            assert data == b"echo:ping"
    finally:
        await runner.cleanup()
        echo_srv.close()
