"""MQTT messages spilled to Redis wait in memory bounded in bytes: the oldest go first.

A node on a private redis-server; the stored queue is read back with
``take_queue``, the drops with the ``wshub_engine_dropped`` metric.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hub.engine import Publication
from hub.engine.redis import RedisBackend, RedisEngineConfig
from hub.engine.redis.mqtt_sessions import RedisSessions, encode_queued
from hub.engine.sessions import Queued, StoredSession
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service

QUEUE = {"queue": "MQTT sessions' queued messages"}


@pytest.fixture
async def backend(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[RedisBackend, CollectorRegistry]]:
    registry = CollectorRegistry()
    config = RedisEngineConfig(url=redis_server.url, health_interval=0.2, command_timeout=0.5)
    node = RedisBackend(config, "a", registry=registry)
    await node.broker.start()
    yield node, registry
    await node.engine.close()


def queued(n: int) -> Queued:
    return Queued(Publication("jobs/1", bytes([n]) * 400), 1, False)


async def test_spilled_messages_waiting_are_bounded_in_bytes_the_oldest_dropped(
    backend: tuple[RedisBackend, CollectorRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    node, registry = backend
    sessions = RedisSessions(node.link, "a", expiry=None, max_queued=100, max_pending_bytes=1000)
    await sessions.save("c", StoredSession(), offline=True)
    caplog.set_level(logging.WARNING, "hub.engine.redis")
    # Spilled before the writer runs: two of about 430 bytes fit in 1000.
    for n in range(5):
        sessions.spill("c", queued(n))
    assert registry.get_sample_value("wshub_engine_dropped_total", QUEUE) == 3
    assert len([r for r in caplog.records if "dropping messages" in r.getMessage()]) == 1
    assert await sessions.flushed(5)
    stored = await sessions.take_queue("c")
    assert [q.publication.data for q in stored] == [bytes([3]) * 400, bytes([4]) * 400]


async def test_spilled_messages_wait_for_redis_and_none_is_lost_while_it_is_away(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path, persistent=True)
    await server.start()
    registry = CollectorRegistry()
    config = RedisEngineConfig(url=server.url, health_interval=0.2, command_timeout=0.5)
    node = RedisBackend(config, "a", registry=registry)
    try:
        await node.broker.start()
        sessions = RedisSessions(
            node.link, "a", expiry=None, max_queued=100, max_pending_bytes=1000
        )
        await sessions.save("c", StoredSession(), offline=True)
        await server.stop()
        sessions.spill("c", queued(0))
        # Refused while Redis is away: the batch goes back in line, not lost.
        assert not await sessions.flushed(1.5)
        sessions.spill("c", queued(1))
        await server.start()
        assert await sessions.flushed(15)
        stored = await sessions.take_queue("c")
        assert [q.publication.data for q in stored] == [bytes([0]) * 400, bytes([1]) * 400]
        assert registry.get_sample_value("wshub_engine_dropped_total", QUEUE) in (None, 0)
    finally:
        await node.engine.close()
        await server.stop()


async def test_engine_sessions_max_pending_bytes_reaches_the_writer(
    redis_server: RedisServer,
) -> None:
    """engine.sessions_max_pending_bytes bounds what waits for the writer of the sessions
    RedisBackend.shared_sessions() makes: at 64 KiB, six 16 KiB messages spilled at once
    keep the newest that fit (the default, 16 MiB, would keep all six)."""
    registry = CollectorRegistry()
    config = RedisEngineConfig(url=redis_server.url, sessions_max_pending_bytes=65536)
    node = RedisBackend(config, "a", registry=registry)
    await node.broker.start()
    try:
        sessions = node.shared_sessions(expiry=None, max_queued=100, max_queued_bytes=1 << 20)
        assert sessions is not None
        await sessions.save("c", StoredSession(), offline=True)
        messages = [Queued(Publication("jobs/1", bytes([n]) * 16384), 1, False) for n in range(6)]
        fit = 65536 // len(encode_queued(messages[0]))
        assert fit == 3
        for message in messages:
            sessions.spill("c", message)
        assert registry.get_sample_value("wshub_engine_dropped_total", QUEUE) == 6 - fit
        assert await sessions.flushed(5)
        stored = await sessions.take_queue("c")
        assert [q.publication.data for q in stored] == [m.publication.data for m in messages[3:]]
    finally:
        await node.engine.close()
