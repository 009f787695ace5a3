"""The Redis engine between nodes: several engines (one per "node") on one private Redis.

What the shared contract suite cannot show with one node: order and once-only
delivery across nodes, presence merged over nodes and expiring with a dead one,
replay after a lost pub/sub connection, and Redis going away and coming back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hub.engine import ChannelEngine, ClientInfo, Kind, Publication, StreamPosition
from hub.engine.redis import EngineUnavailable, RedisBroker, RedisEngineConfig, redis_engine
from tests.engine.conftest import Recorder
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service

NodeFactory = Callable[..., Awaitable[ChannelEngine]]


@pytest.fixture
async def node(redis_server: RedisServer) -> AsyncIterator[NodeFactory]:
    """``await node("a", **options)``: a started Redis engine on the test's Redis."""
    engines: list[ChannelEngine] = []

    async def start(
        name: str,
        *,
        url: str | None = None,
        registry: CollectorRegistry | None = None,
        **options: Any,
    ) -> ChannelEngine:
        options.setdefault("connect_timeout", 1.0)
        options.setdefault("command_timeout", 2.0)
        options.setdefault("reconnect_max_delay", 0.3)
        config = RedisEngineConfig(url=url or redis_server.url, **options)
        engine = redis_engine(config, name, registry=registry)
        engines.append(engine)
        await broker(engine).start()
        return engine

    yield start
    for engine in engines:
        await engine.close()


def broker(engine: ChannelEngine) -> RedisBroker:
    assert isinstance(engine.broker, RedisBroker)
    return engine.broker


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``check`` until it holds; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - state in another process: polled
            await asyncio.sleep(0.05)


async def publish(engine: ChannelEngine, channel: str, data: Any, size: int = 100) -> Publication:
    publication = Publication(channel, data)
    await engine.publish(publication, history_size=size, history_ttl=300)
    return publication


# -- pub/sub across nodes -------------------------------------------------------------


async def test_concurrent_publishers_reach_every_node_once_in_one_order(
    node: NodeFactory,
) -> None:
    """Publishers on two nodes at once: every node gets each publication once, offsets 1..N."""
    a, b, c = await node("a"), await node("b"), await node("c")
    recorders = {name: Recorder(name) for name in "abc"}
    for engine, name in ((a, "a"), (b, "b"), (c, "c")):
        await engine.subscribe(recorders[name], "room")

    async def burst(engine: ChannelEngine, tag: str) -> None:
        for n in range(40):
            await publish(engine, "room", f"{tag}{n}")

    await asyncio.gather(burst(a, "a"), burst(b, "b"))
    orders = []
    for recorder in recorders.values():
        received = await recorder.wait_for(80, timeout=5)
        assert [p.offset for p, _ in received] == list(range(1, 81))
        orders.append([p.data for p, _ in received])
    assert orders[0] == orders[1] == orders[2]
    # Each publisher's own sequence keeps its order inside the merged one.
    assert [d for d in orders[0] if d.startswith("a")] == [f"a{n}" for n in range(40)]
    await asyncio.sleep(0.1)
    assert all(len(recorder.received) == 80 for recorder in recorders.values())


async def test_patterns_across_nodes_deliver_once_per_subscription(node: NodeFactory) -> None:
    """Overlapping exact and pattern subscriptions on a node: one copy per subscription."""
    a, b = await node("a"), await node("b")
    exact, plus, multi, narrow = (Recorder(n) for n in ("exact", "plus", "multi", "narrow"))
    await b.subscribe(exact, "p/x/t")
    await b.subscribe(plus, "p/+/t")
    await b.subscribe(multi, "p/#")
    # Its glob "p/x*" also matches "p/xy": the node must filter that out.
    await b.subscribe(narrow, "p/x/#")
    for channel in ("p/x/t", "p/xy", "q/x/t", "p/x"):
        await publish(a, channel, channel)
    await publish(a, "p/x/t", "last")
    assert [p.data for p, _ in await exact.wait_for(2)] == ["p/x/t", "last"]
    assert [p.data for p, _ in await plus.wait_for(2)] == ["p/x/t", "last"]
    assert [p.data for p, _ in await multi.wait_for(4)] == ["p/x/t", "p/xy", "p/x", "last"]
    assert [p.data for p, _ in await narrow.wait_for(3)] == ["p/x/t", "p/x", "last"]
    await asyncio.sleep(0.1)
    assert (len(exact.received), len(plus.received), len(multi.received)) == (2, 2, 4)
    assert len(narrow.received) == 3


async def test_glob_characters_in_names_are_literal(node: NodeFactory) -> None:
    """A pattern level like 'x[1]' matches that literal level only, never 'x1'."""
    a, b = await node("a"), await node("b")
    recorder = Recorder()
    await b.subscribe(recorder, "x[1]/+")
    await publish(a, "x1/a", "glob would match")
    await publish(a, "x[1]/a", "literal")
    [(received, via)] = await recorder.wait_for(1)
    assert (received.data, via) == ("literal", "x[1]/+")
    await asyncio.sleep(0.1)
    assert len(recorder.received) == 1


async def test_history_is_shared_with_payloads_intact(node: NodeFactory) -> None:
    """What one node stores, another reads: same offsets, epoch, bytes, publisher, extras."""
    a, b = await node("a"), await node("b")
    sent = Publication(
        "h", {"blob": b"\x00\x01"}, publisher=ClientInfo("c1", "ada"), extras={"qos": 1}
    )
    await a.publish(sent, history_size=10, history_ttl=60)
    await publish(a, "h", b"raw")
    result = await b.read_history("h")
    assert [p.offset for p in result.publications] == [1, 2]
    first, second = result.publications
    assert (first.data, first.publisher, first.extras, first.epoch) == (
        {"blob": b"\x00\x01"},
        ClientInfo("c1", "ada"),
        {"qos": 1},
        sent.epoch,
    )
    assert second.data == b"raw"
    assert await b.position("h") == StreamPosition(2, sent.epoch)


async def test_every_key_expires(node: NodeFactory, redis_server: RedisServer) -> None:
    """History and presence keys carry a TTL: an abandoned channel leaves nothing behind."""
    a = await node("a", presence_ttl=5.0)
    await a.publish(Publication("k", 1), history_size=10, history_ttl=30)
    await a.join("k", ClientInfo("c1", "ada"), announce=False)
    client = redis_server.client()
    try:
        keys = await client.keys("wshub:*")
        # meta, stream, presence hash, expiry set, user counts; the node's heartbeat,
        # the nodes' presence deadlines and this node's presence channels
        assert len(keys) == 8
        for key in keys:
            assert 0 < await client.ttl(key) <= 3600, key
    finally:
        await client.aclose()


# -- presence across nodes ----------------------------------------------------------------


async def test_one_user_on_two_nodes_is_one_member(node: NodeFactory) -> None:
    """Tabs of one user on two nodes: one join, one leave (at the last), seen on both nodes."""
    a, b = await node("a"), await node("b")
    seen_a, seen_b = Recorder("a"), Recorder("b")
    await a.subscribe(seen_a, "lobby")
    await b.subscribe(seen_b, "lobby")
    assert await a.join("lobby", ClientInfo("tab1", "ada"), announce=True) is True
    assert await b.join("lobby", ClientInfo("tab2", "ada"), announce=True) is False
    assert await b.join("lobby", ClientInfo("tab3", "bob"), announce=True) is True
    assert (
        set(await a.members("lobby"))
        == set(await b.members("lobby"))
        == {
            "tab1",
            "tab2",
            "tab3",
        }
    )
    assert await a.leave("lobby", "tab1", announce=True) is None
    assert await b.leave("lobby", "tab2", announce=True) == ClientInfo("tab2", "ada")
    for recorder in (seen_a, seen_b):
        events = [(p.kind, p.data["user"]) for p, _ in await recorder.wait_for(3)]
        assert events == [(Kind.JOIN, "ada"), (Kind.JOIN, "bob"), (Kind.LEAVE, "ada")]


async def test_a_dead_nodes_members_expire(node: NodeFactory) -> None:
    """Members of a node that stopped refreshing vanish after the TTL; live ones stay."""
    a, b = await node("a", presence_ttl=1.0), await node("b", presence_ttl=1.0)
    await a.join("room", ClientInfo("ghost", "ada"), announce=False)
    await b.join("room", ClientInfo("alive", "bob"), announce=False)
    await a.close()  # like a crash: nothing is removed, nothing is refreshed any more
    started = time.monotonic()

    async def ghost_gone() -> bool:
        return set(await b.members("room")) == {"alive"}

    await eventually(ghost_gone, timeout=3.0)
    assert time.monotonic() - started >= 0.5
    await asyncio.sleep(1.5)  # longer than the TTL: b's own member is kept alive
    assert set(await b.members("room")) == {"alive"}
    # The dead node's user is gone from the counts too: coming back is a first.
    assert await b.join("room", ClientInfo("again", "ada"), announce=False) is True


async def test_members_come_back_after_redis_loses_them(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    """If Redis loses presence (flush, restart), each node puts its members back."""
    a = await node("a", presence_ttl=0.9)
    await a.join("room", ClientInfo("c1", "ada", {"n": 1}), announce=False)
    await redis_server.flush()

    async def restored() -> bool:
        return await a.members("room") == {"c1": ClientInfo("c1", "ada", {"n": 1})}

    await eventually(restored, timeout=3.0)


# -- failures ---------------------------------------------------------------------------


async def test_publications_missed_during_a_pubsub_loss_are_replayed(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    """A node whose pub/sub was cut replays what it missed, in order, once; gaps are told."""
    admin = redis_server.client()
    await admin.execute_command("ACL", "SETUSER", "nodeb", "on", ">pw", "~*", "&*", "+@all")
    a = await node("a")
    metrics = CollectorRegistry()
    b = await node("b", url=f"redis://nodeb:pw@127.0.0.1:{redis_server.port}/0", registry=metrics)
    gaps: list[str] = []
    broker(b).on_gap = gaps.append
    kept, lost = Recorder("kept"), Recorder("lost")
    await b.subscribe(kept, "ch")
    await b.subscribe(lost, "nohistory")
    for n in range(1, 4):
        await publish(a, "ch", n)
    await kept.wait_for(3)
    try:
        # Cut b off: no new connection may log in, existing ones are killed.
        await admin.execute_command("ACL", "SETUSER", "nodeb", "off")
        await admin.execute_command("CLIENT", "KILL", "USER", "nodeb")
        for n in range(4, 9):
            await publish(a, "ch", n)
        await publish(a, "nohistory", "gone", size=0)
        await admin.execute_command("ACL", "SETUSER", "nodeb", "on")
        await eventually(lambda: _connected(b), timeout=5)
        await publish(a, "ch", 9)
        received = await kept.wait_for(9)
        assert [p.data for p, _ in received] == list(range(1, 10))
        assert [p.offset for p, _ in received] == list(range(1, 10))
        assert gaps == ["nohistory"]
        assert lost.received == []
        assert broker(b).health()["pubsub_reconnects"] >= 1
        assert metrics.get_sample_value("wshub_engine_replayed_total") == 5
        assert metrics.get_sample_value("wshub_engine_gaps_total") == 1
    finally:
        await admin.aclose()


async def test_channels_seen_through_a_pattern_are_replayed_after_a_loss(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    """After a pub/sub loss a pattern gets back, from history, what its known channels missed."""
    admin = redis_server.client()
    await admin.execute_command("ACL", "SETUSER", "nodeb", "on", ">pw", "~*", "&*", "+@all")
    a = await node("a")
    b = await node("b", url=f"redis://nodeb:pw@127.0.0.1:{redis_server.port}/0")
    gaps: list[str] = []
    broker(b).on_gap = gaps.append
    pattern = Recorder("pattern")
    await b.subscribe(pattern, "sensors/#")
    await publish(a, "sensors/a", "a1")
    await pattern.wait_for(1)
    try:
        await admin.execute_command("ACL", "SETUSER", "nodeb", "off")
        await admin.execute_command("CLIENT", "KILL", "USER", "nodeb")
        await publish(a, "sensors/a", "a2")
        await publish(a, "sensors/a", "a3")
        await publish(a, "sensors/new", "unknown to b")
        await admin.execute_command("ACL", "SETUSER", "nodeb", "on")
        await eventually(lambda: _connected(b), timeout=5)
        await publish(a, "sensors/a", "a4")
        received = await pattern.wait_for(4)
        assert [(p.channel, p.data) for p, _ in received] == [
            ("sensors/a", "a1"),
            ("sensors/a", "a2"),
            ("sensors/a", "a3"),
            ("sensors/a", "a4"),
        ]
        assert {subscription for _, subscription in received} == {"sensors/#"}
        # sensors/new had never reached b: the pattern's loss is told, not hidden.
        assert gaps == ["sensors/#"]
    finally:
        await admin.aclose()


async def _connected(engine: ChannelEngine) -> bool:
    return broker(engine).connected


async def test_a_stalled_redis_fails_a_publish_within_the_command_timeout(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    """Redis stops answering but keeps its connections: the publish gives up after
    ``command_timeout`` (the engine's own bound; the client has no socket timeout)."""
    a = await node("a", command_timeout=0.5)
    await publish(a, "ch", "before")
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await publish(a, "ch", "stalled")
        assert 0.4 < time.monotonic() - started < 2.0
        assert broker(a).health()["commands"] == "down"
    finally:
        redis_server.resume()
    after = await publish(a, "ch", "after")
    assert after.offset >= 2
    assert broker(a).health()["commands"] == "up"


async def test_redis_down_degrades_and_recovers(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    """Redis stopped: nodes stay up, degraded, refuse publishes; back: subscriptions all flow."""
    a, b = await node("a"), await node("b")
    before, during, pattern = Recorder("before"), Recorder("during"), Recorder("pattern")
    await b.subscribe(before, "ch")
    await b.subscribe(pattern, "pat/#")
    first = await publish(a, "ch", "first")
    await before.wait_for(1)
    await a.join("ch", ClientInfo("c1", "ada"), announce=False)

    await redis_server.stop()

    async def degraded() -> bool:
        return all(broker(e).health()["status"] == "degraded" for e in (a, b))

    await eventually(degraded, timeout=3)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await publish(a, "ch", "refused")
    assert time.monotonic() - started < 3
    # Leaving and subscribing while Redis is away do not fail the caller.
    assert await a.leave("ch", "c1", announce=True) is None
    await b.subscribe(during, "later")

    await redis_server.start()  # empty: Redis lost everything

    async def healthy() -> bool:
        return all(broker(e).health()["status"] == "ok" for e in (a, b))

    await eventually(healthy, timeout=6)
    again = await publish(a, "ch", "again")
    await publish(a, "later", "new channel")
    assert [p.data for p, _ in await before.wait_for(2)] == ["first", "again"]
    assert [p.data for p, _ in await during.wait_for(1)] == ["new channel"]
    await publish(a, "pat/x", "through the pattern")
    assert [p.data for p, _ in await pattern.wait_for(1)] == ["through the pattern"]
    # The history was lost with Redis: a new epoch tells recovering clients so.
    assert again.epoch != first.epoch
    stale = await b.read_history("ch", since=StreamPosition(first.offset, first.epoch))
    assert not stale.complete
