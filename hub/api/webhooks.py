"""Webhooks: hub events POSTed to the backend, signed, in order per channel (docs/webhooks.md).

Each event happens on one node (the node holding the session, or the node
whose presence change made a user's first join or last leave), so with Redis
every event is sent once across the cluster, by that node.

Per URL, events go into ``lanes`` ordered queues, a channel (or, for connect
and disconnect, a client) always in the same lane: a lane sends its next event
only after the one before was delivered or given up, so a channel's events
arrive in order. A failed delivery (no 2xx in time) is retried with
full-jitter backoff up to ``max_attempts``; the queues hold at most
``max_queue`` events per URL. Dropped events are counted in
``wshub_webhooks_dropped_total{reason}``.

The body is signed: ``X-Wshub-Signature: t=<unix time>,v1=<hex>`` where the
hex is HMAC-SHA256(secret, "<t>.<body>"), as Stripe signs (the time in the
signature lets a receiver refuse replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import random
import secrets
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from hub.config import WebhooksConfig
from hub.engine import ClientInfo, Publication
from hub.payloads import to_json_value
from hub.rpc import CallContext

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Wshub-Signature"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The X-Wshub-Signature value of a body sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def full_jitter(attempt: int, *, base: float, cap: float) -> float:
    return random.uniform(0, min(cap, base * 2.0 ** min(attempt, 64)))


class _Target:
    """One URL: its ordered lanes and their senders."""

    def __init__(self, url: str, lanes: int) -> None:
        self.url = url
        self.lanes: list[deque[bytes]] = [deque() for _ in range(lanes)]
        self.wakeups = [asyncio.Event() for _ in range(lanes)]
        self.queued = 0


class Webhooks:
    """A hub service: collects the configured events and delivers them."""

    def __init__(self, hub: Hub, config: WebhooksConfig) -> None:
        self._hub = hub
        self._config = config
        self._secret = self._load_secret()
        self._events = set(config.events)
        self._ids = itertools.count(1)
        self._node = hub.node_id
        self._targets: list[_Target] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        metrics = hub.metrics
        self._delivered = metrics.webhooks_delivered
        self._dropped = metrics.webhooks_dropped
        self._retries = metrics.webhooks_retries
        hooks = hub.hooks
        if "connect" in self._events:
            hooks.connect.append(self._on_connect)
        if "disconnect" in self._events:
            hooks.disconnect.append(self._on_disconnect)
        if self._events & {"join", "channel_occupied"}:
            hooks.join.append(("#", self._on_join))
        if self._events & {"leave", "channel_vacated"}:
            hooks.leave.append(("#", self._on_leave))
        if "publish" in self._events:
            hub.channels.after_publish.append(self._on_publish)

    def _load_secret(self) -> bytes:
        if self._config.secret is not None:
            return self._config.secret.encode()
        assert self._config.secret_file is not None
        try:
            return self._config.secret_file.read_text("utf-8").strip().encode()
        except OSError as exc:
            raise ValueError(
                f"{self._config.secret_file}: cannot read the webhooks secret: {exc.strerror}"
            ) from None

    def reload(self) -> None:
        """Re-read the secret file (SIGHUP)."""
        self._secret = self._load_secret()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(json_serialize=lambda v: orjson.dumps(v).decode())
        loop = asyncio.get_running_loop()
        for url in self._config.urls:
            target = _Target(url, self._config.lanes)
            self._targets.append(target)
            for lane in range(self._config.lanes):
                task = loop.create_task(self._send_lane(target, lane), name="wshub-webhooks")
                self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._targets.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- events ------------------------------------------------------------------------

    def emit(self, event: str, key: str, fields: dict[str, Any]) -> None:
        """Queue an event for every URL; ``key`` (a channel, a client) keeps its order."""
        if event not in self._events:
            return
        body = orjson.dumps(
            {
                "id": f"{self._node}-{next(self._ids)}",
                "event": event,
                "time": round(time.time(), 3),
                "node": self._node,
                **fields,
            },
            default=to_json_value,
        )
        for target in self._targets:
            if target.queued >= self._config.max_queue:
                self._dropped.labels("queue_full").inc()
                continue
            lane = zlib.crc32(key.encode()) % len(target.lanes)
            target.lanes[lane].append(body)
            target.queued += 1
            target.wakeups[lane].set()

    def _on_connect(self, ctx: CallContext) -> None:
        self.emit("connect", ctx.session_id, _who(ctx))

    def _on_disconnect(self, ctx: CallContext) -> None:
        self.emit("disconnect", ctx.session_id, _who(ctx))

    async def _on_join(self, channel: str, member: ClientInfo) -> None:
        fields = {"channel": channel, "user": member.user, "client": member.client}
        self.emit("join", channel, {**fields, "info": member.info})
        if "channel_occupied" in self._events:
            # The first user of the channel's presence (cluster-wide with Redis).
            stats = await self._hub.channels.presence_stats(None, channel)
            if stats["users"] == 1:
                self.emit("channel_occupied", channel, {"channel": channel})

    async def _on_leave(self, channel: str, member: ClientInfo) -> None:
        self.emit(
            "leave", channel, {"channel": channel, "user": member.user, "client": member.client}
        )
        if "channel_vacated" in self._events:
            stats = await self._hub.channels.presence_stats(None, channel)
            if stats["users"] == 0:
                self.emit("channel_vacated", channel, {"channel": channel})

    def _on_publish(self, ctx: CallContext, publication: Publication) -> None:
        fields = {
            "channel": publication.channel,
            "data": publication.data,
            "offset": publication.offset,
            "epoch": publication.epoch,
            **_who(ctx),
        }
        self.emit("publish", publication.channel, fields)

    # -- delivery ----------------------------------------------------------------------

    async def _send_lane(self, target: _Target, lane: int) -> None:
        queue, wakeup = target.lanes[lane], target.wakeups[lane]
        while True:
            while not queue:
                wakeup.clear()
                await wakeup.wait()
            body = queue[0]
            try:
                await self._deliver(target.url, body)
            finally:
                queue.popleft()
                target.queued -= 1

    async def _deliver(self, url: str, body: bytes) -> None:
        """Send until a 2xx answer or out of attempts (then dropped and counted)."""
        config = self._config
        for attempt in range(config.max_attempts):
            if attempt:
                self._retries.inc()
                delay = full_jitter(
                    attempt - 1, base=config.retry_min_delay, cap=config.retry_max_delay
                )
                await asyncio.sleep(max(delay, config.retry_min_delay / 2))
            if await self._attempt(url, body):
                self._delivered.inc()
                return
        self._dropped.labels("failed").inc()
        logger.warning("webhooks: %s gave up after %d attempts", url, config.max_attempts)

    async def _attempt(self, url: str, body: bytes) -> bool:
        assert self._session is not None
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, now, body),
            "X-Wshub-Delivery": secrets.token_hex(8),
        }
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout),
            ) as response:
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.info("webhooks: delivery to %s failed: %r", url, exc)
            return False


def _who(ctx: CallContext) -> dict[str, Any]:
    identity = ctx.identity
    return {
        "client": ctx.session_id,
        "protocol": ctx.subprotocol,
        "user": identity.user_id if identity is not None else ctx.session_id,
    }
