"""MQTT persistent sessions on a durable backend (SQLite): every change is journaled.

The sessions are in this process's memory, as with :class:`SessionStore`, and
each change of a ``clean_session = 0`` session is written to the backend's
:class:`~hub.engine.sessions.SessionJournal`: subscriptions, messages queued
and in flight (with their packet ids and QoS 2 step), and inbound QoS 2 ids
awaiting PUBREL. At start the journal's sessions come back and are subscribed
again, so messages published while their clients are away, even right after a
crash, are queued for them.
"""

from __future__ import annotations

from collections import deque

from hub.channels import ChannelService
from hub.config import MqttConfig
from hub.engine.sessions import JournaledSession, Queued, SessionJournal
from protocols.mqtt.session import Awaiting, Inflight, SessionState
from protocols.mqtt.store import ANONYMOUS, Claimant, Opened, Owner, SessionStore


class DurableSessionStore(SessionStore):
    def __init__(
        self, channels: ChannelService, config: MqttConfig, journal: SessionJournal
    ) -> None:
        super().__init__(channels, config)
        self._journal = journal

    async def open(
        self, client_id: str, clean: bool, owner: Owner, claimant: Claimant = ANONYMOUS
    ) -> Opened:
        opened = await super().open(client_id, clean, owner, claimant)
        stale = opened.stale
        if stale is not None and stale.journal is not None:
            # Dropped now, before the new session is written: the caller discards it later.
            stale.journal.drop(client_id)
            stale.journal = None
        state = opened.state
        if not state.clean and state.journal is None:
            state.journal = self._journal
        state.save()
        return opened

    async def save_subscriptions(self, state: SessionState) -> None:
        state.save()

    async def start(self) -> None:
        for stored in self._journal.sessions():
            state = self._restore(stored)
            self._sessions[state.client_id] = state
            self._offline_ids[state.client_id] = None
            # Subscribed again: what is published from now on waits in its queue.
            for topic_filter in state.subscriptions:
                await self._channels.subscribe(state, topic_filter)
        await super().start()

    def _restore(self, stored: JournaledSession) -> SessionState:
        state = SessionState(stored.client_id, clean=False, limits=self._limits)
        state.user = stored.user
        state.subscriptions = dict(stored.subscriptions)
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
