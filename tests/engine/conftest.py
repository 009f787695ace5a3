"""Engine backends for the shared contract suite, and a recording subscriber.

``engine_backend`` is parametrized by :data:`BACKENDS`: the memory backend, the
SQLite backend (on a file of its own) and the Redis backend (on a private
redis-server). Another backend joins the suite
by adding one factory to that dict (an async context manager yielding a
:class:`Backend`), nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.engine import (
    Broker,
    ChannelEngine,
    HistoryStore,
    MemoryBroker,
    MemoryHistory,
    MemoryPresence,
    PresenceStore,
    Publication,
)
from hub.engine.redis import RedisBroker, RedisEngineConfig, redis_engine
from hub.engine.sqlite import SqliteBackend
from hub.engine.topics import is_pattern
from tests.multinode.redis_server import redis_server as redis_server
from tests.multinode.redis_server import shared_redis_server


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """One engine backend as the contract suite drives it."""

    name: str
    broker: Broker
    history: HistoryStore
    presence: PresenceStore
    engine: ChannelEngine
    # What the broker is subscribed to on behalf of this node.
    broker_subscriptions: Callable[[], Awaitable[set[str]]]
    # Let ``seconds`` of history TTL pass (a fake clock, or a real wait).
    elapse: Callable[[float], Awaitable[None]]
    # Channel names unique to this test, so a shared server needs no flushing.
    prefix: str = field(default_factory=lambda: f"t{secrets.token_hex(4)}")
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def channel(self, name: str = "") -> str:
        return f"{self.prefix}/{name or f'c{next(self._names)}'}"


@contextlib.asynccontextmanager
async def memory_backend() -> AsyncIterator[Backend]:
    clock = FakeClock()
    history = MemoryHistory(clock=clock)
    broker = MemoryBroker(history)
    presence = MemoryPresence()
    engine = ChannelEngine(broker, history, presence, node_id="node-1")

    async def broker_subscriptions() -> set[str]:
        return set(broker.channels)

    async def elapse(seconds: float) -> None:
        clock.advance(seconds)

    try:
        yield Backend("memory", broker, history, presence, engine, broker_subscriptions, elapse)
    finally:
        await engine.close()


@contextlib.asynccontextmanager
async def redis_backend() -> AsyncIterator[Backend]:
    """The Redis engine on a private redis-server shared by the run, flushed per test."""
    server = shared_redis_server()
    await server.flush()
    engine = redis_engine(RedisEngineConfig(url=server.url), "node-1")
    broker = engine.broker
    assert isinstance(broker, RedisBroker)
    await broker.start()
    admin = server.client()

    async def broker_subscriptions() -> set[str]:
        # Channels as Redis itself reports them; patterns as the broker holds them.
        prefix = "wshub:pub:"
        channels = {name.decode()[len(prefix) :] for name in await admin.pubsub_channels()}
        return channels | {name for name in broker.subscriptions if is_pattern(name)}

    async def elapse(seconds: float) -> None:
        await asyncio.sleep(seconds)  # TTLs run on the Redis server's clock

    try:
        yield Backend(
            "redis", broker, engine.history, engine.presence, engine, broker_subscriptions, elapse
        )
    finally:
        await engine.close()
        await admin.aclose()


@contextlib.asynccontextmanager
async def sqlite_backend() -> AsyncIterator[Backend]:
    """The SQLite engine on a file of its own, started as the hub starts it."""
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as directory:
        backend = SqliteBackend(Path(directory) / "engine.sqlite3", "node-1", clock=clock)
        await backend.start()
        engine = backend.engine
        broker = engine.broker
        assert isinstance(broker, MemoryBroker)

        async def broker_subscriptions() -> set[str]:
            return set(broker.channels)

        async def elapse(seconds: float) -> None:
            clock.advance(seconds)

        try:
            yield Backend(
                "sqlite",
                broker,
                engine.history,
                engine.presence,
                engine,
                broker_subscriptions,
                elapse,
            )
        finally:
            await backend.stop()
            await backend.close()


BACKENDS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Backend]]] = {
    "memory": memory_backend,
    "sqlite": sqlite_backend,
    "redis": redis_backend,
}


@pytest.fixture(params=list(BACKENDS))
async def engine_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each engine backend in turn: memory, SQLite and Redis."""
    async with BACKENDS[request.param]() as backend:
        yield backend


class Recorder:
    """A Subscriber that records every (publication, subscription) it is handed."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.received: list[tuple[Publication, str]] = []
        self._arrived = asyncio.Event()

    def __repr__(self) -> str:
        return f"Recorder({self.name!r})"

    def deliver(self, publication: Publication, subscription: str) -> None:
        self.received.append((publication, subscription))
        self._arrived.set()

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[tuple[Publication, str]]:
        """At least ``count`` deliveries in total, waiting for them if needed."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received
