"""Python hooks around channels.v1 sessions: connect, disconnect, subscribe, publish, presence."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hub.engine import ClientInfo, Publication
from hub.errors import PermissionDenied
from hub.registry import ProtocolRegistry
from hub.rpc import CallContext
from tests.conftest import Connector, HubFactory
from tests.protocols.channels.conftest import PeerFactory


async def test_on_connect_rejection_closes_with_1008(
    make_hub: HubFactory, connect: Connector
) -> None:
    """An on_connect hook raising PermissionDenied closes the socket with 1008 and its reason."""
    hub = await make_hub()

    @hub.on_connect
    async def refuse(ctx: CallContext) -> None:
        raise PermissionDenied("no entry on Sundays")

    ws = await connect(hub, "channels.v1")
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(5):
            await ws.recv()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1008
    assert caught.value.rcvd.reason == "no entry on Sundays"


async def test_on_connect_sees_the_session(make_hub: HubFactory, channels: PeerFactory) -> None:
    """on_connect gets a context naming the session and its subprotocol; accepting is silent."""
    hub = await make_hub()
    seen: list[tuple[str, str]] = []

    @hub.on_connect
    def accept(ctx: CallContext) -> None:
        seen.append((ctx.session_id, ctx.subprotocol))

    @hub.rpc("whoami")
    def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    peer = await channels(hub)
    assert seen == [(await peer.call("whoami"), "channels.v1")]


async def test_on_disconnect_runs(make_hub: HubFactory, channels: PeerFactory) -> None:
    """on_disconnect runs once when the client goes, after its subscriptions are released."""
    hub = await make_hub()
    gone: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @hub.on_disconnect
    async def record(ctx: CallContext) -> None:
        gone.put_nowait((ctx.session_id, await hub.presence("room")))

    @hub.rpc("whoami")
    def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    peer = await channels(hub)
    session_id = await peer.call("whoami")
    await peer.subscribe("room", presence=True)
    await peer.close()
    async with asyncio.timeout(5):
        assert await gone.get() == (session_id, {})
    assert gone.empty()


async def test_on_subscribe_rejection(make_hub: HubFactory, channels: PeerFactory) -> None:
    """An on_subscribe hook refusing answers -32011 with its message; others are unaffected."""
    hub = await make_hub()
    asked: list[str] = []

    @hub.on_subscribe("rooms/+")
    async def only_public(ctx: CallContext, channel: str) -> None:
        asked.append(channel)
        if channel != "rooms/public":
            raise PermissionDenied(f"{channel} is members-only")

    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "rooms/vip"})
    assert error == {"code": -32011, "message": "rooms/vip is members-only"}
    await peer.subscribe("rooms/public")
    await peer.subscribe("lobby")
    assert asked == ["rooms/vip", "rooms/public"]
    await hub.publish("rooms/vip", "secret")
    await hub.publish("rooms/public", "hello")
    [message] = await peer.messages(1)
    assert message["data"] == "hello"


async def test_on_subscribe_sees_patterns_that_reach_its_channels(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A pattern subscription runs the hooks of channels it could match, not only its prefix."""
    hub = await make_hub()

    @hub.on_subscribe("secret/#")
    def guard(ctx: CallContext, channel: str) -> None:
        raise PermissionDenied(f"{channel} may see secrets")

    peer = await channels(hub)
    for pattern in ("#", "+/x", "secret/+", "secret"):
        error = await peer.error("subscribe", {"channel": pattern})
        assert error == {"code": -32011, "message": f"{pattern} may see secrets"}
    assert (await peer.subscribe("public/#"))["channel"] == "public/#"


async def test_on_publish_transforms(make_hub: HubFactory, channels: PeerFactory) -> None:
    """A value returned by on_publish replaces the data for subscribers and history."""
    hub = await make_hub()

    @hub.on_publish("chat/#")
    async def shout(ctx: CallContext, publication: Publication) -> Any:
        return {"text": str(publication.data["text"]).upper(), "by": ctx.session_id}

    @hub.on_publish("other")
    def untouched(ctx: CallContext, publication: Publication) -> None:
        return None

    reader, writer = await channels(hub), await channels(hub)
    await reader.subscribe("chat/room")
    await reader.subscribe("other")
    await writer.publish("chat/room", {"text": "hi"})
    await writer.publish("other", {"text": "hi"})
    first, second = await reader.messages(2)
    assert first["data"]["text"] == "HI"
    assert first["data"]["by"]
    assert second["data"] == {"text": "hi"}
    history = await reader.call("history", {"channel": "chat/room"})
    assert history["publications"][0]["data"] == first["data"]


async def test_on_publish_hooks_chain(make_hub: HubFactory, channels: PeerFactory) -> None:
    """Several matching on_publish hooks run in order, each seeing the previous result."""
    hub = await make_hub()

    @hub.on_publish("#")
    def add_one(ctx: CallContext, publication: Publication) -> int:
        return int(publication.data) + 1

    @hub.on_publish("n/+")
    def double(ctx: CallContext, publication: Publication) -> int:
        return int(publication.data) * 2

    peer = await channels(hub)
    await peer.subscribe("n/x")
    await peer.publish("n/x", 5)
    [message] = await peer.messages(1)
    assert message["data"] == 12


async def test_on_publish_rejection(make_hub: HubFactory, channels: PeerFactory) -> None:
    """An on_publish hook refusing answers -32011; nothing is published or stored."""
    hub = await make_hub()

    @hub.on_publish("chat/#")
    def moderate(ctx: CallContext, publication: Publication) -> None:
        if "spam" in str(publication.data):
            raise PermissionDenied("no spam please")

    reader, writer = await channels(hub), await channels(hub)
    await reader.subscribe("chat/room")
    error = await writer.error("publish", {"channel": "chat/room", "data": "buy spam"})
    assert error == {"code": -32011, "message": "no spam please"}
    assert (await writer.publish("chat/room", "hello"))["offset"] == 1
    [message] = await reader.messages(1)
    assert message["data"] == "hello"


async def test_on_publish_does_not_run_for_hub_publish(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """Server-side hub.publish bypasses client hooks."""
    hub = await make_hub()

    @hub.on_publish("#")
    def refuse(ctx: CallContext, publication: Publication) -> None:
        raise PermissionDenied("clients may not publish")

    reader = await channels(hub)
    await reader.subscribe("x")
    await hub.publish("x", "server")
    [message] = await reader.messages(1)
    assert message["data"] == "server"


async def test_failing_hook_is_an_internal_error(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A hook raising something else answers -32603 and the connection stays up."""
    hub = await make_hub()

    @hub.on_publish("#")
    def broken(ctx: CallContext, publication: Publication) -> None:
        raise RuntimeError("bug in a hook")

    peer = await channels(hub)
    error = await peer.error("publish", {"channel": "x", "data": 1})
    assert error["code"] == -32603
    assert (await peer.subscribe("x"))["channel"] == "x"


async def test_join_and_leave_hooks_run_once_per_user(
    make_hub: HubFactory, channels: PeerFactory, identified_registry: ProtocolRegistry
) -> None:
    """on_join runs for a user's first connection in a channel, on_leave for its last."""
    hub = await make_hub(registry=identified_registry)
    events: asyncio.Queue[tuple[str, str, str, Any]] = asyncio.Queue()

    @hub.on_join("room/#")
    def joined(channel: str, member: ClientInfo) -> None:
        events.put_nowait(("join", channel, member.user, member.info))

    @hub.on_leave("room/#")
    async def left(channel: str, member: ClientInfo) -> None:
        events.put_nowait(("leave", channel, member.user, member.info))

    tab1 = await channels(hub, path="/?user=ada")
    tab2 = await channels(hub, path="/?user=ada")
    await tab1.subscribe("room/1", presence=True, info="first")
    await tab2.subscribe("room/1", presence=True, info="second")
    await tab2.subscribe("elsewhere", presence=True)
    await tab1.close()
    await tab2.call("unsubscribe", {"channel": "room/1"})
    async with asyncio.timeout(5):
        assert await events.get() == ("join", "room/1", "ada", "first")
        assert await events.get() == ("leave", "room/1", "ada", "second")
    assert events.empty()


async def test_join_hook_blocked_by_a_closing_client_leaves_no_member(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A client that disconnects while its join hook runs is not left in presence."""
    hub = await make_hub()
    entered, release = asyncio.Event(), asyncio.Event()
    closed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @hub.on_join("room")
    async def slow(channel: str, member: ClientInfo) -> None:
        entered.set()
        await release.wait()

    @hub.on_disconnect
    async def done(ctx: CallContext) -> None:
        closed.put_nowait(await hub.presence("room"))

    peer = await channels(hub)
    pending = peer.start("subscribe", {"channel": "room", "presence": True})
    async with asyncio.timeout(5):
        await entered.wait()
    await peer.close()
    with pytest.raises(ConnectionError):
        await pending
    async with asyncio.timeout(5):
        assert await closed.get() == {}
    release.set()
    assert await hub.presence("room") == {}


async def test_on_publish_cannot_grow_a_payload_past_the_limit(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A hook's rewritten payload is checked against max_payload_bytes too (-32015)."""
    hub = await make_hub({"channels": {"default": {"max_payload_bytes": 100}}})

    @hub.on_publish("grow/#")
    async def inflate(ctx: CallContext, publication: Publication) -> Any:
        return "x" * 1000

    peer = await channels(hub)
    error = await peer.error("publish", {"channel": "grow/a", "data": "small"})
    assert error["code"] == -32015
    result = await peer.call("publish", {"channel": "other", "data": "small"})
    assert result["offset"] == 1
