"""The hub's retained store (hub/engine/retained.py), as MQTT's retain flag uses it."""

from __future__ import annotations

import pytest

from hub.engine import Publication
from hub.engine.retained import MemoryRetainedStore

CHANNELS = ["a", "a/b", "a/b/c", "a/x/c", "b", "$SYS/load", "$SYS/a/b", "/lead", "a//c"]


@pytest.fixture
async def store() -> MemoryRetainedStore:
    """A store holding one retained publication per name in CHANNELS."""
    retained = MemoryRetainedStore()
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
    store: MemoryRetainedStore, subscription: str, expected: list[str]
) -> None:
    """Names and patterns find what MQTT matching finds; '$' channels hide from a first wildcard."""
    found = sorted(p.channel for p in await store.match(subscription))
    assert found == expected


async def test_set_replaces_and_delete_prunes(store: MemoryRetainedStore) -> None:
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


async def test_stored_copy_drops_the_fan_out_cache() -> None:
    """The store keeps a copy without the live publication's encoded frames."""
    live = Publication("t", b"x", extras={"mqtt": {"qos": 1}})
    live.encoded["frame"] = b"big"
    store = MemoryRetainedStore()
    await store.set(live)
    kept = await store.get("t")
    assert kept is not None
    assert kept is not live
    assert kept.encoded == {}
    assert kept.extras == {"mqtt": {"qos": 1}}


async def test_full_store_refuses_new_channels_but_replaces_known_ones() -> None:
    """Past max_channels a new channel is not retained; a retained one can still change."""
    store = MemoryRetainedStore(max_channels=2)
    assert await store.set(Publication("a", 1))
    assert await store.set(Publication("b", 2))
    assert not await store.set(Publication("c", 3))
    assert await store.set(Publication("a", 10))
    assert await store.get("c") is None
