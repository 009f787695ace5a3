"""The MQTT 3.1.1 server's rules, packet by packet, through connection pairs without a network."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from hub import Hub, HubConfig, Identity
from hub.auth import AuthenticationFailed, Credentials
from hub.errors import PermissionDenied
from protocols.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
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
    encode,
)
from tests.protocols.mqtt.conftest import Pair, PairFactory, mqtt_config


async def closed_within(client: Pair, timeout: float) -> float:
    """Wait for the server to close the pair; the loop time it happened."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        while client.closed is None:  # noqa: ASYNC110 - a timer closes it, no event to await
            await asyncio.sleep(0.01)
    return loop.time()


def publishes(packets: list[Any]) -> list[Publish]:
    assert all(isinstance(p, Publish) for p in packets), packets
    return packets


# --- CONNECT -------------------------------------------------------------------------


async def test_connect_is_acknowledged_without_session(pair: PairFactory) -> None:
    """A first CONNECT gets CONNACK 0 with session present 0."""
    client = await pair()
    assert await client.connect() == Connack(False, 0)
    assert client.closed is None


async def test_packet_before_connect_closes_without_reply(pair: PairFactory) -> None:
    """Anything but CONNECT first closes the connection (1002), nothing is answered."""
    client = await pair()
    await client.send(Pingreq())
    assert client.received() == []
    assert client.closed == 1002


async def test_second_connect_closes(pair: PairFactory) -> None:
    """MQTT-3.1.0-2: a second CONNECT is a protocol violation that closes the connection."""
    client = await pair()
    await client.connect()
    await client.send(Connect(client_id="again"))
    assert client.received() == []
    assert client.closed == 1002
    assert "second CONNECT" in client.session.close_reason


async def test_wrong_protocol_level_gets_connack_1_then_close(pair: PairFactory) -> None:
    """MQTT-3.1.2-2: an unsupported protocol level is answered with CONNACK 1, then closed."""
    client = await pair()
    await client.send(Connect(client_id="v6", protocol_level=6))
    assert client.received() == [Connack(False, 1)]
    assert client.closed == 1008
    assert client.session.close_reason.startswith("connection refused: UNACCEPTABLE_PROTOCOL")


async def test_empty_client_id_without_clean_session_gets_connack_2(pair: PairFactory) -> None:
    """MQTT-3.1.3-8: an empty client id with clean_session 0 is rejected with CONNACK 2."""
    client = await pair()
    await client.send(Connect(client_id="", clean_session=False))
    assert client.received() == [Connack(False, 2)]
    assert client.closed == 1008
    assert client.session.close_reason.startswith("connection refused: IDENTIFIER_REJECTED")


async def test_refused_connect_is_logged_at_info(
    pair: PairFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A CONNECT refused with a CONNACK code is logged at info with the session id and why."""
    client = await pair()
    with caplog.at_level(logging.INFO, logger="protocols.mqtt.handler"):
        await client.send(Connect(client_id="v6", protocol_level=6))
    [record] = [r for r in caplog.records if client.session.id in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "connection refused: UNACCEPTABLE_PROTOCOL_VERSION" in record.getMessage()


async def test_empty_client_id_with_clean_session_gets_a_generated_one(pair: PairFactory) -> None:
    """MQTT-3.1.3-6: an empty client id with clean_session 1 is accepted under a new unique id."""
    first, second = await pair(), await pair()
    assert await first.connect(client_id="") == Connack(False, 0)
    assert await second.connect(client_id="") == Connack(False, 0)
    assert first.handler.client_id.startswith("wshub-")
    assert first.handler.client_id != second.handler.client_id
    assert first.closed is None
    assert second.closed is None


async def test_mqtt31_client_id_over_23_characters_gets_connack_2(pair: PairFactory) -> None:
    """MQTT 3.1 (MQIsdp) limits client ids to 23 characters: CONNACK 2."""
    client = await pair()
    await client.send(Connect(protocol_name="MQIsdp", protocol_level=3, client_id="x" * 24))
    assert client.received() == [Connack(False, 2)]


async def test_mqtt31_connect_is_accepted(pair: PairFactory) -> None:
    """MQTT 3.1 clients (protocol MQIsdp, level 3; subprotocol mqttv3.1) are served."""
    client = await pair()
    assert await client.connect(protocol_name="MQIsdp", protocol_level=3) == Connack(False, 0)


async def test_connect_timeout_closes_a_silent_connection(pair: PairFactory) -> None:
    """A connection that sends no CONNECT within mqtt.connect_timeout is closed."""
    client = await pair(Hub(mqtt_config(connect_timeout=0.1)))
    await closed_within(client, 5.0)
    assert client.closed == 1008


async def test_client_id_takeover_closes_the_first_connection(pair: PairFactory) -> None:
    """MQTT-3.1.4-2: a second connection with the same client id closes the first."""
    first, second = await pair(), await pair()
    await first.connect(client_id="device")
    assert await second.connect(client_id="device") == Connack(False, 0)
    await asyncio.sleep(0)
    assert first.closed == 1008
    assert "taken over" in first.session.close_reason
    await first.finish()
    # The session now belongs to the second connection: it still works.
    await second.send(Pingreq())
    assert second.received() == [Pingresp()]


# --- authentication ---------------------------------------------------------------------


async def test_anonymous_is_refused_with_connack_5_when_disallowed(pair: PairFactory) -> None:
    """With mqtt.allow_anonymous false, a CONNECT without username gets CONNACK 5."""
    client = await pair(Hub(mqtt_config(allow_anonymous=False)))
    await client.send(Connect(client_id="anon"))
    assert client.received() == [Connack(False, 5)]
    assert client.closed == 1008


async def test_username_without_a_hook_is_refused_when_anonymous_is_disallowed(
    pair: PairFactory,
) -> None:
    """No hook can check a password: with allow_anonymous false a username gets CONNACK 4."""
    client = await pair(Hub(mqtt_config(allow_anonymous=False)))
    await client.send(Connect(client_id="c", username="ada", password=b"pw"))
    assert client.received() == [Connack(False, 4)]


def password_hub(*, sync: bool = False, **mqtt: Any) -> Hub:
    hub = Hub(mqtt_config(**mqtt))
    users = {"ada": b"secret", "bob": b"pw"}

    def check(credentials: Credentials) -> Identity | None:
        if credentials.username == "bob":
            raise PermissionDenied("bob is banned")
        if credentials.username == "crash":
            raise RuntimeError("database down")
        if users.get(credentials.username) != credentials.password:
            return None
        return Identity(credentials.username, {"client_id": credentials.client_id})

    async def check_async(credentials: Credentials) -> Identity | None:
        await asyncio.sleep(0)
        return check(credentials)

    hub.on_authenticate(check if sync else check_async)
    return hub


@pytest.mark.parametrize("sync", [True, False], ids=["sync-hook", "async-hook"])
async def test_good_credentials_set_the_session_identity(pair: PairFactory, sync: bool) -> None:
    """The @hub.on_authenticate hook's Identity becomes the session's identity (method "hook")."""
    client = await pair(password_hub(sync=sync, allow_anonymous=False))
    ack = await client.connect(client_id="c1", username="ada", password=b"secret")
    assert ack == Connack(False, 0)
    assert client.session.identity == Identity("ada", {"client_id": "c1"}, method="hook")


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [("ada", b"wrong", 4), ("nobody", b"x", 4), ("bob", b"pw", 5), ("crash", b"", 3)],
    ids=["bad-password", "unknown-user", "not-authorized", "hook-error"],
)
async def test_refused_credentials_get_their_connack_code(
    pair: PairFactory, username: str, password: bytes, code: int
) -> None:
    """None or AuthenticationFailed -> 4, PermissionDenied -> 5, a failing hook -> 3."""
    client = await pair(password_hub())
    await client.send(Connect(client_id="c", username=username, password=password))
    assert client.received() == [Connack(False, code)]
    assert client.closed == 1008
    assert client.session.identity is None


async def test_hook_may_raise_authentication_failed(pair: PairFactory) -> None:
    """A hook raising AuthenticationFailed refuses with CONNACK 4."""
    hub = Hub()

    def refuse(credentials: Credentials) -> Identity:
        raise AuthenticationFailed("no")

    hub.on_authenticate(refuse)
    client = await pair(hub)
    await client.send(Connect(client_id="c", username="u", password=b"p"))
    assert client.received() == [Connack(False, 4)]


async def test_subscribe_hooks_see_the_authenticated_user(pair: PairFactory) -> None:
    """Hooks get a context carrying the identity from CONNECT."""
    hub = password_hub()
    seen: list[str | None] = []

    @hub.on_subscribe("#")
    def record(ctx: Any, channel: str) -> None:
        seen.append(ctx.identity.user_id if ctx.identity else None)

    client = await pair(hub)
    await client.connect(client_id="c", username="ada", password=b"secret")
    await client.subscribe(("a/b", 0))
    assert seen == ["ada"]


# --- keepalive and ping -----------------------------------------------------------------


async def test_pingreq_gets_pingresp(pair: PairFactory) -> None:
    """PINGREQ is answered with PINGRESP."""
    client = await pair()
    await client.connect()
    await client.send(Pingreq())
    assert client.received() == [Pingresp()]


async def test_keepalive_closes_after_one_and_a_half_periods(pair: PairFactory) -> None:
    """MQTT-3.1.2-24: no packet for 1.5x keepalive closes the connection, not sooner."""
    client = await pair()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.connect(keepalive=1)
    elapsed = await closed_within(client, 5.0) - start
    assert 1.5 <= elapsed < 2.5
    assert client.closed == 1008
    assert "keepalive" in client.session.close_reason


async def test_packets_keep_the_connection_alive(pair: PairFactory) -> None:
    """Each packet restarts the keepalive period."""
    client = await pair()
    await client.connect(keepalive=1)
    for _ in range(4):  # 1.6 s in all, past the 1.5 s a silent client gets
        await asyncio.sleep(0.4)
        await client.send(Pingreq())
    assert client.closed is None


# --- subscribe -------------------------------------------------------------------------


async def test_suback_grants_requested_qos_up_to_max_qos(pair: PairFactory) -> None:
    """SUBACK carries one code per filter: the requested QoS, capped by mqtt.max_qos."""
    client = await pair(Hub(mqtt_config(max_qos=1)))
    await client.connect()
    assert await client.subscribe(("a", 0), ("b", 1), ("c/#", 2)) == (0, 1, 1)


async def test_refused_filters_get_0x80_and_the_others_are_granted(pair: PairFactory) -> None:
    """A subscribe hook or namespace refusal gives 0x80 for that filter only."""
    config = HubConfig.model_validate(
        {"channels": {"namespaces": {"private": {"allow_subscribe": False}}}}
    )
    hub = Hub(config)

    @hub.on_subscribe("secret/#")
    def deny(ctx: Any, channel: str) -> None:
        raise PermissionDenied("no")

    client = await pair(hub)
    await client.connect()
    codes = await client.subscribe(("secret/x", 1), ("private/y", 1), ("open/z", 2))
    assert codes == (0x80, 0x80, 2)


async def test_subscription_limit_gives_0x80(pair: PairFactory) -> None:
    """channels.max_subscriptions caps a session's filters; beyond it SUBACK says 0x80."""
    hub = Hub(HubConfig.model_validate({"channels": {"max_subscriptions": 2}}))
    client = await pair(hub)
    await client.connect()
    assert await client.subscribe(("a", 0), ("b", 0), ("c", 0), ("a", 1)) == (0, 0, 0x80, 1)


async def test_unsubscribe_stops_delivery(pair: PairFactory) -> None:
    """UNSUBSCRIBE is acknowledged with UNSUBACK and the filter delivers no more."""
    sub, pub = await pair(), await pair()
    await sub.connect()
    await pub.connect()
    await sub.subscribe(("t/+", 0))
    await sub.send(Unsubscribe(2, ("t/+", "never/subscribed")))
    assert sub.received() == [Unsuback(2)]
    await pub.send(Publish("t/1", b"x"))
    assert sub.received() == []


async def test_wildcards_and_dollar_topics(pair: PairFactory, mqtt_hub: Hub) -> None:
    """'+' and '#' match levels; '$' topics are not matched by a wildcard first level.

    Two overlapping subscriptions deliver one copy (3.3.5, at the highest QoS).
    """
    sub = await pair()
    await sub.connect()
    await sub.subscribe(("#", 0), ("+/status", 0), ("$SYS/#", 0))
    await mqtt_hub.publish("$SYS/broker/status", b"up")
    topics = [p.topic for p in publishes(sub.received())]
    assert topics == ["$SYS/broker/status"]
    await mqtt_hub.publish("dev/status", b"ok")
    assert [p.topic for p in publishes(sub.received())] == ["dev/status"]


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_to_dollar_topic_is_acknowledged_and_dropped(
    pair: PairFactory, mqtt_hub: Hub, qos: int
) -> None:
    """MQTT 4.7.2: a client's PUBLISH to a '$' topic is acknowledged, dropped and counted."""
    watcher = await pair()
    await watcher.connect()
    await watcher.subscribe(("$SYS/#", 2))
    client = await pair()
    await client.connect()
    await client.send(Publish("$SYS/x", b"no", qos, packet_id=7 if qos else None))
    expected = {0: [], 1: [Puback(7)], 2: [Pubrec(7)]}[qos]
    assert client.received() == expected
    if qos == 2:
        await client.send(Pubrel(7))
        assert client.received() == [Pubcomp(7)]
    assert client.closed is None
    assert watcher.received() == []
    assert await mqtt_hub.retained.get("$SYS/x") is None
    dropped = mqtt_hub.metrics.publications_dropped.labels("reserved_topic").value
    assert dropped == 1
    metrics = mqtt_hub.metrics.render().decode()
    assert 'wshub_publications_dropped_total{reason="reserved_topic"} 1.0' in metrics


# --- publish, both directions ---------------------------------------------------------------


async def test_qos_flows_from_the_client(pair: PairFactory) -> None:
    """QoS 0 needs no answer, QoS 1 gets PUBACK, QoS 2 PUBREC then PUBCOMP for PUBREL."""
    client = await pair()
    await client.connect()
    await client.send(Publish("t", b"0"))
    assert client.received() == []
    await client.send(Publish("t", b"1", 1, packet_id=10))
    assert client.received() == [Puback(10)]
    await client.send(Publish("t", b"2", 2, packet_id=11))
    assert client.received() == [Pubrec(11)]
    await client.send(Pubrel(11))
    assert client.received() == [Pubcomp(11)]


async def test_resent_qos2_publish_is_delivered_once(pair: PairFactory) -> None:
    """A QoS 2 PUBLISH sent again (DUP) before PUBREL is acknowledged, not delivered again."""
    sub, pub = await pair(), await pair()
    await sub.connect()
    await pub.connect()
    await sub.subscribe(("t", 2))
    await pub.send(Publish("t", b"once", 2, packet_id=5))
    await pub.send(Publish("t", b"once", 2, dup=True, packet_id=5))
    assert pub.received() == [Pubrec(5), Pubrec(5)]
    assert [p.payload for p in publishes(sub.received())] == [b"once"]
    await pub.send(Pubrel(5))
    await pub.send(Publish("t", b"once", 2, packet_id=5))  # the id is free again
    assert len(sub.received()) == 1


@pytest.mark.parametrize(("published", "granted"), [(0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)])
async def test_delivery_qos_is_the_minimum_of_published_and_granted(
    pair: PairFactory, published: int, granted: int
) -> None:
    """MQTT-3.8.4-6: a subscriber receives at min(published QoS, granted QoS)."""
    sub, pub = await pair(), await pair()
    await sub.connect()
    await pub.connect()
    await sub.subscribe(("t", granted))
    await pub.send(Publish("t", b"m", published, packet_id=1 if published else None))
    [delivered] = publishes(sub.received())
    assert delivered.qos == min(published, granted)
    assert not delivered.retain
    assert not delivered.dup


async def test_qos2_flow_to_the_client(pair: PairFactory, mqtt_hub: Hub) -> None:
    """The server's QoS 2 PUBLISH: PUBREC from the client gets PUBREL, PUBCOMP ends it."""
    sub = await pair()
    await sub.connect()
    await sub.subscribe(("t", 2))
    await mqtt_hub.channels.publish("t", b"x", extras={"mqtt": {"qos": 2, "retain": False}})
    [message] = publishes(sub.received())
    assert message.qos == 2
    assert message.packet_id is not None
    await sub.send(Pubrec(message.packet_id))
    assert sub.received() == [Pubrel(message.packet_id)]
    await sub.send(Pubrec(message.packet_id))  # a repeated PUBREC gets PUBREL again
    assert sub.received() == [Pubrel(message.packet_id)]
    await sub.send(Pubcomp(message.packet_id))
    assert sub.received() == []


async def test_inflight_window_is_bounded(pair: PairFactory, mqtt_hub: Hub) -> None:
    """At most mqtt.max_inflight unacknowledged QoS 1/2 messages; each ack lets one more go."""
    hub = Hub(mqtt_config(max_inflight=2))
    sub = await pair(hub)
    await sub.connect()
    await sub.subscribe(("t", 1))
    for n in range(5):
        await hub.publish("t", n)
    first = publishes(sub.received())
    assert [p.payload for p in first] == [b"0", b"1"]
    assert first[0].packet_id != first[1].packet_id
    await sub.send(Puback(first[0].packet_id or 0))
    assert [p.payload for p in publishes(sub.received())] == [b"2"]


async def test_publications_of_other_protocols_use_default_qos(
    pair: PairFactory, mqtt_hub: Hub
) -> None:
    """A JSON publication (hub.publish, channels.v1) arrives as compact JSON at mqtt.default_qos."""
    sub = await pair()
    await sub.connect()
    await sub.subscribe(("t", 2))
    await mqtt_hub.publish("t", {"temp": 21.5, "unit": "C"})
    [message] = publishes(sub.received())
    assert message.payload == b'{"temp":21.5,"unit":"C"}'
    assert message.qos == 1


async def test_qos0_frame_is_encoded_once_per_fan_out(pair: PairFactory) -> None:
    """Every QoS 0 subscriber is sent the very same frame object; QoS 1 ids are per subscriber."""
    subs = [await pair() for _ in range(3)]
    pub = await pair()
    await pub.connect()
    for sub in subs:
        await sub.connect()
        await sub.subscribe(("t", 0), ("q", 1))
    await pub.send(Publish("t", b"same"))
    frames = [sub.session.frames[-1] for sub in subs]
    assert frames[0] is frames[1] is frames[2]
    await pub.send(Publish("q", b"own ids", 1, packet_id=1))
    frames = [sub.session.frames[-1] for sub in subs]
    assert len(set(frames)) == 1  # same bytes, as every session's first id is 1
    assert frames[0] is not frames[1]


async def test_refused_publish_is_acknowledged_and_dropped(pair: PairFactory) -> None:
    """A publish hook refusal cannot be told in MQTT 3.1.1: PUBACK is sent, nothing delivered."""
    hub = Hub()

    @hub.on_publish("locked/#")
    def deny(ctx: Any, publication: Any) -> None:
        raise PermissionDenied("locked")

    sub, pub = await pair(hub), await pair(hub)
    await sub.connect()
    await pub.connect()
    await sub.subscribe(("locked/#", 1))
    await pub.send(Publish("locked/door", b"open", 1, packet_id=3))
    assert pub.received() == [Puback(3)]
    assert sub.received() == []
    assert pub.closed is None


# --- retained -------------------------------------------------------------------------------


async def test_retained_message_reaches_new_subscribers_with_retain_set(pair: PairFactory) -> None:
    """MQTT-3.3.1-6: a new subscription gets the retained message with RETAIN 1; live ones 0."""
    live, pub, late = await pair(), await pair(), await pair()
    for client in (live, pub, late):
        await client.connect()
    await live.subscribe(("home/+/temp", 2))
    await pub.send(Publish("home/kitchen/temp", b"21", 1, retain=True, packet_id=1))
    [now] = publishes(live.received())
    assert not now.retain
    await late.send(Subscribe(1, (("home/#", 2),)))
    suback, retained = late.received()
    assert suback == Suback(1, (2,))
    assert isinstance(retained, Publish)
    assert (retained.topic, retained.payload, retained.retain, retained.qos) == (
        "home/kitchen/temp",
        b"21",
        True,
        1,
    )


async def test_empty_retained_payload_clears_the_topic(pair: PairFactory, mqtt_hub: Hub) -> None:
    """MQTT-3.3.1-10: a retained PUBLISH with an empty payload removes the retained message."""
    pub, late = await pair(), await pair()
    await pub.connect()
    await late.connect()
    await pub.send(Publish("r", b"kept", retain=True))
    assert await mqtt_hub.retained.get("r") is not None
    await pub.send(Publish("r", b"", retain=True))
    assert await mqtt_hub.retained.get("r") is None
    await late.subscribe(("r", 0))
    assert late.after_suback == []


async def test_resubscribing_sends_retained_again(pair: PairFactory) -> None:
    """MQTT-3.8.4-3: subscribing the same filter again re-sends retained messages."""
    pub, sub = await pair(), await pair()
    await pub.connect()
    await sub.connect()
    await pub.send(Publish("r", b"v", retain=True))
    await sub.subscribe(("r", 0))
    assert len(sub.after_suback) == 1
    await sub.subscribe(("r", 1), packet_id=2)
    assert len(sub.after_suback) == 1


# --- will --------------------------------------------------------------------------------------


async def will_watcher(pair: PairFactory, hub: Hub | None = None) -> Pair:
    watcher = await pair(hub)
    await watcher.connect(client_id="watcher")
    await watcher.subscribe(("wills/#", 1))
    return watcher


WILL = Will("wills/dev", b"gone", 1, retain=True)


async def test_will_is_published_when_the_connection_is_lost(
    pair: PairFactory, mqtt_hub: Hub
) -> None:
    """MQTT-3.1.2-8: a connection lost without DISCONNECT publishes its will (retained here)."""
    watcher = await will_watcher(pair)
    client = await pair()
    await client.connect(client_id="dev", will=WILL)
    await client.drop()
    [will] = publishes(watcher.received())
    assert (will.topic, will.payload, will.qos) == ("wills/dev", b"gone", 1)
    assert await mqtt_hub.retained.get("wills/dev") is not None


async def test_will_is_published_after_a_protocol_error(pair: PairFactory) -> None:
    """A connection the server closes for a protocol error publishes its will."""
    watcher = await will_watcher(pair)
    client = await pair()
    await client.connect(client_id="dev", will=WILL)
    await client.send_bytes(b"\xf0\x00")  # reserved packet type 15
    assert client.closed == 1002
    await client.finish()
    assert len(watcher.received()) == 1


async def test_protocol_error_is_logged_at_info(
    pair: PairFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection closed for a protocol error is logged at info with its session id and why."""
    client = await pair()
    await client.connect()
    with caplog.at_level(logging.INFO, logger="protocols.mqtt.handler"):
        await client.send_bytes(b"\xf0\x00")  # reserved packet type 15
    assert client.closed == 1002
    [record] = [r for r in caplog.records if client.session.id in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "closed: protocol error:" in record.getMessage()
    assert "reserved" in record.getMessage()


async def test_will_is_not_published_after_disconnect(pair: PairFactory) -> None:
    """MQTT-3.14.4-3: DISCONNECT discards the will."""
    watcher = await will_watcher(pair)
    client = await pair()
    await client.connect(client_id="dev", will=WILL)
    await client.send(Disconnect())
    assert client.closed == 1000
    await client.finish()
    assert watcher.received() == []


async def test_will_is_not_published_when_the_hub_stops(pair: PairFactory, mqtt_hub: Hub) -> None:
    """A hub shutting down closes clients without publishing their wills."""
    wills: list[str] = []

    @mqtt_hub.on_publish("#")
    def record(ctx: Any, publication: Any) -> None:
        wills.append(publication.channel)

    client = await pair()
    await client.connect(client_id="dev", will=WILL)
    await mqtt_hub.stop()
    await client.finish(1001)
    assert wills == []


async def test_will_is_not_published_on_takeover(pair: PairFactory) -> None:
    """A connection replaced by its own client id does not publish its will (as Mosquitto)."""
    watcher = await will_watcher(pair)
    first, second = await pair(), await pair()
    await first.connect(client_id="dev", will=WILL)
    await second.connect(client_id="dev")
    await asyncio.sleep(0)
    await first.finish()
    assert watcher.received() == []


async def test_will_to_a_dollar_topic_is_not_authorized(pair: PairFactory) -> None:
    """A will on a '$' topic (clients may not publish there) is refused with CONNACK 5."""
    client = await pair()
    await client.send(Connect(client_id="c", will=Will("$SYS/x", b"")))
    assert client.received() == [Connack(False, 5)]


# --- persistent sessions -----------------------------------------------------------------------


async def test_persistent_session_keeps_subscriptions_and_queues_qos1(
    pair: PairFactory, mqtt_hub: Hub
) -> None:
    """clean_session 0: session present on return, QoS 1/2 queued while offline, QoS 0 dropped."""
    device = await pair()
    assert await device.connect(client_id="dev", clean_session=False) == Connack(False, 0)
    await device.subscribe(("cmd/#", 2))
    await device.drop()
    pub = await pair()
    await pub.connect()
    await pub.send(Publish("cmd/a", b"q0"))
    await pub.send(Publish("cmd/a", b"q1", 1, packet_id=1))
    await pub.send(Publish("cmd/b", b"q2", 2, packet_id=2), Pubrel(2))
    back = await pair()
    assert await back.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    messages = publishes(back.received())
    assert [(m.payload, m.qos, m.dup) for m in messages] == [(b"q1", 1, False), (b"q2", 2, False)]
    # Live delivery goes on through the kept subscription.
    await pub.send(Publish("cmd/c", b"live", 1, packet_id=3))
    assert [m.payload for m in publishes(back.received())] == [b"live"]


async def test_unacknowledged_messages_are_resent_with_dup_on_reconnect(
    pair: PairFactory, mqtt_hub: Hub
) -> None:
    """MQTT-4.4.0-1: on reconnect, unacknowledged PUBLISH (DUP, same id) and PUBREL are resent."""
    device = await pair()
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 2))
    await mqtt_hub.channels.publish("t", b"one", extras={"mqtt": {"qos": 1}})
    await mqtt_hub.channels.publish("t", b"two", extras={"mqtt": {"qos": 2}})
    await mqtt_hub.channels.publish("t", b"three", extras={"mqtt": {"qos": 2}})
    one, two, three = publishes(device.received())
    assert three.packet_id is not None
    await device.send(Pubrec(three.packet_id))  # three is past PUBREC: PUBREL pending
    assert device.received() == [Pubrel(three.packet_id)]
    await device.drop()

    back = await pair()
    assert await back.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    again = back.received()
    assert again == [
        Publish("t", b"one", 1, dup=True, packet_id=one.packet_id),
        Publish("t", b"two", 2, dup=True, packet_id=two.packet_id),
        Pubrel(three.packet_id),
    ]


async def test_offline_queue_is_bounded_and_keeps_the_newest(pair: PairFactory) -> None:
    """mqtt.max_queued_messages bounds an offline session's queue; the oldest are dropped."""
    hub = Hub(mqtt_config(max_queued_messages=3))
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 1))
    await device.drop()
    for n in range(6):
        await hub.publish("t", n)
    back = await pair(hub)
    await back.connect(client_id="dev", clean_session=False)
    assert [m.payload for m in publishes(back.received())] == [b"3", b"4", b"5"]


async def test_inbound_qos2_state_survives_a_reconnect(pair: PairFactory) -> None:
    """A QoS 2 PUBLISH resent after reconnect (before PUBREL) is not delivered twice."""
    sub = await pair()
    await sub.connect(client_id="sub")
    await sub.subscribe(("t", 0))
    device = await pair()
    await device.connect(client_id="dev", clean_session=False)
    await device.send(Publish("t", b"x", 2, packet_id=9))
    assert device.received() == [Pubrec(9)]
    await device.drop()
    back = await pair()
    await back.connect(client_id="dev", clean_session=False)
    await back.send(Publish("t", b"x", 2, dup=True, packet_id=9), Pubrel(9))
    assert back.received() == [Pubrec(9), Pubcomp(9)]
    assert len(sub.received()) == 1


async def test_clean_session_discards_the_stored_session(pair: PairFactory, mqtt_hub: Hub) -> None:
    """CONNECT with clean_session 1 drops what an earlier session kept (session present 0)."""
    device = await pair()
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 1))
    await device.drop()
    await mqtt_hub.publish("t", "queued")
    clean = await pair()
    assert await clean.connect(client_id="dev", clean_session=True) == Connack(False, 0)
    assert clean.received() == []
    await mqtt_hub.publish("t", "after")
    assert clean.received() == []  # the old subscription is gone
    await clean.finish(1000)
    again = await pair()
    assert await again.connect(client_id="dev", clean_session=False) == Connack(False, 0)


async def test_persistent_takeover_keeps_the_session(pair: PairFactory, mqtt_hub: Hub) -> None:
    """A clean_session 0 takeover of a live connection gets its session, subscriptions and all."""
    first = await pair()
    await first.connect(client_id="dev", clean_session=False)
    await first.subscribe(("t", 1))
    second = await pair()
    assert await second.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    await asyncio.sleep(0)
    await first.finish()
    await mqtt_hub.publish("t", "hi")
    assert [m.payload for m in publishes(second.received())] == [b'"hi"']


# --- framing ------------------------------------------------------------------------------------


async def test_packets_may_span_frames_and_share_them(pair: PairFactory) -> None:
    """A CONNECT fed one byte per frame works; several packets in one frame are all served."""
    client = await pair()
    for byte in encode(Connect(client_id="slow")):
        await client.send_bytes(bytes([byte]))
    assert client.received() == [Connack(False, 0)]
    await client.send(Pingreq(), Pingreq(), Publish("t", b"x", 1, packet_id=4))
    assert client.received() == [Pingresp(), Pingresp(), Puback(4)]


async def test_text_frame_closes_with_1003(pair: PairFactory) -> None:
    """MQTT over WebSocket is binary only: a text frame closes with 1003."""
    client = await pair()
    await client.connect()
    await client.send_bytes("hello")
    assert client.closed == 1003


@pytest.mark.parametrize(
    "packet",
    [Connack(False, 0), Suback(1, (0,)), Pingresp(), Unsuback(1)],
    ids=["connack", "suback", "pingresp", "unsuback"],
)
async def test_server_to_client_packets_from_a_client_close(pair: PairFactory, packet: Any) -> None:
    """A client sending a packet only servers send is closed."""
    client = await pair()
    await client.connect()
    await client.send(packet)
    assert client.closed == 1002


async def test_offline_sessions_expire(pair: PairFactory) -> None:
    """mqtt.session_expiry drops a persistent session offline for longer than that."""
    hub = Hub(mqtt_config(session_expiry=0.1))
    await hub.services.start()
    try:
        device = await pair(hub)
        await device.connect(client_id="dev", clean_session=False)
        await device.subscribe(("t", 1))
        await device.drop()
        await asyncio.sleep(0.4)
        back = await pair(hub)
        assert await back.connect(client_id="dev", clean_session=False) == Connack(False, 0)
    finally:
        await hub.services.stop()
