"""The Broker / HistoryStore / PresenceStore contract and ChannelEngine behaviour.

One suite for every backend: each test takes ``engine_backend`` (see conftest.py),
so a new backend passes exactly the same checks as the memory one.
"""

from __future__ import annotations

import logging

import pytest

from hub.engine import ClientInfo, Kind, Publication, StreamPosition
from hub.engine.base import RemovableHistory
from tests.engine.conftest import Backend, Recorder

SIZE = 100
TTL = 300.0


async def add(backend: Backend, channel: str, data: object = None, **options: float) -> int:
    """Append one publication to the history store; its offset."""
    size = int(options.get("size", SIZE))
    ttl = options.get("ttl", TTL)
    publication = Publication(channel, data)
    position = await backend.history.add(publication, size=size, ttl=ttl)
    assert (publication.offset, publication.epoch) == (position.offset, position.epoch)
    return position.offset


async def publish(backend: Backend, channel: str, data: object = None) -> Publication:
    publication = Publication(channel, data)
    await backend.engine.publish(publication, history_size=SIZE, history_ttl=TTL)
    return publication


def offsets(publications: list[Publication]) -> list[int]:
    return [p.offset for p in publications]


# -- history ------------------------------------------------------------------


async def test_offsets_count_from_one_per_channel(engine_backend: Backend) -> None:
    """Each channel numbers its publications 1, 2, 3... independently of others."""
    a, b = engine_backend.channel(), engine_backend.channel()
    assert [await add(engine_backend, a) for _ in range(3)] == [1, 2, 3]
    assert [await add(engine_backend, b) for _ in range(2)] == [1, 2]
    assert (await engine_backend.history.position(a)).offset == 3
    assert (await engine_backend.history.position(b)).offset == 2


async def test_epoch_is_stable_and_per_channel(engine_backend: Backend) -> None:
    """A channel keeps one epoch from its first position() through later publications."""
    history = engine_backend.history
    channel = engine_backend.channel()
    before = await history.position(channel)
    assert before.offset == 0
    assert before.epoch
    await add(engine_backend, channel)
    await add(engine_backend, channel)
    after = await history.position(channel)
    assert after == StreamPosition(2, before.epoch)
    result = await history.read(channel, since=None, limit=None)
    assert {p.epoch for p in result.publications} == {before.epoch}
    other = await history.position(engine_backend.channel())
    assert other.epoch != before.epoch


async def test_read_returns_retained_oldest_first(engine_backend: Backend) -> None:
    """read() without since gives the retained publications in order, with their data."""
    channel = engine_backend.channel()
    for n in range(5):
        await add(engine_backend, channel, {"n": n})
    result = await engine_backend.history.read(channel, since=None, limit=None)
    assert result.complete
    assert offsets(result.publications) == [1, 2, 3, 4, 5]
    assert [p.data for p in result.publications] == [{"n": n} for n in range(5)]
    assert all(p.channel == channel for p in result.publications)
    assert result.position.offset == 5


async def test_read_limit_keeps_the_latest(engine_backend: Backend) -> None:
    """limit=N without since gives the N latest publications, oldest first; 0 gives none."""
    channel = engine_backend.channel()
    for _ in range(5):
        await add(engine_backend, channel)
    history = engine_backend.history
    assert offsets((await history.read(channel, since=None, limit=2)).publications) == [4, 5]
    assert offsets((await history.read(channel, since=None, limit=9)).publications) == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert (await history.read(channel, since=None, limit=0)).publications == []


async def test_history_is_bounded_by_size(engine_backend: Backend) -> None:
    """Only the last ``size`` publications are kept; the offset keeps counting."""
    channel = engine_backend.channel()
    for _ in range(5):
        await add(engine_backend, channel, size=3)
    result = await engine_backend.history.read(channel, since=None, limit=None)
    assert offsets(result.publications) == [3, 4, 5]
    assert result.position.offset == 5


async def test_history_size_zero_keeps_nothing_but_counts(engine_backend: Backend) -> None:
    """With size 0 offsets still advance, nothing is retained."""
    channel = engine_backend.channel()
    assert [await add(engine_backend, channel, size=0) for _ in range(3)] == [1, 2, 3]
    result = await engine_backend.history.read(channel, since=None, limit=None)
    assert result.publications == []
    assert result.position.offset == 3


async def test_history_remove_keeps_the_position(engine_backend: Backend) -> None:
    """remove (server API history_remove) forgets the publications; offset and epoch stay."""
    history = engine_backend.history
    assert isinstance(history, RemovableHistory)
    channel = engine_backend.channel()
    for _ in range(3):
        await add(engine_backend, channel)
    before = await history.position(channel)
    await history.remove(channel)
    result = await history.read(channel, since=None, limit=None)
    assert result.publications == []
    assert result.position == before
    gap = await history.read(channel, since=StreamPosition(1, before.epoch), limit=None)
    assert gap.complete is False
    assert await add(engine_backend, channel) == 4


async def test_history_is_bounded_by_ttl(engine_backend: Backend) -> None:
    """Publications older than their TTL are dropped; the offset and epoch stay."""
    channel = engine_backend.channel()
    history = engine_backend.history
    await add(engine_backend, channel, ttl=1.0)
    await add(engine_backend, channel, ttl=1.0)
    epoch = (await history.position(channel)).epoch
    await engine_backend.elapse(1.5)
    await add(engine_backend, channel, ttl=1.0)
    assert offsets((await history.read(channel, since=None, limit=None)).publications) == [3]
    await engine_backend.elapse(1.5)
    result = await history.read(channel, since=None, limit=None)
    assert result.publications == []
    assert result.position == StreamPosition(3, epoch)


async def test_read_since_returns_exactly_the_missed(engine_backend: Backend) -> None:
    """since=(k, epoch) gives publications k+1..top, in order, complete."""
    channel = engine_backend.channel()
    for n in range(6):
        await add(engine_backend, channel, n)
    epoch = (await engine_backend.history.position(channel)).epoch
    result = await engine_backend.history.read(channel, since=StreamPosition(2, epoch), limit=None)
    assert result.complete
    assert offsets(result.publications) == [3, 4, 5, 6]
    assert [p.data for p in result.publications] == [2, 3, 4, 5]
    assert result.position == StreamPosition(6, epoch)


async def test_read_since_top_is_empty_and_complete(engine_backend: Backend) -> None:
    """Nothing missed: since the top offset gives no publications, complete."""
    channel = engine_backend.channel()
    for _ in range(3):
        await add(engine_backend, channel)
    top = await engine_backend.history.position(channel)
    result = await engine_backend.history.read(channel, since=top, limit=None)
    assert result.complete
    assert result.publications == []
    assert result.position == top


async def test_read_since_zero_of_a_fresh_channel_is_complete(engine_backend: Backend) -> None:
    """A position taken before the first publication recovers everything after it."""
    channel = engine_backend.channel()
    start = await engine_backend.history.position(channel)
    empty = await engine_backend.history.read(channel, since=start, limit=None)
    assert (empty.complete, empty.publications) == (True, [])
    await add(engine_backend, channel)
    await add(engine_backend, channel)
    result = await engine_backend.history.read(channel, since=start, limit=None)
    assert result.complete
    assert offsets(result.publications) == [1, 2]


async def test_read_since_across_a_gap_is_incomplete(engine_backend: Backend) -> None:
    """When a missed publication was already dropped, read(since) is incomplete and empty."""
    channel = engine_backend.channel()
    for _ in range(5):
        await add(engine_backend, channel, size=3)
    epoch = (await engine_backend.history.position(channel)).epoch
    history = engine_backend.history
    gap = await history.read(channel, since=StreamPosition(1, epoch), limit=None)
    assert (gap.complete, gap.publications) == (False, [])
    assert gap.position == StreamPosition(5, epoch)
    # Offset 2 is the last one the client saw: 3..5 are all still retained.
    edge = await history.read(channel, since=StreamPosition(2, epoch), limit=None)
    assert edge.complete
    assert offsets(edge.publications) == [3, 4, 5]


async def test_read_since_after_ttl_expiry_is_incomplete(engine_backend: Backend) -> None:
    """Missed publications that expired make the read incomplete; at the top it is complete."""
    channel = engine_backend.channel()
    await add(engine_backend, channel, ttl=1.0)
    await add(engine_backend, channel, ttl=1.0)
    top = await engine_backend.history.position(channel)
    await engine_backend.elapse(1.5)
    history = engine_backend.history
    expired = await history.read(channel, since=StreamPosition(1, top.epoch), limit=None)
    assert (expired.complete, expired.publications) == (False, [])
    current = await history.read(channel, since=top, limit=None)
    assert (current.complete, current.publications) == (True, [])


async def test_read_since_other_epoch_is_incomplete(engine_backend: Backend) -> None:
    """An offset from another epoch can never be recovered."""
    channel = engine_backend.channel()
    for _ in range(3):
        await add(engine_backend, channel)
    result = await engine_backend.history.read(
        channel, since=StreamPosition(1, "another-epoch"), limit=None
    )
    assert (result.complete, result.publications) == (False, [])
    assert result.position.offset == 3


async def test_read_since_beyond_top_is_incomplete(engine_backend: Backend) -> None:
    """An offset the channel never reached (a client from the future) is not recovered."""
    channel = engine_backend.channel()
    for _ in range(3):
        await add(engine_backend, channel)
    epoch = (await engine_backend.history.position(channel)).epoch
    result = await engine_backend.history.read(channel, since=StreamPosition(4, epoch), limit=None)
    assert (result.complete, result.publications) == (False, [])


async def test_read_since_with_a_small_limit_is_incomplete(engine_backend: Backend) -> None:
    """since plus a limit below the missed count gives the oldest ``limit``, incomplete."""
    channel = engine_backend.channel()
    for _ in range(6):
        await add(engine_backend, channel)
    epoch = (await engine_backend.history.position(channel)).epoch
    result = await engine_backend.history.read(channel, since=StreamPosition(1, epoch), limit=2)
    assert not result.complete
    assert offsets(result.publications) == [2, 3]


# -- presence -----------------------------------------------------------------


async def test_presence_add_reports_first_connection_per_user(engine_backend: Backend) -> None:
    """add() is True for a user's first connection in a channel only."""
    presence = engine_backend.presence
    channel = engine_backend.channel()
    assert await presence.add(channel, ClientInfo("c1", "ada", {"tab": 1})) is True
    assert await presence.add(channel, ClientInfo("c2", "ada", {"tab": 2})) is False
    assert await presence.add(channel, ClientInfo("c3", "bob")) is True
    # The same user in another channel is a first there.
    assert await presence.add(engine_backend.channel(), ClientInfo("c1", "ada")) is True
    members = await presence.members(channel)
    assert members == {
        "c1": ClientInfo("c1", "ada", {"tab": 1}),
        "c2": ClientInfo("c2", "ada", {"tab": 2}),
        "c3": ClientInfo("c3", "bob"),
    }


async def test_presence_remove_reports_last_connection_per_user(engine_backend: Backend) -> None:
    """remove() returns the member only when the user's last connection leaves."""
    presence = engine_backend.presence
    channel = engine_backend.channel()
    await presence.add(channel, ClientInfo("c1", "ada"))
    await presence.add(channel, ClientInfo("c2", "ada"))
    assert await presence.remove(channel, "c1") is None
    assert list(await presence.members(channel)) == ["c2"]
    assert await presence.remove(channel, "c2") == ClientInfo("c2", "ada")
    assert await presence.members(channel) == {}
    # The user can come back: a first connection again.
    assert await presence.add(channel, ClientInfo("c3", "ada")) is True


async def test_presence_readding_a_client_is_not_a_join(engine_backend: Backend) -> None:
    """Adding a connection already present updates its info without a second join."""
    presence = engine_backend.presence
    channel = engine_backend.channel()
    assert await presence.add(channel, ClientInfo("c1", "ada", "old")) is True
    assert await presence.add(channel, ClientInfo("c1", "ada", "new")) is False
    assert await presence.members(channel) == {"c1": ClientInfo("c1", "ada", "new")}
    assert await presence.remove(channel, "c1") == ClientInfo("c1", "ada", "new")


async def test_presence_remove_unknown_is_none(engine_backend: Backend) -> None:
    """Removing a connection that is not there (or from an empty channel) returns None."""
    presence = engine_backend.presence
    channel = engine_backend.channel()
    assert await presence.remove(channel, "nobody") is None
    await presence.add(channel, ClientInfo("c1", "ada"))
    assert await presence.remove(channel, "nobody") is None
    assert list(await presence.members(channel)) == ["c1"]


# -- node-level broker subscriptions ---------------------------------------------


@pytest.mark.parametrize("kind", ["channel", "pattern"])
async def test_broker_is_subscribed_by_first_and_left_by_last(
    engine_backend: Backend, kind: str
) -> None:
    """The first local subscriber subscribes the node to the broker, the last unsubscribes."""
    engine = engine_backend.engine
    name = engine_backend.channel("room") + ("/#" if kind == "pattern" else "")
    first, second = Recorder("first"), Recorder("second")
    assert name not in await engine_backend.broker_subscriptions()
    await engine.subscribe(first, name)
    assert name in await engine_backend.broker_subscriptions()
    await engine.subscribe(second, name)
    await engine.unsubscribe(first, name)
    assert name in await engine_backend.broker_subscriptions()
    await engine.unsubscribe(second, name)
    assert name not in await engine_backend.broker_subscriptions()
    assert engine.local_subscription_count() == 0


async def test_unsubscribe_of_a_stranger_changes_nothing(engine_backend: Backend) -> None:
    """Unsubscribing a subscriber that is not subscribed keeps the others and the broker."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    member, stranger = Recorder("member"), Recorder("stranger")
    await engine.subscribe(member, channel)
    await engine.unsubscribe(stranger, channel)
    await engine.unsubscribe(stranger, engine_backend.channel("never"))
    assert channel in await engine_backend.broker_subscriptions()
    await publish(engine_backend, channel, "still here")
    assert [p.data for p, _ in await member.wait_for(1)] == ["still here"]


async def test_subscribing_twice_delivers_once(engine_backend: Backend) -> None:
    """A subscriber is a set member: subscribing twice is one subscription."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    recorder = Recorder()
    await engine.subscribe(recorder, channel)
    await engine.subscribe(recorder, channel)
    await publish(engine_backend, channel, 1)
    await recorder.wait_for(1)
    await engine.unsubscribe(recorder, channel)
    assert channel not in await engine_backend.broker_subscriptions()
    other = Recorder("other")
    await engine.subscribe(other, channel)
    await publish(engine_backend, channel, 2)
    await other.wait_for(1)
    assert [p.data for p, _ in recorder.received] == [1]


# -- dispatch -------------------------------------------------------------------


async def test_publish_reaches_exact_and_pattern_subscribers(engine_backend: Backend) -> None:
    """A publication reaches the channel's subscribers and every matching pattern's."""
    engine = engine_backend.engine
    channel = engine_backend.channel("sensors/kitchen")
    exact, plus, multi, elsewhere = (Recorder(n) for n in ("exact", "plus", "multi", "else"))
    await engine.subscribe(exact, channel)
    await engine.subscribe(plus, engine_backend.channel("sensors/+"))
    await engine.subscribe(multi, engine_backend.prefix + "/#")
    await engine.subscribe(elsewhere, engine_backend.channel("sensors/hall"))
    publication = await publish(engine_backend, channel, {"t": 21})
    assert publication.offset == 1
    assert publication.origin == engine.node_id

    for recorder, subscription in [
        (exact, channel),
        (plus, engine_backend.channel("sensors/+")),
        (multi, engine_backend.prefix + "/#"),
    ]:
        [(received, via)] = await recorder.wait_for(1)
        assert via == subscription
        assert (received.channel, received.data, received.offset) == (channel, {"t": 21}, 1)
        assert received.kind is Kind.MESSAGE
    # A later publication on the other channel proves the first one never went there.
    await publish(engine_backend, engine_backend.channel("sensors/hall"), "hall")
    [(received, _)] = await elsewhere.wait_for(1)
    assert received.data == "hall"


async def test_one_subscriber_on_two_matching_subscriptions_gets_two(
    engine_backend: Backend,
) -> None:
    """A subscriber on a channel and on a pattern covering it is handed the publication twice."""
    engine = engine_backend.engine
    channel = engine_backend.channel("a")
    recorder = Recorder()
    await engine.subscribe(recorder, channel)
    await engine.subscribe(recorder, engine_backend.prefix + "/+")
    await publish(engine_backend, channel, "x")
    received = await recorder.wait_for(2)
    assert sorted(via for _, via in received) == sorted([channel, engine_backend.prefix + "/+"])
    assert {p.offset for p, _ in received} == {1}


async def test_publications_arrive_in_offset_order(engine_backend: Backend) -> None:
    """Many publications on one channel reach a subscriber in offset order."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    recorder = Recorder()
    await engine.subscribe(recorder, channel)
    for n in range(50):
        await publish(engine_backend, channel, n)
    received = await recorder.wait_for(50)
    assert [p.offset for p, _ in received] == list(range(1, 51))
    assert [p.data for p, _ in received] == list(range(50))


async def test_unsubscribed_subscriber_gets_nothing_more(engine_backend: Backend) -> None:
    """After unsubscribe a subscriber is not handed later publications."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    leaving, staying = Recorder("leaving"), Recorder("staying")
    await engine.subscribe(leaving, channel)
    await engine.subscribe(staying, channel)
    await publish(engine_backend, channel, 1)
    await leaving.wait_for(1)
    await engine.unsubscribe(leaving, channel)
    await publish(engine_backend, channel, 2)
    await staying.wait_for(2)
    assert [p.data for p, _ in leaving.received] == [1]


async def test_a_failing_subscriber_does_not_stop_the_fan_out(
    engine_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """One subscriber raising in deliver() is logged and does not starve the others."""

    class Broken:
        def deliver(self, publication: Publication, subscription: str) -> None:
            raise RuntimeError("broken subscriber")

    engine = engine_backend.engine
    channel = engine_backend.channel()
    before, after = Recorder("before"), Recorder("after")
    await engine.subscribe(before, channel)
    await engine.subscribe(Broken(), channel)
    await engine.subscribe(after, channel)
    await engine.subscribe(Broken(), engine_backend.prefix + "/#")
    with caplog.at_level(logging.ERROR, logger="hub.engine.core"):
        await publish(engine_backend, channel, "x")
        await before.wait_for(1)
        await after.wait_for(1)
    assert "broken subscriber" in caplog.text


# -- presence events --------------------------------------------------------------


async def test_join_and_leave_are_announced_per_user(engine_backend: Backend) -> None:
    """Join is announced for a user's first connection, leave for its last, as {user, info}."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    recorder = Recorder()
    await engine.subscribe(recorder, channel)
    assert await engine.join(channel, ClientInfo("c1", "ada", {"n": 1}), announce=True)
    assert not await engine.join(channel, ClientInfo("c2", "ada", {"n": 2}), announce=True)
    assert await engine.leave(channel, "c1", announce=True) is None
    last = await engine.leave(channel, "c2", announce=True)
    assert last == ClientInfo("c2", "ada", {"n": 2})
    received = await recorder.wait_for(2)
    assert [(p.kind, p.data, via) for p, via in received] == [
        (Kind.JOIN, {"user": "ada", "info": {"n": 1}}, channel),
        (Kind.LEAVE, {"user": "ada", "info": {"n": 2}}, channel),
    ]
    assert all(p.channel == channel for p, _ in received)


async def test_join_and_leave_unannounced_send_nothing(engine_backend: Backend) -> None:
    """With announce=False presence changes but no event is published."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    recorder = Recorder()
    await engine.subscribe(recorder, channel)
    assert await engine.join(channel, ClientInfo("c1", "ada"), announce=False)
    assert list(await engine.members(channel)) == ["c1"]
    assert await engine.leave(channel, "c1", announce=False) == ClientInfo("c1", "ada")
    await publish(engine_backend, channel, "sentinel")
    [(received, _)] = await recorder.wait_for(1)
    assert received.data == "sentinel"


async def test_join_and_leave_skip_pattern_subscribers(engine_backend: Backend) -> None:
    """Presence events go to the channel's own subscribers, never through a pattern."""
    engine = engine_backend.engine
    channel = engine_backend.channel("room")
    pattern = Recorder("pattern")
    exact = Recorder("exact")
    await engine.subscribe(pattern, engine_backend.prefix + "/#")
    await engine.subscribe(exact, channel)
    await engine.join(channel, ClientInfo("c1", "ada"), announce=True)
    await engine.leave(channel, "c1", announce=True)
    await publish(engine_backend, channel, "sentinel")
    await exact.wait_for(3)
    [(received, _)] = await pattern.wait_for(1)
    assert (received.kind, received.data) == (Kind.MESSAGE, "sentinel")
    assert [p.kind for p, _ in exact.received] == [Kind.JOIN, Kind.LEAVE, Kind.MESSAGE]


async def test_presence_events_do_not_take_offsets(engine_backend: Backend) -> None:
    """Join/leave are not history: the next message still gets the next offset."""
    engine = engine_backend.engine
    channel = engine_backend.channel()
    await publish(engine_backend, channel, 1)
    await engine.join(channel, ClientInfo("c1", "ada"), announce=True)
    await engine.leave(channel, "c1", announce=True)
    second = await publish(engine_backend, channel, 2)
    assert second.offset == 2
    history = await engine.read_history(channel)
    assert [p.kind for p in history.publications] == [Kind.MESSAGE, Kind.MESSAGE]


async def test_delivery_count_is_reported(engine_backend: Backend) -> None:
    """on_delivered is told how many subscribers a dispatch reached."""
    engine = engine_backend.engine
    counts: list[int] = []
    engine.on_delivered = counts.append
    channel = engine_backend.channel("x")
    recorders = [Recorder(str(n)) for n in range(3)]
    await engine.subscribe(recorders[0], channel)
    await engine.subscribe(recorders[1], channel)
    await engine.subscribe(recorders[2], engine_backend.prefix + "/+")
    await publish(engine_backend, channel)
    for recorder in recorders:
        await recorder.wait_for(1)
    assert sum(counts) == 3
