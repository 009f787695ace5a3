"""MQTT 5.0 sessions on SQLite across kill -9: their settings come back, their expiry holds.

A real hub process on the SQLite engine; paho MQTTv5 clients subscribe with
No Local, Retain As Published, subscription identifiers, Retain Handling and
a shared subscription, with a session expiry interval, and the hub is killed
with SIGKILL. After the restart the long-lived session is present and behaves
as subscribed (the options apply, a message queued before the crash keeps its
subscription identifier, the shared group delivers to it); sessions whose
expiry ran out while the hub was down, one offline and one connected at the
crash, are gone.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.engine.test_sqlite_crash import SqliteHub


class Client5:
    """A paho MQTT 5.0 client on its own thread."""

    def __init__(self, client_id: str, port: int, expiry: int) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            transport="websockets",
            reconnect_on_failure=False,
        )
        self.port = port
        self.expiry = expiry
        self.present: bool | None = None
        self.messages: list[paho.MQTTMessage] = []
        self.subacks = 0
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self.present = bool(flags.session_present)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._lock:
            self.subacks += 1

    async def connect(self, *, clean_start: bool = False) -> bool:
        """Connect (clean start off unless asked); whether the hub had the session."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.expiry
        await asyncio.to_thread(
            self.client.connect,
            "127.0.0.1",
            self.port,
            30,
            clean_start=clean_start,
            properties=properties,
        )
        self.client.loop_start()
        await until(lambda: self.present is not None)
        assert self.present is not None
        return self.present

    async def subscribe(self, topic: str, options: SubscribeOptions, identifier: int = 0) -> None:
        properties = None
        if identifier:
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = identifier
        subacks = self.subacks
        self.client.subscribe(topic, options=options, properties=properties)
        await until(lambda: self.subacks > subacks)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1: returns once acknowledged (on SQLite: stored)."""
        info = self.client.publish(topic, payload, 1, retain=retain)
        await until(info.is_published)

    def received(self, topic: str) -> list[paho.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def drop(self) -> None:
        """Stop the network thread without DISCONNECT (the hub died under it)."""
        self.client.loop_stop()

    async def disconnect(self) -> None:
        self.client.disconnect()
        await asyncio.sleep(0.2)  # the DISCONNECT reaches the hub
        self.client.loop_stop()


async def until(condition: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def identifiers(message: paho.MQTTMessage) -> list[int]:
    return list(getattr(message.properties, "SubscriptionIdentifier", []) or [])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(90)
async def test_mqtt5_session_settings_and_expiry_survive_sigkill(tmp_path: Path) -> None:
    hub = SqliteHub(tmp_path)
    await hub.start()
    try:
        publisher = Client5("publisher", hub.port, expiry=0)
        await publisher.connect()
        await publisher.publish("rh/t", b"retained", retain=True)
        device = Client5("device", hub.port, expiry=3600)
        assert await device.connect() is False
        await device.subscribe("rh/t", SubscribeOptions(qos=1))
        await until(lambda: len(device.received("rh/t")) == 1)
        await device.subscribe("own/#", SubscribeOptions(qos=1, noLocal=True), identifier=7)
        await device.subscribe("rap/t", SubscribeOptions(qos=1, retainAsPublished=True))
        await device.subscribe("plain/t", SubscribeOptions(qos=1))
        await device.subscribe("$share/g/work/t", SubscribeOptions(qos=1))
        # Expiring in 2 s: one offline before the crash, one connected through it.
        away = Client5("short-away", hub.port, expiry=2)
        await away.connect()
        await away.subscribe("plain/t", SubscribeOptions(qos=1))
        await away.disconnect()
        held = Client5("short-held", hub.port, expiry=2)
        await held.connect()
        await held.subscribe("plain/t", SubscribeOptions(qos=1))
        # Clean start, then kept for an hour: persistent from this CONNECT on.
        fresh = Client5("fresh", hub.port, expiry=3600)
        await fresh.connect(clean_start=True)
        await fresh.subscribe("plain/t", SubscribeOptions(qos=1))
        await device.disconnect()

        # Queued for the offline device before the crash: it keeps its identifier.
        await publisher.publish("own/queued", b"q")
        hub.kill()
        await hub.stop()
        publisher.drop()
        held.drop()
        fresh.drop()
        await asyncio.sleep(3)  # longer than the short sessions' expiry

        await hub.start()
        device = Client5("device", hub.port, expiry=3600)
        assert await device.connect() is True
        await until(lambda: len(device.received("own/queued")) == 1)
        (queued,) = device.received("own/queued")
        assert identifiers(queued) == [7]
        fresh = Client5("fresh", hub.port, expiry=3600)
        assert await fresh.connect() is True
        fresh.drop()
        for gone in ("short-away", "short-held"):
            client = Client5(gone, hub.port, expiry=60)
            assert await client.connect() is False, f"{gone} outlived its expiry"
            client.drop()

        publisher = Client5("publisher", hub.port, expiry=0)
        await publisher.connect()
        # No Local: the device's own publication does not come back to it.
        await device.publish("own/mine", b"mine")
        await publisher.publish("own/theirs", b"theirs")
        await until(lambda: len(device.received("own/theirs")) == 1)
        assert identifiers(device.received("own/theirs")[0]) == [7]
        # Retain As Published: RETAIN stays set on live delivery; without it, cleared.
        await publisher.publish("rap/t", b"r", retain=True)
        await publisher.publish("plain/t", b"live", retain=True)
        await until(lambda: bool(device.received("rap/t")) and bool(device.received("plain/t")))
        assert device.received("rap/t")[0].retain is True
        assert [m.retain for m in device.received("plain/t")] == [False]
        # The shared group came back with the device as its member.
        await publisher.publish("work/t", b"job")
        await until(lambda: len(device.received("work/t")) == 1)
        # Retain Handling 1: the filter is still subscribed, so no retained message.
        await device.subscribe("rh/t", SubscribeOptions(qos=1, retainHandling=1))
        await asyncio.sleep(0.5)
        assert device.received("rh/t") == []
        assert device.received("own/mine") == []
        await device.disconnect()
        await publisher.disconnect()
    finally:
        hub.kill()
        await hub.stop()
