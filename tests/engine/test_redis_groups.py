"""Shared groups' keys in Redis expire with their nodes, and offers waiting are bounded in bytes.

Nodes here are Redis backends in this process, on a private redis-server,
with a short announcement interval; a node "dies" by closing its engine
without leaving its groups, as after kill -9 (tests/multinode kills real
processes).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from hub.engine import Publication
from hub.engine.redis import RedisBackend, RedisEngineConfig
from hub.engine.redis.groups import RedisGroups
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service

EVERY = 0.2  # announcement interval: the keys live 3 of them (0.6 s)
NodeFactory = Callable[..., Awaitable[tuple[RedisBackend, RedisGroups, CollectorRegistry]]]


@pytest.fixture
async def node(redis_server: RedisServer) -> AsyncIterator[NodeFactory]:
    backends: list[RedisBackend] = []

    async def start(
        name: str, **options: int
    ) -> tuple[RedisBackend, RedisGroups, CollectorRegistry]:
        registry = CollectorRegistry()
        config = RedisEngineConfig(url=redis_server.url, health_interval=0.2)
        backend = RedisBackend(config, name, registry=registry)
        backends.append(backend)
        await backend.broker.start()
        groups = RedisGroups(
            backend.link, backend.engine.bus, announce_every=EVERY, claim_ttl_ms=300, **options
        )
        return backend, groups, registry

    yield start
    for backend in backends:
        await backend.engine.close()


def message(data: bytes = b"job") -> Publication:
    return Publication("jobs/1", data, message_id=secrets.token_bytes(8))


async def share_keys(redis_server: RedisServer) -> list[bytes]:
    client = redis_server.client()
    try:
        return sorted(await client.keys("*share:*"))
    finally:
        await client.aclose()


async def test_a_group_whose_nodes_left_or_died_leaves_no_keys_after_the_expiry(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    _, on_a, _ = await node("a")
    b, on_b, _ = await node("b")
    on_a.members("workers", 1)
    on_b.members("workers", 2)
    await asyncio.sleep(3 * EVERY)
    delivered: list[str] = []
    sent = message()
    on_a.offer("workers", sent, lambda p: delivered.append("a") is None)
    on_b.offer("workers", sent, lambda p: delivered.append("b") is None)
    await asyncio.sleep(EVERY)
    assert len(delivered) == 1, delivered
    keys = await share_keys(redis_server)
    assert [k for k in keys if k.endswith(b":nodes")], keys
    assert [k for k in keys if k.endswith(b":next")], keys

    # Longer than the keys live: the announcements renew them.
    await asyncio.sleep(6 * EVERY)
    client = redis_server.client()
    try:
        nodes = next(k for k in await share_keys(redis_server) if k.endswith(b":nodes"))
        assert await client.hgetall(nodes) == {b"a": b"1", b"b": b"2"}
        assert 0 < await client.pttl(nodes) <= 3 * EVERY * 1000

        # a leaves; b dies without storing its count 0: its field stays, for now.
        on_a.members("workers", 0)
        await on_a.left("workers")
        await b.engine.close()
        assert await client.hgetall(nodes) == {b"b": b"2"}
    finally:
        await client.aclose()

    await asyncio.sleep(5 * EVERY)
    assert await share_keys(redis_server) == []
    await on_a.close()


async def test_offers_waiting_for_redis_are_bounded_in_bytes(
    node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _, groups, registry = await node("a", max_pending_bytes=1000)
    groups.members("workers", 1)
    delivered: list[bytes] = []
    both = asyncio.Event()

    def deliver(publication: Publication) -> bool:
        delivered.append(publication.data)
        if len(delivered) == 2:
            both.set()
        return True

    caplog.set_level(logging.WARNING, "hub.engine.redis")
    # Offered before the worker runs: two of 400 bytes fit in 1000, three do not.
    for n in range(5):
        groups.offer("workers", message(bytes([n]) * 400), deliver)
    dropped = registry.get_sample_value(
        "wshub_engine_dropped_total", {"queue": "shared group offers"}
    )
    assert dropped == 3
    assert len([r for r in caplog.records if "dropping messages" in r.getMessage()]) == 1
    async with asyncio.timeout(5):
        await both.wait()
    await asyncio.sleep(0.2)  # none of the dropped ones comes later
    assert delivered == [bytes([0]) * 400, bytes([1]) * 400]
    await groups.close()


async def test_the_engine_config_reaches_the_shared_groups(redis_server: RedisServer) -> None:
    """engine.shared_claim_ttl, shared_announce_interval and shared_max_pending_bytes set
    the claim keys' TTL, the group keys' (three intervals) and the offers' byte bound."""
    registry = CollectorRegistry()
    config = RedisEngineConfig(
        url=redis_server.url,
        health_interval=0.2,
        shared_claim_ttl=2.0,
        shared_announce_interval=0.5,
        shared_max_pending_bytes=65536,
    )
    backend = RedisBackend(config, "a", registry=registry)
    await backend.broker.start()
    groups = backend.shared_groups()
    client = redis_server.client()
    try:
        groups.members("workers", 1)
        delivered: list[bytes] = []
        two = asyncio.Event()

        def deliver(publication: Publication) -> bool:
            delivered.append(publication.data)
            if len(delivered) == 2:
                two.set()
            return True

        # Offered before the worker runs: two of 30,000 bytes fit in 65,536, three do not.
        for n in range(5):
            groups.offer("workers", message(bytes([n]) * 30_000), deliver)
        dropped = registry.get_sample_value(
            "wshub_engine_dropped_total", {"queue": "shared group offers"}
        )
        assert dropped == 3
        async with asyncio.timeout(5):
            await two.wait()
        keys = await share_keys(redis_server)
        claims = [k for k in keys if b":m:" in k]
        nodes = next(k for k in keys if k.endswith(b":nodes"))
        assert len(claims) == 2, keys
        # The defaults would be 30,000 and 15,000 ms.
        assert all(0 < ttl <= 2000 for ttl in [await client.pttl(c) for c in claims])
        assert 0 < await client.pttl(nodes) <= 1500
    finally:
        await client.aclose()
        await groups.close()
        await backend.engine.close()
