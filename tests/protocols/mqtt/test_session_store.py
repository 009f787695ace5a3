"""MQTT sessions and retained messages: one suite over the memory and the Redis stores.

Each contract test runs on a hub with the memory engine (SessionStore,
MemoryRetainedStore) and on one with the Redis engine (SharedSessionStore,
RedisRetainedStore, a private redis-server and a key prefix per test). The
Redis-only tests at the end run two hubs ("nodes") on one Redis: a session and
a retained message follow the client to the other node.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from hub import Hub, HubConfig
from protocols.mqtt.codec import Connack, Packet, Puback, Pubcomp, Publish, Pubrec, Pubrel
from protocols.mqtt.shared_store import SharedSessionStore
from protocols.mqtt.store import SERVICE_NAME, SessionStore
from tests.multinode.redis_server import shared_redis_server
from tests.protocols.mqtt.conftest import PairFactory

NodeFactory = Callable[..., Awaitable[Hub]]


@contextlib.asynccontextmanager
async def nodes(kind: str) -> AsyncIterator[NodeFactory]:
    """Start hubs whose engine and services run (no socket); stop them after.

    With Redis, every node of one test shares the Redis and a key prefix; the
    memory engine has one node, so asking it for a second fails the test.
    """
    hubs: list[Hub] = []
    prefix = f"t{secrets.token_hex(4)}:"

    async def start(**mqtt: Any) -> Hub:
        config: dict[str, Any] = {"mqtt": mqtt}
        if kind == "redis":
            url = shared_redis_server().url
            config["engine"] = {"backend": "redis", "url": url, "prefix": prefix}
        elif hubs:
            raise AssertionError("the memory engine has one node")
        hub = Hub(HubConfig.model_validate(config))
        await hub.services.start()
        hubs.append(hub)
        return hub

    try:
        yield start
    finally:
        for hub in hubs:
            await hub.services.stop()
            await hub.engine.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.service)])
async def node(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    """``await node(**mqtt)``: a hub on the memory engine, then on the Redis engine."""
    async with nodes(request.param) as start:
        yield start


@pytest.fixture
async def redis_node() -> AsyncIterator[NodeFactory]:
    """``await redis_node(**mqtt)``: hubs ("nodes") on one Redis."""
    async with nodes("redis") as start:
        yield start


def publishes(packets: list[Packet]) -> list[Publish]:
    assert all(isinstance(p, Publish) for p in packets), packets
    return [p for p in packets if isinstance(p, Publish)]


async def received(client: Any, count: int, timeout: float = 3.0) -> list[Packet]:
    """At least ``count`` packets from the server (they may cross Redis first)."""
    out: list[Packet] = []
    async with asyncio.timeout(timeout):
        while True:
            out += client.received()
            if len(out) >= count:
                return out
            await asyncio.sleep(0.01)


# -- the contract: both stores ------------------------------------------------------------


async def test_the_store_matches_the_engine(node: NodeFactory) -> None:
    """The memory engine keeps sessions in memory; the Redis engine shares them."""
    hub = await node()
    store = hub.services.get(SERVICE_NAME, SessionStore)
    assert isinstance(store, SharedSessionStore) == (hub.config.engine.backend == "redis")


async def test_persistent_session_keeps_subscriptions_and_queues_qos1_and_2(
    node: NodeFactory, pair: PairFactory
) -> None:
    """clean_session 0: session present on return, QoS 1/2 queued while offline, QoS 0 not."""
    hub = await node()
    device = await pair(hub)
    assert await device.connect(client_id="dev", clean_session=False) == Connack(False, 0)
    await device.subscribe(("cmd/#", 2))
    await device.drop()
    await hub.channels.publish("cmd/a", b"q0", extras={"mqtt": {"qos": 0}})
    await hub.channels.publish("cmd/a", b"q1", extras={"mqtt": {"qos": 1}})
    await hub.channels.publish("cmd/b", b"q2", extras={"mqtt": {"qos": 2}})
    back = await pair(hub)
    assert await back.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    messages = publishes(await received(back, 2))
    assert [(m.payload, m.qos, m.dup) for m in messages] == [(b"q1", 1, False), (b"q2", 2, False)]
    await hub.channels.publish("cmd/c", b"live", extras={"mqtt": {"qos": 1}})
    assert [m.payload for m in publishes(await received(back, 1))] == [b"live"]


async def test_unacknowledged_messages_come_again_with_dup(
    node: NodeFactory, pair: PairFactory
) -> None:
    """MQTT-4.4.0-1: unacknowledged PUBLISH (DUP, same id) and pending PUBREL are sent again."""
    hub = await node()
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 2))
    await hub.channels.publish("t", b"one", extras={"mqtt": {"qos": 1}})
    await hub.channels.publish("t", b"two", extras={"mqtt": {"qos": 2}})
    one, two = publishes(await received(device, 2))
    assert two.packet_id is not None
    await device.send(Pubrec(two.packet_id))
    assert device.received() == [Pubrel(two.packet_id)]
    await device.drop()
    back = await pair(hub)
    assert await back.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    assert await received(back, 2) == [
        Publish("t", b"one", 1, dup=True, packet_id=one.packet_id),
        Pubrel(two.packet_id),
    ]
    # New messages take ids the session has not used.
    await hub.channels.publish("t", b"three", extras={"mqtt": {"qos": 1}})
    [three] = publishes(await received(back, 1))
    assert three.packet_id not in (one.packet_id, two.packet_id)


async def test_inbound_qos2_state_survives_a_reconnect(
    node: NodeFactory, pair: PairFactory
) -> None:
    """A QoS 2 PUBLISH sent again after reconnect (before PUBREL) is not delivered twice."""
    hub = await node()
    reader = await pair(hub)
    await reader.connect(client_id="reader")
    await reader.subscribe(("t", 0))
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.send(Publish("t", b"x", 2, packet_id=9))
    assert device.received() == [Pubrec(9)]
    assert len(await received(reader, 1)) == 1
    await device.drop()
    back = await pair(hub)
    await back.connect(client_id="dev", clean_session=False)
    await back.send(Publish("t", b"x", 2, dup=True, packet_id=9), Pubrel(9))
    assert back.received() == [Pubrec(9), Pubcomp(9)]
    await asyncio.sleep(0.1)
    assert reader.received() == []


async def test_clean_session_discards_what_was_kept(node: NodeFactory, pair: PairFactory) -> None:
    """clean_session 1 drops the kept session: nothing queued, no old subscription, none after."""
    hub = await node()
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 1))
    await device.drop()
    await hub.publish("t", "queued")
    clean = await pair(hub)
    assert await clean.connect(client_id="dev", clean_session=True) == Connack(False, 0)
    await hub.publish("t", "after")
    await asyncio.sleep(0.1)
    assert clean.received() == []
    await clean.finish(1000)
    again = await pair(hub)
    assert await again.connect(client_id="dev", clean_session=False) == Connack(False, 0)


async def test_a_second_connection_takes_the_client_id_over(
    node: NodeFactory, pair: PairFactory
) -> None:
    """MQTT-3.1.4-2: the first connection is closed, the second gets the session."""
    hub = await node()
    first = await pair(hub)
    await first.connect(client_id="dev", clean_session=False)
    await first.subscribe(("t", 1))
    second = await pair(hub)
    assert await second.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    await asyncio.sleep(0)
    assert first.closed == 1008
    await first.finish()
    await hub.publish("t", "hi")
    assert [m.payload for m in publishes(await received(second, 1))] == [b'"hi"']


async def test_offline_queue_is_bounded_and_keeps_the_newest(
    node: NodeFactory, pair: PairFactory
) -> None:
    """mqtt.max_queued_messages bounds an offline session's queue; the oldest go first."""
    hub = await node(max_queued_messages=3)
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 1))
    await device.drop()
    for n in range(6):
        await hub.publish("t", n)
    back = await pair(hub)
    await back.connect(client_id="dev", clean_session=False)
    assert [m.payload for m in publishes(await received(back, 3))] == [b"3", b"4", b"5"]


async def test_offline_queue_is_bounded_in_bytes(node: NodeFactory, pair: PairFactory) -> None:
    """mqtt.max_queued_bytes bounds the queue too (Redis: in the push script); the newest stay."""
    hub = await node(max_queued_bytes=25_000)
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 1))
    await device.drop()
    for n in range(6):
        await hub.publish("t", f"{n}" * 10_000)
    back = await pair(hub)
    await back.connect(client_id="dev", clean_session=False)
    got = [m.payload for m in publishes(await received(back, 2))]
    await asyncio.sleep(0.1)
    got += [m.payload for m in publishes(back.received())]
    assert got == [b'"' + b"4" * 10_000 + b'"', b'"' + b"5" * 10_000 + b'"']


async def test_offline_sessions_are_bounded_in_number(node: NodeFactory, pair: PairFactory) -> None:
    """Past mqtt.max_offline_sessions the session offline the longest is dropped, on Redis too."""
    hub = await node(max_offline_sessions=2)
    for name in ("first", "second", "third"):
        device = await pair(hub)
        await device.connect(client_id=name, clean_session=False)
        await device.subscribe(("t", 1))
        await device.drop()
    await asyncio.sleep(0.1)
    present = {}
    for name in ("first", "second", "third"):
        # Kept connected: a session going offline again would drop another.
        back = await pair(hub)
        present[name] = (await back.connect(client_id=name, clean_session=False)).session_present
    assert present == {"first": False, "second": True, "third": True}


async def test_retained_message_reaches_a_later_subscriber(
    node: NodeFactory, pair: PairFactory
) -> None:
    """A RETAIN publish is kept; a new subscription gets it with RETAIN set, then it is cleared."""
    hub = await node()
    device = await pair(hub)
    await device.connect(client_id="dev")
    await device.send(Publish("status/dev", b"online", 1, retain=True, packet_id=3))
    assert device.received() == [Puback(3)]
    late = await pair(hub)
    await late.connect(client_id="late")
    assert await late.subscribe(("status/+", 1)) == (1,)
    assert late.after_suback == [Publish("status/dev", b"online", 1, retain=True, packet_id=1)]
    await device.send(Publish("status/dev", b"", 0, retain=True))
    later = await pair(hub)
    await later.connect(client_id="later")
    await later.subscribe(("status/#", 1))
    assert later.after_suback == []


async def test_offline_sessions_expire(node: NodeFactory, pair: PairFactory) -> None:
    """mqtt.session_expiry forgets a persistent session offline for longer than that."""
    hub = await node(session_expiry=0.2)
    device = await pair(hub)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("t", 1))
    await device.drop()
    await hub.publish("t", "stale")
    await asyncio.sleep(0.6)
    back = await pair(hub)
    assert await back.connect(client_id="dev", clean_session=False) == Connack(False, 0)
    await hub.publish("t", "unsubscribed")
    await asyncio.sleep(0.1)
    assert back.received() == []


# -- the Redis store across nodes ---------------------------------------------------------


@pytest.mark.service
async def test_a_session_moves_to_another_node_with_its_queue(
    redis_node: NodeFactory, pair: PairFactory
) -> None:
    """Offline after node A, back on node B: session present, the queue, then live from B."""
    a = await redis_node()
    b = await redis_node()
    device = await pair(a)
    await device.connect(client_id="dev", clean_session=False)
    await device.subscribe(("cmd/+", 1))
    await device.drop()
    for n in range(3):
        await b.publish("cmd/x", n)
    back = await pair(b)
    assert await back.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    assert [m.payload for m in publishes(await received(back, 3))] == [b"0", b"1", b"2"]
    await a.publish("cmd/y", "live")
    assert [m.payload for m in publishes(await received(back, 1))] == [b'"live"']
    await asyncio.sleep(0.1)
    assert back.received() == []  # once: node A let the session go


@pytest.mark.service
async def test_connecting_on_another_node_closes_the_first_connection(
    redis_node: NodeFactory, pair: PairFactory
) -> None:
    """A client id live on node A connects on node B: A closes it, B resends what was unacked."""
    a = await redis_node()
    b = await redis_node()
    first = await pair(a)
    await first.connect(client_id="dev", clean_session=False)
    await first.subscribe(("t", 1))
    await a.publish("t", "unacked")
    [sent] = publishes(await received(first, 1))
    second = await pair(b)
    assert await second.connect(client_id="dev", clean_session=False) == Connack(True, 0)
    assert first.closed == 1008
    await first.finish()
    assert await received(second, 1) == [
        Publish("t", b'"unacked"', 1, dup=True, packet_id=sent.packet_id)
    ]


@pytest.mark.service
async def test_a_clean_session_takes_over_across_nodes_too(
    redis_node: NodeFactory, pair: PairFactory
) -> None:
    """clean_session 1 on node B closes node A's connection and starts with nothing."""
    a = await redis_node()
    b = await redis_node()
    first = await pair(a)
    await first.connect(client_id="dev", clean_session=False)
    await first.subscribe(("t", 1))
    second = await pair(b)
    assert await second.connect(client_id="dev", clean_session=True) == Connack(False, 0)
    assert first.closed == 1008
    await first.finish()
    await a.publish("t", "nobody")
    await asyncio.sleep(0.1)
    assert second.received() == []


@pytest.mark.service
async def test_retained_on_one_node_is_seen_on_another(
    redis_node: NodeFactory, pair: PairFactory
) -> None:
    """The retained store is shared: set on node A, matched by a pattern on node B."""
    a = await redis_node()
    b = await redis_node()
    device = await pair(a)
    await device.connect(client_id="dev")
    await device.send(Publish("site/1/temp", b"21.5", 1, retain=True, packet_id=1))
    reader = await pair(b)
    await reader.connect(client_id="reader")
    await reader.subscribe(("site/+/temp", 1))
    assert reader.after_suback == [Publish("site/1/temp", b"21.5", 1, retain=True, packet_id=1)]
