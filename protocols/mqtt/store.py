"""MQTT sessions by client id, owned by the hub so they outlive connections.

A hub service (``hub.services``, name :data:`SERVICE_NAME`). It decides the
session a CONNECT gets: a new one, or the one kept from an earlier connection
(clean_session 0), and it takes a client id over from a connection still
holding it. This one keeps sessions in this process's memory (the memory
engine); :class:`~protocols.mqtt.shared_store.SharedSessionStore` keeps them in
Redis for the Redis engine, so a client may come back on any node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from hub.errors import HubError
from protocols.mqtt.config import MqttConfig
from protocols.mqtt.session import Limits, SessionState

if TYPE_CHECKING:
    from hub.channels import ChannelService

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = "mqtt.sessions"


class Owner(Protocol):
    """The connection holding a client id."""

    def take_over(self) -> None:
        """Another connection took the client id: let go of the session and close."""


class ClientIdTaken(HubError):
    """The client id's session belongs to another user: the CONNECT is refused."""


@dataclass(frozen=True, slots=True)
class Claimant:
    """Who CONNECTs for a client id: the session's user may take it, and no one else.

    ``user`` is the identity's user id (None: anonymous, and anonymous sessions
    are one user); ``any_session`` says ``mqtt.takeover_access`` admits it.
    """

    user: str | None = None
    any_session: bool = False

    def may_take(self, holder: str | None) -> bool:
        return self.any_session or holder == self.user


# The claimant of a CONNECT without identity.
ANONYMOUS: Final = Claimant()


@dataclass(frozen=True, slots=True)
class Opened:
    state: SessionState
    # CONNACK's session-present flag.
    present: bool
    # A session the new connection replaced: the caller discards it.
    stale: SessionState | None


class SessionStore:
    def __init__(self, channels: ChannelService, config: MqttConfig) -> None:
        self._channels = channels
        self._expiry = config.session_expiry
        self._limits = Limits(
            max_inflight=config.max_inflight,
            max_queued=config.max_queued_messages,
            max_queued_bytes=config.max_queued_bytes,
            default_qos=config.default_qos,
        )
        self._sessions: dict[str, SessionState] = {}
        self._owners: dict[str, Owner] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # Persistent sessions no connection holds, the longest offline first.
        self._offline_ids: dict[str, None] = {}
        self._max_offline = config.max_offline_sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def subscription_count(self) -> int:
        """Subscriptions of the sessions this node holds, shared ones included ($SYS)."""
        return sum(len(s.subscriptions) + len(s.shared) for s in self._sessions.values())

    def get(self, client_id: str) -> SessionState | None:
        return self._sessions.get(client_id)

    async def open(
        self, client_id: str, clean: bool, owner: Owner, claimant: Claimant = ANONYMOUS
    ) -> Opened:
        """Give ``owner`` the session for ``client_id`` (no await here: it is atomic).

        ClientIdTaken, before anything changes, when the session (connected or
        kept) is another user's: its connection, will and queue stay as they are.
        """
        held = self._sessions.get(client_id)
        if held is not None and not claimant.may_take(held.user):
            raise ClientIdTaken(client_id)
        previous = self._owners.pop(client_id, None)
        if previous is not None:
            # MQTT-3.1.4-2: the existing connection of that client id is closed.
            previous.take_over()
        state = self._sessions.get(client_id)
        stale = None
        # An MQTT 5 session may expire before the sweeper passes: checked here too.
        if state is not None and (
            clean or state.clean or state.expired(self._expiry, time.monotonic())
        ):
            stale, state = state, None
        present = state is not None
        if state is None:
            state = SessionState(client_id, clean=clean, limits=self._limits)
            self._sessions[client_id] = state
        else:
            state.detach()
        state.user = claimant.user
        self._owners[client_id] = owner
        self._offline_ids.pop(client_id, None)
        return Opened(state, present, stale)

    async def close(self, client_id: str, owner: Owner) -> None:
        """The owner's connection ended: keep a persistent session, discard a clean one.

        At most ``mqtt.max_offline_sessions`` are kept: past it, the one
        offline the longest is discarded (as an expired one would be).
        """
        state = await self._release(client_id, owner)
        if state is None or state.clean:
            return
        self._offline_ids[client_id] = None
        while len(self._offline_ids) > self._max_offline:
            oldest = next(iter(self._offline_ids))
            dropped = self._sessions.get(oldest)
            if dropped is None:
                del self._offline_ids[oldest]
                continue
            logger.info("MQTT session %r dropped: over mqtt.max_offline_sessions", oldest)
            await self.discard(dropped)

    async def _release(self, client_id: str, owner: Owner) -> SessionState | None:
        """Detach the owner's session, discarding a clean one; None if it was taken over."""
        if self._owners.get(client_id) is not owner:
            return None  # taken over: the session belongs to another connection now
        del self._owners[client_id]
        state = self._sessions[client_id]
        state.detach()
        if state.clean:
            del self._sessions[client_id]
            await self.discard(state)
        return state

    async def save_subscriptions(self, state: SessionState) -> None:
        """Keep the session's subscriptions where other nodes find them (memory: nothing to do)."""

    def settings_changed(self, state: SessionState) -> None:
        """The session's own settings are set (CONNECT) or changed (5.0 DISCONNECT's expiry).

        A store that outlives the process keeps them; memory: nothing to do.
        """

    async def discard(self, state: SessionState) -> None:
        """Unsubscribe a session that is no longer anyone's from the engine."""
        if self._sessions.get(state.client_id) is state:
            del self._sessions[state.client_id]
            self._offline_ids.pop(state.client_id, None)
        for topic_filter in list(state.subscriptions):
            await self._channels.unsubscribe(state, topic_filter)
        state.reset()

    # -- the hub service -----------------------------------------------------

    async def start(self) -> None:
        # Always: MQTT 5 clients set their own expiry even when the hub sets none.
        self._sweeper = asyncio.create_task(self._sweep(self._expiry))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep(self, expiry: float | None) -> None:
        """Drop persistent sessions offline for longer than their expiry (``expiry`` by default)."""
        while True:
            await asyncio.sleep(min(expiry or 60.0, 60.0))
            now = time.monotonic()
            expired = [
                state
                for client_id, state in self._sessions.items()
                if client_id not in self._owners and state.expired(expiry, now)
            ]
            for state in expired:
                logger.info("MQTT session %r expired", state.client_id)
                await self.discard(state)
