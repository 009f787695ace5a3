"""The paho-mqtt bridge against a private Mosquitto: both directions, outage queue, no loops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from hub import Hub
from protocols.mqtt import BRIDGE_SERVICE_NAME
from protocols.mqtt.bridge import MqttBridge
from tests.conftest import HubFactory
from tests.protocols.mqtt.conftest import Mosquitto, PahoPeer, hub_address

Peers = Callable[..., PahoPeer]

TOPICS = [
    {"filter": "sensors/#", "direction": "in"},
    {"filter": "commands/#", "direction": "out"},
    {"filter": "shared/#", "direction": "both"},
    {"filter": "+/temp", "direction": "both", "local_prefix": "site/", "remote_prefix": "b7/"},
]


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition that paho's thread makes true (no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def bridge_of(hub: Hub) -> MqttBridge:
    return hub.services.get(BRIDGE_SERVICE_NAME, MqttBridge)


async def bridged_hub(make_hub: HubFactory, broker: Mosquitto, **bridge: Any) -> Hub:
    """A hub bridged to ``broker``, once the bridge is connected and subscribed."""
    options: dict[str, Any] = {
        "url": broker.url,
        "client_id": "hub-bridge",
        "topics": TOPICS,
        "reconnect_min_delay": 0.1,
        "reconnect_max_delay": 0.4,
        **bridge,
    }
    hub = await make_hub({"mqtt": {"bridge": options}})
    await eventually(lambda: bridge_of(hub).connected)
    return hub


async def broker_client(paho_peer: Peers, broker: Mosquitto, client_id: str, **kw: Any) -> PahoPeer:
    peer = paho_peer(client_id, websockets=False, **kw)
    await peer.connect("127.0.0.1", broker.port)
    return peer


async def hub_client(paho_peer: Peers, hub: Hub, client_id: str) -> PahoPeer:
    peer = paho_peer(client_id)
    await peer.connect(*hub_address(hub))
    return peer


async def http_health(hub: Hub) -> tuple[int, dict[str, Any]]:
    """GET /healthz over a real socket."""
    reader, writer = await asyncio.open_connection(*hub_address(hub))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_broker_messages_reach_hub_clients(
    make_hub: HubFactory, mosquitto: Mosquitto, paho_peer: Peers
) -> None:
    """A publish on the broker reaches a hub WebSocket client, with prefixes remapped."""
    hub = await bridged_hub(make_hub, mosquitto)
    client = await hub_client(paho_peer, hub, "dashboard")
    await client.subscribe("sensors/#", 1)
    await client.subscribe("site/+/temp", 1)
    device = await broker_client(paho_peer, mosquitto, "device")
    await device.publish("sensors/door", b"open", 1)
    await device.publish("b7/kitchen/temp", b"21", 1)
    got = {(m.topic, m.payload) for m in [await client.message(), await client.message()]}
    assert got == {("sensors/door", b"open"), ("site/kitchen/temp", b"21")}


async def test_hub_messages_reach_the_broker(
    make_hub: HubFactory, mosquitto: Mosquitto, paho_peer: Peers
) -> None:
    """A hub client's publish reaches a broker subscriber, with prefixes remapped; 'in' stays in."""
    hub = await bridged_hub(make_hub, mosquitto)
    listener = await broker_client(paho_peer, mosquitto, "listener")
    await listener.subscribe("#", 1)
    client = await hub_client(paho_peer, hub, "panel")
    await client.publish("commands/lamp", b"on", 1)
    await client.publish("site/hall/temp", b"19", 1)
    await client.publish("sensors/local-only", b"x", 1)  # an 'in' rule: not sent out
    got = {(m.topic, m.payload) for m in [await listener.message(), await listener.message()]}
    assert got == {("commands/lamp", b"on"), ("b7/hall/temp", b"19")}
    assert await listener.nothing_for(0.3)


async def test_retained_on_the_broker_becomes_retained_in_the_hub(
    make_hub: HubFactory, mosquitto: Mosquitto, paho_peer: Peers
) -> None:
    """A message retained upstream is retained in the hub when the bridge subscribes."""
    device = await broker_client(paho_peer, mosquitto, "device")
    await device.publish("sensors/mode", b"eco", 1, retain=True)
    hub = await bridged_hub(make_hub, mosquitto)
    await eventually(lambda: bridge_of(hub).received == 1)
    client = await hub_client(paho_peer, hub, "late")
    await client.subscribe("sensors/#", 1)
    message = await client.message()
    assert (message.topic, message.payload, message.retain) == ("sensors/mode", b"eco", True)


async def test_queued_qos1_messages_arrive_after_the_broker_returns(
    make_hub: HubFactory, mosquitto: Mosquitto, paho_peer: Peers
) -> None:
    """Broker down: the hub keeps serving, QoS 1 waits in the queue, and arrives after restart."""
    hub = await bridged_hub(make_hub, mosquitto)
    # A persistent subscriber: Mosquitto keeps its session across the restart.
    listener = await broker_client(paho_peer, mosquitto, "listener", clean_session=False)
    await listener.subscribe("commands/#", 1)
    await listener.disconnect()

    await mosquitto.stop()
    bridge = bridge_of(hub)
    await eventually(lambda: not bridge.connected)
    status, health = await http_health(hub)
    assert status == 200
    assert health["status"] == "degraded"
    assert health["services"]["mqtt.bridge"]["connected"] is False

    panel = await hub_client(paho_peer, hub, "panel")  # the hub still serves
    await panel.subscribe("commands/#", 1)
    for n in range(3):
        await panel.publish(f"commands/{n}", str(n), 1)
        assert (await panel.message()).payload == str(n).encode()
    assert bridge.health()["queued"] == 3

    await mosquitto.start()
    await eventually(lambda: bridge.connected)
    back = await broker_client(paho_peer, mosquitto, "listener", clean_session=False)
    got = [await back.message() for _ in range(3)]
    assert [(m.topic, m.payload) for m in got] == [
        (f"commands/{n}", str(n).encode()) for n in range(3)
    ]
    status, health = await http_health(hub)
    assert health["status"] == "ok"
    assert health["services"]["mqtt.bridge"]["queued"] == 0


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_no_echo_loop(
    make_hub: HubFactory, mosquitto: Mosquitto, paho_peer: Peers, protocol: str
) -> None:
    """On a 'both' rule each message crosses once: not bridged back, not re-injected."""
    hub = await bridged_hub(make_hub, mosquitto, protocol=protocol)
    on_broker = await broker_client(paho_peer, mosquitto, "counter")
    await on_broker.subscribe("shared/#", 1)
    in_hub = await hub_client(paho_peer, hub, "hub-side")
    await in_hub.subscribe("shared/#", 1)

    # Broker -> hub: the broker sees its one message, the hub client gets it once.
    await on_broker.publish("shared/from-broker", b"b", 1)
    assert (await on_broker.message()).topic == "shared/from-broker"
    assert (await in_hub.message()).topic == "shared/from-broker"
    # Hub -> broker: the hub client sees its message once, the broker once.
    await in_hub.publish("shared/from-hub", b"h", 1)
    assert (await in_hub.message()).topic == "shared/from-hub"
    assert (await on_broker.message()).topic == "shared/from-hub"

    assert await on_broker.nothing_for(0.5)
    assert await in_hub.nothing_for(0.1)
    bridge = bridge_of(hub)
    assert (bridge.sent, bridge.received) == (1, 1)


async def test_bridge_stops_with_the_hub(make_hub: HubFactory, mosquitto: Mosquitto) -> None:
    """hub.stop() disconnects the bridge; /healthz reports it while running."""
    hub = await bridged_hub(make_hub, mosquitto)
    health = hub.health()["services"]["mqtt.bridge"]
    assert health["connected"] is True
    assert health["broker"] == mosquitto.url
    await hub.stop()
    assert not bridge_of(hub).connected
    assert "hub-bridge" in mosquitto.log()


async def test_hub_starts_while_the_broker_is_down(
    make_hub: HubFactory, mosquitto: Mosquitto, paho_peer: Peers
) -> None:
    """A broker down at start is retried: the hub serves meanwhile, the bridge joins later."""
    await mosquitto.stop()
    hub = await make_hub(
        {
            "mqtt": {
                "bridge": {
                    "url": mosquitto.url,
                    "topics": TOPICS,
                    "reconnect_min_delay": 0.1,
                    "reconnect_max_delay": 0.2,
                }
            }
        }
    )
    bridge = bridge_of(hub)
    await asyncio.sleep(0.3)
    assert not bridge.connected
    assert hub.health()["status"] == "degraded"
    await hub_client(paho_peer, hub, "early")  # serving all the same
    await mosquitto.start()
    await eventually(lambda: bridge.connected)
    assert hub.health()["status"] == "ok"
