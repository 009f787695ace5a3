"""What MQTT keeps per client id, across connections when clean_session is 0.

A :class:`SessionState` is the engine subscriber, not the connection: while
the client is offline its subscriptions keep receiving, and QoS 1/2 messages
wait in a bounded queue. Outbound QoS 1/2 flows are tracked per packet id in
an inflight window; on reconnect the unacknowledged ones are sent again with
DUP set (PUBREL for those already past PUBREC), in their original order.
No asyncio here: the connection is a :class:`Link` that takes frames.

The link's protocol version decides the frames: 3.1.1, or 5.0 with the
publisher's properties, the subscription identifier and the remaining message
expiry (``frames.publish_frame5``). A subscription's 5.0 options (no local,
retain as published, identifier) are in ``options``; a message past its
expiry is dropped wherever it waits (MQTT-3.3.2-5), for 3.1.1 links too.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from hub.engine import Kind, Publication
from hub.engine.sessions import Queued, SessionJournal
from protocols.mqtt.codec import MAX_PACKET_SIZE, PacketReader, Pubrel, encode, with_packet_id
from protocols.mqtt.frames import (
    PLAIN_KEYS,
    expired,
    plain_frame,
    publish_frame,
    publish_frame5,
    published_client,
    published_qos,
    published_retain,
)
from protocols.mqtt.topics import has_wildcards, matches

logger = logging.getLogger(__name__)

MAX_PACKET_ID: Final = 0xFFFF
# Up to this many subscriptions a session's overlapping matches are merged into
# one copy; past it each matching subscription sends its own (MQTT-3.3.4-5),
# so a delivery never scans a long list.
MAX_MERGED_SUBSCRIPTIONS: Final = 64

_MESSAGE: Final = Kind.MESSAGE


class Link(Protocol):
    """The connection a session is attached to."""

    #: Protocol level of the connection: 3 or 4 (3.1/3.1.1) or 5.
    version: int
    #: The client's Maximum Packet Size (5.0, 3.1.2.11.4); larger PUBLISHes are dropped.
    max_packet_size: int | None

    def send(self, frame: bytes) -> None: ...

    def send_publish(self, frame: bytes) -> None:
        """``send`` for a frame known to be a PUBLISH."""


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """What a 5.0 SUBSCRIBE asked beyond the QoS (3.8.3.1, 3.8.2.1.2)."""

    no_local: bool = False
    retain_as_published: bool = False
    identifier: int | None = None


class Awaiting(Enum):
    """What an outbound QoS 1/2 message waits for next."""

    PUBACK = "puback"
    PUBREC = "pubrec"
    PUBCOMP = "pubcomp"


@dataclass(slots=True)
class Inflight:
    frame: bytes  # the PUBLISH as first sent, with its packet id, DUP clear
    awaiting: Awaiting
    # Its place in the session's journal (0: not journaled).
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    max_inflight: int = 20
    max_queued: int = 1000
    max_queued_bytes: int = 1024 * 1024
    # QoS of publications that carry none (from other protocols).
    default_qos: int = 1


class SessionState:
    """Subscriptions, QoS 1/2 state and queued messages of one client id."""

    def __init__(self, client_id: str, *, clean: bool, limits: Limits) -> None:
        self.client_id = client_id
        self.clean = clean
        # The user id whose session this is (None: anonymous); only that user
        # (or mqtt.takeover_access) may CONNECT with its client id.
        self.user: str | None = None
        self.limits = limits
        # Topic filter -> granted QoS.
        self.subscriptions: dict[str, int] = {}
        # The last publication delivered: overlapping subscriptions get one copy.
        self._last_delivered: Publication | None = None
        # Shared subscriptions ($share/<group>/<filter>) -> granted QoS; the
        # group (protocols.mqtt.shared) delivers to one member at a time.
        self.shared: dict[str, int] = {}
        # Topic filter -> 5.0 options, for filters subscribed with any.
        self.options: dict[str, SubscriptionOptions] = {}
        # Seconds the session outlives its connection (5.0 Session Expiry
        # Interval, math.inf for never); None: the store's mqtt.session_expiry.
        self.expiry: float | None = None
        # The protocol level of the frames kept in ``inflight``.
        self.version = 4
        # The client's Receive Maximum (5.0): a smaller window than ours.
        self.receive_maximum: int | None = None
        # Outbound QoS 1/2 messages not yet acknowledged, in sending order.
        self.inflight: dict[int, Inflight] = {}
        self._queue: deque[Queued] = deque()
        # Payload bytes in ``queue`` (its entries' ``size``).
        self.queue_bytes = 0
        # Inbound QoS 2 packet ids received and not yet released (PUBREL).
        self.awaiting_pubrel: set[int] = set()
        self.link: Link | None = None
        self.offline_since: float | None = time.monotonic()
        self.dropped = 0
        # Where QoS 1/2 messages go while no connection holds the session, instead
        # of the queue in memory (a shared store keeps them in Redis).
        self.spill: Callable[[Queued], None] | None = None
        self.last_packet_id = 0
        # Where every change is written (a durable backend's persistent sessions).
        self.journal: SessionJournal | None = None
        self._seq = 0

    @property
    def queue(self) -> deque[Queued]:
        """QoS 1/2 messages waiting, oldest first; bounded in count and bytes."""
        return self._queue

    @queue.setter
    def queue(self, messages: deque[Queued]) -> None:
        self._queue = messages
        self.queue_bytes = sum(message.size for message in messages)

    def __repr__(self) -> str:
        return f"<SessionState {self.client_id!r} clean={self.clean}>"

    # -- the engine side (must not block) -------------------------------------

    def deliver(self, publication: Publication, subscription: str) -> None:
        # Presence events are for channels.v1 clients; MQTT has no such thing.
        if publication.kind is not _MESSAGE:
            return
        if publication is self._last_delivered:
            return  # overlapping subscriptions: the one copy went with the first
        subscriptions = self.subscriptions
        granted = subscriptions.get(subscription)
        if granted is None:
            return
        self._last_delivered = publication
        if 1 < len(subscriptions) <= MAX_MERGED_SUBSCRIPTIONS:
            channel = publication.channel
            matched = [
                f
                for f in subscriptions
                if f == channel or (has_wildcards(f) and matches(f, channel))
            ]
            if len(matched) > 1:
                self._deliver_merged(publication, matched)
                return
        self._deliver_one(publication, subscription, granted)

    def deliver_shared(self, publication: Publication, subscription: str) -> None:
        """A shared group's copy (4.8.2: apart from the session's own subscriptions)."""
        granted = self.shared.get(subscription)
        if granted is not None:
            self._deliver_one(publication, subscription, granted)

    def _deliver_one(self, publication: Publication, subscription: str, granted: int) -> None:
        link = self.link
        if granted == 0 and link is not None and subscription not in self.options:
            # A fan-out's commonest copy, QoS 0 to a live link without 5.0
            # options: one frame for every such subscriber (frames.plain_frame),
            # looked up here, a call less per subscriber once it is made.
            version = link.version
            frame = publication.encoded.cached_frame(PLAIN_KEYS[version]) or plain_frame(
                publication, version
            )
            if frame is not None and (
                link.max_packet_size is None or len(frame) <= link.max_packet_size
            ):
                link.send_publish(frame)
                return
            # Expired or too large: the general path drops it, and says so.
        qos = min(granted, published_qos(publication, self.limits.default_qos))
        options = self.options.get(subscription)
        if options is None:
            self.send_publication(publication, qos)
            return
        # MQTT-3.8.3-3: no local: not back to the client id that published it.
        if options.no_local and published_client(publication) == self.client_id:
            return
        # MQTT-3.3.1-12/13: RETAIN as published, or cleared on live delivery.
        retain = options.retain_as_published and published_retain(publication)
        ids = () if options.identifier is None else (options.identifier,)
        self.send_publication(publication, qos, retain=retain, subscription_ids=ids)

    def _deliver_merged(self, publication: Publication, matched: list[str]) -> None:
        """One copy for overlapping subscriptions (MQTT-3.3.4-2, -4).

        The highest QoS granted among them, every subscription identifier,
        RETAIN kept if one of them asked Retain As Published.
        """
        own = published_client(publication) == self.client_id
        granted = -1
        retain = False
        ids: list[int] = []
        for topic_filter in matched:
            options = self.options.get(topic_filter)
            if options is not None:
                if options.no_local and own:
                    continue
                retain = retain or options.retain_as_published
                if options.identifier is not None:
                    ids.append(options.identifier)
            granted = max(granted, self.subscriptions[topic_filter])
        if granted < 0:
            return
        qos = min(granted, published_qos(publication, self.limits.default_qos))
        retain = retain and published_retain(publication)
        self.send_publication(publication, qos, retain=retain, subscription_ids=tuple(sorted(ids)))

    def send_publication(
        self,
        publication: Publication,
        qos: int,
        *,
        retain: bool = False,
        subscription_ids: tuple[int, ...] = (),
    ) -> None:
        """Send now if the window allows, else queue (QoS 0 is never queued)."""
        link = self.link
        if qos == 0:
            # Offline QoS 0 messages are dropped, as the spec allows; sent at
            # once, so no Queued record is made (a fan-out's commonest path).
            if link is not None:
                frame = self._publish_frame(link, publication, 0, retain, subscription_ids, None)
                if frame is not None:
                    link.send(frame)
            return
        message = Queued(publication, qos, retain, subscription_ids, seq=self._next_seq())
        if link is not None and not self.queue and len(self.inflight) < self.max_inflight:
            self._send_new(link, message)
            return
        if link is None and self.spill is not None:
            self.spill(message)
            return
        size = message.size
        limits = self.limits
        # Keep the freshest: a queue that overflows is stale at its head.
        while self.queue and (
            len(self.queue) >= limits.max_queued
            or self.queue_bytes + size > limits.max_queued_bytes
        ):
            stale = self.queue.popleft()
            self.queue_bytes -= stale.size
            if self.journal is not None:
                self.journal.remove(self.client_id, stale.seq)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "MQTT session %r: queue full, %d message(s) dropped so far",
                    self.client_id,
                    self.dropped,
                )
        self.queue.append(message)
        self.queue_bytes += size
        if self.journal is not None:
            self.journal.queue(self.client_id, message)

    def restore_seq(self, last: int) -> None:
        """Number new messages after ``last`` (a session read back from its journal)."""
        self._seq = max(self._seq, last)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def max_inflight(self) -> int:
        """The window: the configured one, or the client's smaller Receive Maximum (5.0)."""
        limit = self.limits.max_inflight
        return limit if self.receive_maximum is None else min(limit, self.receive_maximum)

    def _frame(self, link: Link, message: Queued, packet_id: int | None) -> bytes | None:
        """The PUBLISH of a kept message for the link's version (:meth:`_publish_frame`)."""
        return self._publish_frame(
            link,
            message.publication,
            message.qos,
            message.retain,
            message.subscription_ids,
            packet_id,
        )

    def _publish_frame(
        self,
        link: Link,
        publication: Publication,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        packet_id: int | None,
    ) -> bytes | None:
        """The PUBLISH for the link's version; None if expired or over the client's size."""
        if link.version == 5:
            frame = publish_frame5(
                publication,
                qos,
                retain=retain,
                packet_id=packet_id,
                subscription_ids=subscription_ids,
            )
        elif expired(publication):
            frame = None
        else:
            frame = publish_frame(publication, qos, retain=retain, packet_id=packet_id)
        if frame is None:
            logger.debug("MQTT session %r: expired message dropped", self.client_id)
            return None
        # MQTT-3.1.2-25: never more than the client's Maximum Packet Size; dropped.
        if link.max_packet_size is not None and len(frame) > link.max_packet_size:
            logger.info(
                "MQTT session %r: %d-byte PUBLISH over the client's maximum packet size, dropped",
                self.client_id,
                len(frame),
            )
            return None
        return frame

    def _send_new(self, link: Link, message: Queued) -> None:
        packet_id = self._next_packet_id()
        frame = self._frame(link, message, packet_id)
        if frame is None:
            if self.journal is not None:
                self.journal.remove(self.client_id, message.seq)
            return
        awaiting = Awaiting.PUBACK if message.qos == 1 else Awaiting.PUBREC
        self.inflight[packet_id] = Inflight(frame, awaiting, message.seq)
        if self.journal is not None:
            self.journal.send(self.client_id, message.seq, packet_id, frame, awaiting.value)
        link.send(frame)

    def _next_packet_id(self) -> int:
        # The window is far smaller than the id space, so a free id is near.
        packet_id = self.last_packet_id
        while True:
            packet_id = packet_id % MAX_PACKET_ID + 1
            if packet_id not in self.inflight:
                self.last_packet_id = packet_id
                return packet_id

    def _pump(self) -> None:
        """Move queued messages into the inflight window while it has room."""
        link = self.link
        while link is not None and self.queue and len(self.inflight) < self.max_inflight:
            message = self.queue.popleft()
            self.queue_bytes -= message.size
            self._send_new(link, message)

    # -- acknowledgements from the client --------------------------------------

    def puback(self, packet_id: int) -> None:
        entry = self.inflight.get(packet_id)
        if entry is not None and entry.awaiting is Awaiting.PUBACK:
            self.forget(packet_id)
            self._pump()

    def pubrec(self, packet_id: int) -> bool:
        """The client has the message; True when a PUBREL is to be sent.

        The caller sends it (:meth:`send_pubrel`) once the step is stored: a
        client that got PUBREL has handed the message on, and after a crash the
        session must not send that message again as new.
        """
        entry = self.inflight.get(packet_id)
        # A repeated PUBREC gets the PUBREL again.
        if entry is None or entry.awaiting is Awaiting.PUBACK:
            return False
        if entry.awaiting is not Awaiting.PUBCOMP and self.journal is not None:
            self.journal.advance(self.client_id, entry.seq, Awaiting.PUBCOMP.value)
        entry.awaiting = Awaiting.PUBCOMP
        return True

    def send_pubrel(self, packet_id: int) -> None:
        if self.link is not None and packet_id in self.inflight:
            self.link.send(encode(Pubrel(packet_id)))

    def refused(self, packet_id: int) -> None:
        """5.0: a PUBREC with a failure reason code ends that flow (4.3.3)."""
        entry = self.inflight.get(packet_id)
        if entry is not None and entry.awaiting is Awaiting.PUBREC:
            self.forget(packet_id)
            self._pump()

    def pubcomp(self, packet_id: int) -> None:
        entry = self.inflight.get(packet_id)
        if entry is not None and entry.awaiting is Awaiting.PUBCOMP:
            self.forget(packet_id)
            self._pump()

    def forget(self, packet_id: int) -> None:
        """Drop an outbound message from the inflight window (acknowledged, or not wanted)."""
        entry = self.inflight.pop(packet_id)
        if self.journal is not None:
            self.journal.remove(self.client_id, entry.seq)

    def forget_queued(self, keep: Callable[[Queued], bool]) -> None:
        """Drop the queued messages ``keep`` refuses."""
        kept: deque[Queued] = deque()
        for message in self.queue:
            if keep(message):
                kept.append(message)
            elif self.journal is not None:
                self.journal.remove(self.client_id, message.seq)
        self.queue = kept

    # -- inbound QoS 2 ----------------------------------------------------------

    def hold_pubrel(self, packet_id: int) -> None:
        """A QoS 2 PUBLISH was delivered: its id waits for PUBREL (a resend is a copy)."""
        self.awaiting_pubrel.add(packet_id)
        if self.journal is not None:
            self.journal.pubrel(self.client_id, packet_id, waiting=True)

    def release_pubrel(self, packet_id: int) -> bool:
        """PUBREL: the id is free again; False if it was not awaiting one."""
        if packet_id not in self.awaiting_pubrel:
            return False
        self.awaiting_pubrel.discard(packet_id)
        if self.journal is not None:
            self.journal.pubrel(self.client_id, packet_id, waiting=False)
        return True

    # -- connections ------------------------------------------------------------

    def attach(self, link: Link) -> None:
        """A connection took the session (after its CONNACK): resend, then drain."""
        self.link = link
        self.offline_since = None
        if self.journal is not None:
            self.journal.offline(self.client_id, False)
        if link.version != self.version:
            self._convert_inflight(link.version)
        limit = link.max_packet_size
        for packet_id, entry in list(self.inflight.items()):
            if entry.awaiting is Awaiting.PUBCOMP:
                link.send(encode(Pubrel(packet_id)))
            elif limit is not None and len(entry.frame) > limit:
                # MQTT-3.1.2-25: over the Maximum Packet Size this connection set (the
                # message went out to an earlier one): discarded as if delivered, so
                # acknowledged here, not left to hold a slot of the window for good.
                logger.info(
                    "MQTT session %r: %d-byte PUBLISH to resend over the client's maximum "
                    "packet size, dropped",
                    self.client_id,
                    len(entry.frame),
                )
                self.forget(packet_id)
            else:
                link.send(with_packet_id(entry.frame, packet_id, dup=True))
        self._pump()

    def _convert_inflight(self, version: int) -> None:
        """Re-encode unacknowledged PUBLISHes for a client back with another version."""
        for packet_id, entry in self.inflight.items():
            if entry.awaiting is not Awaiting.PUBCOMP:
                reader = PacketReader(MAX_PACKET_SIZE, 5 if self.version == 5 else 4)
                (packet,) = reader.feed(entry.frame)
                entry.frame = encode(packet, version)
                if self.journal is not None:
                    self.journal.send(
                        self.client_id, entry.seq, packet_id, entry.frame, entry.awaiting.value
                    )
        self.version = version
        self.save()

    def save(self) -> None:
        """Journal the session itself: owner, filters (own and shared) with their 5.0
        options, its expiry and the frame version."""
        if self.journal is not None:
            self.journal.save(
                self.client_id,
                self.user,
                dict(self.subscriptions),
                self.version,
                shared=dict(self.shared),
                options={
                    f: (o.no_local, o.retain_as_published, o.identifier)
                    for f, o in self.options.items()
                },
                expiry=self.expiry,
            )

    def expired(self, default: float | None, now: float) -> bool:
        """Whether the session, offline, outlived its expiry (``default`` if it has none)."""
        expiry = self.expiry if self.expiry is not None else default
        return (
            expiry is not None
            and self.offline_since is not None
            and now - self.offline_since >= expiry
        )

    def detach(self) -> None:
        self.link = None
        self.offline_since = time.monotonic()
        if self.journal is not None:
            self.journal.offline(self.client_id, True)

    def reset(self) -> None:
        """Forget everything (the caller unsubscribes from the engine)."""
        if self.journal is not None:
            self.journal.drop(self.client_id)
            self.journal = None
        self.subscriptions.clear()
        self.shared.clear()
        self._last_delivered = None
        self.options.clear()
        self.inflight.clear()
        self.queue.clear()
        self.queue_bytes = 0
        self.awaiting_pubrel.clear()
