"""A minimal WebSocket client for the hostile-load attacker (bench/hostile.py).

An attacker on its own machine costs the hub's machine nothing; on the bench's
two shared cores it competes with the hub and the probes. So its frames are
built once, before the measured window, masked with the all-zero key (the
payload stays as built; RFC 6455 wants the key unpredictable against proxy
cache poisoning, which loopback has no use for) and, where the attack relies
on compression, deflated once: the hub still inflates every message as it
would from a real client, the attacker compresses nothing per send. Replies
are read frame by frame and dropped without being inflated or decoded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
import zlib
from urllib.parse import urlsplit

TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
_FIN = 0x80
_RSV1 = 0x40
_MASK = 0x80
# Offered to the hub: it may compress what it sends (and does, as for any
# browser); each of our messages is compressed on its own, with its window.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits=10; client_no_context_takeover"
WINDOW_BITS = 10


class Closed(Exception):
    """The hub closed the connection (or it dropped)."""


def deflated(payload: bytes) -> bytes:
    """``payload`` deflated on its own, ending on a sync flush (00 00 ff ff).

    Such pieces, each from its own compressor, joined make one valid deflate
    stream (each refers only to itself): a message whose parts vary per
    connection is built from pieces deflated once and small ones deflated
    per connection.
    """
    compressor = zlib.compressobj(wbits=-WINDOW_BITS)
    return compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)


def frame(payload: bytes, *, text: bool, compress: bool = False) -> bytes:
    """One whole message as a masked client frame (built once, sent many times)."""
    if compress:
        return compressed_frame([deflated(payload)], text=text)
    return _frame(payload, text=text, compressed=False)


def compressed_frame(pieces: list[bytes], *, text: bool) -> bytes:
    """A compressed message of :func:`deflated` pieces (RFC 7692, 7.2.1: the
    final 00 00 ff ff is left out)."""
    body = b"".join(pieces)
    assert body.endswith(b"\x00\x00\xff\xff")
    return _frame(body[:-4], text=text, compressed=True)


def _frame(body: bytes, *, text: bool, compressed: bool) -> bytes:
    first = _FIN | (TEXT if text else BINARY) | (_RSV1 if compressed else 0)
    size = len(body)
    if size < 126:
        header = struct.pack("!BB", first, _MASK | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, _MASK | 126, size)
    else:
        header = struct.pack("!BBQ", first, _MASK | 127, size)
    return header + b"\x00\x00\x00\x00" + body


class RawClient:
    """One connection: send prebuilt frames, count the hub's messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._messages: asyncio.Queue[None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, protocol: str, *, deflate: bool = True, source: str | None = None
    ) -> RawClient:
        """Connect and upgrade; ``source``: the local address to connect from
        (another loopback address, as an attacker's own machine would be)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        local = (source, 0) if source is not None else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {parts.path or '/'} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Protocol: {protocol}",
        ]
        if deflate:
            lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            raise Closed("no handshake response") from None
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise Closed(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        if deflate and b"permessage-deflate" not in head.lower():
            writer.close()
            raise Closed("permessage-deflate was not negotiated")
        return cls(reader, writer)

    async def _read(self) -> None:
        """Frames until the hub closes: payloads skipped, whole messages counted."""
        reader = self._reader
        try:
            while True:
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", await reader.readexactly(8))
                opcode = first & 0x0F
                while size:  # dropped in pieces: nothing large is held
                    chunk = await reader.read(min(size, 1 << 16))
                    if not chunk:
                        raise asyncio.IncompleteReadError(b"", size)
                    size -= len(chunk)
                if opcode == CLOSE:
                    break
                if first & _FIN and opcode < CLOSE:
                    self._messages.put_nowait(None)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.closed.set()
            self._writer.close()

    async def send(self, data: bytes) -> None:
        """Write a prebuilt frame (or several); Closed once the hub has closed."""
        if self.closed.is_set():
            raise Closed
        self._writer.write(data)
        try:
            await self._writer.drain()
        except OSError:
            raise Closed from None

    async def send_until_closed(self, data: bytes, until: float) -> None:
        """Write ``data`` over and over until the hub closes (its close frame
        read, not the TCP connection's end) or ``until`` (loop time): unlike
        send(), a write the hub does not read does not keep the loop from
        seeing the close frame."""
        loop = asyncio.get_running_loop()
        transport = self._writer.transport
        while not self.closed.is_set() and loop.time() < until:
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() < 1 << 20:
                self._writer.write(data)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.001)

    async def recv(self) -> None:
        """Wait for the hub's next whole message; Closed if it closes first."""
        if not self._messages.empty():
            self._messages.get_nowait()
            return
        getting = asyncio.ensure_future(self._messages.get())
        closing = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait((getting, closing), return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if not getting.done():
            getting.cancel()
            raise Closed

    async def close(self) -> None:
        """Drop the connection (an attacker does not wait for a closing handshake)."""
        self._writer.close()
        self._reading.cancel()
        with contextlib.suppress(BaseException):
            await self._reading
