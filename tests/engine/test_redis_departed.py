"""Leaves for the members of a dead node: announced once, by a live node, through the engine.

A node "dies" here by closing its engine: it stops refreshing its entries and
removes nothing, as after kill -9 (tests/multinode kills real processes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.app import Hub
from hub.engine import ChannelEngine, ClientInfo, Kind
from hub.engine.redis import RedisBroker, RedisEngineConfig, redis_engine
from tests.conftest import HubFactory
from tests.engine.conftest import Recorder
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service

NodeFactory = Callable[..., Awaitable[ChannelEngine]]
TTL = 1.0


@pytest.fixture
async def node(redis_server: RedisServer) -> AsyncIterator[NodeFactory]:
    """``await node("a")``: a started Redis engine with a short presence TTL."""
    engines: list[ChannelEngine] = []

    async def start(name: str) -> ChannelEngine:
        engine = redis_engine(
            RedisEngineConfig(url=redis_server.url, presence_ttl=TTL, health_interval=0.2), name
        )
        engines.append(engine)
        assert isinstance(engine.broker, RedisBroker)
        await engine.broker.start()
        return engine

    yield start
    for engine in engines:
        await engine.close()


def count_departures(engine: ChannelEngine) -> list[tuple[str, ClientInfo]]:
    """Record the departures this node handles (and still announce them)."""
    handled: list[tuple[str, ClientInfo]] = []
    announce = engine.on_departed

    async def departed(channel: str, member: ClientInfo) -> None:
        handled.append((channel, member))
        await announce(channel, member)

    engine.on_departed = departed
    return handled


def events(recorder: Recorder) -> list[tuple[Kind, str]]:
    return [(p.kind, p.data["user"]) for p, _ in recorder.received]


async def test_a_dead_nodes_member_gets_one_leave_on_every_node(node: NodeFactory) -> None:
    """Two live nodes watching: one of them announces the leave, both see it once."""
    doomed, b, c = await node("doomed"), await node("b"), await node("c")
    handled = [count_departures(b), count_departures(c)]
    seen_b, seen_c = Recorder("b"), Recorder("c")
    await b.subscribe(seen_b, "room")
    await c.subscribe(seen_c, "room")
    await doomed.join("room", ClientInfo("ghost", "ada", {"n": 1}), announce=True)
    await b.join("room", ClientInfo("alive", "bob"), announce=True)
    await seen_b.wait_for(2)
    await doomed.close()  # nobody touches "room" afterwards: the reaper must find it
    started = time.monotonic()
    await seen_b.wait_for(3, timeout=TTL * 4)
    await seen_c.wait_for(3, timeout=TTL * 4)
    assert time.monotonic() - started >= TTL / 2  # not before the entry expired
    await asyncio.sleep(TTL * 2)  # time for a second, wrong leave to show up
    for recorder in (seen_b, seen_c):
        assert events(recorder) == [(Kind.JOIN, "ada"), (Kind.JOIN, "bob"), (Kind.LEAVE, "ada")]
        leave = recorder.received[2][0]
        assert leave.data == {"user": "ada", "info": {"n": 1}}
    assert sorted(len(h) for h in handled) == [0, 1]
    assert set(await c.members("room")) == {"alive"}


async def test_a_user_still_on_a_live_node_does_not_leave(node: NodeFactory) -> None:
    """One user with a tab on the dead node and one on a live node: no leave until the last."""
    doomed, b = await node("doomed"), await node("b")
    seen = Recorder("b")
    await b.subscribe(seen, "room")
    await doomed.join("room", ClientInfo("tab1", "ada"), announce=True)
    await b.join("room", ClientInfo("tab2", "ada"), announce=True)
    await doomed.close()

    async def tab1_gone() -> bool:
        return set(await b.members("room")) == {"tab2"}

    async with asyncio.timeout(TTL * 4):
        while not await tab1_gone():  # noqa: ASYNC110 - expiry on the Redis clock
            await asyncio.sleep(0.05)
    await asyncio.sleep(TTL)
    assert events(seen) == [(Kind.JOIN, "ada")]
    assert await b.leave("room", "tab2", announce=True) == ClientInfo("tab2", "ada")
    await seen.wait_for(2)
    assert events(seen) == [(Kind.JOIN, "ada"), (Kind.LEAVE, "ada")]


async def test_many_members_on_many_channels_each_leave_once(node: NodeFactory) -> None:
    """A dead node with members on several channels: every user's leave, once, on each channel."""
    doomed, b = await node("doomed"), await node("b")
    recorders = {}
    for n in range(5):
        recorders[f"ch{n}"] = recorder = Recorder(f"ch{n}")
        await b.subscribe(recorder, f"ch{n}")
        for user in ("ada", "bob", "cy"):
            member = ClientInfo(f"{user}-{n}", user)
            await doomed.join(f"ch{n}", member, announce=False)
    await doomed.close()
    for recorder in recorders.values():
        await recorder.wait_for(3, timeout=TTL * 5)
    await asyncio.sleep(TTL)
    for recorder in recorders.values():
        assert sorted(events(recorder)) == [(Kind.LEAVE, u) for u in ("ada", "bob", "cy")]


# -- through the hub's policy layer ------------------------------------------------------


async def test_the_cleanup_node_runs_leave_hooks_and_honours_join_leave(
    make_hub: HubFactory, redis_server: RedisServer
) -> None:
    """On the node that cleans up: on_leave hooks run; a join_leave=false namespace stays silent."""
    hub: Hub = await make_hub(
        {
            "engine": {
                "backend": "redis",
                "url": redis_server.url,
                "presence_ttl": TTL,
            },
            "channels": {"namespaces": {"quiet": {"join_leave": False}}},
        }
    )
    left: list[tuple[str, str]] = []

    @hub.on_leave("#")
    def record(channel: str, member: ClientInfo) -> None:
        left.append((channel, member.user))

    seen_loud, seen_quiet = Recorder("loud"), Recorder("quiet")
    await hub.engine.subscribe(seen_loud, "loud/room")
    await hub.engine.subscribe(seen_quiet, "quiet/room")
    doomed = redis_engine(RedisEngineConfig(url=redis_server.url, presence_ttl=TTL), "doomed")
    try:
        await doomed.join("loud/room", ClientInfo("c1", "ada"), announce=False)
        await doomed.join("quiet/room", ClientInfo("c2", "ada"), announce=False)
    finally:
        await doomed.close()
    await seen_loud.wait_for(1, timeout=TTL * 5)
    async with asyncio.timeout(TTL * 5):
        while len(left) < 2:  # noqa: ASYNC110 - hooks run from the presence tick
            await asyncio.sleep(0.05)
    await asyncio.sleep(TTL)
    assert events(seen_loud) == [(Kind.LEAVE, "ada")]
    assert seen_quiet.received == []
    assert sorted(left) == [("loud/room", "ada"), ("quiet/room", "ada")]


async def test_a_failing_hook_does_not_stop_the_other_leaves(
    node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A departure handler that raises is logged; the next leaves are still announced."""
    doomed, b = await node("doomed"), await node("b")
    seen = Recorder("b")
    await b.subscribe(seen, "room")
    announce = b.on_departed
    calls: list[str] = []

    async def flaky(channel: str, member: ClientInfo) -> None:
        calls.append(member.user)
        if member.user == "ada":
            raise RuntimeError("hook bug")
        await announce(channel, member)

    b.on_departed = flaky
    for user in ("ada", "bob"):
        await doomed.join("room", ClientInfo(user, user), announce=False)
    await doomed.close()
    await seen.wait_for(1, timeout=TTL * 5)
    await asyncio.sleep(TTL)
    assert events(seen) == [(Kind.LEAVE, "bob")]
    assert sorted(calls) == ["ada", "bob"]
    assert "announcing the leave of 'ada'" in caplog.text
