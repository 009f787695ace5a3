"""MQTT 5.0 on the handler, packet by packet: CONNACK properties, reason codes, properties.

Connection pairs without a network (conftest.Pair); clause numbers are those
of the MQTT Version 5.0 OASIS Standard. Real clocks where time matters.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub import Hub, HubConfig
from protocols.mqtt.codec import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    PacketReader,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from protocols.mqtt.packets import NO_LOCAL, RETAIN_AS_PUBLISHED, Properties
from protocols.mqtt.reasons import ReasonCode

from .conftest import Pair, PairFactory, mqtt_config

V5: dict[str, Any] = {"protocol_level": 5}


async def connect5(pair: PairFactory, hub: Hub | None = None, **fields: Any) -> Pair:
    """A 5.0 client, connected."""
    client = await pair(hub)
    connack = await client.connect(**V5, **fields)
    assert connack.return_code == 0, connack
    return client


def publishes(packets: list[Any]) -> list[Publish]:
    return [p for p in packets if isinstance(p, Publish)]


# --- CONNECT and CONNACK (3.1, 3.2) ------------------------------------------------


async def test_connack_announces_the_servers_limits_and_features(pair: PairFactory) -> None:
    """3.2.2.3: receive maximum, packet size, aliases and the feature flags in CONNACK."""
    client = await pair()
    connack = await client.connect(**V5)
    props = connack.properties
    assert connack == Connack(False, 0, props)
    assert props.receive_maximum == 20
    assert props.maximum_packet_size == 1024 * 1024
    assert props.topic_alias_maximum == 10
    assert props.retain_available == 1
    assert props.wildcard_subscription_available == 1
    assert props.subscription_identifier_available == 1
    assert props.shared_subscription_available == 1
    assert props.maximum_qos is None  # QoS 2 is supported: not announced
    assert props.assigned_client_identifier is None


async def test_empty_client_id_is_assigned_and_named(pair: PairFactory) -> None:
    """3.2.2.3.7: an empty client id gets one, named in CONNACK, even with Clean Start 0."""
    client = await pair()
    connack = await client.connect(**V5, client_id="", clean_session=False)
    assigned = connack.properties.assigned_client_identifier
    assert connack.return_code == 0
    assert assigned is not None
    assert assigned.startswith("wshub-")


async def test_maximum_qos_announced_when_capped(pair: PairFactory) -> None:
    """3.2.2.3.4: a hub granting QoS 1 at most says so; a QoS 2 PUBLISH is then 0x9B."""
    hub = Hub(mqtt_config(max_qos=1))
    client = await pair(hub)
    connack = await client.connect(**V5)
    assert connack.properties.maximum_qos == 1
    await client.send(Publish("t", b"x", 2, packet_id=1))
    [disconnect] = client.received()
    assert disconnect == Disconnect(ReasonCode.QOS_NOT_SUPPORTED, disconnect.properties)
    assert client.closed == 1002


async def test_session_expiry_is_capped_by_the_hub(pair: PairFactory) -> None:
    """3.2.2.3.2: a shorter Session Expiry Interval than asked is announced in CONNACK."""
    hub = Hub(mqtt_config(session_expiry=10))
    client = await pair(hub)
    connack = await client.connect(**V5, properties=Properties(session_expiry_interval=100))
    assert connack.properties.session_expiry_interval == 10


async def test_server_keep_alive_caps_the_clients(pair: PairFactory) -> None:
    """3.2.2.3.14: over mqtt.max_keepalive (or 0) the client gets Server Keep Alive."""
    hub = Hub(mqtt_config(max_keepalive=30))
    client = await pair(hub)
    assert (await client.connect(**V5, keepalive=0)).properties.server_keep_alive == 30
    other = await pair(hub)
    assert (await other.connect(**V5, keepalive=20)).properties.server_keep_alive is None


async def test_enhanced_authentication_is_refused_cleanly(pair: PairFactory) -> None:
    """4.12: an Authentication Method the server does not support gets CONNACK 0x8C."""
    client = await pair()
    connack = await client.connect(**V5, properties=Properties(authentication_method="SCRAM"))
    assert connack.return_code == ReasonCode.BAD_AUTHENTICATION_METHOD
    assert connack.properties.reason_string == "enhanced authentication not supported"
    assert client.closed == 1008


async def test_refused_connect_uses_5_reason_codes(pair: PairFactory) -> None:
    """3.2.2.2: 'not authorized' is 0x87 for a 5.0 client (0x05 for 3.1.1)."""
    hub = Hub(mqtt_config(allow_anonymous=False))
    client = await pair(hub)
    assert (await client.connect(**V5)).return_code == ReasonCode.NOT_AUTHORIZED
    assert client.closed == 1008


async def test_malformed_5_connect_gets_connack_0x81(pair: PairFactory) -> None:
    """4.13: a malformed 5.0 CONNECT is answered with CONNACK 0x81, then closed."""
    client = await pair()
    client.version = 5
    # Property length 5 with 4 bytes left in the packet.
    await client.send_bytes(bytes.fromhex("100f00044d5154540502003c0521000a0000"))
    [connack] = PacketReader(version=5).feed(client.session.frames[0])  # type: ignore[arg-type]
    assert isinstance(connack, Connack)
    assert connack.return_code == ReasonCode.MALFORMED_PACKET
    assert client.closed == 1002


async def test_second_connect_is_disconnect_0x82(pair: PairFactory) -> None:
    """3.1.0-2: a second CONNECT is a Protocol Error: DISCONNECT 0x82, then close."""
    client = await connect5(pair)
    await client.send(Connect(protocol_level=5, client_id="again"))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR
    assert "second CONNECT" in (disconnect.properties.reason_string or "")
    assert client.closed == 1002


async def test_malformed_packet_is_disconnect_0x81(pair: PairFactory) -> None:
    """4.13: a malformed packet after CONNECT gets DISCONNECT 0x81 before the close."""
    client = await connect5(pair)
    await client.send_bytes(bytes.fromhex("4005000100ff01"))  # property length runs past
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.MALFORMED_PACKET


async def test_packet_too_large_is_disconnect_0x95(pair: PairFactory) -> None:
    """3.1.2.11.4 / 4.13: a packet over the announced Maximum Packet Size: DISCONNECT 0x95."""
    hub = Hub(mqtt_config(max_packet_size=64))
    client = await connect5(pair, hub)
    await client.send(Publish("t", b"x" * 100))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PACKET_TOO_LARGE


async def test_takeover_sends_disconnect_0x8e(pair: PairFactory) -> None:
    """3.1.4-3: the connection taken over gets DISCONNECT 0x8E Session taken over."""
    first = await connect5(pair, client_id="dev")
    await connect5(pair, client_id="dev")
    await asyncio.sleep(0)
    [disconnect] = first.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.SESSION_TAKEN_OVER


async def test_keepalive_timeout_sends_disconnect_0x8d(pair: PairFactory) -> None:
    """3.1.2.10: no packet for 1.5 keepalives: DISCONNECT 0x8D Keep Alive timeout."""
    client = await connect5(pair, keepalive=1)
    await asyncio.sleep(1.7)
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.KEEP_ALIVE_TIMEOUT
    assert client.closed == 1008


async def test_auth_packet_is_a_protocol_error(pair: PairFactory) -> None:
    """4.12: AUTH without an Authentication Method in CONNECT is a Protocol Error."""
    client = await connect5(pair)
    await client.send(Auth(ReasonCode.REAUTHENTICATE))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


# --- session expiry (3.1.2.11.2) -------------------------------------------------


async def test_session_expiry_zero_ends_the_session_with_the_connection(pair: PairFactory) -> None:
    """3.1.2.11.2: with no Session Expiry Interval the session ends at disconnect."""
    client = await connect5(pair, client_id="e0", clean_session=False)
    await client.drop()
    again = await pair()
    assert (await again.connect(**V5, client_id="e0", clean_session=False)).session_present is False


async def test_session_outlives_the_connection_until_its_expiry(pair: PairFactory) -> None:
    """3.1.2.11.2: a session with an interval is resumed before it ends, not after (real clock)."""
    props = Properties(session_expiry_interval=1)
    client = await connect5(pair, client_id="e1", clean_session=False, properties=props)
    await client.drop()
    again = await pair()
    connack = await again.connect(**V5, client_id="e1", clean_session=False, properties=props)
    assert connack.session_present is True
    await again.drop()
    await asyncio.sleep(1.2)
    late = await pair()
    connack = await late.connect(**V5, client_id="e1", clean_session=False)
    assert connack.session_present is False


async def test_clean_start_discards_a_kept_session(pair: PairFactory) -> None:
    """3.1.2.4: Clean Start 1 discards the session even with an expiry interval."""
    props = Properties(session_expiry_interval=60)
    client = await connect5(pair, client_id="cs", clean_session=False, properties=props)
    await client.drop()
    again = await pair()
    assert (await again.connect(**V5, client_id="cs", properties=props)).session_present is False


async def test_disconnect_cannot_turn_expiry_on(pair: PairFactory) -> None:
    """3.14.2.2.2: Session Expiry 0 at CONNECT and non-zero at DISCONNECT is a Protocol Error."""
    client = await connect5(pair)
    await client.send(Disconnect(0, Properties(session_expiry_interval=10)))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


async def test_disconnect_can_end_the_session(pair: PairFactory) -> None:
    """3.14.2.2.2: a DISCONNECT with Session Expiry 0 ends a persistent session."""
    props = Properties(session_expiry_interval=60)
    client = await connect5(pair, client_id="de", clean_session=False, properties=props)
    await client.send(Disconnect(0, Properties(session_expiry_interval=0)))
    await client.finish()
    again = await pair()
    assert (await again.connect(**V5, client_id="de", clean_session=False)).session_present is False


# --- PUBLISH from the client (3.3) -------------------------------------------------


async def test_qos1_publish_gets_the_short_puback(pair: PairFactory) -> None:
    """3.4.2.1: success is a PUBACK without reason code or properties."""
    client = await connect5(pair)
    await client.send(Publish("t", b"x", 1, packet_id=3))
    assert client.received() == [Puback(3)]


async def test_publish_to_dollar_topic_is_not_authorized(pair: PairFactory) -> None:
    """4.7.2: a '$' topic is the server's: PUBACK 0x87 (the code alone), not a close."""
    client = await connect5(pair)
    await client.send(Publish("$SYS/x", b"x", 1, packet_id=3))
    assert client.received() == [Puback(3, ReasonCode.NOT_AUTHORIZED)]
    assert client.closed is None


async def test_no_reason_strings_when_problem_information_is_off(pair: PairFactory) -> None:
    """3.1.2.11.7: acknowledgements carry codes, never reason strings (allowed with 0 too)."""
    config = {"namespaces": {"members": {"subscribe_access": {"authenticated": True}}}}
    hub = Hub(HubConfig.model_validate({"channels": config}))
    client = await connect5(pair, hub, properties=Properties(request_problem_information=0))
    await client.send(Subscribe(1, (("members/t", 1),)))
    [suback] = client.received()
    assert suback == Suback(1, (ReasonCode.NOT_AUTHORIZED,))


async def test_payload_not_utf8_as_announced_is_refused(pair: PairFactory) -> None:
    """3.3.2.3.2: Payload Format Indicator 1 with bytes that are not UTF-8: PUBREC 0x99."""
    client = await connect5(pair)
    props = Properties(payload_format_indicator=1)
    await client.send(Publish("t", b"\xff", 2, packet_id=4, properties=props))
    [pubrec] = client.received()
    assert isinstance(pubrec, Pubrec)
    assert pubrec.reason_code == ReasonCode.PAYLOAD_FORMAT_INVALID
    # A failed PUBREC ends the flow: the id is free, a PUBREL is not expected.
    await client.send(Pubrel(4))
    assert client.received() == [Pubcomp(4, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)]


async def test_subscription_identifier_from_a_client_is_a_protocol_error(
    pair: PairFactory,
) -> None:
    """3.3.4-6: a client's PUBLISH must not carry a Subscription Identifier."""
    client = await connect5(pair)
    await client.send(Publish("t", properties=Properties(subscription_identifiers=(1,))))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


async def test_response_topic_with_wildcard_is_a_protocol_error(pair: PairFactory) -> None:
    """3.3.2-14: the Response Topic is a topic name, without wildcards."""
    client = await connect5(pair)
    await client.send(Publish("t", properties=Properties(response_topic="a/#")))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


async def test_topic_alias_is_set_then_used(pair: PairFactory) -> None:
    """3.3.2.3.4: a topic alias set with a topic stands for it in later PUBLISHes."""
    subscriber = await connect5(pair)
    await subscriber.subscribe(("a/b", 0))
    client = await connect5(pair)
    await client.send(Publish("a/b", b"1", properties=Properties(topic_alias=2)))
    await client.send(Publish("", b"2", properties=Properties(topic_alias=2)))
    received = publishes(subscriber.received())
    assert [(p.topic, p.payload) for p in received] == [("a/b", b"1"), ("a/b", b"2")]


async def test_topic_alias_over_the_maximum_is_disconnect_0x94(pair: PairFactory) -> None:
    """3.3.2-9: an alias above the announced Topic Alias Maximum: DISCONNECT 0x94."""
    client = await connect5(pair)
    await client.send(Publish("t", properties=Properties(topic_alias=11)))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.TOPIC_ALIAS_INVALID


async def test_unknown_topic_alias_is_a_protocol_error(pair: PairFactory) -> None:
    """3.3.4: an empty topic with an alias never set is a Protocol Error."""
    client = await connect5(pair)
    await client.send(Publish("", properties=Properties(topic_alias=1)))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


async def test_qos2_over_receive_maximum_is_disconnect_0x93(pair: PairFactory) -> None:
    """3.3.4-9: more unreleased QoS 2 PUBLISHes than the Receive Maximum: DISCONNECT 0x93."""
    hub = Hub(mqtt_config(max_inflight=2))
    client = await connect5(pair, hub)
    await client.send(*(Publish("t", b"x", 2, packet_id=i) for i in (1, 2, 3)))
    packets = client.received()
    assert packets[:2] == [Pubrec(1), Pubrec(2)]
    assert isinstance(packets[2], Disconnect)
    assert packets[2].reason_code == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


async def test_pubrel_of_unknown_id_is_pubcomp_0x92(pair: PairFactory) -> None:
    """3.7.2.1: PUBREL for an id the server does not hold: PUBCOMP 0x92."""
    client = await connect5(pair)
    await client.send(Pubrel(9))
    assert client.received() == [Pubcomp(9, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)]


# --- delivery to 5.0 subscribers ----------------------------------------------------


MESSAGE = Properties(
    payload_format_indicator=1,
    content_type="application/json",
    response_topic="replies/7",
    correlation_data=b"\x00\x07",
    user_properties=(("trace", "a"), ("trace", "b")),
)


async def test_message_properties_reach_5_subscribers_unchanged(pair: PairFactory) -> None:
    """3.3.2.3: format, content type, response topic, correlation data, user properties pass."""
    subscriber = await connect5(pair)
    await subscriber.subscribe(("req/#", 1))
    legacy = await pair()
    await legacy.connect()
    await legacy.subscribe(("req/#", 1))
    client = await connect5(pair)
    await client.send(Publish("req/1", b'{"q":1}', 1, packet_id=1, properties=MESSAGE))
    [delivered] = publishes(subscriber.received())
    assert delivered.properties == MESSAGE
    assert delivered.payload == b'{"q":1}'
    # A 3.1.1 subscriber on the same topic gets the payload alone.
    [old] = publishes(legacy.received())
    assert (old.topic, old.payload, old.properties) == ("req/1", b'{"q":1}', Properties())


async def test_subscription_identifier_on_delivery(pair: PairFactory) -> None:
    """3.3.4-3: a PUBLISH carries the Subscription Identifier of the subscription it matched."""
    subscriber = await connect5(pair)
    await subscriber.send(
        Subscribe(1, (("a/+", 1),), Properties(subscription_identifiers=(42,))),
        Subscribe(2, (("b", 0),)),
    )
    subscriber.received()
    client = await connect5(pair)
    await client.send(Publish("a/x", b"1"), Publish("b", b"2"))
    received = publishes(subscriber.received())
    assert [p.properties.subscription_identifiers for p in received] == [(42,), ()]


async def test_no_local_keeps_own_messages_away(pair: PairFactory) -> None:
    """3.8.3.1: No Local: the client's own PUBLISHes are not sent back to it."""
    client = await connect5(pair)
    await client.subscribe(("t", NO_LOCAL | 1), ("u", 1))
    await client.send(Publish("t", b"own"), Publish("u", b"echo"))
    assert [p.topic for p in publishes(client.received())] == ["u"]


async def test_retain_as_published_keeps_the_flag(pair: PairFactory) -> None:
    """3.8.3.1: Retain As Published keeps RETAIN on live delivery; otherwise it is 0."""
    kept = await connect5(pair)
    await kept.subscribe(("r", RETAIN_AS_PUBLISHED))
    plain = await connect5(pair)
    await plain.subscribe(("r", 0))
    client = await connect5(pair)
    await client.send(Publish("r", b"x", retain=True))
    assert [p.retain for p in publishes(kept.received())] == [True]
    assert [p.retain for p in publishes(plain.received())] == [False]


async def test_retain_handling_controls_retained_on_subscribe(pair: PairFactory) -> None:
    """3.8.3.1: Retain Handling 0 always, 1 only for a new subscription, 2 never."""
    client = await connect5(pair)
    await client.send(Publish("keep", b"v", retain=True))
    await client.subscribe(("keep", 0x20))  # 2: never
    assert client.after_suback == []
    await client.subscribe(("keep", 0x10), packet_id=2)  # 1: new subscription? No, it exists
    assert client.after_suback == []
    other = await connect5(pair)
    await other.subscribe(("keep", 0x10))  # 1: new
    assert [p.retain for p in publishes(other.after_suback)] == [True]
    await other.subscribe(("keep", 0x00), packet_id=2)  # 0: always
    assert len(publishes(other.after_suback)) == 1


async def test_unsuback_says_which_filters_existed(pair: PairFactory) -> None:
    """3.11.3: UNSUBACK has 0x00 per removed filter and 0x11 where none existed."""
    client = await connect5(pair)
    await client.subscribe(("a", 0))
    await client.send(Unsubscribe(5, ("a", "b")))
    assert client.received() == [Unsuback(5, (0, ReasonCode.NO_SUBSCRIPTION_EXISTED))]


async def test_refused_subscription_is_not_authorized(pair: PairFactory) -> None:
    """3.9.3: a filter the hub's access rules refuse gets 0x87 for a 5.0 client."""
    config = {"namespaces": {"members": {"subscribe_access": {"authenticated": True}}}}
    hub = Hub(HubConfig.model_validate({"channels": config}))
    client = await connect5(pair, hub)
    assert await client.subscribe(("members/t", 1)) == (ReasonCode.NOT_AUTHORIZED,)


async def test_client_maximum_packet_size_drops_larger_messages(pair: PairFactory) -> None:
    """3.1.2-25: a PUBLISH over the client's Maximum Packet Size is not sent to it."""
    small = await connect5(pair, properties=Properties(maximum_packet_size=32))
    await small.subscribe(("big", 0))
    client = await connect5(pair)
    await client.send(Publish("big", b"x" * 64), Publish("big", b"ok"))
    assert [p.payload for p in publishes(small.received())] == [b"ok"]


async def test_client_receive_maximum_limits_inflight(pair: PairFactory) -> None:
    """3.3.4-9: no more unacknowledged QoS 1 PUBLISHes than the client's Receive Maximum."""
    slow = await connect5(pair, properties=Properties(receive_maximum=1))
    await slow.subscribe(("q", 1))
    client = await connect5(pair)
    await client.send(Publish("q", b"1", 1, packet_id=1), Publish("q", b"2", 1, packet_id=2))
    [first] = publishes(slow.received())
    assert first.payload == b"1"
    assert first.packet_id is not None
    await slow.send(Puback(first.packet_id))
    assert [p.payload for p in publishes(slow.received())] == [b"2"]


# --- message expiry, with a real clock (3.3.2.3.3) -------------------------------------


async def test_queued_message_expires(pair: PairFactory) -> None:
    """3.3.2-5: a message past its expiry is not delivered to a session back too late."""
    props = Properties(session_expiry_interval=60)
    subscriber = await connect5(pair, client_id="sub", clean_session=False, properties=props)
    await subscriber.subscribe(("x", 1))
    await subscriber.drop()
    client = await connect5(pair)
    short = Properties(message_expiry_interval=1)
    await client.send(
        Publish("x", b"short", 1, packet_id=1, properties=short),
        Publish("x", b"long", 1, packet_id=2, properties=Properties(message_expiry_interval=60)),
    )
    await asyncio.sleep(1.2)
    back = await pair()
    await back.connect(**V5, client_id="sub", clean_session=False, properties=props)
    [delivered] = publishes(back.received())
    assert delivered.payload == b"long"
    # 3.3.2-6: the interval sent is what is left of it.
    assert delivered.properties.message_expiry_interval in (58, 59)


async def test_expired_retained_message_is_not_sent(pair: PairFactory) -> None:
    """3.3.2.3.3: a retained message past its expiry is not sent to new subscribers."""
    client = await connect5(pair)
    await client.send(
        Publish("ret", b"x", retain=True, properties=Properties(message_expiry_interval=1))
    )
    await asyncio.sleep(1.2)
    await client.subscribe(("ret", 0))
    assert client.after_suback == []


# --- wills (3.1.3.2) ----------------------------------------------------------------


async def test_disconnect_with_will_publishes_it(pair: PairFactory) -> None:
    """3.14.2.1: DISCONNECT 0x04 ends cleanly but sends the will."""
    watcher = await connect5(pair)
    await watcher.subscribe(("wills/#", 0))
    client = await connect5(pair, will=Will("wills/a", b"gone"))
    await client.send(Disconnect(ReasonCode.DISCONNECT_WITH_WILL))
    await client.finish()
    assert [p.payload for p in publishes(watcher.received())] == [b"gone"]


async def test_will_properties_pass_to_subscribers(pair: PairFactory) -> None:
    """3.1.3.2: the will's content type and user properties reach 5.0 subscribers."""
    watcher = await connect5(pair)
    await watcher.subscribe(("wills/#", 0))
    will_props = Properties(content_type="text/plain", user_properties=(("k", "v"),))
    client = await connect5(pair, will=Will("wills/b", b"gone", properties=will_props))
    await client.drop()
    [will] = publishes(watcher.received())
    assert will.properties == will_props


async def test_will_delay_waits_and_a_return_cancels_it(pair: PairFactory) -> None:
    """3.1.3.2.2: the will waits its delay; a connection taking the session back cancels it."""
    watcher = await connect5(pair)
    await watcher.subscribe(("wills/#", 0))
    session = Properties(session_expiry_interval=60)
    delay = Properties(will_delay_interval=1)
    will = Will("wills/c", b"gone", properties=delay)
    client = await connect5(pair, client_id="c", clean_session=False, will=will, properties=session)
    await client.drop()
    assert publishes(watcher.received()) == []
    back = await connect5(pair, client_id="c", clean_session=False, properties=session)
    await asyncio.sleep(1.2)
    assert publishes(watcher.received()) == []
    # Gone again, and this time for good: the will goes after its delay.
    await back.drop()
    other = await connect5(pair, client_id="d", clean_session=False, will=will, properties=session)
    await other.drop()
    await asyncio.sleep(1.2)
    assert [p.topic for p in publishes(watcher.received())] == ["wills/c"]


# --- both versions --------------------------------------------------------------------


async def test_3_1_1_and_5_clients_share_a_topic(pair: PairFactory) -> None:
    """A 3.1.1 publisher reaches a 5.0 subscriber and the other way round."""
    new = await connect5(pair)
    old = await pair()
    await old.connect()
    await new.subscribe(("mix", 1))
    await old.subscribe(("mix", 1))
    await old.send(Publish("mix", b"from-3", 1, packet_id=1))
    await new.send(Publish("mix", b"from-5", 1, packet_id=1))
    assert [p.payload for p in publishes(new.received())] == [b"from-3", b"from-5"]
    assert [p.payload for p in publishes(old.received())] == [b"from-3", b"from-5"]


async def test_session_kept_by_3_1_1_is_resumed_by_5(pair: PairFactory) -> None:
    """Unacknowledged messages of a 3.1.1 session are sent again in 5.0 form to a 5.0 client."""
    old = await pair()
    await old.connect(client_id="both", clean_session=False)
    await old.subscribe(("m", 1))
    client = await connect5(pair)
    await client.send(Publish("m", b"x", 1, packet_id=1))
    assert len(publishes(old.received())) == 1
    await old.drop()
    new = await pair()
    connack = await new.connect(
        **V5,
        client_id="both",
        clean_session=False,
        properties=Properties(session_expiry_interval=60),
    )
    assert connack.session_present
    [again] = publishes(new.received())
    assert (again.payload, again.dup) == (b"x", True)


async def test_suback_codes_for_5(pair: PairFactory) -> None:
    """3.9.3: a 5.0 SUBACK holds the granted QoS per filter."""
    client = await connect5(pair)
    await client.send(Subscribe(1, (("a", 2), ("b", 1))))
    assert client.received() == [Suback(1, (2, 1))]


# --- topic aliases from the hub (3.3.2.3.4) ----------------------------------------


async def test_hub_sets_up_topic_aliases_the_client_allows(pair: PairFactory) -> None:
    """The first topics get an alias (topic and alias once, then the alias alone)."""
    subscriber = await connect5(pair, properties=Properties(topic_alias_maximum=1))
    await subscriber.subscribe(("a", 1), ("b", 0))
    client = await connect5(pair)
    await client.send(Publish("a", b"1", 1, packet_id=1), Publish("a", b"2"), Publish("b", b"3"))
    received = publishes(subscriber.received())
    assert [(p.topic, p.properties.topic_alias, p.payload) for p in received] == [
        ("a", 1, b"1"),
        ("", 1, b"2"),
        ("b", None, b"3"),  # over the client's Topic Alias Maximum: the full topic
    ]


async def test_no_aliases_for_a_client_that_allows_none(pair: PairFactory) -> None:
    """3.2.2.3.8: without a Topic Alias Maximum the client gets full topics only."""
    subscriber = await connect5(pair)
    await subscriber.subscribe(("a", 0))
    client = await connect5(pair)
    await client.send(Publish("a", b"1"), Publish("a", b"2"))
    assert [p.topic for p in publishes(subscriber.received())] == ["a", "a"]


async def test_resent_messages_set_aliases_up_again(pair: PairFactory) -> None:
    """Aliases die with the connection: a resent QoS 1 message sets its alias up anew."""
    session = Properties(session_expiry_interval=60, topic_alias_maximum=5)
    subscriber = await connect5(pair, client_id="al", clean_session=False, properties=session)
    await subscriber.subscribe(("a", 1))
    client = await connect5(pair)
    await client.send(Publish("a", b"1", 1, packet_id=1), Publish("a", b"2", 1, packet_id=2))
    assert [p.topic for p in publishes(subscriber.received())] == ["a", ""]
    await subscriber.drop()
    back = await pair()
    await back.connect(**V5, client_id="al", clean_session=False, properties=session)
    again = publishes(back.received())
    assert [(p.topic, p.properties.topic_alias, p.dup) for p in again] == [
        ("a", 1, True),
        ("", 1, True),
    ]


async def test_overlapping_subscriptions_get_one_copy(pair: PairFactory) -> None:
    """3.3.4-2, -4: one PUBLISH at the highest QoS, with every subscription identifier."""
    client = await connect5(pair)
    await client.send(
        Subscribe(1, (("a/+", 0),), Properties(subscription_identifiers=(1,))),
        Subscribe(2, (("a/#", 1),), Properties(subscription_identifiers=(2,))),
        Subscribe(3, (("a/b", 0),)),
    )
    client.received()
    source = await connect5(pair)
    await source.send(Publish("a/b", b"x", 2, packet_id=1))
    [delivered] = publishes(client.received())
    assert delivered.qos == 1
    assert delivered.properties.subscription_identifiers == (1, 2)


async def test_overlapping_subscriptions_3_1_1_one_copy_at_the_highest_qos(
    pair: PairFactory,
) -> None:
    """3.1.1 3.3.5: overlapping subscriptions deliver at the highest QoS granted, once."""
    client = await pair()
    await client.connect()
    await client.subscribe(("t/#", 0), ("t/x", 2))
    source = await pair()
    await source.connect()
    await source.send(Publish("t/x", b"y", 2, packet_id=1))
    assert [(p.qos, p.payload) for p in publishes(client.received())] == [(2, b"y")]


async def test_no_local_applies_per_subscription_when_merged(pair: PairFactory) -> None:
    """With overlapping subscriptions only those without No Local count for own messages."""
    client = await connect5(pair)
    await client.subscribe(("n/#", NO_LOCAL | 1), ("n/+", 0))
    await client.send(Publish("n/1", b"own", 1, packet_id=5))
    packets = client.received()
    assert [(p.qos, p.payload) for p in publishes(packets)] == [(0, b"own")]
