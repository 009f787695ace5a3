"""The memory backend's own behaviour beyond the shared contract: idle streams are forgotten."""

from __future__ import annotations

from hub.engine import MemoryHistory, Publication
from hub.engine.memory import PRUNE_INTERVAL
from tests.engine.conftest import FakeClock


async def test_prune_forgets_idle_empty_streams() -> None:
    """A stream with nothing retained and untouched for idle_ttl is dropped: a new epoch."""
    clock = FakeClock()
    history = MemoryHistory(clock=clock)
    quiet = await history.position("quiet")
    await history.add(Publication("expired", 1), size=10, ttl=1.0)
    expired = await history.position("expired")
    await history.add(Publication("kept", 1), size=10, ttl=10 * history.idle_ttl)
    kept = await history.position("kept")
    clock.advance(history.idle_ttl + 1)
    assert history.prune() == 2
    assert (await history.position("quiet")).epoch != quiet.epoch
    fresh = await history.position("expired")
    assert (fresh.offset, fresh.epoch != expired.epoch) == (0, True)
    assert await history.position("kept") == kept


async def test_touched_streams_are_not_pruned() -> None:
    """Reading a stream's position keeps it alive, so its epoch survives a sweep."""
    clock = FakeClock()
    history = MemoryHistory(clock=clock)
    first = await history.position("watched")
    clock.advance(history.idle_ttl - 1)
    assert await history.position("watched") == first
    clock.advance(history.idle_ttl - 1)
    assert history.prune() == 0
    assert await history.position("watched") == first


async def test_idle_streams_are_swept_without_an_explicit_prune() -> None:
    """Creating streams sweeps idle ones now and then: memory does not only grow."""
    clock = FakeClock()
    history = MemoryHistory(clock=clock)
    old = await history.position("old")
    clock.advance(max(history.idle_ttl, PRUNE_INTERVAL) + 1)
    await history.position("new")  # a new stream: time for a sweep
    assert (await history.position("old")).epoch != old.epoch
