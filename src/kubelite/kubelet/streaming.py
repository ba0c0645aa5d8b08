"""Streaming protocols of exec/attach and port-forward, as kubectl speaks them (kubectl-wire.md §5).

exec/attach: websocket subprotocols `v5.channel.k8s.io` / `v4.channel.k8s.io`; every binary message is one
channel byte + payload (0 stdin, 1 stdout, 2 stderr, 3 status JSON, 4 resize JSON, 255 close-stream in v5).

port-forward: websocket subprotocol `SPDY/3.1+portforward.k8s.io`, carrying a SPDY/3.1 byte stream (message
boundaries arbitrary).  kubectl is the SPDY client: per local connection it opens an `error` and a `data`
stream (headers streamType, port, requestID); we reply SYN_REPLY, pump the data stream to the pod's port and
report failures as text on the error stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import socket
import struct
import termios
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger("kubelite.kubelet.streaming")

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORTFORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def exit_status(code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command [{code}], "
                       f"exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}


# ---------------------------------------------------------------- exec / attach over websocket

Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]


STREAMING_IDLE_TIMEOUT = 4 * 3600.0  # upstream's streamingConnectionIdleTimeout default


class _IdleClosingWebSocket(web.WebSocketResponse):
    """A websocket that notes its traffic, so a session idle for too long can be closed."""

    last_activity = 0.0

    async def send_bytes(self, data, compress=None) -> None:  # type: ignore[override]
        self.last_activity = time.monotonic()
        await super().send_bytes(data, compress=compress)

    async def receive(self, timeout=None):  # type: ignore[override]
        msg = await super().receive(timeout)
        self.last_activity = time.monotonic()
        return msg


async def _close_when_idle(ws: _IdleClosingWebSocket, idle_timeout: float) -> None:
    while not ws.closed:
        left = ws.last_activity + idle_timeout - time.monotonic()
        if left <= 0:
            log.info("closing a streaming session idle for %.0f s", idle_timeout)
            await ws.close(code=1000, message=b"idle timeout")
            return
        await asyncio.sleep(min(left, 5.0))


async def serve_exec(request: web.Request, spawn: Spawn, *, tty: bool, stdin: bool, stdout: bool, stderr: bool,
                     tty_spawn: Callable[[str], Awaitable[asyncio.subprocess.Process]] | None = None,
                     idle_timeout: float = STREAMING_IDLE_TIMEOUT) -> web.StreamResponse:
    """Run a process (`spawn(stdin=, stdout=, stderr=)` or, for a tty, `tty_spawn(console_socket)`) and wire it
    to the websocket.  Sends the exit Status on channel 3 and closes.  A session with no traffic for
    `idle_timeout` seconds is closed (its stdin ends)."""
    ws = _IdleClosingWebSocket(protocols=EXEC_PROTOCOLS, max_msg_size=0, autoping=True)
    await ws.prepare(request)
    ws.last_activity = time.monotonic()
    watchdog = asyncio.ensure_future(_close_when_idle(ws, idle_timeout))
    try:
        return await _serve_exec(ws, spawn, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr, tty_spawn=tty_spawn)
    finally:
        watchdog.cancel()


async def _serve_exec(ws: web.WebSocketResponse, spawn: Spawn, *, tty: bool, stdin: bool, stdout: bool,
                      stderr: bool, tty_spawn) -> web.StreamResponse:
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    try:
        if tty and tty_spawn is not None:
            code = await _exec_tty(ws, tty_spawn, stdin)
        else:
            code = await _exec_pipes(ws, spawn, stdin=stdin, stdout=stdout, stderr=stderr, v5=v5)
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code)).encode())
    except Exception as e:  # noqa: BLE001 — reported to the client as a Status
        log.debug("exec failed", exc_info=True)
        with contextlib.suppress(Exception):
            await ws.send_bytes(bytes([ERROR]) + json.dumps(failure_status(str(e))).encode())
    await ws.close()
    return ws


async def _exec_pipes(ws: web.WebSocketResponse, spawn: Spawn, *, stdin: bool, stdout: bool, stderr: bool,
                      v5: bool) -> int:
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await spawn(stdin=pipe if stdin else devnull, stdout=pipe if stdout else devnull,
                       stderr=pipe if stderr else devnull)

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        while True:
            data = await stream.read(32768)
            if not data:
                return
            with contextlib.suppress(ConnectionResetError):
                await ws.send_bytes(bytes([channel]) + data)

    async def feed() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            ch, payload = msg.data[0], msg.data[1:]
            if ch == STDIN and proc.stdin is not None:
                proc.stdin.write(payload)
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    await proc.stdin.drain()
            elif ch == CLOSE and v5 and payload[:1] == bytes([STDIN]) and proc.stdin is not None:
                proc.stdin.close()
        if proc.stdin is not None:
            proc.stdin.close()

    feeder = asyncio.ensure_future(feed())
    await asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
    code = await proc.wait()
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await feeder
    return code


async def receive_console(path: str, timeout: float = 10.0) -> tuple[socket.socket, Awaitable[int]]:
    """A unix socket runc sends the pty master to (`--console-socket`)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.setblocking(False)
    loop = asyncio.get_running_loop()

    async def accept() -> int:
        conn, _ = await asyncio.wait_for(loop.sock_accept(srv), timeout)
        with conn:
            conn.setblocking(True)
            _, fds, _, _ = await asyncio.to_thread(socket.recv_fds, conn, 4096, 1)
        srv.close()
        return fds[0]
    return srv, accept()


async def _exec_tty(ws: web.WebSocketResponse, tty_spawn: Callable[[str], Awaitable[asyncio.subprocess.Process]],
                    stdin: bool) -> int:
    import tempfile
    d = tempfile.mkdtemp(prefix="kubelite-console-")
    path = os.path.join(d, "console.sock")
    srv, master_fd_future = await receive_console(path)
    try:
        proc = await tty_spawn(path)
        master = await master_fd_future
    finally:
        srv.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(d)
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)
    out_q: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 32768)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(master)
        out_q.put_nowait(data or None)

    loop.add_reader(master, readable)

    async def pump_out() -> None:
        while (data := await out_q.get()) is not None:
            await ws.send_bytes(bytes([STDOUT]) + data)

    async def feed() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            ch, payload = msg.data[0], msg.data[1:]
            if ch == STDIN and stdin:
                with contextlib.suppress(OSError):
                    os.write(master, payload)
            elif ch == RESIZE:
                with contextlib.suppress(ValueError, OSError):
                    size = json.loads(payload)
                    fcntl.ioctl(master, termios.TIOCSWINSZ,
                                struct.pack("HHHH", int(size.get("Height", 24)), int(size.get("Width", 80)), 0, 0))

    feeder = asyncio.ensure_future(feed())
    pumper = asyncio.ensure_future(pump_out())
    code = await proc.wait()
    await asyncio.sleep(0.05)  # the last output still in the pty
    readable()
    out_q.put_nowait(None)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pumper, 2)
    with contextlib.suppress(Exception):
        loop.remove_reader(master)
    os.close(master)
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await feeder
    return code


# ---------------------------------------------------------------- SPDY/3.1

def _spdy_dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1), 1423 bytes."""
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date etag "
             "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
             "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
             "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
             "method get status").split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
                                              "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
            "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    d = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in words) + tail.encode()
    assert len(d) == 1423
    return d


SPDY_DICT = _spdy_dictionary()
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01


def encode_headers(comp: Any, headers: dict[str, str]) -> bytes:
    raw = struct.pack(">I", len(headers))
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        raw += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
    return comp.compress(raw) + comp.flush(zlib.Z_SYNC_FLUSH)


def decode_headers(decomp: Any, block: bytes) -> dict[str, str]:
    raw = decomp.decompress(block)
    (n,) = struct.unpack_from(">I", raw, 0)
    off, out = 4, {}
    for _ in range(n):
        (kl,) = struct.unpack_from(">I", raw, off)
        k = raw[off + 4:off + 4 + kl].decode()
        off += 4 + kl
        (vl,) = struct.unpack_from(">I", raw, off)
        v = raw[off + 4:off + 4 + vl].decode()
        off += 4 + vl
        out[k] = v
    return out


def control_frame(ftype: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | 3, ftype, (flags << 24) | len(data)) + data


def data_frame(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


Connector = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class SpdyPortForward:
    """The server side of one port-forward session over a websocket."""

    def __init__(self, ws: web.WebSocketResponse, connect: Connector) -> None:
        self.ws = ws
        self.connect = connect
        self.comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                     SPDY_DICT)
        self.decomp = zlib.decompressobj(zdict=SPDY_DICT)
        self.buf = b""
        self.streams: dict[int, dict[str, str]] = {}
        self.pairs: dict[str, dict[str, int]] = {}  # requestID -> {"error": sid, "data": sid}
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.early: dict[int, list[tuple[bytes, bool]]] = {}  # data stream -> frames before the connection
        self.tasks: set[asyncio.Task] = set()
        self.send_lock = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self.send_lock:
            if not self.ws.closed:
                await self.ws.send_bytes(frame)

    async def run(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            self.buf += msg.data
            while len(self.buf) >= 8:
                (length,) = struct.unpack_from(">I", self.buf, 4)
                length &= 0xFFFFFF
                if len(self.buf) < 8 + length:
                    break
                frame, self.buf = self.buf[:8 + length], self.buf[8 + length:]
                await self._frame(frame)
        for w in self.writers.values():
            with contextlib.suppress(Exception):
                w.close()
        for t in self.tasks:
            t.cancel()

    async def _frame(self, frame: bytes) -> None:
        first, second = struct.unpack_from(">II", frame, 0)
        flags, data = second >> 24, frame[8:]
        if first & 0x80000000:
            ftype = first & 0xFFFF
            if ftype == SYN_STREAM:
                sid = struct.unpack_from(">I", data, 0)[0] & 0x7FFFFFFF
                headers = decode_headers(self.decomp, data[10:])
                await self._syn(sid, headers, flags)
            elif ftype == HEADERS:
                decode_headers(self.decomp, data[4:])  # keep the shared zlib context in step
            elif ftype == PING:
                await self.send(control_frame(PING, 0, data))
            elif ftype == RST_STREAM:
                sid = struct.unpack_from(">I", data, 0)[0] & 0x7FFFFFFF
                w = self.writers.pop(sid, None)
                if w is not None:
                    w.close()
            return
        sid = first & 0x7FFFFFFF
        w = self.writers.get(sid)
        if w is None and sid in self.early:  # the pod connection is still being made: keep it for then
            self.early[sid].append((data, bool(flags & FLAG_FIN)))
            return
        if w is not None:
            if data:
                w.write(data)
                with contextlib.suppress(ConnectionError):
                    await w.drain()
            if flags & FLAG_FIN and w.can_write_eof():
                with contextlib.suppress(OSError):
                    w.write_eof()

    async def _syn(self, sid: int, headers: dict[str, str], flags: int) -> None:
        self.streams[sid] = headers
        reply = struct.pack(">I", sid) + encode_headers(self.comp, {})
        await self.send(control_frame(SYN_REPLY, 0, reply))
        rid = headers.get("requestid", "")
        kind = headers.get("streamtype", "")
        pair = self.pairs.setdefault(rid, {})
        pair[kind] = sid
        if kind == "data":
            self.early[sid] = []
        if "error" in pair and "data" in pair:
            t = asyncio.ensure_future(self._forward(rid, int(headers.get("port", "0") or 0), pair))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def _forward(self, rid: str, port: int, pair: dict[str, int]) -> None:
        err_sid, data_sid = pair["error"], pair["data"]
        try:
            reader, writer = await self.connect(port)
        except Exception as e:  # noqa: BLE001 — reported on the error stream, as the kubelet does
            msg = (f"error forwarding port {port} to pod, uid : failed to execute portforward in network namespace: "
                   f"failed to connect to localhost:{port} inside namespace: {e}")
            await self.send(data_frame(err_sid, 0, msg.encode()))
            await self.send(data_frame(err_sid, FLAG_FIN, b""))
            await self.send(data_frame(data_sid, FLAG_FIN, b""))
            self.pairs.pop(rid, None)
            self.early.pop(data_sid, None)
            return
        for data, fin in self.early.pop(data_sid, []):
            if data:
                writer.write(data)
            if fin and writer.can_write_eof():
                writer.write_eof()
        self.writers[data_sid] = writer
        try:
            while True:
                chunk = await reader.read(32768)
                if not chunk:
                    break
                await self.send(data_frame(data_sid, 0, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            await self.send(data_frame(data_sid, FLAG_FIN, b""))
            await self.send(data_frame(err_sid, FLAG_FIN, b""))
            self.writers.pop(data_sid, None)
            writer.close()
            self.pairs.pop(rid, None)


async def serve_portforward(request: web.Request, connect: Connector) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,), max_msg_size=0, autoping=True)
    await ws.prepare(request)
    await SpdyPortForward(ws, connect).run()
    return ws


# ---------------------------------------------------------------- sockets inside a network namespace

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _socket_in_netns(netns_path: str) -> socket.socket:
    """A TCP socket created inside the pod's network namespace (sockets keep their namespace)."""
    host = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _libc.setns(host, CLONE_NEWNET)
    finally:
        os.close(host)
        os.close(target)


async def connect_in_netns(netns_path: str | None, port: int,
                           host: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to localhost:port inside the pod, as the kubelet's port-forward does."""
    if netns_path is None:
        return await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    # a short-lived thread: setns only changes the calling thread
    sock = await asyncio.to_thread(_socket_in_netns, netns_path)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 10)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)
