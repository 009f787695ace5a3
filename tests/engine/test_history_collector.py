"""Kept history is (almost) nothing for the garbage collector to walk (issue 13).

A stored publication used to be four tracked objects (the entry tuple, the
Publication, its Encodings and their bound ``get``): 10,000 streams x 100
entries made each full collection scan four million objects, ~540 ms with the
event loop held. An entry is now a tuple of atomic values, which the collector
stops tracking; only each stream's own objects remain.
"""

from __future__ import annotations

import gc

import pytest

from hub.engine import ClientInfo, HistoryOptions, MemoryHistory, Publication
from tests.engine.conftest import BACKENDS

CHANNELS = 20
PER_CHANNEL = 100
# A stream's own tracked objects: itself and its deque of entries.
PER_STREAM = 2


@pytest.mark.parametrize("name", ["memory", "sqlite"])
async def test_kept_publications_are_not_tracked_by_the_collector(name: str) -> None:
    """2,000 kept publications on 20 channels add about 40 tracked objects, not 8,000."""
    async with BACKENDS[name]() as backend:
        assert isinstance(backend.history, MemoryHistory)
        options = HistoryOptions(size=PER_CHANNEL, ttl=300.0)
        publisher = ClientInfo("c1", "alice", {"role": "admin"})
        gc.collect()
        before = len(gc.get_objects())
        for i in range(PER_CHANNEL):
            for c in range(CHANNELS):
                data = {"n": i, "tags": ["a", "b"]} if c % 2 else b"\x00raw%d" % i
                publication = Publication(f"gc/{c}", data, publisher=publisher, extras={"qos": 1})
                await backend.broker.publish(publication, options)
        del publication
        gc.collect()
        grown = len(gc.get_objects()) - before
        entries = CHANNELS * PER_CHANNEL
        assert grown < entries / 10 + PER_STREAM * CHANNELS, grown
        # What was kept reads back whole.
        result = await backend.history.read("gc/1", since=None, limit=2)
        assert [(p.offset, p.data) for p in result.publications] == [
            (99, {"n": 98, "tags": ["a", "b"]}),
            (100, {"n": 99, "tags": ["a", "b"]}),
        ]
        kept = result.publications[0]
        assert (kept.channel, kept.epoch, kept.publisher, dict(kept.extras)) == (
            "gc/1",
            result.position.epoch,
            publisher,
            {"qos": 1},
        )
        latest = await backend.history.read("gc/0", since=None, limit=1)
        assert latest.publications[0].data == b"\x00raw99"


async def test_a_payload_no_body_can_hold_takes_no_offset() -> None:
    """Refused before it is kept: the stream's offset does not move."""
    history = MemoryHistory()
    with pytest.raises(TypeError, match="cannot carry a object"):
        await history.add(Publication("odd", object()), size=10, ttl=60.0)
    assert (await history.position("odd")).offset == 0
    assert history.bytes == 0
