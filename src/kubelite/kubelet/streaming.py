"""Streaming protocols of exec/attach and port-forward, as kubectl speaks them (kubectl-wire.md §5).

exec/attach reach us in one of two ways, and the session logic (pipes or a pty, exit status) is the same:
- a websocket with subprotocol `v5.channel.k8s.io` / `v4.channel.k8s.io`: every binary message is one channel
  byte + payload (0 stdin, 1 stdout, 2 stderr, 3 status JSON, 4 resize JSON, 255 close-stream in v5);
- SPDY/3.1 (`POST` + `Upgrade: SPDY/3.1`, clients older than 1.29 or falling back): the client opens one stream
  per channel (`streamtype: error|stdin|stdout|stderr|resize`), stdin ends with its FIN, the status is written
  on the error stream (JSON from v4 on, the bare message before) — see streaming_spdy.

port-forward: SPDY/3.1 either inside a websocket (`SPDY/3.1+portforward.k8s.io`) or native.  kubectl is the
SPDY client: per local connection it opens an `error` and a `data` stream (headers streamType, port,
requestID); we pump the data stream to the pod's port and report failures as text on the error stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import select
import signal
import socket
import struct
import termios
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from .streaming_spdy import (  # noqa: F401 — the SPDY names are part of this module's surface
    FLAG_FIN,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    SPDY_DICT,
    SYN_REPLY,
    SYN_STREAM,
    WINDOW_UPDATE,
    Carrier,
    SpdySession,
    SpdyStream,
    WebSocketCarrier,
    accept_upgrade,
    control_frame,
    data_frame,
    decode_headers,
    encode_headers,
    is_spdy_upgrade,
)

log = logging.getLogger("kubelite.kubelet.streaming")

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
# SPDY: v5 behaves as v4 there (closing stdin is the stream's FIN); v1 is what a client asking nothing gets
EXEC_SPDY_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                       "channel.k8s.io")
PORTFORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_SPDY_PROTOCOLS = ("portforward.k8s.io",)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_CREATION_TIMEOUT = 30.0  # upstream's streamCreationTimeout default
STREAMING_IDLE_TIMEOUT = 4 * 3600.0  # upstream's streamingConnectionIdleTimeout default


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


# ---------------------------------------------------------------- the two transports of exec / attach

Event = tuple[int, Any]  # (STDIN, bytes; b"" is its end) or (RESIZE, {"Width", "Height"})


class ExecIO:
    """What an exec/attach session needs of its client: `events` (stdin, its end, resizes; None when the client
    is gone), `out(channel, data)` and `finish(status)`.  Traffic either way counts against the idle timeout."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.last_activity = time.monotonic()
        self.gone = False

    def _event(self, ev: Event | None) -> None:
        self.last_activity = time.monotonic()
        if ev is None:
            self.gone = True
        self.events.put_nowait(ev)

    async def out(self, channel: int, data: bytes) -> None:
        self.last_activity = time.monotonic()
        await self._out(channel, data)

    async def _out(self, channel: int, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self, status: dict[str, Any]) -> None:
        raise NotImplementedError

    async def abort(self) -> None:
        """The idle timeout struck: end the session without a status."""
        raise NotImplementedError

    async def close_when_idle(self, idle_timeout: float) -> None:
        while not self.gone:
            left = self.last_activity + idle_timeout - time.monotonic()
            if left <= 0:
                log.info("closing a streaming session idle for %.0f s", idle_timeout)
                await self.abort()
                return
            await asyncio.sleep(min(left, 5.0))


class WebSocketExecIO(ExecIO):
    def __init__(self, ws: web.WebSocketResponse) -> None:
        super().__init__()
        self.ws = ws
        self.v5 = ws.ws_protocol == "v5.channel.k8s.io"
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                ch, payload = msg.data[0], msg.data[1:]
                if ch == STDIN:
                    if payload:
                        self._event((STDIN, payload))
                elif ch == CLOSE and self.v5 and payload[:1] == bytes([STDIN]):
                    self._event((STDIN, b""))
                elif ch == RESIZE:
                    with contextlib.suppress(ValueError):
                        self._event((RESIZE, json.loads(payload)))
        finally:
            self._event(None)

    async def _out(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionResetError):
            await self.ws.send_bytes(bytes([channel]) + data)

    async def finish(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        await self.ws.close()
        self.reader.cancel()

    async def abort(self) -> None:
        await self.ws.close(code=1000, message=b"idle timeout")


class SpdyExecIO(ExecIO):
    """The client's streams, once all it was asked for have been opened."""

    def __init__(self, carrier: Carrier, protocol: str) -> None:
        super().__init__()
        self.carrier = carrier
        self.protocol = protocol
        self.streams: dict[str, SpdyStream] = {}
        self.session = SpdySession(carrier, self._stream)
        self.opened = asyncio.Event()
        self.expected = 0
        self.readers: list[asyncio.Future] = []
        self.runner: asyncio.Future | None = None

    def _stream(self, stream: SpdyStream) -> None:
        self.streams[stream.type] = stream
        if len(self.streams) >= self.expected:
            self.opened.set()

    async def open(self, expected: int, timeout: float | None = None) -> bool:
        timeout = STREAM_CREATION_TIMEOUT if timeout is None else timeout
        self.expected = expected
        self.runner = asyncio.ensure_future(self._run())
        try:
            await asyncio.wait_for(self.opened.wait(), timeout)
        except TimeoutError:
            log.warning("timed out waiting for client to create streams")
            await self.abort()
            return False
        if len(self.streams) < expected:  # the client went away first
            await self.abort()
            return False
        if "stdin" in self.streams:
            if self.protocol == "channel.k8s.io":  # v1 never read stdin
                await self.streams["stdin"].close()
            self.readers.append(asyncio.ensure_future(self._stdin(self.streams["stdin"])))
        if "resize" in self.streams:
            self.readers.append(asyncio.ensure_future(self._resizes(self.streams["resize"])))
        return True

    async def _run(self) -> None:
        await self.session.run()
        self.opened.set()
        self._event(None)

    async def _stdin(self, stream: SpdyStream) -> None:
        while data := await stream.reader.read(32768):
            self._event((STDIN, data))
        if not self.gone:
            self._event((STDIN, b""))

    async def _resizes(self, stream: SpdyStream) -> None:
        decoder, buf = json.JSONDecoder(), ""
        while data := await stream.reader.read(4096):
            buf += data.decode(errors="replace")
            while buf.strip():
                try:
                    size, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                self._event((RESIZE, size))

    async def _out(self, channel: int, data: bytes) -> None:
        stream = self.streams.get("stdout" if channel == STDOUT else "stderr")
        if stream is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await stream.write(data)

    async def finish(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for name in ("stdout", "stderr"):
                if name in self.streams:
                    await self.streams[name].close()
            err = self.streams.get("error")
            if err is not None:
                if self.protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
                    await err.write(json.dumps(status).encode())
                elif status.get("status") != "Success":
                    await err.write(status.get("message", "").encode())
                await err.close()
            await self.session.goaway()
        # the client closes once it has read everything; closing first could reset what it has not read yet
        if self.runner is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.runner), 5)
        await self.abort()

    async def abort(self) -> None:
        await self.carrier.close()
        for t in self.readers + ([self.runner] if self.runner else []):
            t.cancel()
        self.gone = True


async def open_exec_io(request: web.Request, *, tty: bool, stdin: bool, stdout: bool,
                       stderr: bool) -> tuple[ExecIO | None, web.StreamResponse]:
    """Upgrade the request (websocket or SPDY) and wait for the client's streams.  None when the client
    did not open them in time (the connection is closed)."""
    if not (stdin or stdout or stderr):
        raise web.HTTPBadRequest(text="you must specify at least 1 of stdin, stdout, stderr")
    if is_spdy_upgrade(request):
        carrier, protocol = await accept_upgrade(request, EXEC_SPDY_PROTOCOLS)
        io = SpdyExecIO(carrier, protocol)
        resizing = tty and protocol not in ("channel.k8s.io", "v2.channel.k8s.io", "")
        expected = 1 + stdin + stdout + stderr + resizing
        return (io if await io.open(expected) else None), carrier.response
    ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0, autoping=True)
    await ws.prepare(request)
    return WebSocketExecIO(ws), ws


# ---------------------------------------------------------------- exec / attach

Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]


async def serve_exec(request: web.Request, spawn: Spawn, *, tty: bool, stdin: bool, stdout: bool, stderr: bool,
                     tty_spawn: Callable[[int], Awaitable[asyncio.subprocess.Process]] | None = None,
                     idle_timeout: float = STREAMING_IDLE_TIMEOUT) -> web.StreamResponse:
    """Run a process (`spawn(stdin=, stdout=, stderr=)` or, for a tty, `tty_spawn(pty_slave_fd)`) and wire it
    to the client.  Sends the exit Status and closes.  A session with no traffic for `idle_timeout` seconds is
    closed (its stdin ends)."""
    io, resp = await open_exec_io(request, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)
    if io is None:
        return resp
    watchdog = asyncio.ensure_future(io.close_when_idle(idle_timeout))
    try:
        try:
            if tty and tty_spawn is not None:
                code = await _exec_tty(io, tty_spawn, stdin)
            else:
                code = await _exec_pipes(io, spawn, stdin=stdin, stdout=stdout, stderr=stderr)
            status = exit_status(code)
        except Exception as e:  # noqa: BLE001 — reported to the client as a Status
            log.debug("exec failed", exc_info=True)
            status = failure_status(str(e))
        await io.finish(status)
    finally:
        watchdog.cancel()
    return resp


Follow = Callable[[Callable[[bytes], Awaitable[None]], Callable[[], bool]], Awaitable[None]]


async def serve_attach(request: web.Request, follow: Follow, *, tty: bool, stdin: bool, stdout: bool,
                       stderr: bool, idle_timeout: float = STREAMING_IDLE_TIMEOUT) -> web.StreamResponse:
    """attach: `follow(write, client_gone)` streams the container's output until it ends (or the client
    goes); then the Success status, as upstream sends when the attached container stops."""
    io, resp = await open_exec_io(request, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)
    if io is None:
        return resp

    async def write(data: bytes) -> None:
        await io.out(STDOUT, data)
    try:
        await follow(write, lambda: io.gone)
        status = exit_status(0)
    except Exception as e:  # noqa: BLE001 — reported to the client as a Status
        status = failure_status(str(e))
    await io.finish(status)
    return resp


async def _feed_stdin(io: ExecIO, proc: asyncio.subprocess.Process) -> None:
    while (ev := await io.events.get()) is not None:
        kind, payload = ev
        if kind != STDIN or proc.stdin is None:
            continue
        if not payload:
            proc.stdin.close()
            continue
        proc.stdin.write(payload)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await proc.stdin.drain()
    if proc.stdin is not None:
        proc.stdin.close()


async def _exec_pipes(io: ExecIO, spawn: Spawn, *, stdin: bool, stdout: bool, stderr: bool) -> int:
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await spawn(stdin=pipe if stdin else devnull, stdout=pipe if stdout else devnull,
                       stderr=pipe if stderr else devnull)

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        while data := await stream.read(32768):
            await io.out(channel, data)

    feeder = asyncio.ensure_future(_feed_stdin(io, proc))
    await asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
    code = await proc.wait()
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await feeder
    return code


def _resize(master: int, size: Any) -> None:
    with contextlib.suppress(ValueError, OSError, TypeError, AttributeError):
        fcntl.ioctl(master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(size.get("Height", 24)), int(size.get("Width", 80)), 0, 0))


async def _exec_tty(io: ExecIO, tty_spawn: Callable[[int], Awaitable[asyncio.subprocess.Process]],
                    stdin: bool) -> int:
    """A pty of ours is the stdio of `runc exec --tty` in the foreground: runc makes the container's pty, puts
    ours in raw mode and relays between them; on SIGWINCH it copies our size to the container's."""
    master, slave = os.openpty()
    try:
        proc = await tty_spawn(slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)
    out_q: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 32768)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the other end is gone
            data = b""
        if not data:
            loop.remove_reader(master)
        out_q.put_nowait(data or None)

    loop.add_reader(master, readable)

    async def pump_out() -> None:
        while (data := await out_q.get()) is not None:
            await io.out(STDOUT, data)

    async def feed() -> None:
        while (ev := await io.events.get()) is not None:
            kind, payload = ev
            if kind == STDIN and stdin and payload:
                with contextlib.suppress(OSError):
                    os.write(master, payload)
            elif kind == RESIZE:
                _resize(master, payload)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGWINCH)

    feeder = asyncio.ensure_future(feed())
    pumper = asyncio.ensure_future(pump_out())
    code = await proc.wait()
    # runc has exited: what it relayed is in our pty; read it all (EIO or EAGAIN ends it)
    with contextlib.suppress(Exception):
        loop.remove_reader(master)
    os.set_blocking(master, True)
    while True:
        r, _, _ = select.select([master], [], [], 0)
        if not r:
            break
        try:
            data = os.read(master, 32768)
        except OSError:
            break
        if not data:
            break
        out_q.put_nowait(data)
    out_q.put_nowait(None)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pumper, 2)
    os.close(master)
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await feeder
    return code


# ---------------------------------------------------------------- port-forward

Connector = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class PortForwardSession:
    """The server side of one port-forward session: pairs of `error` + `data` streams per requestID, each pair
    one connection to the pod's port."""

    def __init__(self, carrier: Carrier, connect: Connector) -> None:
        self.connect = connect
        self.session = SpdySession(carrier, self._stream)
        self.pairs: dict[str, dict[str, SpdyStream]] = {}
        self.tasks: set[asyncio.Task] = set()

    def _stream(self, stream: SpdyStream) -> None:
        rid = stream.headers.get("requestid", "")
        pair = self.pairs.setdefault(rid, {})
        pair[stream.type] = stream
        if "error" in pair and "data" in pair:
            port = int(stream.headers.get("port", "0") or 0)
            t = asyncio.ensure_future(self._forward(rid, port, pair["error"], pair["data"]))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        await self.session.run()
        for t in list(self.tasks):
            t.cancel()

    async def _forward(self, rid: str, port: int, err: SpdyStream, data: SpdyStream) -> None:
        try:
            reader, writer = await self.connect(port)
        except Exception as e:  # noqa: BLE001 — reported on the error stream, as the kubelet does
            msg = (f"error forwarding port {port} to pod, uid : failed to execute portforward in network namespace: "
                   f"failed to connect to localhost:{port} inside namespace: {e}")
            await err.write(msg.encode())
            await err.close()
            await data.close()
            self.pairs.pop(rid, None)
            return

        async def up() -> None:  # client -> pod
            while chunk := await data.reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        upward = asyncio.ensure_future(up())
        try:
            while chunk := await reader.read(65536):
                await data.write(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            upward.cancel()
            with contextlib.suppress(ConnectionError, OSError):
                await data.close()
                await err.close()
            writer.close()
            self.pairs.pop(rid, None)


async def serve_portforward(request: web.Request, connect: Connector) -> web.StreamResponse:
    if is_spdy_upgrade(request):
        carrier, _ = await accept_upgrade(request, PORTFORWARD_SPDY_PROTOCOLS)
        await PortForwardSession(carrier, connect).run()
        await carrier.close()
        return carrier.response
    ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,), max_msg_size=0, autoping=True)
    await ws.prepare(request)
    await PortForwardSession(WebSocketCarrier(ws), connect).run()
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
