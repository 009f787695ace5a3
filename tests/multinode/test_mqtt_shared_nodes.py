"""Shared subscriptions across hub processes: each message to one member of the cluster's group.

Members of ``$share/<group>/<filter>`` on two nodes share one group: the
Redis engine lets one node of those holding members deliver each message
(hub.engine.redis.groups), in turn by member count, so no message goes to two
members and both nodes get their part. A member that leaves, a member whose
connection drops and a node that dies take no later message with them; a
node picked for a message it has no member for hands it back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from hub.engine.redis.groups import ANNOUNCE_EVERY
from tests.multinode.conftest import ClusterFactory, HubProcess
from tests.multinode.redis_server import RedisServer
from tests.protocols.mqtt.conftest import PahoPeer

pytestmark = pytest.mark.service

Paho = Callable[..., PahoPeer]
GROUP = "$share/workers/jobs/#"


async def members(paho_peer: Paho, nodes: list[HubProcess], prefix: str) -> list[PahoPeer]:
    """One subscribed member per node in ``nodes``, in that order."""
    joined = []
    for n, node in enumerate(nodes):
        member = paho_peer(f"{prefix}-{n}")
        await member.connect("127.0.0.1", node.port)
        assert await member.subscribe(GROUP, 1) == [1]
        joined.append(member)
    # The member counts reach Redis in the background, just after the SUBACK.
    await asyncio.sleep(0.3)
    return joined


async def publish(publisher: PahoPeer, start: int, count: int) -> list[bytes]:
    payloads = [f"job-{n}".encode() for n in range(start, start + count)]
    for payload in payloads:
        await publisher.publish(f"jobs/{payload.decode()}", payload, qos=1)
    return payloads


async def collect(group: list[PahoPeer], expected: int) -> list[list[bytes]]:
    """What each member received once ``expected`` messages arrived, and a quiet spell after."""
    received: list[list[bytes]] = [[] for _ in group]
    enough = asyncio.Event()

    async def drain(index: int) -> None:
        while True:
            received[index].append((await group[index].messages.get()).payload)
            if sum(map(len, received)) >= expected:
                enough.set()

    tasks = [asyncio.create_task(drain(i)) for i in range(len(group))]
    try:
        async with asyncio.timeout(15):
            await enough.wait()
        await asyncio.sleep(0.5)  # a copy delivered twice would arrive in this time
    finally:
        for task in tasks:
            task.cancel()
    return received


def once_each(received: list[list[bytes]], payloads: list[bytes]) -> None:
    counts = Counter(p for member in received for p in member)
    assert sorted(counts) == sorted(payloads), "some message lost"
    assert set(counts.values()) == {1}, [p for p, c in counts.items() if c > 1]


async def test_each_message_reaches_one_member_of_the_cluster_and_both_nodes_take_part(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """Two members per node, publishers on both nodes: every message once, spread over both."""
    a, b = await cluster(2)
    group = await members(paho_peer, [a, b, a, b], "worker")
    watcher = paho_peer("watcher")
    await watcher.connect("127.0.0.1", b.port)
    assert await watcher.subscribe("jobs/#", 1) == [1]
    on_a, on_b = paho_peer("pub-a"), paho_peer("pub-b")
    await on_a.connect("127.0.0.1", a.port)
    await on_b.connect("127.0.0.1", b.port)

    payloads = await publish(on_a, 0, 30) + await publish(on_b, 30, 30)

    received = await collect(group, len(payloads))
    once_each(received, payloads)
    node_a = len(received[0]) + len(received[2])
    node_b = len(received[1]) + len(received[3])
    # In turn by member count: half each, give or take the announcements' timing.
    assert node_a >= 15, (node_a, node_b)
    assert node_b >= 15, (node_a, node_b)
    assert all(received), [len(r) for r in received]
    # An ordinary subscriber is no member: it gets every message.
    seen = [(await watcher.message()).payload for _ in payloads]
    assert sorted(seen) == sorted(payloads)


async def test_members_that_leave_or_drop_take_no_later_message_with_them(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """One member DISCONNECTs, another's connection drops: later messages all reach the third."""
    a, b = await cluster(2)
    stays, leaves, drops = await members(paho_peer, [a, b, b], "worker")
    publisher = paho_peer("publisher")
    await publisher.connect("127.0.0.1", a.port)

    first = await publish(publisher, 0, 12)
    once_each(await collect([stays, leaves, drops], len(first)), first)

    await leaves.disconnect()
    await drops.vanish()
    await asyncio.sleep(1.0)  # node B notices the lost connection and leaves the group
    later = await publish(publisher, 12, 20)
    received = await collect([stays], len(later))
    once_each(received, later)


async def test_a_node_that_dies_takes_no_later_message_with_it(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """SIGKILL on a node with members: once its heartbeat lapses, the other node gets everything."""
    a, b = await cluster(2, health_interval=0.2)
    survivor, victim = await members(paho_peer, [a, b], "worker")
    publisher = paho_peer("publisher")
    await publisher.connect("127.0.0.1", a.port)
    first = await publish(publisher, 0, 10)
    received = await collect([survivor, victim], len(first))
    once_each(received, first)
    assert received[1], "node B took no part"

    b.kill()
    await asyncio.sleep(1.5)  # its heartbeat key lapses (at least 1 s)
    later = await publish(publisher, 10, 20)
    once_each(await collect([survivor], len(later)), later)


async def test_a_group_spans_the_nodes_again_after_redis_lost_its_data(
    cluster: ClusterFactory, redis_server: RedisServer, paho_peer: Paho
) -> None:
    """FLUSHALL: messages still go once each; the nodes' next announcements spread them again."""
    a, b = await cluster(2)
    group = await members(paho_peer, [a, b], "worker")
    publisher = paho_peer("publisher")
    await publisher.connect("127.0.0.1", a.port)
    await redis_server.flush()

    unannounced = await publish(publisher, 0, 10)
    once_each(await collect(group, len(unannounced)), unannounced)

    await asyncio.sleep(ANNOUNCE_EVERY + 1)
    client = redis_server.client()
    try:
        [key] = [k async for k in client.scan_iter(match="*share:*:nodes")]
        assert len(await client.hgetall(key)) == 2, "both nodes announced again"
    finally:
        await client.aclose()
    later = await publish(publisher, 10, 20)
    received = await collect(group, len(later))
    once_each(received, later)
    assert received[0], "node A took no part"
    assert received[1], "node B took no part"


async def test_a_message_picked_for_a_node_without_members_is_handed_back(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """A node picked for a message it cannot deliver hands it back: the other node's member gets it.

    Node A's one member is a persistent session that a clean CONNECT on A
    discards: A still counts it in Redis until it meets the member's absence,
    so the next messages are picked for A, which has nobody to give them to.
    """
    a, b = await cluster(2)
    sticky = paho_peer("sticky", clean_session=False)
    await sticky.connect("127.0.0.1", a.port)
    assert await sticky.subscribe(GROUP, 1) == [1]
    (other,) = await members(paho_peer, [b], "worker")
    await sticky.disconnect()
    fresh = paho_peer("sticky", clean_session=True)
    assert await fresh.connect("127.0.0.1", a.port) == (False, 0)  # the session is gone
    publisher = paho_peer("publisher")
    await publisher.connect("127.0.0.1", a.port)

    payloads = await publish(publisher, 0, 10)
    once_each(await collect([other], len(payloads)), payloads)
    assert await fresh.nothing_for(0.2)


async def test_the_last_member_leaving_while_messages_flow_takes_none_with_it(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """Node A's only member unsubscribes amid a burst: each message still reaches one member.

    Until A's count 0 is stored node B may pick A, so A keeps receiving the
    group's messages that long (and a little more) and hands those back. The
    window is a Redis round trip: this run may or may not land a message in it.
    """
    a, b = await cluster(2)
    leaving, staying = await members(paho_peer, [a, b], "worker")
    publisher = paho_peer("publisher")
    await publisher.connect("127.0.0.1", b.port)

    first = await publish(publisher, 0, 20)
    # A burst at QoS 0 (no wait for acknowledgements), the UNSUBSCRIBE in its midst.
    later = [f"job-{n}".encode() for n in range(20, 220)]
    for n, payload in enumerate(later):
        if n == 20:
            leaving.client.unsubscribe(GROUP)
        publisher.client.publish(f"jobs/{payload.decode()}", payload, 0)
    received = await collect([leaving, staying], len(first) + len(later))
    once_each(received, first + later)
    assert received[0], "node A took no part"
