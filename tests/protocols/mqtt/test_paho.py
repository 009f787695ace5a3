"""paho-mqtt's own client over WebSocket against the hub: QoS, retained, will, sessions."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from hub import Hub, Identity
from hub.auth import Credentials
from tests.conftest import HubFactory
from tests.protocols.mqtt.conftest import PahoPeer, hub_address

Peers = Callable[..., PahoPeer]


async def connected(paho_peer: Peers, hub: Hub, client_id: str, **options: object) -> PahoPeer:
    peer = paho_peer(client_id, **options)
    _, code = await peer.connect(*hub_address(hub))
    assert code == 0
    return peer


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_paho_publishes_and_receives_at_each_qos(
    hub: Hub, paho_peer: Peers, qos: int
) -> None:
    """A paho publisher's QoS 0/1/2 message reaches a paho subscriber at that QoS."""
    sub = await connected(paho_peer, hub, "sub")
    pub = await connected(paho_peer, hub, "pub")
    assert await sub.subscribe("sensors/+/temp", 2) == [2]
    await pub.publish("sensors/kitchen/temp", b"21.5", qos)  # QoS 2 waits for PUBCOMP
    message = await sub.message()
    assert (message.topic, message.payload, message.qos) == ("sensors/kitchen/temp", b"21.5", qos)
    assert not message.retain


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_hub_publishes_to_paho_at_each_qos(hub: Hub, paho_peer: Peers, qos: int) -> None:
    """A publication carrying an MQTT QoS reaches paho at min(that QoS, granted QoS)."""
    sub = await connected(paho_peer, hub, "sub")
    await sub.subscribe("cmd/#", 1)
    await hub.channels.publish("cmd/lamp", b"on", extras={"mqtt": {"qos": qos}})
    message = await sub.message()
    assert (message.topic, message.payload, message.qos) == ("cmd/lamp", b"on", min(qos, 1))


async def test_paho_retained_message_and_clearing_it(hub: Hub, paho_peer: Peers) -> None:
    """A retained message reaches later subscribers flagged retained; an empty one clears it."""
    pub = await connected(paho_peer, hub, "pub")
    await pub.publish("status/door", b"open", 1, retain=True)
    late = await connected(paho_peer, hub, "late")
    await late.subscribe("status/#", 1)
    message = await late.message()
    assert (message.topic, message.payload, message.retain, message.qos) == (
        "status/door",
        b"open",
        True,
        1,
    )
    await pub.publish("status/door", b"", 1, retain=True)
    cleared = await late.message()  # live subscribers see the empty message itself
    assert (cleared.payload, cleared.retain) == (b"", False)
    later = await connected(paho_peer, hub, "later")
    await later.subscribe("status/#", 1)
    assert await later.nothing_for(0.3)


async def test_paho_will_on_abnormal_close_only(hub: Hub, paho_peer: Peers) -> None:
    """Closing the TCP socket without DISCONNECT publishes the will; DISCONNECT does not."""
    watcher = await connected(paho_peer, hub, "watcher")
    await watcher.subscribe("wills/#", 1)

    polite = paho_peer("polite")
    polite.client.will_set("wills/polite", b"gone", 1)
    await polite.connect(*hub_address(hub))
    await polite.disconnect()

    lost = paho_peer("lost")
    lost.client.will_set("wills/lost", b"gone", 1)
    await lost.connect(*hub_address(hub))
    await lost.vanish()

    will = await watcher.message()
    assert (will.topic, will.payload, will.qos) == ("wills/lost", b"gone", 1)
    assert await watcher.nothing_for(0.3)


async def test_paho_persistent_session_gets_queued_messages(hub: Hub, paho_peer: Peers) -> None:
    """clean_session=False: session present on reconnect, QoS 1 sent while away delivered."""
    device = paho_peer("device-1", clean_session=False)
    assert await device.connect(*hub_address(hub)) == (False, 0)
    await device.subscribe("devices/1/cmd", 1)
    await device.disconnect()

    pub = await connected(paho_peer, hub, "pub")
    for n in range(3):
        await pub.publish("devices/1/cmd", json.dumps({"n": n}), 1)

    back = paho_peer("device-1", clean_session=False)
    assert await back.connect(*hub_address(hub)) == (True, 0)
    received = [await back.message() for _ in range(3)]
    assert [json.loads(m.payload) for m in received] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {m.qos for m in received} == {1}


async def test_paho_publish_to_dollar_topic_does_not_loop(hub: Hub, paho_peer: Peers) -> None:
    """A clean_session=0 paho client's QoS 1 PUBLISH to $SYS is acknowledged once, not resent."""
    device = paho_peer("device-2", clean_session=False)
    assert await device.connect(*hub_address(hub)) == (False, 0)
    await device.subscribe("devices/2/echo", 1)
    await device.publish("$SYS/device-2/status", b"up", 1)  # waits for the PUBACK
    await device.publish("devices/2/echo", b"still here", 1)
    assert (await device.message()).payload == b"still here"
    assert not device.disconnected.is_set()
    await device.vanish()

    # paho resends unacknowledged QoS 1 messages on reconnect: there is none left.
    back = paho_peer("device-2", clean_session=False)
    assert await back.connect(*hub_address(hub)) == (True, 0)
    await back.publish("devices/2/echo", b"back", 1)
    assert (await back.message()).payload == b"back"
    assert not back.disconnected.is_set()
    assert hub.metrics.publications_dropped.labels("reserved_topic").value == 1


async def test_paho_mqtt31_client_is_served(hub: Hub, paho_peer: Peers) -> None:
    """paho speaking MQTT 3.1 (MQIsdp) connects and exchanges messages."""
    old = await connected(paho_peer, hub, "old", protocol=MQTTProtocolVersion.MQTTv31)
    await old.subscribe("t", 1)
    await old.publish("t", b"3.1", 1)
    assert (await old.message()).payload == b"3.1"


async def test_paho_credentials_through_the_hook(make_hub: HubFactory, paho_peer: Peers) -> None:
    """paho's username/password reach @hub.on_authenticate; a bad password gets CONNACK 4.

    paho reports MQTT 3.1.1 CONNACK codes as MQTT 5 reason codes: 4 is 134.
    """
    hub = await make_hub({"mqtt": {"allow_anonymous": False}})

    @hub.on_authenticate
    def check(credentials: Credentials) -> Identity | None:
        ok = (credentials.username, credentials.password) == ("ada", b"secret")
        return Identity("ada") if ok else None

    good = paho_peer("good")
    good.client.username_pw_set("ada", "secret")
    assert await good.connect(*hub_address(hub)) == (False, 0)
    bad = paho_peer("bad")
    bad.client.username_pw_set("ada", "nope")
    assert await bad.connect(*hub_address(hub)) == (False, 134)
