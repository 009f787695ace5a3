"""Bad input closes only the client that sent it, per the spec; the hub and others go on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hub import Hub
from protocols.mqtt.codec import Connack, Connect, Pingreq, Pingresp, Puback, Publish, encode
from tests.protocols.mqtt.conftest import PahoPeer, RawFactory, hub_address

# (bytes or text sent after a good CONNECT, or instead of it; whether CONNECT goes first)
CASES = {
    "malformed packet": (b"\x30\x05\x00\x09abc", True),
    "invalid UTF-8 topic": (b"\x30\x04\x00\x02\xc3\x28", True),
    "second CONNECT": (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", True),
    "oversized remaining length": (b"\x30\xff\xff\xff\x7f", True),
    "remaining length over 4 bytes": (b"\x30\xff\xff\xff\xff\x01", True),
    "reserved flags on PINGREQ": (b"\xc1\x00", True),
    "reserved flags on SUBSCRIBE": (b"\x80\x06\x00\x01\x00\x01a\x00", True),
    "reserved CONNECT flag": (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00", False),
    "reserved packet type": (b"\x00\x00", True),
    "PUBLISH before CONNECT": (b"\x30\x03\x00\x01a", False),
}


async def assert_unaffected(hub: Hub, bystander: PahoPeer) -> None:
    """The other client still publishes and receives, and the hub reports ok."""
    await bystander.publish("bystander/echo", b"still here", 1)
    message = await bystander.message()
    assert message.payload == b"still here"
    await hub.publish("bystander/from-hub", "hello")
    assert (await bystander.message()).payload == b'"hello"'
    assert hub.health()["status"] == "ok"


@pytest.fixture
async def bystander(hub: Hub, paho_peer: Callable[..., PahoPeer]) -> PahoPeer:
    """A paho client connected and subscribed before the bad input arrives."""
    peer = paho_peer("bystander")
    await peer.connect(*hub_address(hub))
    await peer.subscribe("bystander/#", 1)
    return peer


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_closes_only_its_client(
    hub: Hub, raw_mqtt: RawFactory, bystander: PahoPeer, case: str
) -> None:
    """Each kind of malformed or forbidden input closes its connection with 1002."""
    data, connect_first = CASES[case]
    victim = await raw_mqtt(hub)
    if connect_first:
        assert await victim.connect("victim") == Connack(False, 0)
    await victim.ws.send(data)
    code, reason = await victim.closed()
    assert code == 1002, reason
    assert reason.startswith("MQTT protocol error")
    await assert_unaffected(hub, bystander)


async def test_wrong_protocol_level_gets_connack_1(
    hub: Hub, raw_mqtt: RawFactory, bystander: PahoPeer
) -> None:
    """A CONNECT of an unknown level (6) is answered with CONNACK 1, then closed 1008."""
    victim = await raw_mqtt(hub)
    await victim.send(Connect(client_id="v6", protocol_level=6))
    assert await victim.recv() == Connack(False, 1)
    code, reason = await victim.closed()
    assert code == 1008
    assert reason.startswith("connection refused: UNACCEPTABLE_PROTOCOL_VERSION")
    await assert_unaffected(hub, bystander)


async def test_text_frame_closes_with_1003(
    hub: Hub, raw_mqtt: RawFactory, bystander: PahoPeer
) -> None:
    """A text frame closes the connection with 1003 (MQTT over WebSocket is binary only)."""
    victim = await raw_mqtt(hub)
    await victim.connect("victim")
    await victim.ws.send("PINGREQ")
    code, _ = await victim.closed()
    assert code == 1003
    await assert_unaffected(hub, bystander)


async def test_packets_split_and_batched_over_a_real_socket(hub: Hub, raw_mqtt: RawFactory) -> None:
    """Over a real socket too, a packet may span frames and a frame may hold several."""
    client = await raw_mqtt(hub)
    stream = encode(Connect(client_id="split")) + encode(Pingreq())
    for cut in range(0, len(stream), 3):
        await client.ws.send(stream[cut : cut + 3])
    assert await client.recv() == Connack(False, 0)
    assert await client.recv() == Pingresp()
    await client.send(Publish("t", b"x", 1, packet_id=1), Pingreq())
    assert await client.recv() == Puback(1)
    assert await client.recv() == Pingresp()
