"""MQTT across a hub restart and a broker outage, on real sockets: wills, persistent
sessions, and local service while the bridge's broker is away."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from hub import Hub
from hub.engine import Publication
from protocols.mqtt import BRIDGE_SERVICE_NAME
from protocols.mqtt.bridge import MqttBridge
from protocols.mqtt.codec import Connack, Publish, Will
from tests.conftest import HubFactory
from tests.protocol_clients import ChannelsClient, JsonRpcClient, MqttClient, WampClient
from tests.protocols.mqtt.conftest import Mosquitto


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for something the hub does on its own (a will, a reconnect)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class Recorder:
    """An engine subscriber in the test: sees publications even while no client is there."""

    def __init__(self) -> None:
        self.channels: list[str] = []

    def deliver(self, publication: Publication, subscription: str) -> None:
        self.channels.append(publication.channel)


async def device(hub: Hub, client_id: str, **connect: Any) -> MqttClient:
    client = await MqttClient.open(hub.url)
    assert await client.connect(client_id, **connect) == Connack(False, 0)
    return client


# --- wills ------------------------------------------------------------------------------------


async def test_wills_fire_for_an_abort_not_for_a_server_shutdown(make_hub: HubFactory) -> None:
    """A client whose TCP connection drops publishes its will; a hub stopping publishes none."""
    hub = await make_hub()
    wills = Recorder()
    await hub.engine.subscribe(wills, "wills/#")
    watcher = await device(hub, "watcher")
    await watcher.subscribe("wills/#", 1)
    seen: list[Publish] = []
    watcher.on_publish = seen.append

    lost = await device(hub, "lost", will=Will("wills/lost", b"gone", 1))
    staying = await device(hub, "staying", will=Will("wills/staying", b"gone", 1, retain=True))
    lost.abort()
    await until(lambda: len(seen) == 1)
    assert (seen[0].topic, seen[0].payload) == ("wills/lost", b"gone")

    await hub.stop()
    assert await staying.wait_closed() == (1001, "server shutting down")
    assert await watcher.wait_closed() == (1001, "server shutting down")
    await asyncio.sleep(0.1)  # anything the shutdown fired would have run by now
    assert wills.channels == ["wills/lost"]
    assert await hub.retained.get("wills/staying") is None


# --- persistent sessions across hub.stop() / hub.start() -------------------------------------


async def test_persistent_session_survives_stop_and_start(make_hub: HubFactory) -> None:
    """clean_session 0 across a restart of the same Hub: in-flight resent, queued delivered."""
    hub = await make_hub()
    first = await device(hub, "dev", clean_session=False)
    assert (await first.subscribe("cmd/#", 2)).return_codes == (2,)
    first.acknowledge = False  # cut off before acknowledging
    received: list[Publish] = []
    first.on_publish = received.append
    await hub.channels.publish("cmd/a", b"in-flight", extras={"mqtt": {"qos": 1}})
    await hub.channels.publish("cmd/b", b"half-done", extras={"mqtt": {"qos": 2}})
    await until(lambda: len(received) == 2)
    in_flight, half_done = received

    await hub.stop()
    assert await first.wait_closed() == (1001, "server shutting down")
    await hub.start(port=0)

    # Published while the device is away: queued for its session.
    publisher = await device(hub, "publisher")
    await publisher.publish("cmd/c", b"queued-1", 1)
    await publisher.publish("cmd/d", b"queued-2", 2)
    await publisher.publish("cmd/e", b"dropped", 0)  # QoS 0 is not queued for the offline

    back = await MqttClient.open(hub.url)
    again: list[Publish] = []
    back.on_publish = again.append
    assert await back.connect("dev", clean_session=False) == Connack(True, 0)
    await until(lambda: len(again) >= 4)
    await asyncio.sleep(0.1)
    assert [(p.payload, p.qos, p.dup) for p in again] == [
        (b"in-flight", 1, True),
        (b"half-done", 2, True),
        (b"queued-1", 1, False),
        (b"queued-2", 2, False),
    ]
    assert [again[0].packet_id, again[1].packet_id] == [in_flight.packet_id, half_done.packet_id]
    # The kept subscription serves live traffic too.
    await publisher.publish("cmd/f", b"live", 1)
    await until(lambda: len(again) == 5)
    assert again[-1].payload == b"live"


async def test_inbound_qos2_in_flight_survives_stop_and_start(make_hub: HubFactory) -> None:
    """A QoS 2 PUBLISH received before a restart is delivered once when the client resends it."""
    hub = await make_hub()
    sender = await device(hub, "sender", clean_session=False)
    sender.acknowledge = False  # PUBREC arrives; the PUBREL never leaves
    delivered = Recorder()
    await hub.engine.subscribe(delivered, "up/#")
    sender.send_packets(Publish("up/x", b"once", 2, packet_id=9))
    await until(lambda: delivered.channels == ["up/x"])

    await hub.stop()
    await sender.wait_closed()
    await hub.start(port=0)

    back = await MqttClient.open(hub.url)
    assert await back.connect("sender", clean_session=False) == Connack(True, 0)
    # MQTT-4.3.3: the sender resends its PUBLISH (DUP); the client answers the PUBREC.
    back.send_packets(Publish("up/x", b"once", 2, dup=True, packet_id=9))
    await back.publish("up/marker", b"after", 1)  # acknowledged once the resend was handled
    assert delivered.channels == ["up/x", "up/marker"]


# --- the bridge's broker away ------------------------------------------------------------------

TOPICS = [{"filter": "commands/#", "direction": "out"}, {"filter": "sensors/#", "direction": "in"}]


async def health(hub: Hub) -> tuple[int, dict[str, Any]]:
    """GET /healthz over a real socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_every_protocol_is_served_while_the_broker_is_down(
    make_hub: HubFactory, mosquitto: Mosquitto
) -> None:
    """Broker gone: /healthz says degraded (200), all four protocols serve, stop stays prompt."""
    options = {"url": mosquitto.url, "topics": TOPICS, "reconnect_min_delay": 0.1}
    hub = await make_hub({"mqtt": {"bridge": {**options, "reconnect_max_delay": 0.3}}})

    @hub.rpc("echo")
    async def echo(text: str) -> str:
        return text

    bridge = hub.services.get(BRIDGE_SERVICE_NAME, MqttBridge)
    await until(lambda: bridge.connected)
    await mosquitto.stop()
    await until(lambda: not bridge.connected)
    status, report = await health(hub)
    assert (status, report["status"]) == (200, "degraded")
    assert report["services"][BRIDGE_SERVICE_NAME]["connected"] is False

    got: list[Any] = []
    channels = await ChannelsClient.open(hub.url)
    await channels.subscribe("commands/door")
    channels.on_notification = lambda message: got.append(("channels", message["params"]["data"]))
    wamp = await WampClient.open(hub.url, subprotocol="wamp.2.msgpack")
    await wamp.join()
    await wamp.subscribe("commands.door")
    wamp.on_event = lambda event: got.append(("wamp", event[4][0]))
    mqtt = await device(hub, "panel")
    await mqtt.subscribe("commands/#", 1)
    mqtt.on_publish = lambda packet: got.append(("mqtt", json.loads(packet.payload)))
    rpc = await JsonRpcClient.open(hub.url)

    assert await rpc.call("echo", ["up"]) == "up"
    await mqtt.publish("commands/door", b'"open"', 1)  # bound for the broker: queued
    await channels.publish("commands/door", "close")
    await until(lambda: len(got) == 6)
    assert sorted(got) == sorted(
        (protocol, word) for protocol in ("channels", "wamp", "mqtt") for word in ("open", "close")
    )
    assert bridge.health()["queued"] >= 1

    started = time.monotonic()
    await hub.stop()
    # The reconnect loop does not hold the shutdown up.
    assert time.monotonic() - started < 5
    for peer in (channels, wamp, mqtt, rpc):
        assert (await peer.wait_closed())[0] == 1001
