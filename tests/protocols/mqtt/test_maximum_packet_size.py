"""The client's Maximum Packet Size (MQTT 5.0 3.1.2.11.4): what the hub sends it.

The size is the whole packet's: fixed header, remaining length, variable header
and payload. Nothing larger is sent (MQTT-3.1.2-24); a PUBLISH that would be is
discarded as if delivered (MQTT-3.1.2-25), judged per subscriber, since a
subscription identifier or a topic alias lengthens that subscriber's copy; a
control packet leaves out its reason string and user properties to fit.
Real sockets: raw 5.0 clients on a TCP listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hub import Hub
from protocols.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Publish,
    Suback,
    Subscribe,
    encode,
)
from protocols.mqtt.packets import Properties
from protocols.mqtt.reasons import ReasonCode
from tests.conftest import HubFactory

from .test_tcp_listener import PLAIN, RawFactory, RawTcp, listener

END = Publish("end", b"")


@pytest.fixture
async def tcp_client() -> AsyncIterator[RawFactory]:
    opened: list[RawTcp] = []

    async def open_client(address: tuple[str, int]) -> RawTcp:
        client = RawTcp(*await asyncio.open_connection(*address))
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.writer.close()


async def client5(
    tcp_client: RawFactory,
    hub: Hub,
    client_id: str,
    *,
    clean: bool = True,
    **properties: int,
) -> tuple[RawTcp, Connack]:
    client = await tcp_client(listener(hub))
    await client.send(
        Connect(
            protocol_level=5,
            client_id=client_id,
            clean_session=clean,
            properties=Properties(**properties),  # type: ignore[arg-type]
        )
    )
    connack = await client.recv()
    assert isinstance(connack, Connack)
    assert connack.return_code == 0
    return client, connack


async def subscribe(
    client: RawTcp, topic: str, qos: int = 0, identifier: int | None = None
) -> None:
    ids = () if identifier is None else (identifier,)
    props = Properties(subscription_identifiers=ids)
    await client.send(Subscribe(1, ((topic, qos), ("end", 0)), props))
    suback = await client.recv()
    assert isinstance(suback, Suback)
    assert suback.return_codes == (qos, 0)


async def until_end(client: RawTcp) -> list[tuple[int, Packet]]:
    """(size on the wire, packet) of every packet up to the PUBLISH on 'end'."""
    got: list[tuple[int, Packet]] = []
    while True:
        packet = await client.recv()
        if isinstance(packet, Publish) and packet.topic == "end":
            return got
        got.append((len(encode(packet, 5)), packet))


async def test_each_subscriber_gets_copies_up_to_its_size_counted_whole(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """A QoS 0 copy of exactly the client's size is delivered, one byte over is not; a
    subscription identifier (3 bytes here) and a QoS 1 packet id (2) make that
    subscriber's copy longer, judged on its own length; the others still get theirs."""
    hub = await make_hub(PLAIN)
    publisher, _ = await client5(tcp_client, hub, "pub")
    observer, _ = await client5(tcp_client, hub, "observer")
    await subscribe(observer, "t")
    # The plain copy: 2 (fixed header) + 3 (topic) + 1 (no properties) + payload.
    await publisher.send(Publish("t", b"x" * 94))
    assert len(encode(await observer.recv(), 5)) == 100
    plain, _ = await client5(tcp_client, hub, "plain", maximum_packet_size=100)
    with_id, _ = await client5(tcp_client, hub, "with-id", maximum_packet_size=103)
    qos1, _ = await client5(tcp_client, hub, "qos1", maximum_packet_size=102)
    await subscribe(plain, "t")
    await subscribe(with_id, "t", identifier=200)
    await subscribe(qos1, "t", qos=1)
    for payload in (b"a" * 94, b"b" * 95):
        await publisher.send(Publish("t", payload, qos=1, packet_id=7))
        assert await publisher.recv() == Puback(7)
    await publisher.send(END)
    plain_got, id_got, qos1_got = [await until_end(c) for c in (plain, with_id, qos1)]
    assert [(size, p.payload[:1]) for size, p in plain_got] == [(100, b"a")]  # type: ignore[union-attr]
    [(size, copy)] = id_got
    assert isinstance(copy, Publish)
    assert (size, copy.payload[:1], copy.properties.subscription_identifiers) == (103, b"a", (200,))
    [(size, copy)] = qos1_got
    assert isinstance(copy, Publish)
    assert (size, copy.payload[:1], copy.qos) == (102, b"a", 1)


async def test_a_topic_alias_is_set_up_only_when_the_copy_still_fits(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """Setting up a topic alias adds 3 bytes: a copy that fits only without it goes with
    the topic and no alias; the next one that fits with it sets the alias up. The alias
    alone is 2 bytes longer than a 1-byte topic: a copy that fits only with the topic
    goes with it."""
    hub = await make_hub(PLAIN)
    publisher, _ = await client5(tcp_client, hub, "pub")
    aliased, _ = await client5(
        tcp_client, hub, "aliased", maximum_packet_size=100, topic_alias_maximum=4
    )
    await subscribe(aliased, "t")
    for payload in (b"a" * 94, b"b" * 91, b"c" * 94, b"d" * 10):
        await publisher.send(Publish("t", payload))
    await publisher.send(END)
    got = await until_end(aliased)
    assert [(size, p.topic, p.properties.topic_alias) for size, p in got] == [  # type: ignore[union-attr]
        (100, "t", None),  # 103 with the alias
        (100, "t", 1),  # 97 without: the alias is set up
        (100, "t", None),  # 102 with the alias alone (the topic's 1 byte out, 3 in)
        (18, "", 1),  # the alias alone
    ]


async def test_an_unacknowledged_publish_over_the_new_connections_size_is_not_resent(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """MQTT-3.1.2-25: a QoS 1 message sent before the client came back with a smaller
    Maximum Packet Size is not resent over it, but taken as delivered: with a Receive
    Maximum of 1 the next message still comes (the window is not held)."""
    hub = await make_hub(PLAIN)
    publisher, _ = await client5(tcp_client, hub, "pub")
    device, _ = await client5(tcp_client, hub, "device", clean=False, session_expiry_interval=60)
    await subscribe(device, "t", qos=1)
    await publisher.send(Publish("t", b"x" * 200, qos=1, packet_id=1))
    assert await publisher.recv() == Puback(1)
    first = await device.recv()
    assert isinstance(first, Publish)
    assert len(first.payload) == 200  # not acknowledged
    device.writer.close()
    await asyncio.sleep(0.1)
    device, connack = await client5(
        tcp_client,
        hub,
        "device",
        clean=False,
        session_expiry_interval=60,
        maximum_packet_size=100,
        receive_maximum=1,
    )
    assert connack.session_present
    await publisher.send(Publish("t", b"small", qos=1, packet_id=2))
    assert await publisher.recv() == Puback(2)
    resent = await device.recv()
    assert isinstance(resent, Publish)
    assert (resent.payload, resent.dup) == (b"small", False)


async def test_a_disconnect_leaves_out_its_reason_string_to_fit(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """MQTT-3.14.2-3: the hub's DISCONNECT 0x8B goes without its reason string to a
    client whose Maximum Packet Size it would exceed; with room, the string is there."""
    hub = await make_hub(PLAIN)
    # Room for the CONNACK (24 bytes), not for "server shutting down" (27).
    tight, connack = await client5(tcp_client, hub, "tight", maximum_packet_size=26)
    assert len(encode(connack, 5)) <= 26
    roomy, _ = await client5(tcp_client, hub, "roomy", maximum_packet_size=64)
    await hub.stop()
    assert await tight.recv_all() == [Disconnect(ReasonCode.SERVER_SHUTTING_DOWN)]
    assert await roomy.recv_all() == [
        Disconnect(
            ReasonCode.SERVER_SHUTTING_DOWN, Properties(reason_string="server shutting down")
        )
    ]


async def test_a_refusing_connack_leaves_out_its_reason_string_to_fit(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """MQTT-3.2.2-19: a refusing CONNACK keeps to the CONNECT's Maximum Packet Size by
    leaving out its reason string."""
    hub = await make_hub(PLAIN)
    client = await tcp_client(listener(hub))
    props = Properties(authentication_method="SCRAM-SHA-1", maximum_packet_size=16)
    await client.send(Connect(protocol_level=5, client_id="scram", properties=props))
    [connack] = await client.recv_all()
    assert connack == Connack(False, ReasonCode.BAD_AUTHENTICATION_METHOD)
    assert len(encode(connack, 5)) <= 16


async def test_an_accepting_connack_goes_even_over_a_tiny_size(
    make_hub: HubFactory, tcp_client: RawFactory
) -> None:
    """A Maximum Packet Size below the accepting CONNACK's own (24 bytes of server
    properties): the CONNACK goes all the same, the client could not go on without."""
    hub = await make_hub(PLAIN)
    _, connack = await client5(tcp_client, hub, "tiny", maximum_packet_size=10)
    assert len(encode(connack, 5)) > 10
