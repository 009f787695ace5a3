"""A WebSocket client written by hand over a plain socket.

It completes the opening handshake and then does only what a test tells it:
it never answers pings and may stop reading altogether, which no well-behaved
client library lets a test do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from typing import NamedTuple

from hub import Hub

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class Frame(NamedTuple):
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


class RawClient:
    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock = sock
        self._buffer = buffered
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def connect(
        cls, hub: Hub, subprotocol: str | None = "jsonrpc.2.0", *, recv_buffer: int | None = None
    ) -> RawClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if recv_buffer is not None:
            # A small receive window makes the server's writes back up sooner.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        await loop.sock_connect(sock, ("127.0.0.1", hub.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET / HTTP/1.1",
            f"Host: 127.0.0.1:{hub.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in data:
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, f"connection closed during the handshake: {data!r}"
                data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert f"sec-websocket-accept: {accept}".lower().encode() in head.lower()
        return cls(sock, rest)

    async def send(self, payload: str | bytes, opcode: int | None = None) -> None:
        """Send one masked frame, as a client must."""
        if isinstance(payload, str):
            payload, opcode = payload.encode(), opcode or OP_TEXT
        opcode = opcode or OP_BINARY
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self._loop.sock_sendall(self.sock, header + mask + masked)

    async def _read_exactly(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            chunk = await self._loop.sock_recv(self.sock, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    async def recv_frame(self) -> Frame | None:
        """The next frame from the server, or None at end of stream."""
        try:
            head = await self._read_exactly(2)
            if head is None:
                return None
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                extended = await self._read_exactly(2)
                assert extended is not None
                length = struct.unpack("!H", extended)[0]
            elif length == 127:
                extended = await self._read_exactly(8)
                assert extended is not None
                length = struct.unpack("!Q", extended)[0]
            payload = await self._read_exactly(length)
        except ConnectionResetError:
            return None
        return None if payload is None else Frame(opcode, payload)

    async def frames_until_eof(self, timeout: float) -> list[Frame]:
        """Read (never answer) every frame until the server ends the connection."""
        frames = []
        async with asyncio.timeout(timeout):
            while (frame := await self.recv_frame()) is not None:
                frames.append(frame)
        return frames

    def pending_bytes(self) -> int:
        """Bytes the server sent that are waiting, unread, without blocking."""
        try:
            return len(self._buffer) + len(self.sock.recv(65536, socket.MSG_PEEK))
        except BlockingIOError:
            return len(self._buffer)

    def close(self) -> None:
        self.sock.close()
