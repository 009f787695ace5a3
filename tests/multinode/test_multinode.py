"""Several hub processes on one Redis, driven by real channels.v1 clients.

Every point of scaling out, end to end: pub/sub across nodes once and in order
(patterns too), presence merged over nodes, recovery on another node, a node
killed with SIGKILL, and Redis stopped and restarted under running nodes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.multinode.conftest import ClusterFactory, PeerFactory
from tests.multinode.redis_server import RedisServer
from tests.protocols.channels.conftest import ChannelsPeer

pytestmark = pytest.mark.service


async def publish_all(client: ChannelsPeer, channel: str, items: list[Any]) -> None:
    for item in items:
        await client.publish(channel, item)


async def test_publications_reach_every_node_once_and_in_order(
    cluster: ClusterFactory, peer: PeerFactory
) -> None:
    """Two publishers on two nodes: subscribers on three nodes (and a pattern) agree on order."""
    hubs = await cluster(3)
    subscribers = [await peer(hub) for hub in hubs]
    for client in subscribers:
        await client.subscribe("chat/room")
    pattern = await peer(hubs[2])
    assert (await pattern.subscribe("chat/#"))["offset"] == 0
    one, two = await peer(hubs[0]), await peer(hubs[1])
    await asyncio.gather(
        publish_all(one, "chat/room", [f"one-{n}" for n in range(25)]),
        publish_all(two, "chat/room", [f"two-{n}" for n in range(25)]),
    )
    orders = []
    for client in [*subscribers, pattern]:
        messages = await client.messages(50)
        assert [m["offset"] for m in messages] == list(range(1, 51))
        assert {m["channel"] for m in messages} == {"chat/room"}
        orders.append([m["data"] for m in messages])
        expected = "chat/#" if client is pattern else None
        assert {m.get("subscription") for m in messages} == {expected}
    assert all(order == orders[0] for order in orders)
    assert [d for d in orders[0] if d.startswith("one")] == [f"one-{n}" for n in range(25)]
    assert [d for d in orders[0] if d.startswith("two")] == [f"two-{n}" for n in range(25)]
    for client in [*subscribers, pattern]:
        assert await client.quiet_for(0.2), client.unexpected


async def test_presence_is_the_union_of_nodes_with_join_and_leave_everywhere(
    cluster: ClusterFactory, peer: PeerFactory
) -> None:
    """Members on two nodes show on a third; joins and leaves reach every node."""
    hubs = await cluster(3)
    observer = await peer(hubs[2])
    await observer.subscribe("lobby")
    ada, bob = await peer(hubs[0]), await peer(hubs[1])
    await ada.subscribe("lobby", presence=True, info={"name": "ada"})
    assert (await observer.notification("join"))["member"]["info"] == {"name": "ada"}
    await bob.subscribe("lobby", presence=True, info={"name": "bob"})
    assert (await observer.notification("join"))["member"]["info"] == {"name": "bob"}

    async def ada_saw_bob() -> None:
        while (await ada.notification())["member"]["info"] != {"name": "bob"}:
            pass  # ada's own join, if the hub tells her

    await ada_saw_bob()
    members = (await observer.call("presence", {"channel": "lobby"}))["members"]
    assert sorted(m["info"]["name"] for m in members.values()) == ["ada", "bob"]
    assert await observer.call("presence_stats", {"channel": "lobby"}) == {
        "clients": 2,
        "users": 2,
    }
    await bob.close()
    left = await observer.notification("leave")
    assert left["member"]["info"] == {"name": "bob"}
    assert (await ada.notification("leave"))["member"]["info"] == {"name": "bob"}
    members = (await ada.call("presence", {"channel": "lobby"}))["members"]
    assert [m["info"]["name"] for m in members.values()] == ["ada"]


async def test_a_client_recovers_on_another_node_exactly_what_it_missed(
    cluster: ClusterFactory, peer: PeerFactory
) -> None:
    """Disconnected from one node, a client resubscribes on another and gets the missed ones."""
    first, publisher_node, other = await cluster(3)
    reader = await peer(first)
    start = await reader.subscribe("feed")
    publisher = await peer(publisher_node)
    await publisher.publish("feed", "f1")
    [seen] = await reader.messages(1)
    await reader.close()
    for n in range(2, 7):
        await publisher.publish("feed", f"f{n}")

    back = await peer(other)
    since = {"offset": seen["offset"], "epoch": seen["epoch"]}
    result = await back.subscribe("feed", since=since)
    assert seen["epoch"] == start["epoch"]
    assert result["recovered"] is True
    assert [p["data"] for p in result["publications"]] == [f"f{n}" for n in range(2, 7)]
    assert [p["offset"] for p in result["publications"]] == [2, 3, 4, 5, 6]
    await publisher.publish("feed", "f7")
    [live] = await back.messages(1)
    assert (live["data"], live["offset"]) == ("f7", 7)
    assert await back.quiet_for(0.2), back.unexpected


async def test_a_sigkilled_node_leaves_no_presence_ghosts(
    cluster: ClusterFactory, peer: PeerFactory
) -> None:
    """kill -9 a node: its members vanish from presence after the TTL, seen from a live node."""
    doomed, survivor = await cluster(2, presence_ttl=1.5)
    ghost = await peer(doomed)
    await ghost.subscribe("room", presence=True, info={"name": "ghost"})
    alive = await peer(survivor)
    await alive.subscribe("room", presence=True, info={"name": "alive"})

    async def names() -> list[str]:
        members = (await alive.call("presence", {"channel": "room"}))["members"]
        return sorted(m["info"]["name"] for m in members.values())

    assert await names() == ["alive", "ghost"]
    doomed.kill()
    async with asyncio.timeout(5):
        while await names() != ["alive"]:  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # past another TTL: the live node's member is refreshed
    assert await names() == ["alive"]


async def test_a_sigkilled_nodes_member_leaves_once_on_every_node(
    cluster: ClusterFactory, peer: PeerFactory
) -> None:
    """kill -9 a node: observers on two live nodes each get exactly one leave for its member."""
    ttl = 1.5
    doomed, two, three = await cluster(3, presence_ttl=ttl)
    observers = [await peer(two), await peer(three)]
    for observer in observers:
        await observer.subscribe("room")
    ghost = await peer(doomed)
    await ghost.subscribe("room", presence=True, info={"name": "ghost"})
    for observer in observers:
        assert (await observer.notification("join"))["member"]["info"] == {"name": "ghost"}

    doomed.kill()
    for observer in observers:
        # Expiry (at most one TTL) plus a presence tick, with a generous margin.
        left = await observer.notification("leave", timeout=ttl + 5)
        assert left["member"]["info"] == {"name": "ghost"}
    for observer in observers:
        # A second node announcing it too would show up here.
        assert await observer.quiet_for(ttl), observer.unexpected
    members = (await observers[0].call("presence", {"channel": "room"}))["members"]
    assert members == {}


@pytest.mark.parametrize("persistent", [False, True], ids=["redis-loses-data", "redis-keeps-data"])
async def test_redis_stopped_and_restarted_under_running_nodes(
    cluster: ClusterFactory, peer: PeerFactory, redis_server: RedisServer, persistent: bool
) -> None:
    """Nodes outlive Redis (degraded, publishes refused), resubscribe, and no loss is silent."""
    if persistent:
        await redis_server.stop()
        redis_server.persistent = True
        await redis_server.start()
    one, two = await cluster(2)
    stays = await peer(two)
    await stays.subscribe("news")
    leaves = await peer(two)
    await leaves.subscribe("news")
    publisher = await peer(one)
    await publisher.publish("news", "before")
    [before] = await stays.messages(1)
    assert (await leaves.messages(1))[0]["data"] == "before"
    await leaves.close()

    await redis_server.stop()
    await asyncio.gather(one.wait_health("degraded", 5), two.wait_health("degraded", 5))
    refused = await publisher.error("publish", {"channel": "news", "data": "lost?"})
    assert refused["code"] == -32017  # "temporarily unavailable", not a silent drop

    await redis_server.start()
    await asyncio.gather(one.wait_health("ok", 10), two.wait_health("ok", 10))
    await publisher.publish("news", "after")
    [after] = await stays.messages(1)
    assert after["data"] == "after"
    assert await stays.quiet_for(0.2), stays.unexpected
    assert await two.metric("wshub_engine_reconnects_total") >= 1

    # The client that was away comes back on the other node.
    back = await peer(one)
    result = await back.subscribe(
        "news", since={"offset": before["offset"], "epoch": before["epoch"]}
    )
    if persistent:
        assert result["recovered"] is True
        assert [p["data"] for p in result["publications"]] == ["after"]
        assert after["epoch"] == before["epoch"]
    else:
        # Redis lost the history: the client is told so, it does not silently miss "after".
        assert result["recovered"] is False
        assert result["publications"] == []
        assert after["epoch"] != before["epoch"]


async def test_message_metadata_crosses_nodes_live_and_in_history(
    cluster: ClusterFactory, peer: PeerFactory
) -> None:
    """A publish's ``meta`` on node A reaches a subscriber on node B, and B's history, intact."""
    a, b = await cluster(2)
    reader = await peer(b)
    await reader.subscribe("sensors/hall")
    meta = {
        "content_type": "text/plain",
        "user_properties": [["unit", "C"], ["unit", "again"]],
        "payload_format": 1,
    }
    writer = await peer(a)
    await writer.call("publish", {"channel": "sensors/hall", "data": "21", "meta": meta})
    [message] = await reader.messages(1)
    assert message["meta"] == meta
    history = await reader.call("history", {"channel": "sensors/hall"})
    assert history["publications"][0]["meta"] == meta
