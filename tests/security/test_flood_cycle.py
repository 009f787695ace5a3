"""A flooder that reconnects whenever closed costs the hub little per cycle.

The "MQTT packed" attacks of bench/hostile.py send 1 MiB WebSocket messages
deflated to ~1.5 KB each as fast as TCP takes them and reconnect when closed.
Each cycle cost the hub its handshake, the messages it inflated and the
packets it handled until the rate closed it; and the hub waited
close_timeout for the flooder's close frame, reading on, while its address's
penalty began only once that wait was over. Now (docs/security.md, "Floods
and reconnect loops"): the refusal that decides a flood penalizes the address
there, nothing more the client sent is read, the TCP connection ends with the
close frame, and an address that floods again under its penalty has its next
sockets held unanswered until the penalty ends, then refused with 429.
Raw sockets here: the attacker never answers a close frame.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench import rawws
from protocols.mqtt.codec import Connect, Pingreq, encode
from tests.security.hub_process import HubProcess, wshub

MIB = 1024 * 1024
# 10 messages/s, a burst of 20: a message of 100 PINGREQ floods at once.
SLOW = {"limits": {"message_rate": 10, "message_burst": 20}}
PINGREQ_PACK = rawws.frame(encode(Pingreq()) * 100, text=False, compress=True)
# The attack's own message: 1 MiB of PINGREQ, ~1.5 KB deflated.
MIB_PACK = rawws.frame(encode(Pingreq()) * (MIB // 2), text=False, compress=True)


class Raw:
    """One raw connection from ``source``: frames as they come, EOF noticed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, hub: HubProcess, source: str = "127.0.0.1") -> tuple[Raw | None, bytes]:
        """The connection and the response's head; None if it was not a 101."""
        parts = urlsplit(hub.url)
        reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port, local_addr=(source, 0)
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n"
                f"Sec-WebSocket-Extensions: {rawws.DEFLATE_OFFER}\r\n\r\n"
            ).encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            head = exc.partial
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            return None, head
        return cls(reader, writer), head

    async def mqtt_connect(self, client_id: str) -> None:
        connect = encode(Connect(client_id=client_id, keepalive=600))
        self.writer.write(rawws.frame(connect, text=False, compress=True))
        opcode, _ = await self.frame()
        assert opcode == rawws.BINARY, "no CONNACK"

    async def frame(self) -> tuple[int, bytes]:
        """The next frame's opcode and (raw, maybe compressed) payload."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def until_close(self) -> tuple[int, int]:
        """Data frames read before the hub's close frame, and its code."""
        frames = 0
        while True:
            opcode, payload = await self.frame()
            if opcode == rawws.CLOSE:
                return frames, struct.unpack("!H", payload[:2])[0]
            frames += 1

    async def flood(self) -> None:
        """The attack's 1 MiB messages, as fast as TCP takes them, until the hub is gone."""
        with contextlib.suppress(OSError):
            while True:
                self.writer.write(MIB_PACK)
                await self.writer.drain()
                # drain() returns without yielding while the socket takes the
                # data: a hub that reads as fast would starve our reader, which
                # then never sees the close frame (the hub aborts close_timeout
                # later, and the test failed on a reset).
                await asyncio.sleep(0)

    def close(self) -> None:
        self.writer.close()


async def flooded(hub: HubProcess, client_id: str) -> Raw:
    """A connection closed for its rate by one message of 100 PINGREQ."""
    raw, head = await Raw.open(hub)
    assert raw is not None, head
    await raw.mqtt_connect(client_id)
    raw.writer.write(PINGREQ_PACK)
    async with asyncio.timeout(10):
        _, code = await raw.until_close()
    assert code == 1008
    return raw


async def test_a_flooder_that_never_answers_the_close_frame_is_dropped_at_once(
    tmp_path: Path,
) -> None:
    """The TCP connection ends right after the close frame and the client's EOF.

    The client floods with 1 MiB messages until it sees the close frame, then
    ends its side, as the attack's loop does, without a close frame. Before,
    the hub's reading was paused (its message queue full) and it waited
    close_timeout (5 s) for that close frame, holding the slot.
    """
    async with wshub(tmp_path, SLOW) as hub:
        raw, head = await Raw.open(hub)
        assert raw is not None, head
        await raw.mqtt_connect("flooder")
        raw.writer.write(PINGREQ_PACK)
        sending = asyncio.create_task(raw.flood())
        async with asyncio.timeout(10):
            _, code = await raw.until_close()
        closed = time.monotonic()
        sending.cancel()
        with contextlib.suppress(OSError):
            raw.writer.write_eof()
        async with asyncio.timeout(10):
            with contextlib.suppress(OSError):
                while await raw.reader.read(65536):
                    pass
        ended = time.monotonic() - closed
        raw.close()
        assert code == 1008
        assert ended < 1.0, f"the hub kept the flooder's connection {ended:.2f}s after closing it"


async def test_a_flooder_reconnecting_at_once_finds_its_penalty(tmp_path: Path) -> None:
    """The next connection, opened right after the close frame, starts with an empty bucket.

    Before, the penalty began once the closed connection's handshake was over
    (close_timeout later, for a client that never answers): a flooder
    reconnecting at once got a full burst each time.
    """
    async with wshub(tmp_path, SLOW) as hub:
        first = await flooded(hub, "first")
        second, head = await Raw.open(hub)
        assert second is not None, f"refused after a single flood: {head!r}"
        connect = encode(Connect(client_id="second", keepalive=600))
        second.writer.write(rawws.frame(connect, text=False, compress=True) + PINGREQ_PACK)
        async with asyncio.timeout(10):
            answered, code = await second.until_close()
        first.close()
        second.close()
        assert code == 1008
        # A full bucket would have answered the CONNECT and 20 PINGREQ.
        assert answered <= 1, f"{answered} replies: the reconnection got a burst"


async def test_an_address_that_floods_again_is_held_then_refused_with_429(
    tmp_path: Path,
) -> None:
    """A repeat flooder's next socket gets no answer until its penalty ends, then 429.

    Held, a reconnect loop waits instead of spinning on refusals; other
    addresses (127.0.0.2 here) are served as before.
    """
    async with wshub(tmp_path, SLOW) as hub:
        (await flooded(hub, "once")).close()
        second, head = await Raw.open(hub)
        assert second is not None, head
        second.writer.write(PINGREQ_PACK)  # not even the CONNECT passes the empty bucket
        async with asyncio.timeout(10):
            _, code = await second.until_close()
        second.close()
        assert code == 1008
        started = time.monotonic()
        third = asyncio.create_task(Raw.open(hub))
        await asyncio.sleep(1.0)
        assert not third.done(), "a repeat flooder's upgrade was answered at once"
        neighbour, head = await Raw.open(hub, source="127.0.0.2")
        assert neighbour is not None, f"another address was refused: {head!r}"
        await neighbour.mqtt_connect("neighbour")
        neighbour.close()
        async with asyncio.timeout(15):
            refused, head = await third
        waited = time.monotonic() - started
        assert refused is None
        assert head.startswith(b"HTTP/1.1 429"), head
        assert b"Retry-After" in head
        assert 5 < waited < 12, f"answered after {waited:.1f}s, not at the penalty's end"


async def test_a_compressed_connection_has_at_most_a_mebibyte_inflated_ahead(
    tmp_path: Path,
) -> None:
    """Twenty 1 MiB messages of PINGREQ (~1 KB each deflated), sent at once.

    The handler takes one at a time and closes the flooder within the first;
    the message queue's bound counts messages, so 16 MiB were inflated and
    queued ahead of it (~15 ms of the hub's CPU per flooder, thrown away).
    Now reads wait once 1 MiB of whole messages is queued: the hub's peak
    RSS grows by a few MiB, not 16.
    """
    async with wshub(tmp_path) as hub:
        raw, head = await Raw.open(hub)
        assert raw is not None, head
        await raw.mqtt_connect("ahead")
        await asyncio.sleep(0.5)
        hub.reset_peak()
        before = hub.rss()
        raw.writer.write(MIB_PACK * 20)
        async with asyncio.timeout(20):
            _, code = await raw.until_close()
        await asyncio.sleep(0.2)
        growth = (hub.peak_rss() - before) / MIB
        raw.close()
        assert code == 1008
        assert growth < 8, f"peak RSS grew {growth:.1f} MiB"
