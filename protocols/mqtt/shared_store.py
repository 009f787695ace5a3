"""MQTT sessions shared by the nodes of a cluster (the Redis engine).

A client id belongs to one node at a time, named by its owner key in Redis.
A CONNECT on node B for a client id node A holds:

1. B names itself the owner (``SET ... GET``: it learns A in the same step);
2. B subscribes a fresh session to the stored subscriptions, so that nothing
   published from now on is missed (a message may then arrive twice, which
   QoS 1 allows; copies that match by channel, epoch and offset are dropped);
3. B asks A, over the node bus, to let go: A closes its connection for that id
   (MQTT-3.1.4-2), writes the session's inflight state and queue to Redis and
   unsubscribes it. B waits at most ``takeover_timeout``, and not at all when A
   is no longer alive (a node killed with SIGKILL);
4. B reads the session (inflight messages, packet ids, the queue) and the
   client gets *session present* and its messages.

When a ``clean_session = 0`` client goes offline, its node writes what must
survive a move to Redis and keeps the session subscribed: what arrives then is
appended to the queue in Redis, so a reconnect on any node finds it. Inflight
state of a connected client lives in the node's memory and is written when
the client goes offline or moves; a node that crashes loses that part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from hub.channels import ChannelService
from hub.engine.bus import NodeBus, NodeGone
from hub.engine.sessions import Queued, SharedSessions, StoredSession
from hub.errors import EngineUnavailable
from protocols.mqtt.config import MqttConfig
from protocols.mqtt.durable_store import DurableSessionStore
from protocols.mqtt.session import Awaiting, Inflight, SessionState
from protocols.mqtt.shared import SERVICE_NAME as SHARED
from protocols.mqtt.shared import SharedSubscriptions
from protocols.mqtt.store import ANONYMOUS, Claimant, ClientIdTaken, Opened, Owner, SessionStore

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

RELEASE: Final = "mqtt.release"
# Asks the node holding an offline session to drop it (past mqtt.max_offline_sessions).
DROP: Final = "mqtt.drop"


def session_store(hub: Hub) -> SessionStore:
    """The store the hub's backend supports: shared by the nodes, or in this process."""
    config = hub.config.section(MqttConfig)
    shared = hub.backend.shared_sessions(
        expiry=config.session_expiry,
        max_queued=config.max_queued_messages,
        max_queued_bytes=config.max_queued_bytes,
        max_offline=config.max_offline_sessions,
    )
    if shared is None:
        journal = hub.backend.session_journal()
        if journal is not None:
            return DurableSessionStore(
                hub.channels, config, journal, lambda: hub.services.get(SHARED, SharedSubscriptions)
            )
        return SessionStore(hub.channels, config)
    return SharedSessionStore(hub.channels, config, shared, hub.engine.bus)


def stored_of(state: SessionState) -> StoredSession:
    """What of ``state`` is written (the queue aside)."""
    return StoredSession(
        dict(state.subscriptions),
        [(pid, entry.frame, entry.awaiting.value) for pid, entry in state.inflight.items()],
        sorted(state.awaiting_pubrel),
        state.last_packet_id,
    )


def restore(stored: StoredSession, state: SessionState) -> None:
    """Put ``stored`` into ``state`` (its subscriptions are the caller's business)."""
    state.inflight = {
        pid: Inflight(frame, Awaiting(awaiting)) for pid, frame, awaiting in stored.inflight
    }
    state.awaiting_pubrel = set(stored.awaiting_pubrel)
    state.last_packet_id = stored.last_packet_id


class SharedSessionStore(SessionStore):
    def __init__(
        self,
        channels: ChannelService,
        config: MqttConfig,
        sessions: SharedSessions,
        bus: NodeBus,
        *,
        takeover_timeout: float = 2.0,
    ) -> None:
        super().__init__(channels, config)
        self._stored = sessions
        self._bus = bus
        self._takeover_timeout = takeover_timeout
        # One open/close/release at a time per client id on this node.
        self._locks: dict[str, asyncio.Lock] = {}
        bus.on_request(RELEASE, self._on_release)
        bus.on_request(DROP, self._on_drop)

    def _lock(self, client_id: str) -> asyncio.Lock:
        lock = self._locks.get(client_id)
        if lock is None:
            lock = self._locks[client_id] = asyncio.Lock()
        return lock

    def _forget_lock(self, client_id: str) -> None:
        lock = self._locks.get(client_id)
        if lock is not None and not lock.locked() and client_id not in self._sessions:
            del self._locks[client_id]

    # -- connections -----------------------------------------------------------

    async def open(
        self, client_id: str, clean: bool, owner: Owner, claimant: Claimant = ANONYMOUS
    ) -> Opened:
        """EngineUnavailable when Redis cannot be reached (the CONNACK says so).

        ClientIdTaken, before anything changes, when the session is another user's
        (on any node: its user is in Redis while it is connected or kept).
        """
        async with self._lock(client_id):
            recorded, holder = await self._stored.user(client_id)
            local = self._sessions.get(client_id)
            if not recorded and local is not None:
                recorded, holder = True, local.user
            if recorded and not claimant.may_take(holder) and not await self._orphaned(client_id):
                raise ClientIdTaken(client_id)
            previous_node = await self._stored.claim(client_id)
            connection = self._owners.pop(client_id, None)
            if connection is not None:
                connection.take_over()  # MQTT-3.1.4-2, on this node
            local = self._sessions.pop(client_id, None)
            moved = previous_node is not None and previous_node != self._stored.node_id
            stale = None
            # As in memory: a session past its expiry, not yet swept, is not resumed.
            expired = local is not None and local.expired(self._expiry, time.monotonic())
            if local is not None and (clean or local.clean or moved or expired):
                stale, local = local, None
                stale.spill = None  # the caller discards it; nothing of it goes to Redis
            state = local or SessionState(client_id, clean=clean, limits=self._limits)
            state.detach()
            state.spill = None  # arrivals wait in memory until the client has them
            try:
                present = await self._take(state, local is not None, previous_node, clean)
                await self._stored.set_user(client_id, claimant.user)
            except BaseException:
                await self._abandon(state, local is not None)
                raise
            state.user = claimant.user
            self._sessions[client_id] = state
            self._owners[client_id] = owner
            self._offline_ids.pop(client_id, None)
            return Opened(state, present, stale)

    async def _orphaned(self, client_id: str) -> bool:
        """Whether the user on record for ``client_id`` holds nothing any more.

        A node that dies (SIGKILL) leaves its connected clients' records in
        Redis: a clean session's would lock its client id to that user for
        good. When the node named as holder is gone, the record of a session
        with nothing stored is deleted; a stored one stays its user's until it
        expires.
        """
        node = await self._stored.owner(client_id)
        if node is not None:
            if node == self._stored.node_id:
                if client_id in self._sessions:
                    return False
            elif await self._bus.alive(node):
                return False
        freed = await self._stored.forget_orphan(client_id, node)
        if freed:
            logger.info("MQTT client id %r: freed the record left by node %s", client_id, node)
        return freed

    async def _take(
        self, state: SessionState, kept_here: bool, previous_node: str | None, clean: bool
    ) -> bool:
        """Make ``state`` the client's session; whether one was stored (session present)."""
        client_id = state.client_id
        subscribed = set(state.subscriptions) if kept_here else set()
        if previous_node is not None and previous_node != self._stored.node_id:
            if not clean:
                await self._subscribe(state, await self._stored.subscriptions(client_id))
                subscribed = set(state.subscriptions)
            await self._ask_release(previous_node, client_id)
        if clean:
            await self._stored.delete(client_id)
            return False
        return await self._resume(state, subscribed)

    async def _abandon(self, state: SessionState, kept_here: bool) -> None:
        """Redis failed mid-way: keep a session this node had, drop a new one."""
        if kept_here:
            self._sessions[state.client_id] = state
            if not state.clean:
                state.spill = lambda message: self._stored.spill(state.client_id, message)
            return
        for topic_filter in list(state.subscriptions):
            await self._channels.unsubscribe(state, topic_filter)
        state.reset()

    async def _resume(self, state: SessionState, subscribed: set[str]) -> bool:
        """Fill ``state`` from Redis; whether a stored session was there."""
        client_id = state.client_id
        stored = await self._stored.load(client_id)
        if stored is not None:
            restore(stored, state)
            new = {f: q for f, q in stored.subscriptions.items() if f not in subscribed}
            state.subscriptions.update(stored.subscriptions)
            await self._subscribe(state, new, record=False)
        # Spilled by this node and not written yet: written first, then read.
        await self._stored.flushed(self._takeover_timeout)
        waiting = await self._stored.take_queue(client_id)
        state.queue = _merged(waiting, state.queue)
        # From now on the session exists in Redis, even with nothing in it yet.
        await self._stored.save(client_id, stored_of(state), offline=False)
        return stored is not None

    async def _subscribe(
        self, state: SessionState, subscriptions: dict[str, int], *, record: bool = True
    ) -> None:
        for topic_filter, qos in subscriptions.items():
            if record:
                state.subscriptions[topic_filter] = qos
            await self._channels.subscribe(state, topic_filter)

    async def _ask_release(self, node: str, client_id: str) -> None:
        try:
            if not await self._bus.alive(node):
                return
            await self._bus.request(node, RELEASE, client_id, timeout=self._takeover_timeout)
        except NodeGone as exc:
            logger.warning("MQTT session %r: node %s did not let go: %s", client_id, node, exc)

    async def close(self, client_id: str, owner: Owner) -> None:
        dropped: list[str] = []
        async with self._lock(client_id):
            state = await self._release(client_id, owner)
            if state is None:
                return
            if state.clean:
                # Redis away: a node taking the id over later asks us, and we have nothing.
                with contextlib.suppress(EngineUnavailable):
                    await self._stored.disown(client_id)
            else:
                dropped = await self._offline(state)
                self._offline_ids[client_id] = None
        self._forget_lock(client_id)
        for oldest in dropped:
            await self._drop_offline(oldest)

    async def _drop_offline(self, client_id: str) -> None:
        """Past ``mqtt.max_offline_sessions`` (counted in Redis, for the whole cluster):
        the session ``client_id`` is dropped, by the node that holds it."""
        logger.info("MQTT session %r dropped: over mqtt.max_offline_sessions", client_id)
        try:
            node = await self._stored.owner(client_id)
            if node is None or node == self._stored.node_id:
                await self._on_drop(self._stored.node_id, client_id)
                return
            if await self._bus.alive(node):
                with contextlib.suppress(NodeGone):
                    await self._bus.request(node, DROP, client_id, timeout=self._takeover_timeout)
                    return
            # Its node is gone: nothing of it lives anywhere but in Redis.
            await self._stored.delete(client_id)
            await self._stored.forget_orphan(client_id, node)
        except EngineUnavailable:
            # The keys expire with mqtt.session_expiry instead.
            logger.warning("MQTT session %r: Redis away, not dropped", client_id)

    async def _on_drop(self, sender: str, client_id: object) -> bool:
        """Drop the offline session ``client_id``, unless its client came back meanwhile."""
        if not isinstance(client_id, str):
            raise ValueError("a client id is a string")
        async with self._lock(client_id):
            if client_id in self._owners:
                return False  # connected again (out of the count): its session lives on
            state = self._sessions.get(client_id)
            if state is not None:
                state.spill = None
                await self.discard(state)
            await self._stored.delete(client_id)
            await self._stored.disown(client_id)
        self._forget_lock(client_id)
        return True

    async def _offline(self, state: SessionState, *, counted: bool = True) -> list[str]:
        """The client left: its state to Redis, and what arrives from now on after it.

        ``counted``: it joins the cluster's offline sessions; returned, those
        now past ``mqtt.max_offline_sessions``, for the caller to drop.
        """
        client_id = state.client_id
        queued, state.queue = list(state.queue), deque()
        for message in queued:
            self._stored.spill(client_id, message)
        state.spill = lambda message: self._stored.spill(client_id, message)
        try:
            # Its own expiry (5.0): Redis forgets it, and it leaves the
            # cluster's offline count, when it expires, on whichever node.
            return await self._stored.save(
                client_id, stored_of(state), offline=True, counted=counted, expiry=state.expiry
            )
        except EngineUnavailable:
            logger.warning("MQTT session %r: Redis away, its state stays on this node", client_id)
            return []

    async def stop(self) -> None:
        await super().stop()
        # Sessions that went offline at shutdown: their last messages reach Redis.
        await self._stored.flushed(self._takeover_timeout)

    async def save_subscriptions(self, state: SessionState) -> None:
        if not state.clean:
            await self._stored.save_subscriptions(state.client_id, dict(state.subscriptions))

    # -- another node takes a client id over -------------------------------------

    async def _on_release(self, sender: str, client_id: object) -> bool:
        """Let go of ``client_id``: close its connection, store its session, unsubscribe."""
        if not isinstance(client_id, str):
            raise ValueError("a client id is a string")
        async with self._lock(client_id):
            connection = self._owners.pop(client_id, None)
            if connection is not None:
                connection.take_over()
            state = self._sessions.pop(client_id, None)
            self._offline_ids.pop(client_id, None)
            if state is not None:
                if not state.clean:
                    state.detach()
                    # Moving to the asking node, not offline: not counted.
                    await self._offline(state, counted=False)
                # Still spilling while it unsubscribes: nothing in between is lost.
                for topic_filter in list(state.subscriptions):
                    await self._channels.unsubscribe(state, topic_filter)
                state.spill = None
                await self._stored.flushed(self._takeover_timeout)
                state.reset()
        self._forget_lock(client_id)
        return state is not None


def _merged(stored: list[Queued], held: deque[Queued]) -> deque[Queued]:
    """Stored messages first (older), then those held here that are not copies of them."""
    seen = {_identity(message) for message in stored}
    out = deque(stored)
    out.extend(message for message in held if _identity(message) not in seen)
    return out


def _identity(message: Queued) -> tuple[str, str, int] | int:
    publication = message.publication
    if publication.offset > 0:
        return (publication.channel, publication.epoch, publication.offset)
    return id(publication)  # no offset: never a known copy
