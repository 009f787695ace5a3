"""MQTT across hub processes with paho-mqtt: retained messages and sessions follow the device.

Every node keeps MQTT state in the cluster's Redis: a retained message set on
one node reaches subscribers on another, a clean_session=0 device that went
away from node A finds its queued messages on node B, and connecting on B
closes the device's connection on A.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.multinode.conftest import ClusterFactory
from tests.protocols.mqtt.conftest import PahoPeer

pytestmark = pytest.mark.service

Paho = Callable[..., PahoPeer]


async def test_a_retained_message_set_on_one_node_reaches_a_subscriber_on_another(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """paho publishes with retain on node A; a paho subscriber on node B gets it, RETAIN set."""
    a, b = await cluster(2)
    device = paho_peer("thermostat")
    await device.connect("127.0.0.1", a.port)
    await device.publish("home/hall/temp", b"19.5", qos=1, retain=True)
    reader = paho_peer("dashboard")
    await reader.connect("127.0.0.1", b.port)
    assert await reader.subscribe("home/+/temp", 1) == [1]
    message = await reader.message()
    assert (message.topic, message.payload, message.retain) == ("home/hall/temp", b"19.5", True)
    # Live publications are not retained copies.
    await device.publish("home/hall/temp", b"20.0", qos=1)
    live = await reader.message()
    assert (live.payload, live.retain) == (b"20.0", False)


async def test_a_persistent_session_left_on_one_node_is_resumed_on_another(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """Subscribed on A, offline while B publishes QoS 1, back on B: session present, all queued."""
    a, b = await cluster(2)
    device = paho_peer("sensor-7", clean_session=False)
    assert (await device.connect("127.0.0.1", a.port))[1] == 0
    assert await device.subscribe("cmd/sensor-7/#", 1) == [1]
    await device.disconnect()
    publisher = paho_peer("controller")
    await publisher.connect("127.0.0.1", b.port)
    for n in range(5):
        await publisher.publish(f"cmd/sensor-7/set/{n}", f"v{n}".encode(), qos=1)

    back = paho_peer("sensor-7", clean_session=False)
    present, code = await back.connect("127.0.0.1", b.port)
    assert (present, code) == (True, 0)
    queued = [await back.message() for _ in range(5)]
    assert [(m.topic, m.payload, m.qos) for m in queued] == [
        (f"cmd/sensor-7/set/{n}", f"v{n}".encode(), 1) for n in range(5)
    ]
    # The subscription came along: live messages from node A reach the device on B, once.
    await publisher.publish("cmd/sensor-7/ping", b"live", qos=1)
    assert (await back.message()).payload == b"live"
    assert await back.nothing_for(0.3)


async def test_connecting_on_another_node_closes_the_connection_on_the_first(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """MQTT-3.1.4-2 across nodes: the same client id on node B ends its connection on node A."""
    a, b = await cluster(2)
    first = paho_peer("pump", clean_session=False)
    await first.connect("127.0.0.1", a.port)
    assert await first.subscribe("pump/cmd", 1) == [1]
    second = paho_peer("pump", clean_session=False)
    present, code = await second.connect("127.0.0.1", b.port)
    assert (present, code) == (True, 0)
    async with asyncio.timeout(5):
        await first.disconnected.wait()
    controller = paho_peer("controller")
    await controller.connect("127.0.0.1", a.port)
    await controller.publish("pump/cmd", b"start", qos=1)
    assert (await second.message()).payload == b"start"
    assert await first.nothing_for(0.2)


async def test_a_device_whose_node_was_killed_resumes_on_another_without_waiting(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """kill -9 the node holding an offline session: the device resumes on B with its queue."""
    a, b = await cluster(2)
    device = paho_peer("meter", clean_session=False)
    await device.connect("127.0.0.1", a.port)
    assert await device.subscribe("meter/cmd", 1) == [1]
    await device.disconnect()
    publisher = paho_peer("controller")
    await publisher.connect("127.0.0.1", b.port)
    await publisher.publish("meter/cmd", b"before the crash", qos=1)
    await asyncio.sleep(0.3)  # node A writes it to the session's queue in Redis
    a.kill()
    await asyncio.sleep(3.5)  # past node A's heartbeat: B does not wait for it

    back = paho_peer("meter", clean_session=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await back.connect("127.0.0.1", b.port) == (True, 0)
    assert loop.time() - started < 1.5
    assert (await back.message()).payload == b"before the crash"


async def test_max_offline_sessions_holds_across_nodes(
    cluster: ClusterFactory, paho_peer: Paho
) -> None:
    """mqtt.max_offline_sessions counts the cluster's offline sessions, not one node's:
    two go offline on node A, a third on B, and the one offline longest (held by A) is
    dropped; before, each node counted its own (2 and 1, under a cap of 2)."""
    a, b = await cluster(2, mqtt={"max_offline_sessions": 2})
    for client_id, node in (("s1", a), ("s2", a), ("s3", b)):
        device = paho_peer(client_id, clean_session=False)
        assert (await device.connect("127.0.0.1", node.port))[1] == 0
        assert await device.subscribe(f"cmd/{client_id}", 1) == [1]
        await device.disconnect()
        await asyncio.sleep(0.5)  # offline in this order: s1 the longest
    # s1 comes back where its state was held (dropped there too, not only in Redis).
    # Connected, no session is offline: none is dropped while the others come back.
    first = paho_peer("s1", clean_session=False)
    assert await first.connect("127.0.0.1", a.port) == (False, 0)
    for client_id in ("s2", "s3"):
        back = paho_peer(client_id, clean_session=False)
        assert await back.connect("127.0.0.1", b.port) == (True, 0)
