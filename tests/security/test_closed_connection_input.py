"""What a client sends after the hub closed its connection is not inflated nor handled.

Issue 13's packed-MQTT attack: four connections from one attacker shared a
client id, so each CONNECT took the session over and the hub closed the
previous connection. Until that client's Close frame (or close_timeout) the
hub kept inflating its 1.5 KB frames, 1 MiB each, ~800 of them in the first
second of the bench's window, for a handler that dropped them all. Once the
hub has sent its Close, the client's data frames are dropped unread.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
import urllib.request
from pathlib import Path

from bench import rawws
from protocols.mqtt.codec import Connack, Connect, PacketReader, Pingreq, encode
from tests.security.hub_process import HubProcess, open_ws, wshub

MIB = 1024 * 1024
FRAMES = 100


async def raw_mqtt(hub: HubProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An MQTT WebSocket with permessage-deflate, read and written by hand: unlike
    a client library, it may go on writing after the hub's Close frame."""
    port = int(hub.url.rsplit(":", 1)[1].strip("/"))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Extensions: {rawws.DEFLATE_OFFER}"
            "\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"permessage-deflate" in head.lower()
    return reader, writer


async def next_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The hub's next frame: its opcode and its payload (as sent: maybe deflated)."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(size)


def mqtt_messages_received(hub: HubProcess) -> float:
    text = urllib.request.urlopen(hub.url.replace("ws:", "http:") + "metrics", timeout=5).read()
    found = re.search(rb'^wshub_messages_received_total\{subprotocol="mqtt"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_frames_after_the_hubs_close_are_dropped_uninflated(tmp_path: Path) -> None:
    """A connection taken over (closed by the hub) goes on sending 1 MiB deflated frames:
    none reaches the session, and the hub spends next to no CPU on them."""
    async with wshub(tmp_path) as hub:
        reader, writer = await raw_mqtt(hub)
        writer.write(rawws.frame(encode(Connect(client_id="twin")), text=False, compress=True))
        assert (await next_frame(reader))[0] == rawws.BINARY  # CONNACK
        # The same client id on a second connection: the hub closes the first.
        second = await open_ws(hub, "mqtt")
        await second.send(encode(Connect(client_id="twin")))
        assert isinstance(PacketReader().feed(await second.recv())[0], Connack)  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            while (await next_frame(reader))[0] != rawws.CLOSE:
                pass
        counted = mqtt_messages_received(hub)
        cpu = hub.cpu_seconds()
        # 100 frames of ~1 KB on the wire, 100 MiB once inflated.
        packed = rawws.frame(encode(Pingreq()) * (MIB // 2), text=False, compress=True)
        for _ in range(FRAMES):
            writer.write(packed)
            await writer.drain()
        # The hub ends the connection at close_timeout at the latest; by
        # then it has read everything.
        async with asyncio.timeout(30):
            while await reader.read(65536):
                pass
        spent = hub.cpu_seconds() - cpu
        received = mqtt_messages_received(hub) - counted
        writer.close()
        await second.close()
    print(f"after the hub's Close: {received:.0f} messages handed on, {spent:.3f}s of hub CPU")
    assert received == 0, f"{received:.0f} messages after the hub's Close reached the session"
    # Measured: 0.002 s (reading 100 KB, parsing frame headers); inflating
    # and handing them on, before: 0.052 s.
    assert spent < 0.02, f"the hub spent {spent:.3f}s on what it drops"
