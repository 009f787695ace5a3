"""A bridge between the hub's channels and an upstream MQTT broker, on paho-mqtt.

paho-mqtt runs its own network thread (``loop_start``): it connects, reconnects
with exponential backoff and keeps its socket alive, and its callbacks are
handed to the asyncio loop with ``call_soon_threadsafe``. Everything else runs
on the loop. The bridge is a hub service: started and stopped with the hub,
reported in ``/healthz``; the hub keeps serving while the broker is away.

- in: the bridge subscribes the rules' remote filters (again on every
  reconnect) and publishes what arrives into the hub with
  ``origin = "mqtt-bridge:<client id>"``.
- out: the bridge subscribes the rules' local filters in the engine and
  publishes to the broker; while the broker is down, QoS 1/2 messages wait in
  a bounded queue (oldest dropped) and are sent after the reconnect.
- no loops: a publication whose origin is this bridge is never sent back out,
  and a message the broker echoes back (we subscribe where we publish) is
  recognised and dropped: by the no-local option with MQTT 5, by remembering
  what was sent with MQTT 3.1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.engine import Kind, Publication
from protocols.mqtt.bridge_topics import Routes
from protocols.mqtt.config import MqttBridgeConfig
from protocols.mqtt.frames import mqtt_extras, payload
from protocols.mqtt.retain import keep_retained

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

ORIGIN_PREFIX: Final = "mqtt-bridge:"


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        if not parts.hostname:
            raise ValueError(f"bridge url {url!r} has no host")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def __str__(self) -> str:
        # Never the credentials: this string goes to logs and /healthz.
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class EchoFilter:
    """Recognises our own messages coming back from the broker (MQTT 3.1.1 has no no-local).

    What is sent to a topic we also subscribe is remembered for ``ttl`` seconds;
    a message arriving with the same topic and payload is taken for its echo,
    once per copy sent. Bounded: past ``max_entries`` the oldest are forgotten.
    """

    def __init__(self, ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._pending: OrderedDict[tuple[str, bytes], deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, topic: str, data: bytes) -> None:
        key = (topic, data)
        expiries = self._pending.get(key)
        if expiries is None:
            expiries = self._pending[key] = deque()
            while len(self._pending) > self._max_entries:
                self._pending.popitem(last=False)
        expiries.append(time.monotonic() + self._ttl)

    def consume(self, topic: str, data: bytes) -> bool:
        key = (topic, data)
        expiries = self._pending.get(key)
        if expiries is None:
            return False
        now = time.monotonic()
        while expiries and expiries[0] < now:
            expiries.popleft()
        found = bool(expiries)
        if found:
            expiries.popleft()
        if not expiries:
            del self._pending[key]
        return found


class MqttBridge:
    """One paho-mqtt client between the engine and an upstream broker (a hub service)."""

    def __init__(self, hub: Hub, config: MqttBridgeConfig) -> None:
        self._hub = hub
        self._config = config
        self.broker = BrokerAddress.parse(config.url)
        self.routes = Routes(config.topics)
        self.client_id = config.client_id or f"wshub-bridge-{hub.node_id}"
        self.origin = ORIGIN_PREFIX + self.client_id
        self._v5 = config.protocol == "5"
        self._echoes = EchoFilter()
        self._connected = False
        self._queue: deque[Outgoing] = deque()
        self._incoming: asyncio.Queue[Incoming] = asyncio.Queue(config.queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._local_filters: list[str] = []
        self._subscribe_mid: int | None = None
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.last_error = ""

    # -- the hub service ---------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = asyncio.create_task(self._consume())
        for local_filter in self.routes.local_filters():
            await self._hub.channels.subscribe(self, local_filter)
            self._local_filters.append(local_filter)
        client = self._client = self._make_client()
        # connect_async + loop_start: nothing blocks the loop, and a broker that
        # is down at start is retried like one that went away later.
        client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self._config.keepalive,
            clean_start=self._config.clean_session
            if self._v5
            else paho.MQTT_CLEAN_START_FIRST_ONLY,
        )
        client.loop_start()
        logger.info("MQTT bridge %s: connecting to %s", self.client_id, self.broker)

    async def stop(self) -> None:
        for local_filter in self._local_filters:
            await self._hub.channels.unsubscribe(self, local_filter)
        self._local_filters.clear()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            # loop_stop joins paho's thread, which may be sleeping in a backoff.
            await asyncio.to_thread(client.loop_stop)
        self._connected = False
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None

    @property
    def connected(self) -> bool:
        return self._connected

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self._connected else "degraded",
            "connected": self._connected,
            "broker": str(self.broker),
            "client_id": self.client_id,
            "queued": len(self._queue),
            "sent": self.sent,
            "received": self.received,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    def _make_client(self) -> paho.Client:
        config = self._config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if self._v5 else config.clean_session,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
        )
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.cert_file) if config.cert_file else None,
                keyfile=str(config.key_file) if config.key_file else None,
            )
            client.tls_insecure_set(config.tls_insecure)
        # paho annotates the delays as int but computes with any number.
        client.reconnect_delay_set(
            cast(int, config.reconnect_min_delay), cast(int, config.reconnect_max_delay)
        )
        # A safety net behind our own queue, for messages handed to paho in the
        # instant between a disconnect and our hearing of it.
        client.max_queued_messages_set(config.queue_size)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        client.on_subscribe = self._paho_subscribe
        return client

    # -- paho's thread: hand everything to the loop --------------------------------

    def _call(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the hub is gone
            loop.call_soon_threadsafe(callback, *args)

    def _paho_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._call(self._on_refused, str(reason))
            return
        # Subscribed here, in paho's thread, so it is on the wire before anything
        # else; the bridge counts as connected once the SUBACK is in.
        routes = self.routes.inbound
        if not routes:
            self._call(self._on_connected)
            return
        if self._v5:
            options = [(r.remote_filter, SubscribeOptions(qos=r.qos, noLocal=True)) for r in routes]
            result, self._subscribe_mid = client.subscribe(options)
        else:
            result, self._subscribe_mid = client.subscribe(
                [(r.remote_filter, r.qos) for r in routes]
            )
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._call(self._on_refused, f"subscribe failed: {result}")

    def _paho_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [
            r.remote_filter
            for r, code in zip(self.routes.inbound, codes, strict=False)
            if code.is_failure
        ]
        if refused:
            self._call(self._on_refused, f"broker refused subscriptions {refused}")
        self._call(self._on_connected)

    def _paho_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._call(self._on_disconnected, str(reason))

    def _paho_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        incoming = Incoming(message.topic, bytes(message.payload), message.qos, message.retain)
        self._call(self._on_message, incoming)

    # -- on the loop ---------------------------------------------------------------

    def _on_connected(self) -> None:
        self._connected = True
        logger.info(
            "MQTT bridge %s: connected to %s, %d queued",
            self.client_id,
            self.broker,
            len(self._queue),
        )
        while self._queue and self._connected:
            self._publish(self._queue.popleft())

    def _on_refused(self, reason: str) -> None:
        self.last_error = f"refused: {reason}"
        logger.warning(
            "MQTT bridge %s: %s refused the connection: %s", self.client_id, self.broker, reason
        )

    def _on_disconnected(self, reason: str) -> None:
        if self._connected:
            logger.warning("MQTT bridge %s: lost %s: %s", self.client_id, self.broker, reason)
        self._connected = False
        self.last_error = f"disconnected: {reason}"

    def _on_message(self, incoming: Incoming) -> None:
        if not self._v5 and self._echoes.consume(incoming.topic, incoming.payload):
            return  # our own message, back from the broker
        try:
            self._incoming.put_nowait(incoming)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _consume(self) -> None:
        """Publish messages from the broker into the hub, in arrival order."""
        while True:
            incoming = await self._incoming.get()
            channel = self.routes.inbound_for(incoming.topic)
            if channel is None:
                continue
            try:
                publication = await self._hub.channels.publish(
                    channel,
                    incoming.payload,
                    extras={**mqtt_extras(incoming.qos, incoming.retain), "bridge": self.client_id},
                    origin=self.origin,
                )
                if incoming.retain:
                    await keep_retained(self._hub.retained, publication)
            except Exception:
                logger.exception("MQTT bridge %s: cannot publish %r", self.client_id, channel)
                continue
            self.received += 1

    # -- the engine side: hub -> broker (must not block) -----------------------------

    def deliver(self, publication: Publication, subscription: str) -> None:
        # What came from the broker through us is never sent back to it.
        if publication.kind is not Kind.MESSAGE or publication.origin == self.origin:
            return
        details = publication.extras.get("mqtt")
        retain = bool(details.get("retain")) if isinstance(details, dict) else False
        data = payload(publication)
        for route, topic in self.routes.outbound_for(subscription, publication.channel):
            self._send(Outgoing(topic, data, route.qos, retain))

    def _send(self, message: Outgoing) -> None:
        if self._connected and not self._queue:
            self._publish(message)
        elif message.qos == 0:
            self.dropped += 1  # QoS 0 is not kept for a broker that is away
        else:
            if len(self._queue) >= self._config.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(message)

    def _publish(self, message: Outgoing) -> None:
        client = self._client
        if client is None:
            return
        if not self._v5 and self.routes.subscribed_remotely(message.topic):
            self._echoes.expect(message.topic, message.payload)
        info = client.publish(message.topic, message.payload, message.qos, message.retain)
        # NO_CONN: paho noticed a disconnect first; it keeps QoS 1/2 messages
        # and sends them after reconnecting.
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE or (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos == 0
        ):
            self.dropped += 1
        else:
            self.sent += 1
