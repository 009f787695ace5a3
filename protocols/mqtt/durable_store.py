"""MQTT persistent sessions on a durable backend (SQLite): every change is journaled.

The sessions are in this process's memory, as with :class:`SessionStore`, and
each change of a ``clean_session = 0`` session is written to the backend's
:class:`~hub.engine.sessions.SessionJournal`: subscriptions, messages queued
and in flight (with their packet ids and QoS 2 step), and inbound QoS 2 ids
awaiting PUBREL, with the 5.0 subscription options, shared subscriptions, the
session's expiry interval and when it went offline. At start the journal's
sessions come back and are subscribed again (shared groups joined again), so
messages published while their clients are away, even right after a crash,
are queued for them; a session whose expiry ran out while the hub was down is
dropped instead.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from hub.channels import ChannelService
from hub.engine.sessions import JournaledSession, Queued, SessionJournal
from protocols.mqtt.config import MqttConfig
from protocols.mqtt.session import Awaiting, Inflight, SessionState, SubscriptionOptions
from protocols.mqtt.shared import SharedSubscriptions, parse_shared
from protocols.mqtt.store import ANONYMOUS, Claimant, Opened, Owner, SessionStore

logger = logging.getLogger(__name__)


class DurableSessionStore(SessionStore):
    def __init__(
        self,
        channels: ChannelService,
        config: MqttConfig,
        journal: SessionJournal,
        shared: Callable[[], SharedSubscriptions],
    ) -> None:
        super().__init__(channels, config)
        self._journal = journal
        # The shared groups (a service registered after this one, so looked up late).
        self._shared = shared

    async def open(
        self, client_id: str, clean: bool, owner: Owner, claimant: Claimant = ANONYMOUS
    ) -> Opened:
        opened = await super().open(client_id, clean, owner, claimant)
        stale = opened.stale
        if stale is not None and stale.journal is not None:
            # Dropped now, before the new session is written: the caller discards it later.
            stale.journal.drop(client_id)
            stale.journal = None
        self.settings_changed(opened.state)
        return opened

    def settings_changed(self, state: SessionState) -> None:
        # 5.0: CONNECT's expiry decides whether the session outlives its connection.
        if not state.clean and state.journal is None:
            state.journal = self._journal
        elif state.clean and state.journal is not None:
            state.journal.drop(state.client_id)
            state.journal = None
        state.save()

    async def save_subscriptions(self, state: SessionState) -> None:
        state.save()

    async def start(self) -> None:
        now = time.monotonic()
        # The longest offline first (the order mqtt.max_offline_sessions drops them in).
        stored_sessions = sorted(self._journal.sessions(), key=lambda s: -s.offline_for)
        for stored in stored_sessions:
            state = self._restore(stored)
            state.offline_since = now - stored.offline_for
            if state.expired(self._expiry, now):
                logger.info("MQTT session %r expired while the hub was down", state.client_id)
                self._journal.drop(state.client_id)
                continue
            self._sessions[state.client_id] = state
            self._offline_ids[state.client_id] = None
            # Subscribed again: what is published from now on waits in its queue.
            for topic_filter in state.subscriptions:
                await self._channels.subscribe(state, topic_filter)
            for full_filter in state.shared:
                parsed = parse_shared(full_filter)
                if parsed is not None:
                    await self._shared().join(state, full_filter, parsed[1])
        await super().start()

    def _restore(self, stored: JournaledSession) -> SessionState:
        state = SessionState(stored.client_id, clean=False, limits=self._limits)
        state.user = stored.user
        state.subscriptions = dict(stored.subscriptions)
        state.shared = dict(stored.shared)
        state.options = {f: SubscriptionOptions(*o) for f, o in stored.options.items()}
        state.expiry = stored.expiry
        state.version = stored.version
        last_seq = 0
        queue: deque[Queued] = deque()
        for message in stored.messages:
            last_seq = max(last_seq, message.seq)
            if message.packet_id is not None and message.frame is not None:
                awaiting = Awaiting(message.awaiting or Awaiting.PUBACK.value)
                state.inflight[message.packet_id] = Inflight(message.frame, awaiting, message.seq)
                state.last_packet_id = message.packet_id
            elif message.queued is not None:
                queue.append(message.queued)
        state.queue = queue  # counts its bytes
        state.awaiting_pubrel = set(stored.awaiting_pubrel)
        state.restore_seq(last_seq)
        state.journal = self._journal
        return state
