"""The node bus over Redis: one pub/sub channel per node, and a heartbeat key per node.

A node listens on ``<prefix>node:<id>`` through its broker's one pub/sub
connection (resubscribed after a loss) and keeps ``<prefix>node:<id>:alive``
alive with a short TTL, refreshed every health interval: a node killed with
SIGKILL stops counting as alive within three intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type hints

from hub.engine.bodies import carry
from hub.engine.bus import BusBase
from hub.engine.redis.broker import RedisBroker
from hub.engine.redis.link import RedisLink, cancel_requested
from hub.errors import EngineUnavailable

logger = logging.getLogger("hub.engine.redis")


class RedisBus(BusBase):
    def __init__(self, link: RedisLink, broker: RedisBroker, node_id: str) -> None:
        super().__init__(node_id)
        self._link = link
        self._broker = broker
        self._prefix = link.keys.prefix
        interval = link.options.health_interval
        self._interval = max(0.05, interval)
        # Three missed beats and the node counts as gone.
        self._alive_ms = max(1000, round(3000 * interval))
        broker.starting.append(self.start)

    def channel(self, node: str) -> str:
        return f"{self._prefix}node:{node}"

    def alive_key(self, node: str) -> str:
        return f"{self._prefix}node:{node}:alive"

    async def start(self) -> None:
        await self._broker.listen(self.channel(self.node_id), self._receive)
        self._link.spawn(self._heartbeat(), "wshub-redis-node")

    def _receive(self, frame: bytes) -> None:
        try:
            message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            logger.warning("node bus: undecodable message: %s", exc)
            return
        self.dispatch(message)

    async def _transmit(self, node: str, message: list[Any]) -> None:
        frame = msgpack.packb(message, use_bin_type=True, default=carry)
        await self._link.run("node message", self._link.client.publish(self.channel(node), frame))

    async def alive(self, node: str) -> bool:
        if node == self.node_id:
            return True
        key = self.alive_key(node)
        found = await self._link.run_idempotent("node alive", lambda: self._link.client.exists(key))
        return bool(found)

    async def _heartbeat(self) -> None:
        key = self.alive_key(self.node_id)
        while True:
            cancel_requested()
            # Redis away: the link reports it, and the next beat tries again.
            with contextlib.suppress(EngineUnavailable):
                beat = self._link.client.set(key, b"1", px=self._alive_ms)
                await self._link.run("node heartbeat", beat)
            await asyncio.sleep(self._interval)
