"""Presence over channels.v1: join/leave, members with info, stats, tabs of one user."""

from __future__ import annotations

from typing import Any

from hub import Hub
from hub.channels import ChannelService
from hub.config import ChannelsConfig
from hub.engine import ClientInfo, Kind, Publication, memory_engine
from hub.hooks import Hooks
from hub.registry import ProtocolRegistry
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import ChannelsPeer, PeerFactory


async def whoami(peer: ChannelsPeer) -> str:
    """The user id the hub gives an anonymous peer, as presence reports it."""
    await peer.subscribe("whoami", presence=True)
    members = (await peer.call("presence", {"channel": "whoami"}))["members"]
    # The peer hears its own join; consume it so tests see only their own events.
    await peer.notification("join")
    await peer.call("unsubscribe", {"channel": "whoami"})
    [user] = members
    return str(user)


async def test_join_is_sent_to_subscribers(hub: Hub, channels: PeerFactory) -> None:
    """A peer joining with info is announced to subscribers as {channel, member: {user, info}}."""
    ada, bob = await channels(hub), await channels(hub)
    ada_id, bob_id = await whoami(ada), await whoami(bob)
    await ada.subscribe("room", presence=True, info={"name": "Ada"})
    # The joining peer is a subscriber too: it hears its own join after the result.
    assert await ada.notification("join") == {
        "channel": "room",
        "member": {"user": ada_id, "info": {"name": "Ada"}},
    }
    await bob.subscribe("room", presence=True, info={"name": "Bob"})
    assert await ada.notification("join") == {
        "channel": "room",
        "member": {"user": bob_id, "info": {"name": "Bob"}},
    }
    assert ada_id != bob_id


async def test_subscribe_without_presence_does_not_join(hub: Hub, channels: PeerFactory) -> None:
    """Subscribing without presence: true leaves the presence set and the others alone."""
    ada, watcher = await channels(hub), await channels(hub)
    await ada.subscribe("room", presence=True)
    await ada.notification("join")
    await watcher.subscribe("room")
    assert await ada.call("presence_stats", {"channel": "room"}) == {"clients": 1, "users": 1}
    await hub.publish("room", "sentinel")
    assert (await ada.notification("message"))["data"] == "sentinel"


async def test_presence_lists_members_with_info(hub: Hub, channels: PeerFactory) -> None:
    """presence answers {members: {user: {user, info, clients}}} for everyone joined."""
    ada, bob, outsider = await channels(hub), await channels(hub), await channels(hub)
    ada_id, bob_id = await whoami(ada), await whoami(bob)
    await ada.subscribe("room", presence=True, info={"name": "Ada"})
    await bob.subscribe("room", presence=True)
    result = await outsider.call("presence", {"channel": "room"})
    assert result == {
        "members": {
            ada_id: {"user": ada_id, "info": {"name": "Ada"}, "clients": 1},
            bob_id: {"user": bob_id, "info": None, "clients": 1},
        }
    }
    assert await hub.presence("room") == result["members"]


async def test_presence_of_an_empty_channel(hub: Hub, channels: PeerFactory) -> None:
    """A channel nobody joined has no members and zero stats."""
    peer = await channels(hub)
    assert await peer.call("presence", {"channel": "empty"}) == {"members": {}}
    assert await peer.call("presence_stats", {"channel": "empty"}) == {"clients": 0, "users": 0}


async def test_anonymous_connections_are_distinct_users(hub: Hub, channels: PeerFactory) -> None:
    """Without identity each connection is its own user: two peers, two users, two joins."""
    watcher = await channels(hub)
    await watcher.subscribe("room")
    first, second = await channels(hub), await channels(hub)
    await first.subscribe("room", presence=True)
    await second.subscribe("room", presence=True)
    joins = [await watcher.notification("join"), await watcher.notification("join")]
    assert len({j["member"]["user"] for j in joins}) == 2
    assert await watcher.call("presence_stats", {"channel": "room"}) == {
        "clients": 2,
        "users": 2,
    }


async def test_leave_on_unsubscribe(hub: Hub, channels: PeerFactory) -> None:
    """Unsubscribing a joined peer sends leave with its info and drops it from presence."""
    ada, bob = await channels(hub), await channels(hub)
    await ada.subscribe("room")
    await bob.subscribe("room", presence=True, info="bob-info")
    joined = await ada.notification("join")
    await bob.call("unsubscribe", {"channel": "room"})
    left = await ada.notification("leave")
    assert left == {"channel": "room", "member": joined["member"]}
    assert left["member"]["info"] == "bob-info"
    assert await ada.call("presence", {"channel": "room"}) == {"members": {}}


async def test_leave_on_disconnect(hub: Hub, channels: PeerFactory) -> None:
    """A joined peer that disconnects is announced as left and no longer present."""
    ada, bob = await channels(hub), await channels(hub)
    await ada.subscribe("room", presence=True)
    await ada.notification("join")
    await bob.subscribe("room", presence=True)
    joined = await ada.notification("join")
    await bob.close()
    left = await ada.notification("leave")
    assert left["member"] == joined["member"]
    stats = await ada.call("presence_stats", {"channel": "room"})
    assert stats == {"clients": 1, "users": 1}


async def test_tabs_of_one_user_merge(
    make_hub: HubFactory, channels: PeerFactory, identified_registry: ProtocolRegistry
) -> None:
    """Two connections of one user: one join, clients 2, leave only when the last one goes."""
    hub = await make_hub(registry=identified_registry)
    watcher = await channels(hub, path="/?user=watcher")
    await watcher.subscribe("room")
    tab1 = await channels(hub, path="/?user=ada")
    tab2 = await channels(hub, path="/?user=ada")
    await tab1.subscribe("room", presence=True, info={"tab": 1})
    assert await watcher.notification("join") == {
        "channel": "room",
        "member": {"user": "ada", "info": {"tab": 1}},
    }
    await tab2.subscribe("room", presence=True, info={"tab": 2})
    assert await watcher.call("presence_stats", {"channel": "room"}) == {"clients": 2, "users": 1}
    members = (await watcher.call("presence", {"channel": "room"}))["members"]
    assert list(members) == ["ada"]
    assert members["ada"]["clients"] == 2
    await tab1.close()
    assert await watcher.call("presence_stats", {"channel": "room"}) == {"clients": 1, "users": 1}
    await tab2.call("unsubscribe", {"channel": "room"})
    left = await watcher.notification("leave")
    assert left["member"]["user"] == "ada"
    # The second tab joined without a join notification: the leave came next.
    assert watcher.pending() == []
    assert await watcher.call("presence", {"channel": "room"}) == {"members": {}}


async def test_presence_off_in_a_namespace(make_hub: HubFactory, channels: PeerFactory) -> None:
    """With presence off, presence, presence_stats and subscribe(presence) answer -32014."""
    hub = await make_hub({"channels": {"namespaces": {"quiet": {"presence": False}}}})
    peer = await channels(hub)
    for method in ("presence", "presence_stats"):
        error = await peer.error(method, {"channel": "quiet/room"})
        assert error["code"] == -32014
        assert "presence" in error["message"]
    error = await peer.error("subscribe", {"channel": "quiet/room", "presence": True})
    assert error["code"] == -32014
    # A plain subscription still works, and the subscribe above left nothing behind.
    assert (await peer.subscribe("quiet/room"))["channel"] == "quiet/room"
    assert await peer.call("presence_stats", {"channel": "room"}) == {"clients": 0, "users": 0}


async def test_presence_on_a_pattern_is_refused(hub: Hub, channels: PeerFactory) -> None:
    """Patterns have no presence: subscribe with presence on a pattern answers -32014."""
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "room/#", "presence": True})
    assert error["code"] == -32014
    error = await peer.error("presence", {"channel": "room/#"})
    assert error["code"] == -32010


async def test_join_leave_off_keeps_presence_silent(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """With join_leave off, members are tracked but no join/leave is sent."""
    hub = await make_hub({"channels": {"namespaces": {"lobby": {"join_leave": False}}}})
    watcher, joiner = await channels(hub), await channels(hub)
    await watcher.subscribe("lobby")
    await joiner.subscribe("lobby", presence=True)
    assert await watcher.call("presence_stats", {"channel": "lobby"}) == {"clients": 1, "users": 1}
    await joiner.call("unsubscribe", {"channel": "lobby"})
    await hub.publish("lobby", "sentinel")
    assert (await watcher.notification("message"))["data"] == "sentinel"


# -- merging at the service level (several ClientInfo of one user) ---------------


class Collector:
    def __init__(self) -> None:
        self.events: list[tuple[Kind, Any]] = []

    def deliver(self, publication: Publication, subscription: str) -> None:
        self.events.append((publication.kind, publication.data))


async def test_service_merges_clients_of_one_user() -> None:
    """ChannelService: join for the first client of a user, leave for the last, hooks once."""
    hooks = Hooks()
    calls: list[tuple[str, str, str]] = []
    hooks.join.append(("#", lambda channel, m: calls.append(("join", channel, m.user))))
    hooks.leave.append(("#", lambda channel, m: calls.append(("leave", channel, m.user))))
    service = ChannelService(memory_engine(), ChannelsConfig(), hooks)
    collector = Collector()
    await service.subscribe(collector, "room")
    await service.join("room", ClientInfo("c1", "ada", {"tab": 1}))
    await service.join("room", ClientInfo("c2", "ada", {"tab": 2}))
    await service.join("room", ClientInfo("c3", "bob"))
    assert await service.presence(None, "room") == {
        "ada": {"user": "ada", "info": {"tab": 1}, "clients": 2},
        "bob": {"user": "bob", "info": None, "clients": 1},
    }
    assert await service.presence_stats(None, "room") == {"clients": 3, "users": 2}
    await service.leave("room", "c1")
    await service.leave("room", "c3")
    await service.leave("room", "c2")
    assert collector.events == [
        (Kind.JOIN, {"user": "ada", "info": {"tab": 1}}),
        (Kind.JOIN, {"user": "bob", "info": None}),
        (Kind.LEAVE, {"user": "bob", "info": None}),
        (Kind.LEAVE, {"user": "ada", "info": {"tab": 2}}),
    ]
    assert calls == [
        ("join", "room", "ada"),
        ("join", "room", "bob"),
        ("leave", "room", "bob"),
        ("leave", "room", "ada"),
    ]
