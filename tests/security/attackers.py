"""The attacks of tests/security/test_stalls.py, run in a process of their own.

``python -m tests.security.attackers <attack> <url>`` exits 0 once the hub has
handled the whole attack (its last reply arrived). Reading half a million
replies costs this process a lot of CPU: apart, it does not delay the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys

from websockets.asyncio.client import ClientConnection, connect

from bench import rawws
from protocols.mqtt.codec import Connack, Connect, PacketReader, Pingreq, Publish, encode

MIB = 1024 * 1024


async def mqtt_client(url: str, client_id: str) -> tuple[ClientConnection, PacketReader]:
    ws = await connect(url, subprotocols=["mqtt"], max_size=None, compression=None)  # type: ignore[list-item]
    await ws.send(encode(Connect(client_id=client_id, keepalive=600)))
    reader = PacketReader()
    assert isinstance(reader.feed(await ws.recv())[0], Connack)  # type: ignore[arg-type]
    return ws, reader


async def publish_pack(url: str) -> None:
    """One 1 MiB message of 131,072 8-byte QoS 0 PUBLISH, then a PINGREQ answered after them."""
    ws, reader = await mqtt_client(url, "packer")
    packet = encode(Publish(topic="t/ab", payload=b""))
    assert len(packet) == 8
    await ws.send(packet * (MIB // 8))
    await ws.send(encode(Pingreq()))
    async with asyncio.timeout(120):
        assert reader.feed(await ws.recv())  # type: ignore[arg-type]
    await ws.close()


async def pingreq_pack(url: str) -> None:
    """One 1 MiB message of 524,288 PINGREQ; every PINGRESP read."""
    ws, reader = await mqtt_client(url, "pinger")
    count = MIB // 2
    await ws.send(encode(Pingreq()) * count)
    answered = 0
    async with asyncio.timeout(120):
        while answered < count:
            answered += len(reader.feed(await ws.recv()))  # type: ignore[arg-type]
    await ws.close()


async def notification_batches(url: str) -> None:
    """A 25k-notification batch (refused: -32600), then 250 batches of 100 publishes."""
    ws = await connect(url, subprotocols=["channels.v1"], max_size=None)  # type: ignore[list-item]
    tiny = {"jsonrpc": "2.0", "method": "x"}
    await ws.send(json.dumps([tiny] * 25_000, separators=(",", ":")))
    assert json.loads(await ws.recv())["error"]["code"] == -32600
    note = {"jsonrpc": "2.0", "method": "publish", "params": {"channel": "n", "data": 1}}
    for _ in range(250):
        await ws.send(json.dumps([note] * 100))
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
    async with asyncio.timeout(60):
        assert json.loads(await ws.recv())["id"] == 1
    await ws.close()


async def deflated_publish_pack(url: str) -> None:
    """Four connections sending 1 MiB messages of 8-byte PUBLISH, each deflated once to
    ~1.5 KB, as fast as TCP takes them for 3 s, reconnecting when closed (rate)."""
    packet = encode(Publish(topic="t/ab", payload=b""))
    frame = rawws.frame(packet * (MIB // len(packet)), text=False, compress=True)
    until = asyncio.get_running_loop().time() + 3
    numbers = itertools.count()

    async def one() -> None:
        while asyncio.get_running_loop().time() < until:
            with contextlib.suppress(rawws.Closed, OSError):
                client_id = f"packer-{next(numbers)}"
                connect_frame = encode(Connect(client_id=client_id, keepalive=600))
                ws = await rawws.RawClient.open(url, "mqtt")
                try:
                    await ws.send(rawws.frame(connect_frame, text=False, compress=True))
                    await ws.recv()
                    while asyncio.get_running_loop().time() < until and not ws.closed.is_set():
                        await ws.send(frame)
                        await asyncio.sleep(0)
                finally:
                    await ws.close()

    await asyncio.gather(*(one() for _ in range(4)))


async def pipelined_requests(url: str) -> None:
    """20,000 small requests sent back to back, uncompressed: a read of the
    hub's holds thousands of them, all parsed at once; every reply read."""
    ws = await connect(url, subprotocols=["channels.v1"], compression=None)  # type: ignore[list-item]
    count = 20_000
    for request_id in range(count):
        request = {"jsonrpc": "2.0", "id": request_id, "method": "presence_stats"}
        await ws.send(json.dumps({**request, "params": {"channel": "pipe"}}))
    async with asyncio.timeout(120):
        for _ in range(count):
            await ws.recv()
    await ws.close()


ATTACKS = {
    "pipelined-requests": pipelined_requests,
    "deflated-publish-pack": deflated_publish_pack,
    "publish-pack": publish_pack,
    "pingreq-pack": pingreq_pack,
    "notification-batches": notification_batches,
}

if __name__ == "__main__":
    asyncio.run(ATTACKS[sys.argv[1]](sys.argv[2]))
