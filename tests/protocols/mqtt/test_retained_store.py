"""The hub's retained store, as MQTT's retain flag uses it: one suite, every store.

Every test runs over :class:`MemoryRetainedStore`, :class:`SqliteRetainedStore`
(on a started SQLite engine in the test's directory) and
:class:`RedisRetainedStore` (on a private redis-server, a key prefix per test).
Expiry is tested on a clock the test moves.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hub.engine import Publication
from hub.engine.redis.config import RedisEngineConfig
from hub.engine.redis.link import RedisLink
from hub.engine.redis.retained import RedisRetainedStore, literal_prefix
from hub.engine.retained import MemoryRetainedStore, RetainedStore
from hub.engine.sqlite.backend import SqliteBackend
from hub.engine.sqlite.stores import SqliteRetainedStore
from tests.multinode.redis_server import shared_redis_server

CHANNELS = ["a", "a/b", "a/b/c", "a/x/c", "b", "$SYS/load", "$SYS/a/b", "/lead", "a//c"]

StoreFactory = Callable[..., RetainedStore]


class Clock:
    """Seconds the test sets (wall-clock-like, as the Redis store's deadlines are)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.service)])
async def make_store(
    request: pytest.FixtureRequest, clock: Clock, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """``make_store(max_channels=..., max_bytes=..., expiry=...)``: an empty store of the
    parametrized kind, on ``clock``."""
    links: list[RedisLink] = []
    backends: list[SqliteBackend] = []

    async def make(
        max_channels: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        expiry: float | None = None,
    ) -> RetainedStore:
        if request.param == "memory":
            return MemoryRetainedStore(
                max_channels, max_bytes=max_bytes, expiry=expiry, clock=clock
            )
        if request.param == "sqlite":
            backend = SqliteBackend(tmp_path / f"engine-{len(backends)}.sqlite3")
            await backend.start()
            backends.append(backend)
            return SqliteRetainedStore(
                backend.writer, max_channels, max_bytes=max_bytes, expiry=expiry, clock=clock
            )
        # A prefix of its own: the shared server needs no flushing between tests.
        options = RedisEngineConfig(
            url=shared_redis_server().url, prefix=f"t{secrets.token_hex(4)}:"
        )
        link = RedisLink(options)
        links.append(link)
        return RedisRetainedStore(
            link, max_channels, max_bytes=max_bytes, expiry=expiry, clock=clock
        )

    yield make
    for link in links:
        await link.close()
    for backend in backends:
        await backend.stop()
        await backend.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> RetainedStore:
    """A store holding one retained publication per name in CHANNELS."""
    retained = await make_store()
    for channel in CHANNELS:
        assert await retained.set(Publication(channel, channel.encode()))
    return retained


@pytest.mark.parametrize(
    ("subscription", "expected"),
    [
        ("a/b", ["a/b"]),
        ("nothing", []),
        ("#", ["/lead", "a", "a//c", "a/b", "a/b/c", "a/x/c", "b"]),
        ("a/#", ["a", "a//c", "a/b", "a/b/c", "a/x/c"]),
        ("a/+", ["a/b"]),
        ("a/+/c", ["a//c", "a/b/c", "a/x/c"]),
        ("+", ["a", "b"]),
        ("+/+", ["/lead", "a/b"]),
        ("$SYS/#", ["$SYS/a/b", "$SYS/load"]),
        ("$SYS/+", ["$SYS/load"]),
        ("+/load", []),
    ],
)
async def test_match_follows_mqtt_wildcards(
    store: RetainedStore, subscription: str, expected: list[str]
) -> None:
    """Names and patterns find what MQTT matching finds; '$' channels hide from a first wildcard."""
    found = sorted(p.channel for p in await store.match(subscription))
    assert found == expected


async def test_set_replaces_and_delete_prunes(store: RetainedStore) -> None:
    """A second set replaces the channel's publication; delete forgets it and nothing else."""
    await store.set(Publication("a/b", b"new"))
    found = await store.get("a/b")
    assert found is not None
    assert found.data == b"new"
    assert await store.count() == len(CHANNELS)
    await store.delete("a/b")
    await store.delete("a/b")  # twice is harmless
    await store.delete("not/there")
    assert await store.get("a/b") is None
    assert await store.get("a/b/c") is not None
    assert await store.count() == len(CHANNELS) - 1


async def test_stored_copy_drops_the_fan_out_cache(make_store: StoreFactory) -> None:
    """The store keeps a copy without the live publication's encoded frames."""
    live = Publication("t", b"x", offset=7, epoch="e1", extras={"mqtt": {"qos": 1}})
    live.encoded.frame(("test", "frame"), lambda: b"big")
    store = await make_store()
    await store.set(live)
    kept = await store.get("t")
    assert kept is not None
    assert kept is not live
    assert len(kept.encoded) == 0
    assert kept.extras == {"mqtt": {"qos": 1}}
    assert (kept.data, kept.offset, kept.epoch) == (b"x", 7, "e1")


async def test_full_store_refuses_new_channels_but_replaces_known_ones(
    make_store: StoreFactory,
) -> None:
    """Past max_channels a new channel is not retained; a retained one can still change."""
    store = await make_store(max_channels=2)
    assert await store.set(Publication("a", 1))
    assert await store.set(Publication("b", 2))
    assert not await store.set(Publication("c", 3))
    assert await store.set(Publication("a", 10))
    assert await store.get("c") is None


async def test_the_store_is_bounded_in_bytes_too(make_store: StoreFactory) -> None:
    """10 x 60 KB under 200 KiB: 3 kept, the rest refused; replacing or clearing makes room.

    On Redis the bound counts the stored bodies in a counter kept by the
    scripts (issue 13: it used to bound only the count there).
    """
    store = await make_store(max_bytes=200 * 1024)
    kept = [await store.set(Publication(f"big/{i}", bytes([i]) * 60_000)) for i in range(10)]
    assert kept == [True] * 3 + [False] * 7
    assert await store.count() == 3
    # Smaller in place of a kept one: room for one more.
    assert await store.set(Publication("big/0", b"x"))
    assert await store.set(Publication("big/3", bytes([3]) * 60_000))
    assert not await store.set(Publication("big/4", bytes([4]) * 60_000))
    await store.delete("big/1")
    assert await store.set(Publication("big/4", bytes([4]) * 60_000))
    # Growing a kept one past the bound is refused, and it stays as it was.
    assert not await store.set(Publication("big/0", b"y" * 100_000))
    found = await store.get("big/0")
    assert found is not None
    assert found.data == b"x"


async def test_values_of_every_kind_come_back_as_they_went_in(make_store: StoreFactory) -> None:
    """Bytes stay bytes, JSON values stay JSON values, the publisher's extras survive."""
    store = await make_store()
    values: list[object] = [b"\x00\xff", {"t": 21.5, "ok": True}, [1, "two"], "text", None]
    for n, value in enumerate(values):
        await store.set(Publication(f"kinds/{n}", value, extras={"wamp": {"args": [n]}}))
    found = {p.channel: p for p in await store.match("kinds/#")}
    assert [found[f"kinds/{n}"].data for n in range(len(values))] == values
    assert found["kinds/1"].extras == {"wamp": {"args": [1]}}


async def test_retained_messages_expire(make_store: StoreFactory, clock: Clock) -> None:
    """With ``expiry``, a retained message is gone from get and match once its time is up;
    replacing one starts its time again (mqtt.retained_expiry, every engine)."""
    store = await make_store(expiry=10)
    await store.set(Publication("e/old", 1))
    clock.now += 6
    await store.set(Publication("e/new", 2))
    await store.set(Publication("e/again", 3))
    clock.now += 3
    await store.set(Publication("e/again", 4))  # replaced: 10 s from now
    assert sorted(p.channel for p in await store.match("e/#")) == ["e/again", "e/new", "e/old"]
    clock.now += 2  # e/old is 11 s old
    assert await store.get("e/old") is None
    assert sorted(p.channel for p in await store.match("e/#")) == ["e/again", "e/new"]
    assert [p.channel for p in await store.match("e/old")] == []
    clock.now += 6  # e/new 11 s, e/again 8 s
    assert [p.channel for p in await store.match("e/+")] == ["e/again"]
    found = await store.get("e/again")
    assert found is not None
    assert found.data == 4
    clock.now += 3
    assert await store.match("#") == []


async def test_without_expiry_nothing_expires(make_store: StoreFactory, clock: Clock) -> None:
    store = await make_store()
    await store.set(Publication("kept", 1))
    clock.now += 10 * 365 * 86400
    assert await store.get("kept") is not None


async def test_expired_messages_make_room_in_a_full_store(
    make_store: StoreFactory, clock: Clock
) -> None:
    """A store full of channels or bytes sweeps what expired before refusing a new one."""
    store = await make_store(max_channels=2, max_bytes=150_000, expiry=5)
    assert await store.set(Publication("a", b"x" * 60_000))
    assert await store.set(Publication("b", b"x" * 60_000))
    assert not await store.set(Publication("c", b"x" * 60_000))  # full, nothing expired
    clock.now += 6
    assert await store.set(Publication("c", b"x" * 60_000))
    assert await store.set(Publication("d", b"x" * 60_000))
    assert await store.count() == 2
    assert sorted(p.channel for p in await store.match("#")) == ["c", "d"]


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [("a/+/c", "a/"), ("a/#", "a"), ("#", ""), ("+/x", ""), ("$SYS/+", "$SYS/"), ("a/b", "a/b")],
)
def test_a_pattern_reads_only_names_under_its_literal_prefix(pattern: str, prefix: str) -> None:
    """The Redis store narrows a pattern's scan to the names before its first wildcard."""
    assert literal_prefix(pattern) == prefix
