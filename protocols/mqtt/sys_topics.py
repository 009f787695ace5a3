"""``$SYS/broker/...``: the hub's MQTT statistics, published like Mosquitto's.

A hub service (:data:`SERVICE_NAME`). Every ``mqtt.sys_interval`` seconds (the
first time one interval after the start) it publishes, retained, so a new
subscriber sees the last values at once:

- ``$SYS/broker/version``: ``wshub <version>``
- ``$SYS/broker/uptime``: ``<seconds> seconds``
- ``$SYS/broker/clients/connected``: MQTT connections (WebSocket and TCP)
- ``$SYS/broker/clients/total``: MQTT sessions, connected or kept offline
- ``$SYS/broker/subscriptions/count``: their subscriptions, shared ones included
- ``$SYS/broker/messages/received``: PUBLISH packets received from clients
- ``$SYS/broker/messages/sent``: PUBLISH packets sent to clients

Values are this node's. They are published server-side (no client may
publish to ``$`` topics) and read through the hub's subscribe rules: the
namespace ``$SYS`` (``[channels.namespaces."$SYS"]``) decides who may read
them. ``#`` does not match them (MQTT-4.7.2-1); ``$SYS/#`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Final

from hub.errors import ChannelError
from protocols.mqtt.frames import mqtt_extras
from protocols.mqtt.retain import keep_retained
from protocols.mqtt.store import SERVICE_NAME as STORE_SERVICE
from protocols.mqtt.store import SessionStore

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = "mqtt.sys"
PREFIX: Final = "$SYS/broker/"


def _version() -> str:
    try:
        return version("wshub")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


class MqttStats:
    """Counters the handlers bump; plain ints, read by the publisher."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0


class SysTopics:
    def __init__(self, hub: Hub, interval: float) -> None:
        self._hub = hub
        self._interval = interval
        self.stats = MqttStats()
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def values(self) -> dict[str, str]:
        """Topic (under ``$SYS/broker/``) -> payload, as of now."""
        hub = self._hub
        store = hub.services.get(STORE_SERVICE, SessionStore)
        return {
            "version": f"wshub {_version()}",
            "uptime": f"{int(time.monotonic() - self._started)} seconds",
            "clients/connected": str(hub.protocol_counts().get("mqtt", 0)),
            "clients/total": str(len(store)),
            "subscriptions/count": str(store.subscription_count()),
            "messages/received": str(self.stats.received),
            "messages/sent": str(self.stats.sent),
        }

    async def publish(self) -> None:
        """Publish every value once, retained."""
        channels = self._hub.channels
        for name, value in self.values().items():
            publication = await channels.publish(
                PREFIX + name, value.encode(), extras=mqtt_extras(0, True)
            )
            await keep_retained(self._hub.retained, publication)

    async def _run(self) -> None:
        # The first values one interval after the start, once the engine runs.
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.publish()
            except ChannelError as exc:  # the engine away: next time
                logger.info("$SYS not published: %s", exc)

    async def start(self) -> None:
        self._started = time.monotonic()
        if self._interval > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
