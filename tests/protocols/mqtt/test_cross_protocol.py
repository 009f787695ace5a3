"""MQTT topics are channels: MQTT and channels.v1 clients meet on the same engine."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from hub import Hub
from tests.conftest import JsonRpcPeer, PeerFactory
from tests.protocols.mqtt.conftest import PahoPeer, hub_address


async def channels_subscriber(jsonrpc: PeerFactory, hub: Hub, *channels: str) -> JsonRpcPeer:
    peer = await jsonrpc(hub, "channels.v1")
    for channel in channels:
        await peer.call("subscribe", {"channel": channel})
    return peer


async def messages(peer: JsonRpcPeer, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        note = await peer.recv()
        assert note["method"] == "message", note
        out.append(note["params"])
    return out


async def test_mqtt_publish_reaches_channels_subscribers(
    hub: Hub, jsonrpc: PeerFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """MQTT JSON on sensors/kitchen/temp reaches channels.v1 subscribers of it and of sensors/#."""
    exact = await channels_subscriber(jsonrpc, hub, "sensors/kitchen/temp")
    wildcard = await channels_subscriber(jsonrpc, hub, "sensors/#")
    device = paho_peer("device")
    await device.connect(*hub_address(hub))
    await device.publish("sensors/kitchen/temp", b'{"celsius": 21.5}', 1)

    [got] = await messages(exact, 1)
    assert got["channel"] == "sensors/kitchen/temp"
    assert got["data"] == {"celsius": 21.5}
    [via_pattern] = await messages(wildcard, 1)
    assert via_pattern["channel"] == "sensors/kitchen/temp"
    assert via_pattern["subscription"] == "sensors/#"
    assert via_pattern["data"] == {"celsius": 21.5}


async def test_mqtt_binary_payload_reaches_channels_as_envelope(
    hub: Hub, jsonrpc: PeerFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """Bytes that are not JSON reach channels.v1 as {"$binary": base64}."""
    peer = await channels_subscriber(jsonrpc, hub, "cam/frame")
    device = paho_peer("cam")
    await device.connect(*hub_address(hub))
    raw = bytes(range(256))
    await device.publish("cam/frame", raw, 1)
    [got] = await messages(peer, 1)
    assert got["data"] == {"$binary": base64.b64encode(raw).decode()}


async def test_channels_publish_reaches_mqtt_subscribers(
    hub: Hub, jsonrpc: PeerFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """A channels.v1 publish reaches MQTT subscribers as compact JSON bytes at default QoS."""
    device = paho_peer("lamp")
    await device.connect(*hub_address(hub))
    await device.subscribe("home/+/lamp", 2)
    browser = await jsonrpc(hub, "channels.v1")
    await browser.call("publish", {"channel": "home/hall/lamp", "data": {"on": True, "level": 3}})
    message = await device.message()
    assert message.topic == "home/hall/lamp"
    assert message.payload == b'{"on":true,"level":3}'
    assert message.qos == 1


async def test_binary_envelope_reaches_mqtt_as_bytes(
    hub: Hub, jsonrpc: PeerFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """A channels.v1 {"$binary": ...} publish reaches MQTT as the bytes it wraps."""
    device = paho_peer("sink")
    await device.connect(*hub_address(hub))
    await device.subscribe("blob", 0)
    browser = await jsonrpc(hub, "channels.v1")
    raw = b"\x00\xffbinary"
    await browser.call(
        "publish", {"channel": "blob", "data": {"$binary": base64.b64encode(raw).decode()}}
    )
    assert (await device.message()).payload == raw


async def test_namespace_rules_apply_to_mqtt(
    make_hub: Callable[..., Any], jsonrpc: PeerFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """A namespace closed to client publishing drops MQTT publishes too (acknowledged, unseen)."""
    hub = await make_hub(
        {"channels": {"namespaces": {"readonly": {"allow_publish": False}}}},
    )
    watcher = await channels_subscriber(jsonrpc, hub, "readonly/#", "open/#")
    device = paho_peer("device")
    await device.connect(*hub_address(hub))
    await device.publish("readonly/x", b"1", 1)
    await device.publish("open/x", b"2", 1)
    [got] = await messages(watcher, 1)
    assert got["channel"] == "open/x"
