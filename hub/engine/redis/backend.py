"""The Redis backend: several hub processes share channels, presence, history and sessions."""

from __future__ import annotations

import contextlib
import secrets
from contextlib import AbstractAsyncContextManager

from prometheus_client import CollectorRegistry

from hub.engine.api_stores import SharedIdempotency, SharedRevocations
from hub.engine.base import ClientInfo
from hub.engine.core import ChannelEngine
from hub.engine.directory import RegistrationDirectory
from hub.engine.groups import SharedGroups
from hub.engine.redis.api_stores import RedisIdempotency, RedisRevocations
from hub.engine.redis.broker import RedisBroker
from hub.engine.redis.bus import RedisBus
from hub.engine.redis.config import RedisEngineConfig
from hub.engine.redis.directory import RedisDirectory
from hub.engine.redis.groups import RedisGroups
from hub.engine.redis.link import RedisLink
from hub.engine.redis.mqtt_sessions import RedisSessions
from hub.engine.redis.retained import RedisRetainedStore
from hub.engine.redis.stores import RedisHistory, RedisPresence
from hub.engine.retained import RetainedStore
from hub.engine.sessions import SessionJournal, SharedSessions
from hub.services import Service


class RedisBackend:
    """Every store on one :class:`RedisLink`; the broker is the hub service that runs it."""

    name = "redis"

    def __init__(
        self,
        config: RedisEngineConfig,
        node_id: str = "",
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        # The node bus needs a name for this node.
        node_id = node_id or secrets.token_hex(6)
        self.link = RedisLink(config, client_name=f"wshub-{node_id}", registry=registry)
        self._config = config
        history = RedisHistory(self.link, broadcast=True)
        presence = RedisPresence(self.link, node_id)
        self.broker = RedisBroker(self.link, history, presence)
        bus = RedisBus(self.link, self.broker, node_id)
        self.engine = ChannelEngine(self.broker, history, presence, node_id=node_id, bus=bus)
        self.service: Service | None = self.broker
        engine = self.engine

        # Looked up at each call: the policy layer may replace engine.on_departed.
        async def departed(channel: str, member: ClientInfo) -> None:
            await engine.on_departed(channel, member)

        presence.on_departed = departed

    def retained(
        self, max_channels: int, *, max_bytes: int = 64 * 1024 * 1024, expiry: float | None = None
    ) -> RetainedStore:
        return RedisRetainedStore(self.link, max_channels, max_bytes=max_bytes, expiry=expiry)

    def shared_sessions(
        self,
        *,
        expiry: float | None,
        max_queued: int,
        max_queued_bytes: int = 1024 * 1024,
        max_offline: int | None = None,
    ) -> SharedSessions | None:
        return RedisSessions(
            self.link,
            self.engine.bus.node_id,
            expiry=expiry,
            max_queued=max_queued,
            max_queued_bytes=max_queued_bytes,
            max_pending_bytes=self._config.sessions_max_pending_bytes,
            max_offline=max_offline,
        )

    def session_journal(self) -> SessionJournal | None:
        return None

    def unit(self, *, wait: bool = True, atomic: bool = True) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    def directory(self) -> RegistrationDirectory | None:
        return RedisDirectory(self.link, self.engine.bus.node_id)

    def shared_groups(self) -> SharedGroups:
        config = self._config
        return RedisGroups(
            self.link,
            self.engine.bus,
            announce_every=config.shared_announce_interval,
            claim_ttl_ms=round(config.shared_claim_ttl * 1000),
            max_pending_bytes=config.shared_max_pending_bytes,
        )

    def idempotency(self, *, window: float) -> SharedIdempotency | None:
        return RedisIdempotency(self.link, window=window)

    def revocations(self, *, ttl: float) -> SharedRevocations | None:
        return RedisRevocations(self.link, ttl=ttl)

    async def close(self) -> None:
        await self.engine.close()
