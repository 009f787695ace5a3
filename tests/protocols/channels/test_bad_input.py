"""Bad input on channels.v1: a specific JSON-RPC error each time, and the connection stays up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub import Hub
from hub.rpc import CallContext
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import ChannelsPeer, PeerFactory

LONG = "x" * 256


async def still_works(hub: Hub, peer: ChannelsPeer) -> None:
    """The connection answers requests and delivers messages after an error."""
    channel = f"alive/{id(peer)}/{len(peer.log)}"
    await peer.subscribe(channel)
    await hub.publish(channel, "ok")
    [message] = await peer.messages(1)
    assert message["data"] == "ok"
    await peer.call("unsubscribe", {"channel": channel})


CASES: list[tuple[str, str, Any, int]] = [
    ("unknown method", "no.such.method", {"x": 1}, -32601),
    ("unknown channel op", "channels.delete", {"channel": "a"}, -32601),
    ("params not an object", "subscribe", ["a"], -32602),
    ("params missing", "publish", None, -32602),
    ("channel not a string", "subscribe", {"channel": 5}, -32602),
    ("channel missing", "subscribe", {"presence": True}, -32602),
    ("unknown param", "subscribe", {"channel": "a", "bogus": 1}, -32602),
    (
        "negative since",
        "subscribe",
        {"channel": "a", "since": {"offset": -1, "epoch": "e"}},
        -32602,
    ),
    ("since without epoch", "subscribe", {"channel": "a", "since": {"offset": 1}}, -32602),
    ("negative limit", "history", {"channel": "a", "limit": -1}, -32602),
    ("presence not a bool", "subscribe", {"channel": "a", "presence": "maybe"}, -32602),
    ("presence as a truthy string", "subscribe", {"channel": "a", "presence": "yes"}, -32602),
    (
        "offset as a string",
        "subscribe",
        {"channel": "a", "since": {"offset": "1", "epoch": "e"}},
        -32602,
    ),
    ("'#' not last", "subscribe", {"channel": "a/#/b"}, -32010),
    ("'+' inside a level", "subscribe", {"channel": "a+/b"}, -32010),
    ("empty channel", "subscribe", {"channel": ""}, -32010),
    ("empty publish channel", "publish", {"channel": "", "data": 1}, -32010),
    ("channel too long", "subscribe", {"channel": LONG}, -32010),
    ("publish channel too long", "publish", {"channel": LONG, "data": 1}, -32010),
    ("channel with NUL", "publish", {"channel": "a\x00b", "data": 1}, -32010),
    ("publish to a pattern", "publish", {"channel": "a/+", "data": 1}, -32010),
    ("publish to '#'", "publish", {"channel": "#", "data": 1}, -32010),
    ("history of a pattern", "history", {"channel": "a/#"}, -32010),
    ("presence of a pattern", "presence", {"channel": "+"}, -32010),
    ("unsubscribe not subscribed", "unsubscribe", {"channel": "never"}, -32012),
]


@pytest.mark.parametrize(
    ("method", "params", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_request_gets_a_specific_error(
    hub: Hub, channels: PeerFactory, method: str, params: Any, code: int
) -> None:
    """Each malformed or forbidden request answers its documented code; the socket lives on."""
    peer = await channels(hub)
    error = await peer.error(method, params)
    assert error["code"] == code, error
    assert error["message"]
    await still_works(hub, peer)


async def test_invalid_params_carry_detail(hub: Hub, channels: PeerFactory) -> None:
    """-32602 names the offending field and what is wrong with it."""
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": 5, "bogus": True})
    assert error["message"] == "Invalid params"
    problems = {tuple(d["loc"]): d["type"] for d in error["data"]}
    assert problems == {("channel",): "string_type", ("bogus",): "extra_forbidden"}
    error = await peer.error("subscribe", ["a"])
    assert error["data"] == "params must be an object"


async def test_unknown_method_names_it(hub: Hub, channels: PeerFactory) -> None:
    """-32601 says which method was not found."""
    peer = await channels(hub)
    error = await peer.error("subscribe_all", {})
    assert error == {
        "code": -32601,
        "message": "Method not found",
        "data": {"method": "subscribe_all"},
    }


async def test_invalid_pattern_message_explains(hub: Hub, channels: PeerFactory) -> None:
    """-32010 says what is wrong with the name."""
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "a/#/b"})
    assert "'#' must be a whole last level" in error["message"]
    error = await peer.error("publish", {"channel": "a/+", "data": 1})
    assert "wildcard" in error["message"]


async def test_channel_length_limit_is_configurable(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """channels.max_channel_length bounds names: at the limit passes, one more is -32010."""
    hub = await make_hub({"channels": {"max_channel_length": 8}})
    peer = await channels(hub)
    assert (await peer.publish("a" * 8, 1))["offset"] == 1
    error = await peer.error("publish", {"channel": "a" * 9, "data": 1})
    assert (error["code"], "longer than 8" in error["message"]) == (-32010, True)


async def test_already_subscribed(hub: Hub, channels: PeerFactory) -> None:
    """Subscribing twice to one channel or pattern answers -32013; the first stays."""
    peer = await channels(hub)
    await peer.subscribe("a")
    await peer.subscribe("b/#")
    assert (await peer.error("subscribe", {"channel": "a"}))["code"] == -32013
    assert (await peer.error("subscribe", {"channel": "b/#"}))["code"] == -32013
    await hub.publish("a", "once")
    [message] = await peer.messages(1)
    assert message["data"] == "once"
    assert await peer.quiet_for(0.05)


async def test_unsubscribe_twice(hub: Hub, channels: PeerFactory) -> None:
    """The second unsubscribe of a channel answers -32012."""
    peer = await channels(hub)
    await peer.subscribe("a")
    assert await peer.call("unsubscribe", {"channel": "a"}) == {}
    assert (await peer.error("unsubscribe", {"channel": "a"}))["code"] == -32012
    await still_works(hub, peer)


async def test_too_many_subscriptions(make_hub: HubFactory, channels: PeerFactory) -> None:
    """Past channels.max_subscriptions a subscribe answers -32016; unsubscribing frees a slot."""
    hub = await make_hub({"channels": {"max_subscriptions": 2}})
    peer = await channels(hub)
    await peer.subscribe("a")
    await peer.subscribe("b/#")
    error = await peer.error("subscribe", {"channel": "c"})
    assert error["code"] == -32016
    assert "2" in error["message"]
    await peer.call("unsubscribe", {"channel": "a"})
    await peer.subscribe("c")
    await hub.publish("c", "in")
    [message] = await peer.messages(1)
    assert message["data"] == "in"
    # The limit is per connection.
    other = await channels(hub)
    await other.subscribe("a")
    await other.subscribe("b")


async def test_not_json_and_binary_frames(hub: Hub, channels: PeerFactory) -> None:
    """Invalid JSON answers -32700, a binary frame -32600; the connection stays up."""
    peer = await channels(hub)
    await peer.ws.send("{not json")
    parse_error = await peer.next_unsolicited()
    await peer.ws.send(b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}')
    binary_error = await peer.next_unsolicited()
    # Neither could be matched to a request: both answer with id null.
    assert (parse_error["id"], parse_error["error"]["code"]) == (None, -32700)
    assert (binary_error["id"], binary_error["error"]["code"]) == (None, -32600)
    assert "text frames" in binary_error["error"]["data"]
    await still_works(hub, peer)


async def test_many_errors_on_one_connection(hub: Hub, channels: PeerFactory) -> None:
    """Every bad request in a row on one connection is answered; the connection still works."""
    peer = await channels(hub)
    await peer.subscribe("held")
    for _, method, params, code in CASES:
        assert (await peer.error(method, params))["code"] == code
    await hub.publish("held", "after the errors")
    [message] = await peer.messages(1)
    assert message["data"] == "after the errors"


# -- requests pipelined while a subscribe is still being authorized ----------------


async def slow_authorizing_hub(make_hub: HubFactory, **channels_config: Any) -> Hub:
    hub = await make_hub({"channels": channels_config})

    @hub.on_subscribe("#")
    async def think(ctx: CallContext, channel: str) -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    return hub


async def test_pipelined_duplicate_subscribe(make_hub: HubFactory, channels: PeerFactory) -> None:
    """Two subscribes to one channel sent at once: one result, one -32013, one delivery."""
    hub = await slow_authorizing_hub(make_hub)
    peer = await channels(hub)
    replies = await asyncio.gather(
        peer.start("subscribe", {"channel": "dup"}), peer.start("subscribe", {"channel": "dup"})
    )
    assert sorted("result" in r for r in replies) == [False, True], replies
    [error] = [r["error"] for r in replies if "error" in r]
    assert error["code"] == -32013
    await hub.publish("dup", 1)
    [message] = await peer.messages(1)
    assert message["data"] == 1
    await peer.call("unsubscribe", {"channel": "dup"})
    await hub.publish("dup", 2)
    await still_works(hub, peer)
    assert peer.pending() == []


async def test_pipelined_subscribes_respect_the_limit(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """Subscribes sent at once never exceed max_subscriptions."""
    hub = await slow_authorizing_hub(make_hub, max_subscriptions=2)
    peer = await channels(hub)
    replies = await asyncio.gather(
        *(peer.start("subscribe", {"channel": f"c{n}"}) for n in range(5))
    )
    assert sum("result" in r for r in replies) == 2
    assert {r["error"]["code"] for r in replies if "error" in r} == {-32016}


async def test_unsubscribe_while_subscribing(make_hub: HubFactory, channels: PeerFactory) -> None:
    """An unsubscribe sent before the subscribe's result never leaves a dangling subscription."""
    hub = await slow_authorizing_hub(make_hub)
    peer = await channels(hub)
    subscribing = peer.start("subscribe", {"channel": "race"})
    unsubscribing = peer.start("unsubscribe", {"channel": "race"})
    subscribed, unsubscribed = await asyncio.gather(subscribing, unsubscribing)
    assert "result" in subscribed
    if "error" in unsubscribed:
        # Refused as not (yet) subscribed: the subscription is whole and works.
        assert unsubscribed["error"]["code"] == -32012
        await hub.publish("race", "live")
        [message] = await peer.messages(1)
        assert message["data"] == "live"
        await peer.call("unsubscribe", {"channel": "race"})
    # Either way nothing is subscribed now, and the hub holds no subscriber for it.
    assert hub.engine.local_subscription_count() == 0
    await still_works(hub, peer)
