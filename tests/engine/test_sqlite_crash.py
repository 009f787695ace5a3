"""The SQLite engine across kill -9: what was acknowledged is there after the restart.

A real hub process on the SQLite engine takes load from paho QoS 1 and QoS 2
publishers and a channels.v1 publisher, and is killed with SIGKILL in the
middle of it. After the restart (same file, same port) the paho clients
reconnect with their sessions and resend what was not acknowledged, as MQTT
has them do. Then every message reaches the persistent subscribers (QoS 2: exactly
once), retained messages are there, and a channels.v1 client resubscribing
with ``since`` recovers what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.multinode.conftest import HubProcess
from tests.protocols.channels.conftest import ChannelsPeer

QOS1_TOPIC = "load/q1"
QOS2_TOPIC = "load/q2"
FEED = "feed/events"


class SqliteHub(HubProcess):
    """A hub process on the SQLite engine; restarts on the same port and file."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "durable", "")
        self.database = directory / "engine.sqlite3"
        self.config.write_text(
            "[engine]\n"
            'backend = "sqlite"\n'
            f"path = {json.dumps(str(self.database))}\n"
            "[channels.default]\n"
            "history_size = 100000\n"
            "history_ttl = 600\n"
            "[mqtt]\n"
            "max_queued_messages = 100000\n"
        )


class Mqtt:
    """A paho client on its own thread, with a persistent session."""

    def __init__(self, client_id: str, port: int) -> None:
        self.name = client_id
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            transport="websockets",
            # Reconnected by the test, once the hub is back (see resume()).
            reconnect_on_failure=False,
        )
        self.client.max_queued_messages_set(0)
        self.port = port
        self.received: list[tuple[str, bytes, int]] = []
        self.acknowledged: set[int] = set()
        self.connects = 0
        self._lock = threading.RLock()
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self.connects += 1

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload), message.qos))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.acknowledged.add(mid)

    async def start(self) -> None:
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port, 30)
        self.client.loop_start()
        await self.until(lambda: self.connects >= 1)

    async def until(self, condition: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                with self._lock:
                    if condition():
                        return
                await asyncio.sleep(0.05)

    def payloads(self, topic: str) -> Counter[bytes]:
        with self._lock:
            return Counter(payload for name, payload, _ in self.received if name == topic)

    def pause(self) -> None:
        """Stop the network thread, keeping the session (the server is gone)."""
        self.client.loop_stop()

    async def resume(self) -> None:
        """Reconnect once, resending what was not acknowledged.

        Once, and only when the server is back: each reconnect attempt of paho
        2.2 resets its outgoing messages (``_messages_reconnect_reset_out``),
        and a second reset turns a QoS 2 message waiting to resend its PUBREL
        into a new PUBLISH with DUP clear, which a server must take as a new
        message (MQTT-4.3.3: after PUBREL the packet id is free). Seen here as
        duplicates until the paho clients stopped retrying on their own.
        """
        connects = self.connects
        await asyncio.to_thread(self.client.reconnect)
        self.client.loop_start()
        await self.until(lambda: self.connects > connects)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.asynccontextmanager
async def channels_peer(hub: HubProcess) -> AsyncIterator[ChannelsPeer]:
    ws = await connect(hub.url, subprotocols=[Subprotocol("channels.v1")], open_timeout=5)
    try:
        yield ChannelsPeer(ws)
    finally:
        await ws.close()


async def _publish_mqtt(client: Mqtt, topic: str, qos: int, sent: dict[int, bytes]) -> None:
    """Publish until cancelled; ``sent`` maps paho's message ids to payloads."""
    n = 0
    while True:
        n += 1
        payload = f"{topic}-{n}".encode()
        info = client.client.publish(topic, payload, qos)
        sent[info.mid] = payload
        # Bounded: at most a few hundred waiting in paho at any time.
        await client.until(lambda: len(sent) - len(client.acknowledged) <= 200)
        await asyncio.sleep(0)


async def _publish_feed(hub: HubProcess, acknowledged: list[dict[str, Any]]) -> None:
    """Publish to the feed until the hub dies; ``acknowledged`` gets each publish result."""
    with contextlib.suppress(Exception):  # the hub dies under it
        async with channels_peer(hub) as peer:
            n = 0
            while True:
                n += 1
                result = await peer.publish(FEED, {"n": n})
                acknowledged.append({"n": n, **result})


# paho's loop_stop() leaves its wake-up socket pair open, and resume() starts a
# new one: those two sockets per paused client are paho's, not the hub's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(120)
async def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    """After kill -9 and a restart, every acknowledged message is delivered, QoS 2 exactly once."""
    hub = SqliteHub(tmp_path)
    await hub.start()
    try:
        # Persistent subscribers: one stays connected through the load, one is away.
        online = Mqtt("sub-online", hub.port)
        away = Mqtt("sub-away", hub.port)
        for subscriber in (online, away):
            await subscriber.start()
            for topic in (QOS1_TOPIC, QOS2_TOPIC):
                subscriber.client.subscribe(topic, 2)
            subscriber.client.subscribe("status/#", 1)
        await asyncio.sleep(0.3)  # the SUBACKs
        away.stop()

        pub1, pub2 = Mqtt("pub-q1", hub.port), Mqtt("pub-q2", hub.port)
        await pub1.start()
        await pub2.start()
        retained = pub1.client.publish("status/door", b"open", 1, retain=True)
        sent1: dict[int, bytes] = {}
        sent2: dict[int, bytes] = {}
        feed: list[dict[str, Any]] = []
        async with channels_peer(hub) as reader:
            start = await reader.subscribe(FEED)
        tasks = [
            asyncio.create_task(_publish_mqtt(pub1, QOS1_TOPIC, 1, sent1)),
            asyncio.create_task(_publish_mqtt(pub2, QOS2_TOPIC, 2, sent2)),
            asyncio.create_task(_publish_feed(hub, feed)),
        ]
        # Load until each publisher has had some of its messages acknowledged.
        await pub1.until(lambda: len(pub1.acknowledged) > 300)
        await pub2.until(lambda: len(pub2.acknowledged) > 100)
        await pub1.until(lambda: len(feed) >= 100)
        hub.kill()
        for task in tasks[:2]:
            task.cancel()
        # The feed publisher ends by itself: its connection is gone.
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in (online, pub1, pub2):
            client.pause()
        assert retained.is_published()
        acknowledged_before = (len(pub1.acknowledged), len(pub2.acknowledged), len(feed))

        await hub.start()
        for client in (online, pub1, pub2):
            await client.resume()
        # paho resends what was not acknowledged.
        await pub1.until(lambda: pub1.acknowledged >= set(sent1), timeout=60)
        await pub2.until(lambda: pub2.acknowledged >= set(sent2), timeout=60)
        away = Mqtt("sub-away", hub.port)
        await away.start()
        expected1 = set(sent1.values())
        expected2 = set(sent2.values())
        for subscriber in (online, away):
            try:
                await subscriber.until(
                    lambda s=subscriber: (
                        set(s.payloads(QOS1_TOPIC)) >= expected1
                        and set(s.payloads(QOS2_TOPIC)) >= expected2
                    ),
                    timeout=20,
                )
            except TimeoutError:
                m1 = sorted(expected1 - set(subscriber.payloads(QOS1_TOPIC)))
                m2 = sorted(expected2 - set(subscriber.payloads(QOS2_TOPIC)))
                raise AssertionError(
                    f"{subscriber.name} misses {len(m1)} of {len(expected1)} QoS 1 messages"
                    f" ({m1[:5]}...) and {len(m2)} of {len(expected2)} QoS 2 ({m2[:5]}...)"
                ) from None
        await asyncio.sleep(0.5)  # copies, if any, would arrive now
        for subscriber in (online, away):
            twice = [p for p, count in subscriber.payloads(QOS2_TOPIC).items() if count > 1]
            assert twice == [], f"QoS 2 delivered more than once: {twice[:5]}"
            assert set(subscriber.payloads(QOS2_TOPIC)) == expected2

        # Retained: there for a new subscriber.
        late = Mqtt("late", hub.port)
        await late.start()
        late.client.subscribe("status/#", 1)
        await late.until(lambda: late.payloads("status/door") == Counter({b"open": 1}))

        # channels.v1: resubscribing with `since` recovers every acknowledged publication.
        async with channels_peer(hub) as reader:
            since = {"offset": start["offset"], "epoch": start["epoch"]}
            result = await reader.subscribe(FEED, since=since)
        assert result["recovered"] is True
        recovered = {p["data"]["n"]: p["offset"] for p in result["publications"]}
        for ack in feed:
            assert recovered.get(ack["n"]) == ack["offset"], ack
        assert result["epoch"] == start["epoch"]
        for client in (online, away, pub1, pub2, late):
            client.stop()
        assert all(count > 0 for count in acknowledged_before)
    finally:
        hub.kill()
        await hub.stop()
