"""Connections opened together to flood cost the hub one burst, not one each.

bench/hostile.py's packed-MQTT attacks open connections that send 1 MiB
messages of tiny packets at once. Each new connection used to start with a
full bucket (limits.message_burst, 2,000) and as many refusals to spare, so
each had ~4,000 packets handled (~30 ms of the hub's CPU) before it was
closed, and four opened together held the probes back ~120 ms. Now a new
connection starts with limits.opening_burst (200) tokens and refusals of its
own, growing at the rate with its age; past its own tokens, a young
connection draws on a pool of message_burst tokens its address's connections
share (docs/security.md, "Message rate"). A default hub, real sockets;
PINGREQ is answered even over the rate, so the PINGRESPs count what the hub
handled.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocols.mqtt.codec import (
    Connack,
    Connect,
    PacketReader,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    encode,
)
from tests.security.hub_process import HubProcess, wshub

OPENING = 200  # limits.opening_burst's default
BURST = 2000  # limits.message_burst's default
FLOOD = encode(Pingreq()) * 5000


async def mqtt(
    hub: HubProcess, client_id: str, source: str = "127.0.0.1"
) -> tuple[ClientConnection, PacketReader]:
    ws = await connect(
        hub.url,
        subprotocols=["mqtt"],  # type: ignore[list-item]
        max_size=None,
        compression=None,
        local_addr=(source, 0),
    )
    await ws.send(encode(Connect(client_id=client_id, keepalive=600)))
    reader = PacketReader()
    assert isinstance(reader.feed(await ws.recv())[0], Connack)  # type: ignore[arg-type]
    return ws, reader


async def answers(ws: ClientConnection, reader: PacketReader, wanted: int | None) -> int:
    """PINGRESPs read until ``wanted`` of them (None: until the hub closes)."""
    count = 0
    async with asyncio.timeout(30):
        try:
            while wanted is None or count < wanted:
                packets = reader.feed(await ws.recv())  # type: ignore[arg-type]
                count += sum(isinstance(packet, Pingresp) for packet in packets)
        except ConnectionClosed:
            pass
    return count


async def test_four_connections_flooding_together_share_one_burst(tmp_path: Path) -> None:
    """4 x 5,000 PINGREQ at once from one address: each closed 1008 after ~2,000
    units in all plus ~400 each, where each used to have ~4,000 (16,000 in all)."""
    async with wshub(tmp_path) as hub:
        peers = [await mqtt(hub, f"flooder-{i}") for i in range(4)]
        for ws, _ in peers:
            await ws.send(FLOOD)
        counts = await asyncio.gather(*(answers(ws, reader, None) for ws, reader in peers))
        assert [ws.close_code for ws, _ in peers] == [1008] * 4
        # The shared burst, each one's opening tokens and refusals, and what
        # their age added meanwhile (1 per ms each): far below 4 x 4,000.
        assert BURST <= sum(counts) < 2 * BURST + 8 * OPENING, counts


def publishes(count: int) -> bytes:
    """``count`` QoS 1 PUBLISH: each one passed gets a PUBACK, a refused one none."""
    return b"".join(
        encode(Publish(topic="t/q", payload=b"1", qos=1, packet_id=i + 1)) for i in range(count)
    )


async def acks(ws: ClientConnection, reader: PacketReader, wanted: int) -> int:
    """PUBACKs read until ``wanted`` of them, or 2 s without one."""
    count = 0
    with contextlib.suppress(TimeoutError):
        while count < wanted:
            async with asyncio.timeout(2):
                packets = reader.feed(await ws.recv())  # type: ignore[arg-type]
            count += sum(isinstance(packet, Puback) for packet in packets)
    return count


async def test_one_client_still_has_its_whole_burst_at_once(tmp_path: Path) -> None:
    """A lone new connection sending a whole burst at once has none of it refused
    (its own 200, then its address's pool); another address has a pool of its own."""
    async with wshub(tmp_path) as hub:
        for source in ("127.0.0.1", "127.0.0.2"):
            ws, reader = await mqtt(hub, f"eager-{source}", source)
            # The CONNECT took a token: 1,999 more fill the burst.
            await ws.send(publishes(BURST - 1))
            assert await acks(ws, reader, BURST - 1) == BURST - 1
            await ws.close()


async def test_a_connection_that_waited_has_grown_its_own_burst(tmp_path: Path) -> None:
    """After a second open, with its address's pool spent by another, 1,000 units
    at once all pass (its own 200 + 1,000 tokens): a client keeping to the rate
    never meets the opening limit."""
    async with wshub(tmp_path) as hub:
        ws, reader = await mqtt(hub, "patient")
        spender, spent = await mqtt(hub, "spender")
        await asyncio.sleep(1.0)
        await spender.send(publishes(BURST + OPENING - 1))
        assert await acks(spender, spent, BURST + OPENING - 1) == BURST + OPENING - 1
        await ws.send(publishes(1000))
        assert await acks(ws, reader, 1000) == 1000
        assert ws.close_code is None
        await ws.close()
        await spender.close()
