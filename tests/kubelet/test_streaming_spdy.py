"""exec, attach and port-forward over native SPDY/3.1 (`POST` + `Upgrade: SPDY/3.1`), as kubectl < 1.29 speaks
them, against an aiohttp server on 127.0.0.1 — no containers needed.  The client here plays client-go's part:
it opens the streams, half-closes stdin and reads until every stream has its FIN."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from aiohttp import web

from kubelite.kubelet import streaming as st
from kubelite.kubelet import streaming_spdy as sp


class SpdyClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str],
                 status: int, body: bytes) -> None:
        self.reader, self.writer = reader, writer
        self.headers, self.status, self.body = headers, status, body
        self.comp, self.decomp = sp.compressor(), sp.decompressor()
        self.data: dict[int, bytes] = {}
        self.fin: set[int] = set()
        self.replies: set[int] = set()
        self.goaway = False
        self.pings = 0
        self.buf = bytearray()

    @classmethod
    async def connect(cls, port: int, path: str, protocols: list[str]) -> SpdyClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = [f"POST {path} HTTP/1.1", "Host: x", "Connection: Upgrade", "Upgrade: SPDY/3.1",
                "Content-Length: 0"] + [f"X-Stream-Protocol-Version: {p}" for p in protocols]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = raw.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        body = b""
        if status != 101 and headers.get("content-length"):
            body = await reader.readexactly(int(headers["content-length"]))
        return cls(reader, writer, headers, status, body)

    def open(self, sid: int, headers: dict[str, str], fin: bool = False) -> None:
        body = struct.pack(">IIH", sid, 0, 0) + sp.encode_headers(self.comp, headers)
        self.writer.write(sp.control_frame(sp.SYN_STREAM, sp.FLAG_FIN if fin else 0, body))

    def send(self, sid: int, data: bytes, fin: bool = False) -> None:
        self.writer.write(sp.data_frame(sid, sp.FLAG_FIN if fin else 0, data))

    async def until(self, done, timeout: float = 10) -> None:
        async def loop() -> None:
            while not done():
                chunk = await self.reader.read(65536)
                if not chunk:
                    return
                self.buf += chunk
                for frame in sp.split_frames(self.buf):
                    first, second = struct.unpack_from(">II", frame)
                    if first & 0x80000000:
                        ftype = first & 0xFFFF
                        if ftype == sp.SYN_REPLY:
                            self.replies.add(struct.unpack_from(">I", frame, 8)[0])
                            sp.decode_headers(self.decomp, frame[12:])
                        elif ftype == sp.GOAWAY:
                            self.goaway = True
                        elif ftype == sp.PING:
                            self.pings += 1
                    else:
                        self.data[first] = self.data.get(first, b"") + frame[8:]
                        if second >> 24 & sp.FLAG_FIN:
                            self.fin.add(first)
        await asyncio.wait_for(loop(), timeout)

    def close(self) -> None:
        self.writer.close()


async def _serve(handler, path: str = "/x") -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _exec_handler(argv: list[str], **kw):
    async def handler(request: web.Request) -> web.StreamResponse:
        async def spawn(**pipes):
            return await asyncio.create_subprocess_exec(*argv, **pipes)
        q = request.query
        return await st.serve_exec(request, spawn, tty=False, stdin=q.get("stdin") == "true",
                                   stdout=q.get("stdout") == "true", stderr=q.get("stderr") == "true", **kw)
    return handler


async def test_exec_v4_stdin_stdout_stderr_and_exit_code():
    runner, port = await _serve(_exec_handler(["sh", "-c", "cat; echo err >&2; exit 3"]))
    try:
        c = await SpdyClient.connect(port, "/x?stdin=true&stdout=true&stderr=true",
                                     ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                                      "channel.k8s.io"])
        assert c.status == 101 and c.headers["upgrade"] == "SPDY/3.1"
        assert c.headers["x-stream-protocol-version"] == "v4.channel.k8s.io"
        for sid, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")):
            c.open(sid, {"streamtype": kind})
        c.send(3, b"hello\n")
        c.send(3, b"", fin=True)  # stdin's end
        await c.until(lambda: {1, 5, 7} <= c.fin and c.goaway)
        assert c.replies == {1, 3, 5, 7}
        assert c.data[5] == b"hello\n" and c.data[7] == b"err\n"
        status = json.loads(c.data[1])
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
        c.close()
    finally:
        await runner.cleanup()


async def test_exec_success_status_and_v2_error_text():
    runner, port = await _serve(_exec_handler(["sh", "-c", "echo out; exit ${RC:-0}"]))
    try:
        c = await SpdyClient.connect(port, "/x?stdout=true", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
        assert c.headers["x-stream-protocol-version"] == "v5.channel.k8s.io"  # the client's first choice
        c.open(1, {"streamtype": "error"})
        c.open(3, {"streamtype": "stdout"})
        await c.until(lambda: {1, 3} <= c.fin)
        assert c.data[3] == b"out\n"
        assert json.loads(c.data[1]) == {"metadata": {}, "status": "Success"}
        c.close()
    finally:
        await runner.cleanup()
    runner, port = await _serve(_exec_handler(["sh", "-c", "exit 2"]))
    try:
        c = await SpdyClient.connect(port, "/x?stdout=true", ["v2.channel.k8s.io"])
        c.open(1, {"streamtype": "error"})
        c.open(3, {"streamtype": "stdout"})
        await c.until(lambda: {1, 3} <= c.fin)
        assert c.data[1].startswith(b"command terminated with non-zero exit code")  # bare text before v4
        c.close()
    finally:
        await runner.cleanup()


async def test_unknown_protocol_is_refused_and_missing_streams_time_out():
    runner, port = await _serve(_exec_handler(["true"]))
    try:
        c = await SpdyClient.connect(port, "/x?stdout=true", ["v9.channel.k8s.io"])
        assert c.status == 403
        assert b"unable to upgrade: unable to negotiate protocol" in c.body
        c.close()
        c = await SpdyClient.connect(port, "/x", ["v4.channel.k8s.io"])
        assert c.status == 400 and b"you must specify at least 1 of stdin, stdout, stderr" in c.body
        c.close()
    finally:
        await runner.cleanup()


async def test_stream_creation_timeout(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(st, "STREAM_CREATION_TIMEOUT", 0.3)

    async def handler(request):
        io, resp = await st.open_exec_io(request, tty=False, stdin=False, stdout=True, stderr=False)
        assert io is None
        return resp
    runner, port = await _serve(handler)
    try:
        c = await SpdyClient.connect(port, "/x?stdout=true", ["v4.channel.k8s.io"])
        c.open(1, {"streamtype": "error"})  # never the stdout stream
        await asyncio.wait_for(c.reader.read(), 5)  # the server gives up and closes the connection
        c.close()
    finally:
        await runner.cleanup()


async def test_exec_resize_stream_reaches_the_session():
    seen: list = []

    async def handler(request):
        io, resp = await st.open_exec_io(request, tty=True, stdin=True, stdout=True, stderr=False)
        assert io is not None
        while len(seen) < 2:
            ev = await io.events.get()
            assert ev is not None
            if ev[0] == st.RESIZE:
                seen.append(ev[1])
        await io.finish(st.exit_status(0))
        return resp
    runner, port = await _serve(handler)
    try:
        c = await SpdyClient.connect(port, "/x?stdin=true&stdout=true&tty=true", ["v4.channel.k8s.io"])
        for sid, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")):
            c.open(sid, {"streamtype": kind})
        c.send(7, b'{"Width":100,"Height":40}\n{"Width":120,')  # JSON objects split anywhere
        c.send(7, b'"Height":50}\n')
        await c.until(lambda: 1 in c.fin)
        assert seen == [{"Width": 100, "Height": 40}, {"Width": 120, "Height": 50}]
        c.close()
    finally:
        await runner.cleanup()


async def test_attach_streams_output_then_success():
    async def handler(request):
        async def follow(write, gone):
            await write(b"line-1\n")
            await write(b"line-2\n")
        return await st.serve_attach(request, follow, tty=False, stdin=False, stdout=True, stderr=True)
    runner, port = await _serve(handler)
    try:
        c = await SpdyClient.connect(port, "/x", ["v4.channel.k8s.io"])
        c.open(1, {"streamtype": "error"})
        c.open(3, {"streamtype": "stdout"})
        c.open(5, {"streamtype": "stderr"})
        await c.until(lambda: {1, 3, 5} <= c.fin)
        assert c.data[3] == b"line-1\nline-2\n"
        assert json.loads(c.data[1])["status"] == "Success"
        c.close()
    finally:
        await runner.cleanup()


async def test_native_port_forward():
    async def echo(reader, writer):
        data = await reader.read(100)
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()
    echo_srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = echo_srv.sockets[0].getsockname()[1]

    async def handler(request):
        async def connect(port):
            if port != 80:
                raise ConnectionRefusedError("connection refused")
            return await asyncio.open_connection("127.0.0.1", echo_port)
        return await st.serve_portforward(request, connect)
    runner, port = await _serve(handler)
    try:
        c = await SpdyClient.connect(port, "/x", ["portforward.k8s.io"])
        assert c.status == 101 and c.headers["x-stream-protocol-version"] == "portforward.k8s.io"
        c.open(1, {"streamtype": "error", "port": "80", "requestid": "0"}, fin=True)
        c.open(3, {"streamtype": "data", "port": "80", "requestid": "0"})
        c.send(3, b"ping")
        c.writer.write(sp.control_frame(sp.PING, 0, b"\x00\x00\x00\x01"))
        c.open(5, {"streamtype": "error", "port": "81", "requestid": "1"}, fin=True)
        c.open(7, {"streamtype": "data", "port": "81", "requestid": "1"})
        await c.until(lambda: {1, 3, 5, 7} <= c.fin and c.pings == 1)
        assert c.data[3] == b"echo:ping" and not c.data.get(1)
        assert b"failed to connect to localhost:81 inside namespace" in c.data[5]
        c.close()
    finally:
        await runner.cleanup()
        echo_srv.close()
