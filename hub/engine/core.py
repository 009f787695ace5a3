"""The channel engine: this node's fan-out index on top of the three stores."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from hub.engine.base import (
    Broker,
    ClientInfo,
    HistoryOptions,
    HistoryResult,
    HistoryStore,
    Kind,
    PresenceStore,
    Publication,
    RemovableHistory,
    StreamPosition,
)
from hub.engine.bus import LocalBus, NodeBus
from hub.engine.topics import PatternIndex, is_pattern

logger = logging.getLogger(__name__)


class Subscriber(Protocol):
    """A local connection that receives publications. ``deliver`` must not block."""

    def deliver(self, publication: Publication, subscription: str) -> None: ...


Subscribers = dict[Subscriber, None]  # an insertion-ordered set


class ChannelEngine:
    """Routes publications to local subscribers; stores and broker do the rest.

    The broker is subscribed per node: the first local subscriber of a channel
    (or pattern) subscribes the node, the last one to leave unsubscribes it.
    """

    def __init__(
        self,
        broker: Broker,
        history: HistoryStore,
        presence: PresenceStore,
        *,
        node_id: str = "",
        bus: NodeBus | None = None,
    ) -> None:
        self.broker = broker
        self.history = history
        self.presence = presence
        self.node_id = node_id
        # Node-to-node messages (MQTT session takeover, WAMP calls across nodes).
        self.bus: NodeBus = bus if bus is not None else LocalBus(node_id)
        self._exact: dict[str, Subscribers] = {}
        self._patterns: PatternIndex[Subscribers] = PatternIndex()
        # Node-level listeners (hub.api's control channel), not clients.
        self._listeners: dict[str, Callable[[Publication], None]] = {}
        self.on_delivered: Callable[[int], None] = lambda count: None
        self.on_published: Callable[[], None] = lambda: None
        # Told of each member that left without a leave of its own (its node
        # died; the Redis engine finds those). ChannelService replaces it to
        # apply the namespace's join_leave and run the leave hooks.
        self.on_departed: Callable[[str, ClientInfo], Awaitable[None]] = self.announce_leave
        broker.set_handler(self.dispatch)

    # -- subscriptions ---------------------------------------------------

    async def subscribe(self, subscriber: Subscriber, subscription: str) -> None:
        subscribers = self._local(subscription, create=True)
        assert subscribers is not None
        first = not subscribers
        subscribers[subscriber] = None
        if first:
            await self.broker.subscribe(subscription)

    async def unsubscribe(self, subscriber: Subscriber, subscription: str) -> None:
        subscribers = self._local(subscription, create=False)
        if subscribers is None or subscriber not in subscribers:
            return
        del subscribers[subscriber]
        if not subscribers:
            if is_pattern(subscription):
                self._patterns.remove(subscription)
            else:
                del self._exact[subscription]
            await self.broker.unsubscribe(subscription)

    async def listen(self, channel: str, listener: Callable[[Publication], None]) -> None:
        """Hand every publication on ``channel`` to ``listener``: a node, not a client.

        Not counted among subscriptions; one listener per channel. Publish to it
        with ``broker.publish`` (no history, no metrics).
        """
        if channel in self._listeners:
            raise ValueError(f"{channel!r} already has a listener")
        self._listeners[channel] = listener
        await self.broker.subscribe(channel)

    def local_channels(self) -> dict[str, int]:
        """Channels and patterns subscribed on this node, with their local subscribers."""
        counts = {channel: len(subscribers) for channel, subscribers in self._exact.items()}
        for pattern, subscribers in self._patterns.items():
            counts[pattern] = len(subscribers)
        return counts

    def local_subscription_count(self) -> int:
        """Distinct channels and patterns this node is subscribed to."""
        return len(self._exact) + len(self._patterns)

    def _local(self, subscription: str, *, create: bool) -> Subscribers | None:
        if is_pattern(subscription):
            subscribers = self._patterns.get(subscription)
            if subscribers is None and create:
                subscribers = {}
                self._patterns.add(subscription, subscribers)
            return subscribers
        if create:
            return self._exact.setdefault(subscription, {})
        return self._exact.get(subscription)

    # -- publishing ------------------------------------------------------

    async def publish(
        self, publication: Publication, *, history_size: int, history_ttl: float
    ) -> StreamPosition:
        """Give the publication its offset, then hand it to every node."""
        publication.origin = publication.origin or self.node_id
        # One backend call: offset, history, every node (and stored, where durable).
        position = await self.broker.publish(publication, HistoryOptions(history_size, history_ttl))
        assert position is not None  # a broker publishing with history gives its position
        self.on_published()
        return position

    def dispatch(self, publication: Publication) -> None:
        """Fan a publication out to this node's subscribers (the broker calls this)."""
        channel = publication.channel
        if self._listeners:
            listener = self._listeners.get(channel)
            if listener is not None:
                listener(publication)
                return
        delivered = 0
        exact = self._exact.get(channel)
        if exact:
            delivered += self._deliver(publication, channel, exact)
        # Presence events go to subscribers of the channel itself only.
        if publication.kind is Kind.MESSAGE and len(self._patterns):
            for pattern, subscribers in list(self._patterns.match(channel)):
                delivered += self._deliver(publication, pattern, subscribers)
        if delivered:
            self.on_delivered(delivered)

    @staticmethod
    def _deliver(publication: Publication, subscription: str, subscribers: Subscribers) -> int:
        for subscriber in tuple(subscribers):
            # One broken subscriber must not cost the others this publication.
            try:
                subscriber.deliver(publication, subscription)
            except Exception:
                logger.exception(
                    "delivering %s (offset %d) to %r failed",
                    publication.channel,
                    publication.offset,
                    subscriber,
                )
        return len(subscribers)

    # -- presence --------------------------------------------------------

    async def join(self, channel: str, member: ClientInfo, *, announce: bool) -> bool:
        """Add a connection to presence; True (and a join event) for the user's first."""
        first = await self.presence.add(channel, member)
        if first and announce:
            await self.broker.publish(
                Publication(channel, _member_data(member), kind=Kind.JOIN, origin=self.node_id)
            )
        return first

    async def leave(self, channel: str, client_id: str, *, announce: bool) -> ClientInfo | None:
        """Remove a connection; the member (and a leave event) when the user's last left."""
        last = await self.presence.remove(channel, client_id)
        if last is not None and announce:
            await self.announce_leave(channel, last)
        return last

    async def announce_leave(self, channel: str, member: ClientInfo) -> None:
        """Tell every node's subscribers of ``channel`` that the member's user left."""
        await self.broker.publish(
            Publication(channel, _member_data(member), kind=Kind.LEAVE, origin=self.node_id)
        )

    async def members(self, channel: str) -> dict[str, ClientInfo]:
        return await self.presence.members(channel)

    # -- history ---------------------------------------------------------

    async def read_history(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
        max_bytes: int | None = None,
    ) -> HistoryResult:
        return await self.history.read(channel, since=since, limit=limit, max_bytes=max_bytes)

    async def position(self, channel: str) -> StreamPosition:
        return await self.history.position(channel)

    async def remove_history(self, channel: str) -> bool:
        """Forget a channel's publications; False when the backend's store cannot."""
        if not isinstance(self.history, RemovableHistory):
            return False
        await self.history.remove(channel)
        return True

    async def close(self) -> None:
        await self.bus.close()
        await self.broker.close()


def _member_data(member: ClientInfo) -> dict[str, object]:
    # Join/leave are per user (tabs merged), so the client id is not part of it.
    return {"user": member.user, "info": member.info}
