"""Redis stopped under running nodes: each protocol's own "try again later", then recovery.

channels.v1 answers -32017, WAMP answers ``wamp.error.network_failure``, MQTT
drops QoS 0 (counted) and leaves QoS 1 unacknowledged so the client sends it
again. No connection is closed, and each works again once Redis is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from protocols.mqtt.codec import Connack, Pingreq, Pingresp, Puback, Publish, Suback, Subscribe
from tests.multinode.conftest import ClusterFactory, HubProcess, PeerFactory
from tests.multinode.redis_server import RedisServer
from tests.protocols.mqtt.conftest import PahoPeer, RawMqtt
from tests.protocols.wamp.conftest import WampFactory

pytestmark = pytest.mark.service

UNAVAILABLE = -32017
NETWORK_FAILURE = "wamp.error.network_failure"


async def redis_away(redis_server: RedisServer, *hubs: HubProcess) -> None:
    await redis_server.stop()
    await asyncio.gather(*(hub.wait_health("degraded", 5) for hub in hubs))


async def redis_back(redis_server: RedisServer, *hubs: HubProcess) -> None:
    await redis_server.start()
    await asyncio.gather(*(hub.wait_health("ok", 10) for hub in hubs))


async def test_channels_client_gets_32017_for_every_engine_operation_and_stays_connected(
    cluster: ClusterFactory, peer: PeerFactory, redis_server: RedisServer
) -> None:
    """Publish, subscribe, presence and history answer -32017 while Redis is away; then work."""
    one, two = await cluster(2)
    reader = await peer(two)
    await reader.subscribe("news")
    client = await peer(one)

    await redis_away(redis_server, one, two)
    for method, params in [
        ("publish", {"channel": "news", "data": "lost?"}),
        ("subscribe", {"channel": "other"}),
        ("presence", {"channel": "news"}),
        ("presence_stats", {"channel": "news"}),
        ("history", {"channel": "news"}),
    ]:
        error = await client.error(method, params)
        assert error["code"] == UNAVAILABLE, (method, error)
        assert "temporarily unavailable" in error["message"]
    # The refused subscribe left nothing behind: the same channel may be tried again.
    await redis_back(redis_server, one, two)
    await client.subscribe("other")
    await client.publish("news", "after")
    [after] = await reader.messages(1)
    assert after["data"] == "after"
    assert await reader.quiet_for(0.2), reader.unexpected


async def test_wamp_publisher_gets_network_failure_and_its_session_survives(
    cluster: ClusterFactory, wamp: WampFactory, redis_server: RedisServer
) -> None:
    """An acknowledged PUBLISH answers wamp.error.network_failure; the session publishes after."""
    one, two = await cluster(2)
    subscriber = await wamp(two)
    events: asyncio.Queue[Any] = asyncio.Queue()
    await subscriber.subscribe(events.put_nowait, "news.wamp")
    publisher = await wamp(one)

    await redis_away(redis_server, one, two)
    with pytest.raises(ApplicationError) as refused:
        await publisher.publish("news.wamp", "lost?", options=PublishOptions(acknowledge=True))
    assert refused.value.error == NETWORK_FAILURE
    # Without acknowledge the failure is silent on the wire, so it is counted.
    publisher.publish("news.wamp", "silent")
    await eventually(
        lambda: one.metric('wshub_publications_dropped_total{reason="engine_unavailable"}'),
        lambda value: value >= 1,
    )
    assert publisher.is_attached()
    # Calls that would need the cluster's registrations fail the same way; a callee
    # may still register (announced once Redis is back).
    with pytest.raises(ApplicationError) as unreachable:
        await publisher.call("com.nowhere")
    assert unreachable.value.error == NETWORK_FAILURE
    await publisher.register(lambda: "here", "com.registered.while.away")
    assert await publisher.call("com.registered.while.away") == "here"  # same node: works

    await redis_back(redis_server, one, two)
    await publisher.publish("news.wamp", "after", options=PublishOptions(acknowledge=True))
    async with asyncio.timeout(5):
        assert await events.get() == "after"
    assert events.empty()

    async def announced() -> float:
        try:
            return float(await subscriber.call("com.registered.while.away") == "here")
        except ApplicationError:
            return 0.0

    # Re-announced within a few seconds: callers on the other node reach it.
    await eventually(announced, lambda value: value == 1.0, timeout=10)


async def test_mqtt_qos1_goes_unacknowledged_and_is_delivered_once_resent(
    cluster: ClusterFactory, paho_peer: Callable[..., PahoPeer], redis_server: RedisServer
) -> None:
    """QoS 0 dropped (counted), QoS 1 not PUBACKed; the connection lives; the resend delivers."""
    one, two = await cluster(2)
    subscriber = paho_peer("reader")
    await subscriber.connect("127.0.0.1", two.port)
    assert await subscriber.subscribe("dev/+/temp", 1) == [1]
    async with connect(one.url + "mqtt", subprotocols=[Subprotocol("mqtt")], open_timeout=5) as ws:
        device = RawMqtt(ws)
        assert (await device.connect("device")).return_code == 0

        await redis_away(redis_server, one, two)
        await device.send(Publish("dev/a/temp", b"qos0", 0, False))
        await device.send(Publish("dev/a/temp", b"qos1", 1, False, packet_id=7))
        await eventually(
            lambda: one.metric('wshub_publications_dropped_total{reason="engine_unavailable"}'),
            lambda value: value >= 1,
        )
        # No PUBACK; the connection still answers.
        await device.send(Pingreq())
        assert isinstance(await device.recv(), Pingresp)

        await redis_back(redis_server, one, two)
        assert await subscriber.nothing_for(0.3)
        # What a client does with an unacknowledged PUBLISH: send it again, DUP set.
        await device.send(Publish("dev/a/temp", b"qos1", 1, False, packet_id=7, dup=True))
        assert await device.recv() == Puback(7)
        received = await subscriber.message()
        assert (received.topic, received.payload, received.qos) == ("dev/a/temp", b"qos1", 1)
        assert await subscriber.nothing_for(0.3)  # the QoS 0 message is gone for good


async def test_mqtt_connect_and_subscribe_are_refused_in_mqtt_terms_while_redis_is_away(
    cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    """Sessions live in Redis: CONNECT gets CONNACK 3, SUBSCRIBE gets 0x80; then both work."""
    (one,) = await cluster(1)
    async with connect(one.url + "mqtt", subprotocols=[Subprotocol("mqtt")]) as ws:
        device = RawMqtt(ws)
        assert (await device.connect("device", clean_session=False)).return_code == 0
        await redis_away(redis_server, one)
        async with connect(one.url + "mqtt", subprotocols=[Subprotocol("mqtt")]) as late_ws:
            late = RawMqtt(late_ws)
            assert await late.connect("late") == Connack(False, 3)  # server unavailable
            assert (await late.closed())[0] == 1013  # try again later
        await device.send(Subscribe(1, (("cmd/#", 1),)))
        assert await device.recv() == Suback(1, (0x80,))

        await redis_back(redis_server, one)
        await device.send(Subscribe(2, (("cmd/#", 1),)))
        assert await device.recv() == Suback(2, (1,))


async def eventually(
    read: Callable[[], Awaitable[float]],
    check: Callable[[float], bool],
    timeout: float = 5.0,
) -> float:
    """Poll ``read()`` until ``check`` accepts its value."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                value = await read()
            except LookupError:
                value = 0.0
            if check(value):
                return value
            await asyncio.sleep(0.05)
