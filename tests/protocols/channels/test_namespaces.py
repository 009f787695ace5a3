"""Namespaces: per-prefix channel options, the longest prefix winning."""

from __future__ import annotations

import pytest

from hub import Hub
from hub.channels import ChannelService
from hub.config import ChannelsConfig
from hub.engine import memory_engine
from hub.errors import PermissionDenied
from hub.hooks import Hooks
from hub.rpc import CallContext
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import PeerFactory

NAMESPACES = {
    "chat": {"history_size": 5},
    "chat/private": {"allow_subscribe": False},
    "feed": {"allow_publish": False},
    "signed": {"publisher_info": True},
    "small": {"max_payload_bytes": 16},
    "live": {"history_size": 0},
}


async def namespaced_hub(make_hub: HubFactory) -> Hub:
    hub = await make_hub({"channels": {"namespaces": NAMESPACES}})

    @hub.rpc("whoami")
    def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    return hub


async def test_longest_prefix_wins(make_hub: HubFactory, channels: PeerFactory) -> None:
    """chat/private/x takes chat/private's rules, chat/x takes chat's."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "chat/private/x"})
    assert error["code"] == -32011
    assert (await peer.subscribe("chat/x"))["channel"] == "chat/x"


async def test_prefix_ends_on_a_level_boundary(make_hub: HubFactory, channels: PeerFactory) -> None:
    """chat/privateer is not under chat/private, and chatter is not under chat."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    assert (await peer.subscribe("chat/privateer"))["channel"] == "chat/privateer"
    for n in range(7):
        await hub.publish("chatter", n)
        await hub.publish("chat/room", n)
    chatter = await peer.call("history", {"channel": "chatter"})
    room = await peer.call("history", {"channel": "chat/room"})
    assert len(chatter["publications"]) == 7
    assert len(room["publications"]) == 5


async def test_the_prefix_itself_is_in_its_namespace(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A channel named exactly like the prefix follows that namespace."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "chat/private"})
    assert error["code"] == -32011


async def test_allow_publish_false(make_hub: HubFactory, channels: PeerFactory) -> None:
    """Clients may not publish where allow_publish is false (-32011); the hub still may."""
    hub = await namespaced_hub(make_hub)
    reader, writer = await channels(hub), await channels(hub)
    await reader.subscribe("feed/news")
    error = await writer.error("publish", {"channel": "feed/news", "data": "spam"})
    assert error["code"] == -32011
    assert "feed/news" in error["message"]
    await hub.publish("feed/news", "official")
    [message] = await reader.messages(1)
    assert (message["data"], message["offset"]) == ("official", 1)


async def test_allow_subscribe_false(make_hub: HubFactory, channels: PeerFactory) -> None:
    """Subscribing where allow_subscribe is false answers -32011 and delivers nothing."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "chat/private/dm"})
    assert error["code"] == -32011
    await peer.subscribe("chat/open")
    await hub.publish("chat/private/dm", "secret")
    await hub.publish("chat/open", "sentinel")
    [message] = await peer.messages(1)
    assert message["channel"] == "chat/open"


async def test_patterns_cannot_reach_a_closed_namespace(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A pattern that could match channels of a no-subscribe namespace is refused (-32011)."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    for pattern in ("#", "+/private/#", "chat/#", "chat/+", "chat/+/dm", "+/+/+"):
        error = await peer.error("subscribe", {"channel": pattern})
        assert error["code"] == -32011, pattern
    # Patterns that cannot match a chat/private channel are fine.
    for pattern in ("+/x", "feed/#", "+/public/#", "chat/public/#", "$SYS/#"):
        assert (await peer.subscribe(pattern))["channel"] == pattern
    await hub.publish("chat/private/dm", "secret")
    await hub.publish("chat/public/x", "sentinel")
    received = await peer.messages(1)
    assert [m["data"] for m in received] == ["sentinel"]


async def test_publisher_info(make_hub: HubFactory, channels: PeerFactory) -> None:
    """With publisher_info, messages and history carry {user, client} of the publisher."""
    hub = await namespaced_hub(make_hub)
    reader, writer = await channels(hub), await channels(hub)
    writer_id = await writer.call("whoami")
    await reader.subscribe("signed/x")
    await reader.subscribe("chat/x")
    await writer.publish("signed/x", "hello")
    await writer.publish("chat/x", "plain")
    signed, plain = await reader.messages(2)
    assert signed["info"] == {"user": writer_id, "client": writer_id}
    assert "info" not in plain
    history = await reader.call("history", {"channel": "signed/x"})
    assert history["publications"][0]["info"] == signed["info"]


async def test_publisher_info_absent_for_server_publications(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """hub.publish has no client, so even with publisher_info no info is attached."""
    hub = await namespaced_hub(make_hub)
    reader = await channels(hub)
    await reader.subscribe("signed/x")
    await hub.publish("signed/x", "from the server")
    [message] = await reader.messages(1)
    assert "info" not in message


async def test_max_payload_bytes(make_hub: HubFactory, channels: PeerFactory) -> None:
    """A payload over max_payload_bytes (as compact JSON) answers -32015; at the limit passes."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    at_limit = "x" * 14  # '"xxxxxxxxxxxxxx"' is 16 bytes
    assert (await peer.publish("small/x", at_limit))["offset"] == 1
    error = await peer.error("publish", {"channel": "small/x", "data": at_limit + "x"})
    assert error["code"] == -32015
    assert "16" in error["message"]
    # Other namespaces keep the default limit.
    assert (await peer.publish("chat/x", "x" * 1000))["offset"] == 1


async def test_history_size_zero(make_hub: HubFactory, channels: PeerFactory) -> None:
    """history_size 0: publishing still counts offsets, history is off (-32014)."""
    hub = await namespaced_hub(make_hub)
    peer = await channels(hub)
    await peer.subscribe("live/x")
    assert (await peer.publish("live/x", 1))["offset"] == 1
    assert (await peer.publish("live/x", 2))["offset"] == 2
    assert [m["offset"] for m in await peer.messages(2)] == [1, 2]
    assert (await peer.error("history", {"channel": "live/x"}))["code"] == -32014


async def test_default_namespace_from_config(make_hub: HubFactory, channels: PeerFactory) -> None:
    """channels.default applies to channels under no prefix."""
    hub = await make_hub({"channels": {"default": {"allow_publish": False}}})
    peer = await channels(hub)
    assert (await peer.error("publish", {"channel": "any", "data": 1}))["code"] == -32011


async def test_pattern_reach_respects_nested_namespaces(hub: Hub) -> None:
    """A pattern confined to an open namespace nested in a closed one is allowed."""
    config = ChannelsConfig.model_validate(
        {
            "namespaces": {
                "org": {"allow_subscribe": False},
                "org/public": {},
                "org/public/vault": {"allow_subscribe": False},
            }
        }
    )
    service = ChannelService(memory_engine(), config, Hooks())
    ctx = CallContext(hub, "session", "channels.v1", None)
    for allowed in ("org/public/news/#", "org/public/news/+", "other/#", "x/+/y"):
        await service.authorize_subscribe(ctx, allowed)
    refused_patterns = ("org/#", "org/+", "+/news", "org/public/+", "org/public/#", "#", "+/+/+/x")
    for refused in refused_patterns:
        with pytest.raises(PermissionDenied):
            await service.authorize_subscribe(ctx, refused)
