"""The server's DISCONNECT before it closes a 5.0 client, on TCP and on WebSocket alike.

MQTT 5.0 3.14 / 4.13: a server closing a 5.0 connection for a reason the table
names says it in a DISCONNECT first (0x96 message rate, 0x8B shutdown, 0x8D
keep alive, 0x8E takeover, 0x95 packet size); on WebSocket the close frame
follows it. 3.1.1 has no server DISCONNECT: its clients see only the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import Hub
from protocols.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketReader,
    Puback,
    Publish,
    encode,
)
from protocols.mqtt.packets import Properties
from protocols.mqtt.reasons import ReasonCode
from tests.api.conftest import api_config, result
from tests.auth_helpers import hs_auth, mint
from tests.conftest import Connector, HubFactory

from .conftest import hub_address
from .test_paho5 import Paho5
from .test_tcp_listener import PLAIN, RawFactory, RawTcp, listener

# Five messages of burst, then (almost) no refill: a sixth is refused, the
# burst's worth more (limits.message_burst refusals) close the connection.
SLOW: dict[str, Any] = {"limits": {"message_rate": 0.001, "message_burst": 5}}
RATE = Disconnect(
    ReasonCode.MESSAGE_RATE_TOO_HIGH, Properties(reason_string="message rate exceeded")
)


class RawWs:
    """An MQTT client over a websockets connection, in 5.0 or 3.1.1."""

    def __init__(self, ws: ClientConnection, version: int = 5) -> None:
        self.ws = ws
        self.version = version
        self.codec = PacketReader(version=version)

    async def send(self, *packets: Packet) -> None:
        """The packets in one WebSocket message."""
        await self.ws.send(b"".join(encode(p, self.version) for p in packets))

    async def until_closed(self, timeout: float = 5.0) -> tuple[list[Packet], int | None]:
        """The packets received until the server's close, and the close code."""
        packets: list[Packet] = []
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    frame = await self.ws.recv()
                    assert isinstance(frame, bytes)
                    packets += self.codec.feed(frame)
            await self.ws.wait_closed()
        received = self.ws.protocol.close_rcvd
        return packets, received.code if received is not None else None


async def raw_ws(connect: Connector, hub: Hub, client_id: str, version: int = 5) -> RawWs:
    client = RawWs(await connect(hub, "mqtt"), version)
    await client.send(Connect(protocol_level=version, client_id=client_id, keepalive=0))
    assert isinstance(await _first(client), Connack)
    return client


async def _first(client: RawWs) -> Packet:
    async with asyncio.timeout(5):
        while True:
            frame = await client.ws.recv()
            assert isinstance(frame, bytes)
            packets = client.codec.feed(frame)
            if packets:
                assert len(packets) == 1, packets
                return packets[0]


@pytest.fixture
async def paho5() -> Any:
    peers: list[Paho5] = []

    def make(client_id: str, *, websockets: bool) -> Paho5:
        peer = Paho5(client_id, websockets=websockets)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


@pytest.fixture
async def tcp_client() -> AsyncIterator[RawFactory]:
    """Open RawTcp clients (the listener tests' codec-speaking socket); closed after."""
    opened: list[RawTcp] = []

    async def open_client(address: tuple[str, int]) -> RawTcp:
        client = RawTcp(*await asyncio.open_connection(*address))
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.writer.close()


def _address(hub: Hub, transport: str) -> tuple[str, int]:
    return listener(hub) if transport == "tcp" else hub_address(hub)


# -- 0x96 Message rate too high -------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
async def test_paho5_closed_for_its_message_rate_reads_0x96(
    make_hub: HubFactory, paho5: Any, transport: str
) -> None:
    """A paho MQTTv5 client that keeps publishing over its rate reads DISCONNECT 0x96
    Message rate too high with a reason string, on TCP as on WebSocket."""
    hub = await make_hub({**PLAIN, **SLOW})
    client: Paho5 = paho5(f"flood-{transport}", websockets=transport == "websocket")
    assert await client.connect(*_address(hub, transport)) == (False, 0)
    for _ in range(40):
        client.client.publish("t", b"x", 0)
    async with asyncio.timeout(5):
        assert await client.disconnect_reason == 0x96
    assert client.disconnect_properties["ReasonString"] == "message rate exceeded"


@pytest.mark.parametrize("packed", [False, True], ids=["message-per-packet", "packed"])
async def test_flooding_over_websocket_gets_0x96_then_close_1008(
    make_hub: HubFactory, connect: Connector, packed: bool
) -> None:
    """On WebSocket the DISCONNECT 0x96 comes before the close frame (1008), whether
    the flood is one packet per message (the server's rate) or packets packed in one
    message (the handler's per-packet rate); a 3.1.1 client gets the close alone."""
    hub = await make_hub(SLOW)
    v5 = await raw_ws(connect, hub, "flood5")
    v4 = await raw_ws(connect, hub, "flood4", version=4)
    for client in (v5, v4):
        publishes = [Publish("t", b"x", 0) for _ in range(30)]
        if packed:
            await client.send(*publishes)
        else:
            for publish in publishes:
                await client.send(publish)
    assert await v5.until_closed() == ([RATE], 1008)
    assert await v4.until_closed() == ([], 1008)


async def test_flooding_over_tcp_gets_0x96_then_the_end(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """On TCP a 5.0 client reads DISCONNECT 0x96 before the socket's end; a 3.1.1
    client reads only the end."""
    hub = await make_hub({**PLAIN, **SLOW})
    v5 = await tcp_client(listener(hub))
    v4 = await tcp_client(listener(hub))
    v4.version, v4.codec = 4, PacketReader()
    await v5.send(Connect(protocol_level=5, client_id="flood5"))
    await v4.send(Connect(client_id="flood4"))
    for client in (v5, v4):
        assert isinstance(await client.recv(), Connack)
        await client.send(*[Publish("t", b"x", 0) for _ in range(30)])
    assert await v5.recv_all() == [RATE]
    assert await v4.recv_all() == []


# -- 0x8B Server shutting down ------------------------------------------------------------


async def test_shutdown_over_websocket_says_0x8b_then_1001(
    make_hub: HubFactory, connect: Connector, paho5: Any
) -> None:
    """On hub stop a 5.0 client over WebSocket reads DISCONNECT 0x8B, then the close
    frame 1001 (paho reads the reason code); a 3.1.1 client gets 1001 alone."""
    hub = await make_hub()
    v5 = await raw_ws(connect, hub, "bye5")
    v4 = await raw_ws(connect, hub, "bye4", version=4)
    client: Paho5 = paho5("bye-paho", websockets=True)
    assert await client.connect(*hub_address(hub)) == (False, 0)
    await hub.stop()
    shutting_down = Disconnect(
        ReasonCode.SERVER_SHUTTING_DOWN, Properties(reason_string="server shutting down")
    )
    assert await v5.until_closed() == ([shutting_down], 1001)
    assert await v4.until_closed() == ([], 1001)
    async with asyncio.timeout(5):
        assert await client.disconnect_reason == 0x8B


# -- 0x8D Keep alive timeout ------------------------------------------------------------


async def test_keep_alive_timeout_says_0x8d_on_both_transports(
    make_hub: HubFactory, connect: Connector, tcp_client: RawFactory
) -> None:
    """No packet for 1.5 keep-alives: DISCONNECT 0x8D, then the close (1008 on WebSocket)."""
    hub = await make_hub(PLAIN)
    ws = RawWs(await connect(hub, "mqtt"))
    await ws.send(Connect(protocol_level=5, client_id="quiet-ws", keepalive=1))
    tcp = await tcp_client(listener(hub))
    await tcp.send(Connect(protocol_level=5, client_id="quiet-tcp", keepalive=1))
    assert isinstance(await tcp.recv(), Connack)
    (ws_packets, code), tcp_packets = await asyncio.gather(ws.until_closed(), tcp.recv_all())
    assert code == 1008
    for packets in (ws_packets[1:], tcp_packets):
        [disconnect] = packets
        assert isinstance(disconnect, Disconnect)
        assert disconnect.reason_code == ReasonCode.KEEP_ALIVE_TIMEOUT


# -- 0x8E Session taken over ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
async def test_paho5_taken_over_from_the_other_transport_reads_0x8e(
    make_hub: HubFactory, paho5: Any, transport: str
) -> None:
    """A paho MQTTv5 session taken over by a connection on the other transport reads
    DISCONNECT 0x8E Session taken over."""
    hub = await make_hub(PLAIN)
    first: Paho5 = paho5("twin", websockets=transport == "websocket")
    assert await first.connect(*_address(hub, transport)) == (False, 0)
    other = "websocket" if transport == "tcp" else "tcp"
    second: Paho5 = paho5("twin", websockets=other == "websocket")
    assert await second.connect(*_address(hub, other)) == (False, 0)
    async with asyncio.timeout(5):
        assert await first.disconnect_reason == 0x8E


# -- 0x95 Packet too large --------------------------------------------------------------


async def test_packet_too_large_says_0x95_on_both_transports(
    make_hub: HubFactory, connect: Connector, tcp_client: RawFactory
) -> None:
    """A PUBLISH over mqtt.max_packet_size: DISCONNECT 0x95, then the close (1002 on
    WebSocket, where the message is within the WebSocket limit)."""
    hub = await make_hub({"mqtt": {"listeners": [{"port": 0}], "max_packet_size": 64}})
    ws = await raw_ws(connect, hub, "big-ws")
    tcp = await tcp_client(listener(hub))
    await tcp.send(Connect(protocol_level=5, client_id="big-tcp"))
    assert isinstance(await tcp.recv(), Connack)
    for client in (ws, tcp):
        await client.send(Publish("t", b"x" * 100))
    (ws_packets, code), tcp_packets = await asyncio.gather(ws.until_closed(), tcp.recv_all())
    assert code == 1002
    for packets in (ws_packets, tcp_packets):
        [disconnect] = packets
        assert isinstance(disconnect, Disconnect)
        assert disconnect.reason_code == ReasonCode.PACKET_TOO_LARGE


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
async def test_maximum_packet_size_counts_the_whole_packet(
    make_hub: HubFactory, connect: Connector, tcp_client: RawFactory, transport: str
) -> None:
    """5.0 3.1.2.11.4 / 3.2.2.3.6: the Maximum Packet Size the CONNACK announces is the
    whole packet's, fixed header included: a 64-byte PUBLISH is taken at 64, one of
    remaining length 64 (66 bytes) gets DISCONNECT 0x95, on TCP as on WebSocket."""
    hub = await make_hub({"mqtt": {"listeners": [{"port": 0}], "max_packet_size": 64}})
    fits = Publish("t", b"x" * 56, qos=1, packet_id=1)
    over = Publish("t", b"x" * 58, qos=1, packet_id=2)
    assert (len(encode(fits, 5)), len(encode(over, 5))) == (64, 66)
    connect5 = Connect(protocol_level=5, client_id=f"edge-{transport}")
    client: RawWs | RawTcp
    if transport == "websocket":
        client = RawWs(await connect(hub, "mqtt"))
        await client.send(connect5)
        connack = await _first(client)
    else:
        client = await tcp_client(listener(hub))
        await client.send(connect5)
        connack = await client.recv()
    assert isinstance(connack, Connack)
    assert connack.properties.maximum_packet_size == 64
    await client.send(fits)
    puback = await (_first(client) if isinstance(client, RawWs) else client.recv())
    assert puback == Puback(1)
    await client.send(over)
    if isinstance(client, RawWs):
        packets, code = await client.until_closed()
        assert code == 1002
    else:
        packets = await client.recv_all()
    [disconnect] = packets
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PACKET_TOO_LARGE


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_a_websocket_message_over_the_limit_gets_0x95_then_1009(
    make_hub: HubFactory, connect: Connector, compression: str | None
) -> None:
    """A message over limits.max_message_size.mqtt is refused by the WebSocket layer at
    its frame header, before the packet reader: a 5.0 client still reads DISCONNECT
    0x95 ahead of the close frame 1009 (compressed or not); a 3.1.1 client the close."""
    hub = await make_hub({"limits": {"max_message_size": {"mqtt": 4096}}})
    clients = []
    for version in (5, 4):
        ws = await connect(hub, "mqtt", compression=compression)
        client = RawWs(ws, version)
        await client.send(Connect(protocol_level=version, client_id=f"big{version}"))
        assert isinstance(await _first(client), Connack)
        clients.append(client)
    v5, v4 = clients
    for client in clients:
        # Random bytes: deflate cannot shrink them under the limit.
        await client.send(Publish("t", os.urandom(8192)))
    [disconnect], code = await v5.until_closed()
    assert code == 1009
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PACKET_TOO_LARGE
    assert "too big" in (disconnect.properties.reason_string or "")
    assert await v4.until_closed() == ([], 1009)


async def _ada_on_both_transports(
    hub: Hub, connect: Connector, tcp_client: RawFactory, token: bytes
) -> tuple[RawWs, RawWs, RawTcp, RawTcp]:
    """User ada connected four ways, each CONNACKed: 5.0 and 3.1.1 over WebSocket, then TCP."""
    ws5 = RawWs(await connect(hub, "mqtt"))
    ws4 = RawWs(await connect(hub, "mqtt"), version=4)
    tcp5 = await tcp_client(listener(hub))
    tcp4 = await tcp_client(listener(hub))
    tcp4.version, tcp4.codec = 4, PacketReader()
    for name, ws in (("ws5", ws5), ("ws4", ws4)):
        await ws.send(
            Connect(protocol_level=ws.version, client_id=name, username="ada", password=token)
        )
        connack = await _first(ws)
        assert isinstance(connack, Connack)
        assert connack.return_code == 0
    for name, tcp in (("tcp5", tcp5), ("tcp4", tcp4)):
        await tcp.send(
            Connect(protocol_level=tcp.version, client_id=name, username="ada", password=token)
        )
        connack = await tcp.recv()
        assert isinstance(connack, Connack)
        assert connack.return_code == 0
    return ws5, ws4, tcp5, tcp4


# -- 0x98 Administrative action -----------------------------------------------------------


async def test_api_disconnect_says_0x98_with_its_reason_on_both_transports(
    make_hub: HubFactory, connect: Connector, tcp_client: RawFactory
) -> None:
    """The server API's disconnect of a user: its 5.0 clients read DISCONNECT 0x98
    Administrative action with the API's reason as reason string, then the close (the
    API's code on WebSocket, the socket's end on TCP); 3.1.1 clients get the close alone."""
    hub = await make_hub({**PLAIN, **api_config(), "auth": hs_auth()})
    token = mint("ada").encode()
    ws5, ws4, tcp5, tcp4 = await _ada_on_both_transports(hub, connect, tcp_client, token)
    await result(hub, "disconnect", {"user": "ada", "code": 4100, "reason": "account closed"})
    kicked = Disconnect(
        ReasonCode.ADMINISTRATIVE_ACTION, Properties(reason_string="account closed")
    )
    assert await ws5.until_closed() == ([kicked], 4100)
    assert await ws4.until_closed() == ([], 4100)
    assert await tcp5.recv_all() == [kicked]
    assert await tcp4.recv_all() == []


async def test_paho5_disconnected_by_the_api_reads_0x98(make_hub: HubFactory, paho5: Any) -> None:
    """paho MQTTv5 reads the reason code 0x98 and the reason string of an API disconnect."""
    hub = await make_hub({**api_config(), "auth": hs_auth()})
    client: Paho5 = paho5("kicked-paho", websockets=True)
    client.client.username_pw_set("ada", mint("ada"))
    assert await client.connect(*hub_address(hub)) == (False, 0)
    await result(hub, "disconnect", {"user": "ada", "reason": "maintenance"})
    async with asyncio.timeout(5):
        assert await client.disconnect_reason == ReasonCode.ADMINISTRATIVE_ACTION
    assert client.disconnect_properties["ReasonString"] == "maintenance"


# -- 0x87 Not authorized: the server API's revoke ----------------------------------------


async def test_api_revoke_says_0x87_on_both_transports(
    make_hub: HubFactory, connect: Connector, tcp_client: RawFactory
) -> None:
    """The server API's revoke of a user: its 5.0 clients read DISCONNECT 0x87 Not
    authorized with reason string "token revoked", then the close (3003 on WebSocket, the
    socket's end on TCP); 3.1.1 clients get the close alone; the same token is refused
    after (CONNACK 0x86)."""
    hub = await make_hub({**PLAIN, **api_config(), "auth": hs_auth()})
    token = mint("ada").encode()  # no iat: older than any revocation
    ws5, ws4, tcp5, tcp4 = await _ada_on_both_transports(hub, connect, tcp_client, token)
    await result(hub, "revoke", {"user": "ada"})
    revoked = Disconnect(ReasonCode.NOT_AUTHORIZED, Properties(reason_string="token revoked"))
    assert await ws5.until_closed() == ([revoked], 3003)
    assert await ws4.until_closed() == ([], 3003)
    assert await tcp5.recv_all() == [revoked]
    assert await tcp4.recv_all() == []
    again = await tcp_client(listener(hub))
    await again.send(Connect(protocol_level=5, client_id="again", username="ada", password=token))
    refused = await again.recv()
    assert isinstance(refused, Connack)
    assert refused.return_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
