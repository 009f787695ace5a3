"""channels.v1 over real sockets: subscribe, publish, unsubscribe, patterns, RPC."""

from __future__ import annotations

import asyncio

from hub import Hub
from hub.rpc import CallContext
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import PeerFactory


async def test_subscribe_result_has_position(hub: Hub, channels: PeerFactory) -> None:
    """subscribe answers {channel, offset, epoch}: offset 0 on a fresh channel."""
    peer = await channels(hub)
    result = await peer.subscribe("chat/lobby")
    assert result["channel"] == "chat/lobby"
    assert result["offset"] == 0
    assert isinstance(result["epoch"], str)
    assert result["epoch"]
    assert "recovered" not in result


async def test_publish_returns_offsets_and_reaches_subscribers(
    hub: Hub, channels: PeerFactory
) -> None:
    """publish answers {offset, epoch}; subscribers get a message with the documented params."""
    alice, bob = await channels(hub), await channels(hub)
    subscribed = await alice.subscribe("chat/lobby")
    first = await bob.publish("chat/lobby", {"text": "hi"})
    second = await bob.publish("chat/lobby", [1, "two", None])
    assert first == {"offset": 1, "epoch": subscribed["epoch"]}
    assert second == {"offset": 2, "epoch": subscribed["epoch"]}
    assert await alice.messages(2) == [
        {"channel": "chat/lobby", "data": {"text": "hi"}, "offset": 1, "epoch": first["epoch"]},
        {"channel": "chat/lobby", "data": [1, "two", None], "offset": 2, "epoch": first["epoch"]},
    ]
    # Bob is not subscribed: nothing but his replies came to him.
    assert bob.pending() == []


async def test_publisher_subscribed_to_its_channel_gets_its_message(
    hub: Hub, channels: PeerFactory
) -> None:
    """A subscribed publisher receives its own publication like everyone else."""
    peer = await channels(hub)
    await peer.subscribe("echo")
    result = await peer.publish("echo", "me")
    [message] = await peer.messages(1)
    assert (message["data"], message["offset"]) == ("me", result["offset"])


async def test_unsubscribe_stops_delivery(hub: Hub, channels: PeerFactory) -> None:
    """After unsubscribe (result {}) no message arrives for that channel."""
    listener, publisher = await channels(hub), await channels(hub)
    await listener.subscribe("news")
    await listener.subscribe("sentinel")
    await publisher.publish("news", 1)
    assert [m["data"] for m in await listener.messages(1)] == [1]
    assert await listener.call("unsubscribe", {"channel": "news"}) == {}
    await publisher.publish("news", 2)
    await publisher.publish("sentinel", "after")
    [message] = await listener.messages(1)
    assert (message["channel"], message["data"]) == ("sentinel", "after")


async def test_pattern_subscription_delivers_with_subscription(
    hub: Hub, channels: PeerFactory
) -> None:
    """A pattern subscription gets {offset 0, epoch ""} and messages name the pattern."""
    listener, publisher = await channels(hub), await channels(hub)
    result = await listener.subscribe("sensors/+/temp")
    assert result == {"channel": "sensors/+/temp", "offset": 0, "epoch": ""}
    await publisher.publish("sensors/kitchen/temp", 21.5)
    await publisher.publish("sensors/kitchen/humidity", 40)
    await publisher.publish("sensors/hall/temp", 19)
    first, second = await listener.messages(2)
    assert first["channel"] == "sensors/kitchen/temp"
    assert first["subscription"] == "sensors/+/temp"
    assert (first["data"], first["offset"]) == (21.5, 1)
    assert first["epoch"]
    assert (second["channel"], second["data"]) == ("sensors/hall/temp", 19)
    assert await listener.quiet_for(0.05)


async def test_multi_level_pattern_matches_the_parent(hub: Hub, channels: PeerFactory) -> None:
    """'a/#' delivers publications to 'a' itself and to any depth below it."""
    listener, publisher = await channels(hub), await channels(hub)
    await listener.subscribe("home/#")
    for channel in ("home", "home/a", "home/a/b/c", "homework"):
        await publisher.publish(channel, channel)
    await publisher.publish("home/end", "end")
    received = [m["data"] for m in await listener.messages(4)]
    assert received == ["home", "home/a", "home/a/b/c", "end"]


async def test_two_patterns_matching_deliver_twice(hub: Hub, channels: PeerFactory) -> None:
    """Two subscriptions matching one channel each deliver it, named by their own pattern."""
    listener, publisher = await channels(hub), await channels(hub)
    await listener.subscribe("a/+")
    await listener.subscribe("a/#")
    await listener.subscribe("a/b")
    await publisher.publish("a/b", "x")
    received = await listener.messages(3)
    assert sorted(m.get("subscription", "") for m in received) == ["", "a/#", "a/+"]
    assert {(m["channel"], m["offset"], m["data"]) for m in received} == {("a/b", 1, "x")}
    assert await listener.quiet_for(0.05)


async def test_unsubscribe_a_pattern(hub: Hub, channels: PeerFactory) -> None:
    """Unsubscribing a pattern by its text stops it and leaves other subscriptions."""
    listener, publisher = await channels(hub), await channels(hub)
    await listener.subscribe("a/+")
    await listener.subscribe("a/#")
    await listener.call("unsubscribe", {"channel": "a/+"})
    await publisher.publish("a/b", "x")
    [message] = await listener.messages(1)
    assert message["subscription"] == "a/#"
    assert await listener.quiet_for(0.05)


async def test_hub_publish_reaches_channels_clients(hub: Hub, channels: PeerFactory) -> None:
    """hub.publish() from Python reaches exact and pattern subscribers with offsets."""
    exact, pattern = await channels(hub), await channels(hub)
    await exact.subscribe("alerts/fire")
    await pattern.subscribe("alerts/#")
    publication = await hub.publish("alerts/fire", {"level": 3})
    assert publication.offset == 1
    [message] = await exact.messages(1)
    assert message == {
        "channel": "alerts/fire",
        "data": {"level": 3},
        "offset": 1,
        "epoch": publication.epoch,
    }
    [via_pattern] = await pattern.messages(1)
    assert via_pattern["subscription"] == "alerts/#"


async def test_hub_publish_of_bytes_reaches_json_clients(hub: Hub, channels: PeerFactory) -> None:
    """Bytes holding JSON arrive decoded; other bytes arrive as the $binary envelope."""
    peer = await channels(hub)
    await peer.subscribe("raw")
    await hub.publish("raw", b'{"t": 1}')
    await hub.publish("raw", b"\x00\xff")
    first, second = await peer.messages(2)
    assert first["data"] == {"t": 1}
    assert second["data"] == {"$binary": "AP8="}


async def test_rpc_methods_work_on_a_channels_connection(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """Hub RPC methods are callable over channels.v1 next to subscriptions."""
    hub = await make_hub()

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    peer = await channels(hub)
    await peer.subscribe("x")
    assert await peer.call("math.add", {"a": 2, "b": 3}) == 5
    assert await peer.call("math.add", [4, 5]) == 9
    error = await peer.error("math.add", {"a": "two", "b": 3})
    assert error["code"] == -32602
    await hub.publish("x", "still subscribed")
    [message] = await peer.messages(1)
    assert message["data"] == "still subscribed"


async def test_rpc_method_can_publish_through_the_hub(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A method publishing with ctx.hub.publish reaches subscribers; it returns the offset."""
    hub = await make_hub()

    @hub.rpc("chat.say")
    async def say(ctx: CallContext, room: str, text: str) -> int:
        publication = await ctx.hub.publish(f"chat/{room}", {"from": ctx.session_id, "text": text})
        return publication.offset

    listener, speaker = await channels(hub), await channels(hub)
    await listener.subscribe("chat/lobby")
    assert await speaker.call("chat.say", {"room": "lobby", "text": "hello"}) == 1
    [message] = await listener.messages(1)
    assert message["data"]["text"] == "hello"
    assert message["offset"] == 1


async def test_many_subscribers_each_get_every_message(hub: Hub, channels: PeerFactory) -> None:
    """Fan-out to many subscribers delivers every publication, in order, to each."""
    peers = [await channels(hub) for _ in range(10)]
    await asyncio.gather(*(peer.subscribe("wide") for peer in peers))
    for n in range(20):
        await hub.publish("wide", n)
    for peer in peers:
        assert [m["data"] for m in await peer.messages(20)] == list(range(20))


async def test_metrics_count_every_publication_once(hub: Hub, channels: PeerFactory) -> None:
    """wshub_publications counts client and Python publications once each; deliveries per copy."""
    listener = await channels(hub)
    await listener.subscribe("counted")
    peer = await channels(hub)
    await peer.call("publish", {"channel": "counted", "data": 1})
    await hub.publish("counted", 2)
    await listener.messages(2)
    text = hub.metrics.render().decode()
    assert "wshub_publications_total 2.0" in text
    assert "wshub_deliveries_total 2.0" in text
