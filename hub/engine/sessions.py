"""MQTT persistent sessions as a backend keeps them: plain records, no protocol logic.

The MQTT handler's session logic (protocols/mqtt) works on these through
:class:`SharedSessions` (a cluster: sessions move between nodes) or
:class:`SessionJournal` (one durable node: every change is written before
it is acknowledged). A backend offers the ones it can keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hub.engine.base import Publication
from hub.payloads import payload_size


@dataclass(frozen=True, slots=True)
class Queued:
    """A QoS 1/2 message waiting for its client."""

    publication: Publication
    qos: int
    retain: bool
    # MQTT 5: the identifiers of the subscriptions it matched (3.3.4); a durable
    # journal keeps them, a queue moved through a shared store loses them.
    subscription_ids: tuple[int, ...] = ()
    # Its place in the session's journal (0: not journaled).
    seq: int = 0

    @property
    def size(self) -> int:
        """Payload bytes, as a queue's byte bound counts them."""
        return payload_size(self.publication.data)


@dataclass(slots=True)
class StoredSession:
    """What of a session must survive a move or a restart (the queue aside)."""

    subscriptions: dict[str, int] = field(default_factory=dict)
    # (packet id, PUBLISH frame as first sent, what it waits for), in sending order.
    inflight: list[tuple[int, bytes, str]] = field(default_factory=list)
    awaiting_pubrel: list[int] = field(default_factory=list)
    last_packet_id: int = 0


class SharedSessions(Protocol):
    """Sessions shared by the nodes of a cluster; a client id belongs to one node at a time."""

    node_id: str

    async def claim(self, client_id: str) -> str | None:
        """Name this node the owner; the node that owned it before, if any."""

    async def disown(self, client_id: str) -> None: ...

    async def owner(self, client_id: str) -> str | None:
        """The node named as the client id's holder, if any."""

    async def forget_orphan(self, client_id: str, dead_node: str | None) -> bool:
        """The holder ``dead_node`` (None: none named) is gone: whether the id is free now.

        A clean session's record is deleted (True); a stored session stays its
        user's and its expiry starts (False). Nothing changes if another node
        claimed the id meanwhile.
        """

    async def user(self, client_id: str) -> tuple[bool, str | None]:
        """(whether the session has a user on record, its user id or None for anonymous)."""

    async def set_user(self, client_id: str, user: str | None) -> None:
        """Record whose session it is (kept until the session ends or expires)."""

    async def subscriptions(self, client_id: str) -> dict[str, int]: ...

    async def load(self, client_id: str) -> StoredSession | None: ...

    async def save(
        self,
        client_id: str,
        stored: StoredSession,
        *,
        offline: bool,
        counted: bool = True,
        expiry: float | None = None,
    ) -> list[str]:
        """Write the session; ``offline`` starts its expiry (``expiry`` seconds, inf:
        never, None: ``mqtt.session_expiry``) and, ``counted``, counts it among the
        cluster's offline sessions: the ids then past the cap (the first to expire,
        out of the count), which the caller drops."""

    async def save_subscriptions(self, client_id: str, subscriptions: dict[str, int]) -> None: ...

    async def delete(self, client_id: str) -> None: ...

    async def take_queue(self, client_id: str) -> list[Queued]:
        """Everything queued for the client, and the queue emptied, in one step."""

    def spill(self, client_id: str, queued: Queued) -> None:
        """Append to the client's queue (ordered, written in the background)."""

    async def flushed(self, timeout: float) -> bool:
        """True once everything spilled so far is written (False: timed out)."""


@dataclass(frozen=True, slots=True)
class JournaledMessage:
    """An outbound QoS 1/2 message of a session as stored: queued, or sent and unacknowledged."""

    seq: int
    # Queued: what to send. Sent: None, the frame says it all.
    queued: Queued | None
    packet_id: int | None = None
    # The PUBLISH as first sent (packet id set, DUP clear), and what it waits for.
    frame: bytes | None = None
    awaiting: str | None = None


# A subscription's MQTT 5.0 options: (no local, retain as published, identifier).
Options = tuple[bool, bool, int | None]


@dataclass(slots=True)
class JournaledSession:
    client_id: str
    user: str | None
    subscriptions: dict[str, int]
    messages: list[JournaledMessage]  # oldest first
    awaiting_pubrel: list[int]
    # The MQTT protocol level of the in-flight frames (4: 3.1.1, 5: 5.0).
    version: int = 4
    # Shared subscriptions ($share/<group>/<filter>) -> granted QoS.
    shared: dict[str, int] = field(default_factory=dict)
    # Filter (own or shared) -> its 5.0 options, for filters subscribed with any.
    options: dict[str, Options] = field(default_factory=dict)
    # The session's own expiry in seconds (5.0; math.inf: never), None for the default.
    expiry: float | None = None
    # How long it had been offline when the backend started (a session connected
    # when the process died: since the last sign of life the backend kept).
    offline_for: float = 0.0


class SessionJournal(Protocol):
    """Every change of a persistent session, written in order (one durable node).

    The writes are submitted without waiting; what acknowledges a message to a
    client waits for the backend's ``stored()`` (or a write unit) first.
    """

    def sessions(self) -> list[JournaledSession]:
        """The sessions as stored when the backend started."""

    def save(
        self,
        client_id: str,
        user: str | None,
        subscriptions: dict[str, int],
        version: int,
        *,
        shared: dict[str, int] | None = None,
        options: dict[str, Options] | None = None,
        expiry: float | None = None,
    ) -> None:
        """The session's owner, filters, their 5.0 options, its expiry and the protocol
        level of its in-flight frames."""

    def offline(self, client_id: str, offline: bool) -> None:
        """The session lost (or regained) its connection now: its expiry counts from here."""

    def drop(self, client_id: str) -> None:
        """Forget the session and everything of it."""

    def queue(self, client_id: str, message: Queued) -> None: ...

    def send(self, client_id: str, seq: int, packet_id: int, frame: bytes, awaiting: str) -> None:
        """The message (queued before, or new) is sent and awaits ``awaiting``."""

    def advance(self, client_id: str, seq: int, awaiting: str) -> None: ...

    def remove(self, client_id: str, seq: int) -> None: ...

    def pubrel(self, client_id: str, packet_id: int, *, waiting: bool) -> None:
        """An inbound QoS 2 packet id now awaits PUBREL (or no longer does)."""
