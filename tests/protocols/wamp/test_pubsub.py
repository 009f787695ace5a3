"""The broker with Autobahn|Python: subscribe, publish, events, options, patterns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import EventDetails, PublishOptions, SubscribeOptions

from hub import Hub
from hub.engine import Publication
from tests.protocols.wamp.conftest import (
    ALL_SERIALIZERS,
    Client,
    RawFactory,
    WampFactory,
    wait_for,
)

ACK = PublishOptions(acknowledge=True)


class Inbox:
    """Events of one subscription handler: (args, kwargs, details)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[tuple[Any, ...], dict[str, Any], EventDetails]] = (
            asyncio.Queue()
        )

    def __call__(self, *args: Any, details: EventDetails, **kwargs: Any) -> None:
        self.queue.put_nowait((args, kwargs, details))

    async def next(self) -> tuple[tuple[Any, ...], dict[str, Any], EventDetails]:
        return await wait_for(self.queue.get())

    async def nothing_for(self, seconds: float = 0.2) -> bool:
        await asyncio.sleep(seconds)
        return self.queue.empty()


async def subscribe(session: Client, topic: str, match: str = "exact") -> tuple[Inbox, Any]:
    inbox = Inbox()
    subscription = await session.subscribe(
        inbox, topic, options=SubscribeOptions(match=match, details_arg="details")
    )
    return inbox, subscription


@ALL_SERIALIZERS
async def test_publish_reaches_subscriber_untouched(
    hub: Hub, wamp: WampFactory, serializer: str
) -> None:
    """args and kwargs arrive exactly as published, bytes included."""
    subscriber = await wamp(hub, serializer)
    publisher = await wamp(hub, serializer)
    inbox, _ = await subscribe(subscriber, "com.example.topic")
    payload_args = (1, "two", [3.5, None, True], {"nested": {"deep": [1]}}, b"\x00\xffbytes")
    payload_kwargs = {"k": "v", "blob": b"\x01\x02", "n": -(2**40)}
    publication = await publisher.publish(
        "com.example.topic", *payload_args, options=ACK, **payload_kwargs
    )
    args, kwargs, details = await inbox.next()
    assert args == payload_args
    assert kwargs == payload_kwargs
    assert details.publication == publication.id
    assert details.publisher is None  # not disclosed unless asked


async def test_publish_across_serializers(hub: Hub, wamp: WampFactory) -> None:
    """A JSON publisher reaches MessagePack and CBOR subscribers, bytes as bytes."""
    inboxes = []
    for serializer in ("json", "msgpack", "cbor"):
        session = await wamp(hub, serializer)
        inboxes.append((await subscribe(session, "com.mixed"))[0])
    publisher = await wamp(hub, "json")
    await publisher.publish("com.mixed", b"raw", {"a": [1]}, options=ACK)
    for inbox in inboxes:
        args, _, _ = await inbox.next()
        assert args == (b"raw", {"a": [1]})


async def test_no_event_to_publisher_unless_asked(hub: Hub, wamp: WampFactory) -> None:
    """exclude_me defaults to true; exclude_me=false delivers to the publisher too."""
    session = await wamp(hub)
    inbox, _ = await subscribe(session, "com.self")
    await session.publish("com.self", "excluded", options=ACK)
    assert await inbox.nothing_for()
    session.publish("com.self", "included", options=PublishOptions(exclude_me=False))
    args, _, _ = await inbox.next()
    assert args == ("included",)


async def test_acknowledged_publish_gets_published(hub: Hub, wamp: WampFactory) -> None:
    """PUBLISHED carries a publication id in [1, 2^53]."""
    session = await wamp(hub)
    publication = await session.publish("com.ack", options=ACK)
    assert 1 <= publication.id <= 2**53


async def test_acknowledged_publish_to_reserved_topic(hub: Hub, wamp: WampFactory) -> None:
    """Only the router publishes under wamp.: ERROR wamp.error.invalid_uri."""
    session = await wamp(hub)
    with pytest.raises(ApplicationError) as error:
        await session.publish("wamp.mine", options=ACK)
    assert error.value.error == "wamp.error.invalid_uri"


@pytest.mark.parametrize("topic", ["com..bad", "com.bad topic", "com.#", "", "com.a/b"])
async def test_acknowledged_publish_to_invalid_topic(
    hub: Hub, raw_wamp: RawFactory, topic: str
) -> None:
    """Invalid URIs (Autobahn checks them itself, so sent raw): ERROR invalid_uri."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([16, 1, {"acknowledge": True}, topic])
    assert error[:3] == [8, 16, 1]
    assert error[4] == "wamp.error.invalid_uri"


async def test_unacknowledged_publish_error_is_silent(hub: Hub, raw_wamp: RawFactory) -> None:
    """Without acknowledge, a refused publication gets no answer at all."""
    raw = await raw_wamp(hub, join=True)
    await raw.send([16, 1, {}, "wamp.reserved"])
    assert await raw.silent_for(0.2)


async def test_repeated_subscribe_returns_same_id(hub: Hub, raw_wamp: RawFactory) -> None:
    """Subscribing twice to the same topic and match returns the same subscription id."""
    raw = await raw_wamp(hub, join=True)
    first = await raw.request([32, 1, {}, "com.twice"])
    second = await raw.request([32, 2, {}, "com.twice"])
    assert first[0] == second[0] == 33
    assert first[2] == second[2]
    prefix = await raw.request([32, 3, {"match": "prefix"}, "com.twice"])
    assert prefix[2] != first[2]


async def test_subscribers_share_one_subscription(hub: Hub, raw_wamp: RawFactory) -> None:
    """Every subscriber of a (topic, match) gets the same subscription id."""
    first = await raw_wamp(hub, join=True)
    second = await raw_wamp(hub, "msgpack", join=True)
    one = await first.request([32, 1, {}, "com.shared"])
    two = await second.request([32, 1, {}, "com.shared"])
    assert one[2] == two[2]


async def test_event_encoded_once_per_serializer(
    hub: Hub, wamp: WampFactory, raw_wamp: RawFactory
) -> None:
    """Five subscribers on two serializers: two EVENT frames are encoded, not five."""
    seen: list[Publication] = []

    @hub.on_publish("fanout/#")
    def keep(ctx: Any, publication: Publication) -> None:
        seen.append(publication)

    raws = [await raw_wamp(hub, "json" if i < 3 else "msgpack", join=True) for i in range(5)]
    for raw in raws:
        assert (await raw.request([32, 1, {}, "fanout.topic"]))[0] == 33
    publisher = await wamp(hub)
    await publisher.publish("fanout.topic", 1, options=ACK)
    frames = [await raw.recv() for raw in raws]
    assert {frame[2] for frame in frames} == {frames[0][2]}  # one publication id
    [publication] = seen
    event_frames = [
        key
        for key in publication.encoded.frame_keys()
        if isinstance(key, tuple) and len(key) == 4 and key[0] == "wamp"
    ]
    assert sorted(key[1] for key in event_frames) == ["json", "msgpack"]


async def test_unsubscribe_stops_events(hub: Hub, wamp: WampFactory) -> None:
    """After UNSUBSCRIBED no more events arrive."""
    subscriber = await wamp(hub)
    publisher = await wamp(hub)
    inbox, subscription = await subscribe(subscriber, "com.unsub")
    await subscription.unsubscribe()
    await publisher.publish("com.unsub", 1, options=ACK)
    assert await inbox.nothing_for()


async def test_unsubscribe_unknown_subscription(hub: Hub, raw_wamp: RawFactory) -> None:
    """UNSUBSCRIBE of an id we do not hold: ERROR wamp.error.no_such_subscription."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([34, 5, 424242])
    assert error[:3] == [8, 34, 5]
    assert error[4] == "wamp.error.no_such_subscription"
    # Another session's subscription is not ours to drop either.
    other = await raw_wamp(hub, join=True)
    subscribed = await other.request([32, 1, {}, "com.theirs"])
    error = await raw.request([34, 6, subscribed[2]])
    assert error[4] == "wamp.error.no_such_subscription"


async def test_one_unsubscribe_keeps_other_subscribers(hub: Hub, wamp: WampFactory) -> None:
    """A shared subscription keeps serving the sessions still on it."""
    staying = await wamp(hub)
    leaving = await wamp(hub)
    publisher = await wamp(hub)
    inbox, _ = await subscribe(staying, "com.keep")
    _, subscription = await subscribe(leaving, "com.keep")
    await subscription.unsubscribe()
    await publisher.publish("com.keep", "still", options=ACK)
    args, _, _ = await inbox.next()
    assert args == ("still",)


async def test_subscribed_comes_before_any_event(hub: Hub, raw_wamp: RawFactory) -> None:
    """While a publisher floods a topic, SUBSCRIBED still precedes every EVENT."""
    publisher = await raw_wamp(hub, "msgpack", join=True)
    subscriber = await raw_wamp(hub, join=True)

    async def flood() -> None:
        for n in range(300):
            await publisher.send([16, n + 1, {}, "com.flood", [n]])

    task = asyncio.create_task(flood())
    await asyncio.sleep(0.005)
    await subscriber.send([32, 1, {}, "com.flood"])
    first = await subscriber.recv()
    await task
    assert first[0] == 33


@pytest.mark.parametrize("topic", ["com..x", "com.x y", "#"])
async def test_subscribe_invalid_uri(hub: Hub, raw_wamp: RawFactory, topic: str) -> None:
    """SUBSCRIBE to an invalid exact topic: ERROR wamp.error.invalid_uri."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([32, 1, {}, topic])
    assert error[:3] == [8, 32, 1]
    assert error[4] == "wamp.error.invalid_uri"


async def test_subscribe_unknown_match_policy(hub: Hub, raw_wamp: RawFactory) -> None:
    """An unknown match policy: ERROR wamp.error.invalid_argument."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([32, 1, {"match": "regex"}, "com.x"])
    assert error[4] == "wamp.error.invalid_argument"


# --- advanced: patterns, exclusion, disclosure ------------------------------------------


@ALL_SERIALIZERS
async def test_prefix_subscription(hub: Hub, wamp: WampFactory, serializer: str) -> None:
    """match=prefix gets events below the prefix, with the concrete topic in details."""
    subscriber = await wamp(hub, serializer)
    publisher = await wamp(hub)
    inbox, _ = await subscribe(subscriber, "com.prefix", "prefix")
    await publisher.publish("com.prefix.a.b", 1, options=ACK)
    await publisher.publish("com.other", 2, options=ACK)
    await publisher.publish("com.prefix", 3, options=ACK)
    got = [await inbox.next(), await inbox.next()]
    assert [(args, details.topic) for args, _, details in got] == [
        ((1,), "com.prefix.a.b"),
        ((3,), "com.prefix"),
    ]
    assert await inbox.nothing_for()


async def test_wildcard_subscription(hub: Hub, wamp: WampFactory) -> None:
    """match=wildcard: empty components match exactly one component."""
    subscriber = await wamp(hub)
    publisher = await wamp(hub)
    inbox, _ = await subscribe(subscriber, "sensors..temp", "wildcard")
    await publisher.publish("sensors.kitchen.temp", 21, options=ACK)
    await publisher.publish("sensors.kitchen.humidity", 40, options=ACK)
    await publisher.publish("sensors.a.b.temp", 0, options=ACK)
    await publisher.publish("sensors.hall.temp", 19, options=ACK)
    got = [await inbox.next(), await inbox.next()]
    assert [(args[0], details.topic) for args, _, details in got] == [
        (21, "sensors.kitchen.temp"),
        (19, "sensors.hall.temp"),
    ]
    assert await inbox.nothing_for()


async def test_exact_and_pattern_subscriptions_both_deliver(hub: Hub, wamp: WampFactory) -> None:
    """One session with an exact and a prefix subscription gets the event on each."""
    subscriber = await wamp(hub)
    publisher = await wamp(hub)
    exact, _ = await subscribe(subscriber, "com.both.x")
    prefix, _ = await subscribe(subscriber, "com.both", "prefix")
    await publisher.publish("com.both.x", 1, options=ACK)
    assert (await exact.next())[0] == (1,)
    assert (await prefix.next())[0] == (1,)


async def test_exclude_and_eligible_session_lists(hub: Hub, wamp: WampFactory) -> None:
    """exclude and eligible lists of session ids filter the receivers."""
    sessions = [await wamp(hub) for _ in range(3)]
    inboxes = [(await subscribe(session, "com.lists"))[0] for session in sessions]
    ids = [session.joined.result().session for session in sessions]
    publisher = await wamp(hub)

    publisher.publish("com.lists", "a", options=PublishOptions(exclude=[ids[0]]))
    publisher.publish("com.lists", "b", options=PublishOptions(eligible=[ids[2]]))
    publisher.publish(
        "com.lists", "c", options=PublishOptions(eligible=[ids[0], ids[1]], exclude=[ids[1]])
    )
    await publisher.publish("com.lists", "end", options=PublishOptions(acknowledge=True))
    received = []
    for inbox in inboxes:
        got = []
        while True:
            args, _, _ = await inbox.next()
            if args == ("end",):
                break
            got.append(args[0])
        received.append(got)
    assert received == [["c"], ["a"], ["a", "b"]]


async def test_exclude_by_authrole(hub: Hub, wamp: WampFactory) -> None:
    """exclude_authrole and eligible_authrole filter by role."""
    subscriber = await wamp(hub)
    inbox, _ = await subscribe(subscriber, "com.roles")
    publisher = await wamp(hub)
    publisher.publish("com.roles", 1, options=PublishOptions(exclude_authrole=["anonymous"]))
    publisher.publish("com.roles", 2, options=PublishOptions(eligible_authrole=["admin"]))
    await publisher.publish(
        "com.roles", 3, options=PublishOptions(eligible_authrole=["anonymous"], acknowledge=True)
    )
    assert (await inbox.next())[0] == (3,)
    assert await inbox.nothing_for()


async def test_publisher_disclosure(hub: Hub, wamp: WampFactory, raw_wamp: RawFactory) -> None:
    """disclose_me=true puts the publisher's session id and role in the event details."""
    subscriber = await wamp(hub, "msgpack")
    inbox, _ = await subscribe(subscriber, "com.disclose")
    publisher = await raw_wamp(hub, join=True)
    await publisher.send([16, 1, {"disclose_me": True}, "com.disclose", [1]])
    await publisher.send([16, 2, {}, "com.disclose", [2]])
    (_, _, disclosed), (_, _, hidden) = await inbox.next(), await inbox.next()
    assert disclosed.publisher == publisher.session_id
    assert disclosed.publisher_authrole == "anonymous"
    assert hidden.publisher is None


async def test_router_discloses_publishers_when_configured(
    make_hub: Any, wamp: WampFactory
) -> None:
    """[wamp] disclose_publisher=true discloses every publisher (Autobahn cannot ask)."""
    hub = await make_hub({"wamp": {"disclose_publisher": True}})
    subscriber = await wamp(hub)
    inbox, _ = await subscribe(subscriber, "com.disclosed")
    publisher = await wamp(hub, "cbor")
    await publisher.publish("com.disclosed", options=ACK)
    _, _, details = await inbox.next()
    assert details.publisher == publisher.joined.result().session


async def test_bad_publish_options(hub: Hub, raw_wamp: RawFactory) -> None:
    """Options of the wrong type: ERROR wamp.error.invalid_argument."""
    raw = await raw_wamp(hub, join=True)
    for request, options in enumerate(
        [{"exclude": "all"}, {"eligible": [1.5]}, {"exclude_me": "no"}], start=1
    ):
        error = await raw.request([16, request, {"acknowledge": True, **options}, "com.x"])
        assert error[:3] == [8, 16, request]
        assert error[4] == "wamp.error.invalid_argument"


async def test_subscription_limit(make_hub: Any, raw_wamp: RawFactory) -> None:
    """channels.max_subscriptions bounds a session's subscriptions."""
    hub = await make_hub({"channels": {"max_subscriptions": 2}})
    raw = await raw_wamp(hub, join=True)
    assert (await raw.request([32, 1, {}, "com.a"]))[0] == 33
    assert (await raw.request([32, 2, {}, "com.b"]))[0] == 33
    error = await raw.request([32, 3, {}, "com.c"])
    assert error[4] == "wshub.error.limit_exceeded"
    assert (await raw.request([32, 4, {}, "com.a"]))[0] == 33  # the same one again is fine
