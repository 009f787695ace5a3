"""The history method: latest publications, limit, since, and namespaces without history."""

from __future__ import annotations

from hub import Hub
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import PeerFactory


async def test_history_returns_everything_oldest_first(hub: Hub, channels: PeerFactory) -> None:
    """Without limit: every retained publication, oldest first, plus the top position."""
    peer = await channels(hub)
    epoch = ""
    for n in range(3):
        epoch = (await peer.publish("log", {"n": n}))["epoch"]
    result = await peer.call("history", {"channel": "log"})
    assert result == {
        "publications": [
            {"channel": "log", "data": {"n": n}, "offset": n + 1, "epoch": epoch} for n in range(3)
        ],
        "offset": 3,
        "epoch": epoch,
    }


async def test_history_limit_keeps_the_latest(hub: Hub, channels: PeerFactory) -> None:
    """limit=N gives the N latest publications, oldest first; limit 0 gives none."""
    peer = await channels(hub)
    for n in range(5):
        await hub.publish("log", n)
    result = await peer.call("history", {"channel": "log", "limit": 2})
    assert [p["data"] for p in result["publications"]] == [3, 4]
    assert result["offset"] == 5
    empty = await peer.call("history", {"channel": "log", "limit": 0})
    assert (empty["publications"], empty["offset"]) == ([], 5)


async def test_history_since(hub: Hub, channels: PeerFactory) -> None:
    """since gives what came after it and says whether that is complete."""
    peer = await channels(hub)
    for n in range(5):
        epoch = (await hub.publish("log", n)).epoch
    result = await peer.call("history", {"channel": "log", "since": {"offset": 2, "epoch": epoch}})
    assert [p["offset"] for p in result["publications"]] == [3, 4, 5]
    assert result["recovered"] is True
    wrong = await peer.call("history", {"channel": "log", "since": {"offset": 2, "epoch": "x"}})
    assert (wrong["publications"], wrong["recovered"]) == ([], False)


async def test_history_since_with_limit_pages(hub: Hub, channels: PeerFactory) -> None:
    """since plus a small limit gives the oldest missed first and recovered: false (more left)."""
    peer = await channels(hub)
    for n in range(5):
        epoch = (await hub.publish("log", n)).epoch
    page = await peer.call(
        "history", {"channel": "log", "since": {"offset": 0, "epoch": epoch}, "limit": 2}
    )
    assert [p["offset"] for p in page["publications"]] == [1, 2]
    assert page["recovered"] is False


async def test_history_of_an_unknown_channel_is_empty(hub: Hub, channels: PeerFactory) -> None:
    """A channel with no publications has empty history at offset 0."""
    peer = await channels(hub)
    result = await peer.call("history", {"channel": "nothing/here"})
    assert (result["publications"], result["offset"]) == ([], 0)


async def test_history_is_bounded_by_history_size(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A namespace's history_size bounds what history returns."""
    hub = await make_hub({"channels": {"namespaces": {"short": {"history_size": 2}}}})
    peer = await channels(hub)
    for n in range(4):
        await hub.publish("short/log", n)
        await hub.publish("long/log", n)
    short = await peer.call("history", {"channel": "short/log"})
    assert [p["data"] for p in short["publications"]] == [2, 3]
    long = await peer.call("history", {"channel": "long/log"})
    assert [p["data"] for p in long["publications"]] == [0, 1, 2, 3]


async def test_history_off_is_refused(make_hub: HubFactory, channels: PeerFactory) -> None:
    """history_size 0 turns history off: -32014, and the connection stays usable."""
    hub = await make_hub({"channels": {"namespaces": {"live": {"history_size": 0}}}})
    peer = await channels(hub)
    await peer.publish("live/ticker", 1)
    error = await peer.error("history", {"channel": "live/ticker"})
    assert error["code"] == -32014
    assert "history" in error["message"]
    assert (await peer.call("history", {"channel": "other"}))["offset"] == 0


async def test_history_from_python(hub: Hub) -> None:
    """hub.history() returns the same publications a client would see."""
    for n in range(3):
        await hub.publish("log", n)
    result = await hub.history("log", limit=2)
    assert [p.data for p in result.publications] == [1, 2]
    assert result.position.offset == 3


async def test_a_history_reply_is_sized_by_the_publications_it_carries(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """Room for exactly three publications as the reply encodes them: three, truncated.

    A subscriber is on the channel, so each publication was also encoded as a
    notification frame (larger): the reply is sized by what it carries, not that.
    """
    text = "x" * 1000
    one = len(f'{{"channel":"log","data":"{text}","offset":1,"epoch":"01234567"}}')
    hub = await make_hub({"channels": {"max_history_reply_bytes": 3 * one}})
    subscriber = await channels(hub)
    await subscriber.subscribe("log")
    for _ in range(9):
        await subscriber.publish("log", text)
    result = await subscriber.call("history", {"channel": "log"})
    assert [p["offset"] for p in result["publications"]] == [7, 8, 9]
    assert result["truncated"] is True
    since = {"offset": 0, "epoch": result["epoch"]}
    page = await subscriber.call("history", {"channel": "log", "since": since})
    assert ([p["offset"] for p in page["publications"]], page["recovered"]) == ([1, 2, 3], False)
