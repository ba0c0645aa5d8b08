"""SPDY/3.1, the server side, as the kubelet speaks it to clients of the `httpstream` family (client-go before
its websocket executors: kubectl < 1.29 for exec/attach, < 1.31 for port-forward, and newer ones falling back).

Two carriers of the same byte stream:
- a websocket whose binary messages hold arbitrary slices of it (`SPDY/3.1+portforward.k8s.io`), and
- the raw connection after `POST` + `Connection: Upgrade` + `Upgrade: SPDY/3.1` is answered `101 Switching
  Protocols` (negotiating `X-Stream-Protocol-Version`: the first of the client's versions the server knows).

The client opens every stream (odd ids) with SYN_STREAM whose headers name it (`streamtype: error|stdin|…`); we
answer SYN_REPLY, then both sides send DATA frames and half-close with FIN.  Headers are zlib-compressed with
the SPDY/3 dictionary, one context per direction for the whole session.  Flow control is not enforced by
client-go's spdystream, so WINDOW_UPDATE is read and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiohttp import WSMsgType, web


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
UPGRADE = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"


def compressor() -> Any:
    return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, SPDY_DICT)


def decompressor() -> Any:
    return zlib.decompressobj(zdict=SPDY_DICT)


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
        out[k] = v  # a repeated name arrives NUL-joined; nothing of ours repeats
    return out


def control_frame(ftype: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | 3, ftype, (flags << 24) | len(data)) + data


def data_frame(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def split_frames(buf: bytearray) -> list[bytes]:
    """Whole frames taken off the front of `buf` (the rest stays for the next read)."""
    out = []
    while len(buf) >= 8:
        n = 8 + (int.from_bytes(buf[5:8], "big"))
        if len(buf) < n:
            break
        out.append(bytes(buf[:n]))
        del buf[:n]
    return out


# ---------------------------------------------------------------- carriers of the byte stream

class Carrier(Protocol):
    async def read(self) -> bytes: ...  # b"" at the end
    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


class WebSocketCarrier:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return msg.data
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return b""

    async def write(self, data: bytes) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


class _RawParser:
    """Takes the place of aiohttp's HTTP parser once a request is upgraded to something not a websocket."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class RawCarrier:
    """The connection of an aiohttp request after our `101 Switching Protocols`.  aiohttp only upgrades
    websockets by itself, so the bytes after the request are taken from its protocol before the 101 goes out
    (the client sends nothing until it has read the 101)."""

    HIGH_WATER = 256 * 1024

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.reader = asyncio.StreamReader(limit=2 ** 20)
        request.protocol.set_parser(_RawParser(self.reader))  # type: ignore[arg-type]
        request.protocol.keep_alive(False)
        self.response = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": UPGRADE})

    async def switch(self, headers: dict[str, str]) -> web.StreamResponse:
        """Send the 101; the handler returns `self.response` when it is done with the connection."""
        self.response.headers.update(headers)
        await self.response.prepare(self.request)
        return self.response

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        while transport.get_write_buffer_size() > self.HIGH_WATER and not transport.is_closing():
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.close()


def is_spdy_upgrade(request: web.Request) -> bool:
    return (request.headers.get("Upgrade", "").lower() == UPGRADE.lower()
            and "upgrade" in request.headers.get("Connection", "").lower())


def offered_protocols(headers: Any) -> list[str]:
    out: list[str] = []
    for value in headers.getall(PROTOCOL_HEADER, []):
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


def negotiate(request: web.Request, supported: Iterable[str]) -> str:
    """The first protocol of the client's list that we support ("" when the client offers none).  Refusal is a
    403 with upstream's text, as httpstream.Handshake answers."""
    offered, known = offered_protocols(request.headers), list(supported)
    if not offered:
        return ""
    for p in offered:
        if p in known:
            return p
    raise web.HTTPForbidden(text=f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                                 f"server supports {known}")


async def accept_upgrade(request: web.Request, supported: Iterable[str]) -> tuple[RawCarrier, str]:
    """Answer a `POST` + `Upgrade: SPDY/3.1` request with 101 and the negotiated protocol version."""
    protocol = negotiate(request, supported)
    carrier = RawCarrier(request)
    await carrier.switch({PROTOCOL_HEADER: protocol} if protocol else {})
    return carrier, protocol


# ---------------------------------------------------------------- a session and its streams

class SpdyStream:
    """One client-opened stream: `reader` gets its DATA (EOF at the client's FIN or a reset)."""

    def __init__(self, session: SpdySession, sid: int, headers: dict[str, str]) -> None:
        self.session = session
        self.sid = sid
        self.headers = headers
        self.reader = asyncio.StreamReader(limit=2 ** 20)
        self.closed = False  # our half

    @property
    def type(self) -> str:
        return self.headers.get("streamtype", "")

    async def write(self, data: bytes) -> None:
        if data and not self.closed:
            await self.session.send(data_frame(self.sid, 0, data))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.session.send(data_frame(self.sid, FLAG_FIN, b""))


class SpdySession:
    """The server side of one SPDY/3.1 connection.  `on_stream(stream)` is called for each stream the client
    opens, after our SYN_REPLY has been queued; `run()` reads frames until the client goes away."""

    def __init__(self, carrier: Carrier, on_stream: Callable[[SpdyStream], Awaitable[None] | None]) -> None:
        self.carrier = carrier
        self.on_stream = on_stream
        self.comp = compressor()
        self.decomp = decompressor()
        self.streams: dict[int, SpdyStream] = {}
        self.send_lock = asyncio.Lock()
        self.gone = False

    async def send(self, frame: bytes) -> None:
        async with self.send_lock:
            await self.carrier.write(frame)

    async def run(self) -> None:
        buf = bytearray()
        try:
            while not self.gone:
                chunk = await self.carrier.read()
                if not chunk:
                    break
                buf += chunk
                for frame in split_frames(buf):
                    await self._frame(frame)
        except (ConnectionError, OSError):
            pass
        finally:
            for s in self.streams.values():
                s.reader.feed_eof()

    async def goaway(self) -> None:
        last = max((sid for sid in self.streams), default=0)
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(control_frame(GOAWAY, 0, struct.pack(">II", last, 0)))

    async def _frame(self, frame: bytes) -> None:
        first, second = struct.unpack_from(">II", frame, 0)
        flags, data = second >> 24, frame[8:]
        if not first & 0x80000000:
            stream = self.streams.get(first & 0x7FFFFFFF)
            if stream is not None:
                if data:
                    stream.reader.feed_data(data)
                if flags & FLAG_FIN:
                    stream.reader.feed_eof()
            return
        ftype = first & 0xFFFF
        if ftype == SYN_STREAM:
            sid = struct.unpack_from(">I", data, 0)[0] & 0x7FFFFFFF
            stream = SpdyStream(self, sid, decode_headers(self.decomp, data[10:]))
            self.streams[sid] = stream
            if flags & FLAG_FIN:
                stream.reader.feed_eof()
            await self.send(control_frame(SYN_REPLY, 0, struct.pack(">I", sid) + encode_headers(self.comp, {})))
            result = self.on_stream(stream)
            if result is not None:
                await result
        elif ftype == HEADERS:
            decode_headers(self.decomp, data[4:])  # keeps the shared zlib context in step
        elif ftype == PING:
            await self.send(control_frame(PING, 0, data))
        elif ftype == RST_STREAM:
            stream = self.streams.get(struct.unpack_from(">I", data, 0)[0] & 0x7FFFFFFF)
            if stream is not None:
                stream.closed = True
                stream.reader.feed_eof()
        elif ftype == GOAWAY:
            self.gone = True
