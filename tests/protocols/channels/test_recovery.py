"""Recovery: resubscribing with ``since`` gets exactly what was missed, or says it cannot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from hub import Hub
from hub.engine import HistoryStore, Publication, StreamPosition
from hub.engine.base import HistoryOptions
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import ChannelsPeer, PeerFactory


def since(result: dict[str, Any]) -> dict[str, Any]:
    return {"offset": result["offset"], "epoch": result["epoch"]}


async def test_recovers_exactly_the_missed_in_order(hub: Hub, channels: PeerFactory) -> None:
    """Missed publications come back in the subscribe result, in order, recovered: true."""
    reader, writer = await channels(hub), await channels(hub)
    await writer.publish("feed", "before")
    first = await reader.subscribe("feed")
    assert first["offset"] == 1
    await reader.close()
    for n in range(5):
        await writer.publish("feed", n)
    reader = await channels(hub)
    result = await reader.subscribe("feed", since=since(first))
    assert result["recovered"] is True
    assert (result["offset"], result["epoch"]) == (6, first["epoch"])
    assert result["publications"] == [
        {"channel": "feed", "data": n, "offset": n + 2, "epoch": first["epoch"]} for n in range(5)
    ]
    # Live delivery continues after the recovered ones, with nothing repeated.
    await writer.publish("feed", "live")
    [message] = await reader.messages(1)
    assert (message["data"], message["offset"]) == ("live", 7)


async def test_nothing_missed_recovers_empty(hub: Hub, channels: PeerFactory) -> None:
    """since at the current top: recovered: true with no publications."""
    reader = await channels(hub)
    await hub.publish("feed", 1)
    first = await reader.subscribe("feed")
    await reader.call("unsubscribe", {"channel": "feed"})
    result = await reader.subscribe("feed", since=since(first))
    assert (result["recovered"], result["publications"]) == (True, [])
    assert result["offset"] == 1


async def test_since_zero_of_a_fresh_channel_recovers_all(hub: Hub, channels: PeerFactory) -> None:
    """A position taken on an empty channel recovers everything published after it."""
    reader = await channels(hub)
    first = await reader.subscribe("fresh")
    assert first["offset"] == 0
    await reader.call("unsubscribe", {"channel": "fresh"})
    await hub.publish("fresh", "a")
    await hub.publish("fresh", "b")
    result = await reader.subscribe("fresh", since=since(first))
    assert result["recovered"] is True
    assert [p["data"] for p in result["publications"]] == ["a", "b"]


async def test_gap_is_not_recovered(make_hub: HubFactory, channels: PeerFactory) -> None:
    """More missed than history_size keeps: recovered: false, no publications, the top offset."""
    hub = await make_hub({"channels": {"default": {"history_size": 3}}})
    reader = await channels(hub)
    first = await reader.subscribe("feed")
    await reader.call("unsubscribe", {"channel": "feed"})
    for n in range(5):
        await hub.publish("feed", n)
    result = await reader.subscribe("feed", since=since(first))
    assert result["recovered"] is False
    assert result["publications"] == []
    assert (result["offset"], result["epoch"]) == (5, first["epoch"])
    # After a failed recovery live messages continue from the top.
    await hub.publish("feed", "live")
    [message] = await reader.messages(1)
    assert message["offset"] == 6


async def test_exactly_history_size_missed_is_recovered(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """Missing exactly history_size publications is still a full recovery."""
    hub = await make_hub({"channels": {"default": {"history_size": 3}}})
    reader = await channels(hub)
    await hub.publish("feed", 0)
    first = await reader.subscribe("feed")
    await reader.call("unsubscribe", {"channel": "feed"})
    for n in range(1, 4):
        await hub.publish("feed", n)
    result = await reader.subscribe("feed", since=since(first))
    assert result["recovered"] is True
    assert [p["offset"] for p in result["publications"]] == [2, 3, 4]


async def test_wrong_epoch_is_not_recovered(hub: Hub, channels: PeerFactory) -> None:
    """An offset from another epoch (say, before a restart): recovered: false."""
    reader = await channels(hub)
    await hub.publish("feed", 1)
    result = await reader.subscribe("feed", since={"offset": 0, "epoch": "not-this-one"})
    assert (result["recovered"], result["publications"]) == (False, [])
    assert result["epoch"] != "not-this-one"
    assert result["offset"] == 1


async def test_offset_beyond_top_is_not_recovered(hub: Hub, channels: PeerFactory) -> None:
    """An offset the channel never reached: recovered: false."""
    reader = await channels(hub)
    first = await reader.subscribe("feed")
    await reader.call("unsubscribe", {"channel": "feed"})
    result = await reader.subscribe("feed", since={"offset": 7, "epoch": first["epoch"]})
    assert (result["recovered"], result["publications"]) == (False, [])


async def test_recovery_in_a_namespace_without_history(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """history_size 0: recovered only when nothing was missed."""
    hub = await make_hub({"channels": {"namespaces": {"live": {"history_size": 0}}}})
    reader = await channels(hub)
    first = await reader.subscribe("live/feed")
    await reader.call("unsubscribe", {"channel": "live/feed"})
    same = await reader.subscribe("live/feed", since=since(first))
    assert (same["recovered"], same["publications"]) == (True, [])
    await reader.call("unsubscribe", {"channel": "live/feed"})
    await hub.publish("live/feed", "lost")
    missed = await reader.subscribe("live/feed", since=since(first))
    assert (missed["recovered"], missed["publications"]) == (False, [])
    assert missed["offset"] == 1


LAG_TURNS = 5


class LaggingBroker:
    """A Broker that hands publications over a loop turn after they were stored.

    A network broker (Redis) does the same: a publication may already be in the
    history a subscribe reads and still reach this node's fan-out afterwards.
    """

    def __init__(self, history: HistoryStore) -> None:
        self._history = history
        self._handler: Callable[[Publication], None] = lambda publication: None

    def set_handler(self, handler: Callable[[Publication], None]) -> None:
        self._handler = handler

    async def subscribe(self, channel: str) -> None:
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass

    async def publish(
        self, publication: Publication, history: HistoryOptions | None = None
    ) -> StreamPosition | None:
        position = None
        if history is not None:
            position = await self._history.add(publication, size=history.size, ttl=history.ttl)
        self._hand_over(publication, LAG_TURNS)
        return position

    def _hand_over(self, publication: Publication, turns: int) -> None:
        # Hop loop turns one by one: publications keep their order.
        if turns:
            asyncio.get_running_loop().call_soon(self._hand_over, publication, turns - 1)
        else:
            self._handler(publication)

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("broker", "presence"), [("memory", True), ("lagging", True), ("lagging", False)]
)
async def test_recovery_races_publications(
    make_hub: HubFactory, channels: PeerFactory, broker: str, presence: bool
) -> None:
    """Publishing during resubscribes: every offset is seen once, in order, none lost."""
    hub = await make_hub({"channels": {"default": {"history_size": 100_000}}})
    if broker == "lagging":
        hub.engine.broker = LaggingBroker(hub.engine.history)
        hub.engine.broker.set_handler(hub.engine.dispatch)

    # With presence, a join hook that yields makes the subscribe await after
    # reading history, so publications land while the reply is being built.
    @hub.on_join("race")
    async def yield_once(channel: str, member: Any) -> None:
        await asyncio.sleep(0)

    reader, writer = await channels(hub), await channels(hub)
    first = await reader.subscribe("race", presence=presence)
    if presence:
        await reader.notification("join")
    await reader.call("unsubscribe", {"channel": "race"})
    published: list[int] = []
    stop = asyncio.Event()

    async def publish_forever(peer: ChannelsPeer) -> None:
        # Bursts keep several publications in flight whenever a subscribe lands.
        while not stop.is_set():
            burst = await asyncio.gather(*(peer.publish("race", n) for n in range(8)))
            published.extend(sorted(result["offset"] for result in burst))

    publisher = asyncio.create_task(publish_forever(writer))
    seen: list[int] = []
    position = since(first)
    try:
        for _ in range(50):
            mark = len(reader.log)
            result = await reader.subscribe("race", since=position, presence=presence)
            assert result["recovered"] is True, result
            frames = reader.log[mark:]
            reply_at = next(i for i, m in enumerate(frames) if m.get("result") == result)
            early = [m for m in frames[:reply_at] if m.get("method") == "message"]
            assert early == [], "a live message arrived before the subscribe result"
            seen.extend(p["offset"] for p in result["publications"])
            # Wait until live delivery has caught up with what the writer has done.
            target = max(published[-1] if published else 0, result["offset"])
            while not seen or seen[-1] < target:
                params = await reader.notification()
                if "offset" in params:
                    seen.append(params["offset"])
            await reader.call("unsubscribe", {"channel": "race"})
            for params in reader.pending():
                if params.get("method") == "message":
                    seen.append(params["params"]["offset"])
            position = {"offset": seen[-1], "epoch": first["epoch"]}
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
    assert len(published) > 50
    assert seen == list(range(first["offset"] + 1, seen[-1] + 1))
