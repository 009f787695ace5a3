"""A Redis history read carries only what its reply may: never the whole stream (issue 13).

A ``history`` call on a channel of thousands of large entries used to load
every entry from Redis before the reply was trimmed to its budget. The read
now stops at its limit and past its byte budget, and says ``truncated``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.engine import ChannelEngine, Publication, StreamPosition
from hub.engine.redis import RedisBroker, RedisEngineConfig, redis_engine
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service

ENTRIES = 2000
BLOB = "x" * 10_000
BUDGET = 64 * 1024


@pytest.fixture
async def engine(redis_server: RedisServer) -> AsyncIterator[ChannelEngine]:
    engine = redis_engine(
        RedisEngineConfig(url=redis_server.url, connect_timeout=1.0, command_timeout=5.0), "a"
    )
    assert isinstance(engine.broker, RedisBroker)
    await engine.broker.start()
    yield engine
    await engine.close()


async def fill(engine: ChannelEngine, channel: str, count: int, data: str = BLOB) -> None:
    for i in range(count):
        await engine.publish(
            Publication(channel, f"{i}:{data}"), history_size=count, history_ttl=600
        )


async def sent_bytes(server: RedisServer) -> int:
    """What the Redis server has written to its clients so far."""
    client = server.client()
    try:
        return int((await client.info("stats"))["total_net_output_bytes"])
    finally:
        await client.aclose()


def index(publication: Publication) -> int:
    return int(str(publication.data).split(":", 1)[0])


async def test_a_latest_read_carries_its_budget_not_the_stream(
    engine: ChannelEngine, redis_server: RedisServer
) -> None:
    """20 MB in the stream, 64 KiB of budget: the newest 7 come back, and little more is sent."""
    await fill(engine, "big", ENTRIES)
    before = await sent_bytes(redis_server)
    result = await engine.read_history("big", max_bytes=BUDGET)
    sent = await sent_bytes(redis_server) - before
    # The entries that fit, plus the one that crossed the budget.
    assert [index(p) for p in result.publications] == list(range(ENTRIES - 7, ENTRIES))
    assert result.truncated
    assert result.position.offset == ENTRIES
    assert sent < 4 * BUDGET, sent
    # Without a budget the whole stream comes back, oldest first (as before).
    everything = await engine.read_history("big")
    assert [index(p) for p in everything.publications] == list(range(ENTRIES))
    assert not everything.truncated


async def test_a_read_since_stops_at_its_budget_and_is_not_complete_for_it(
    engine: ChannelEngine,
) -> None:
    """Recovery from offset 100 with 64 KiB: the oldest that fit from there, truncated."""
    await fill(engine, "since", 300)
    epoch = (await engine.position("since")).epoch
    result = await engine.read_history("since", since=StreamPosition(100, epoch), max_bytes=BUDGET)
    assert [p.offset for p in result.publications] == list(range(101, 108))
    assert result.truncated
    # A budget that holds the rest: all of it, and nothing said truncated.
    rest = await engine.read_history(
        "since", since=StreamPosition(250, epoch), max_bytes=10 * BUDGET
    )
    assert [p.offset for p in rest.publications] == list(range(251, 301))
    assert rest.complete
    assert not rest.truncated


async def test_limits_are_kept_across_pages(engine: ChannelEngine) -> None:
    """Reads go a page (64) at a time: limits below, at and above a page are exact."""
    await fill(engine, "small", 200, data="")
    epoch = (await engine.position("small")).epoch
    for limit in (0, 1, 64, 65, 150, 200, 500):
        latest = await engine.read_history("small", limit=limit)
        assert [p.offset for p in latest.publications] == list(range(201 - min(limit, 200), 201)), (
            limit
        )
        since = await engine.read_history("small", since=StreamPosition(10, epoch), limit=limit)
        expected = list(range(11, 11 + min(limit, 190)))
        assert [p.offset for p in since.publications] == expected, limit
        assert since.complete == (limit >= 190), limit
