"""The engine's vocabulary and the narrow interfaces every backend implements.

Three stores, as in centrifuge: a :class:`Broker` moves publications between hub
processes, a :class:`PresenceStore` knows who is in a channel, a
:class:`HistoryStore` keeps recent publications with offsets for recovery. The
memory backend implements them for one process, the Redis backend for many.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable


class Kind(Enum):
    MESSAGE = "message"
    JOIN = "join"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who a client is, as other clients may see it."""

    client: str
    user: str
    info: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "client": self.client}
        if self.info is not None:
            out["info"] = self.info
        return out


@dataclass(slots=True, eq=False)
class Publication:
    """One message on one channel, with its place in the channel's history.

    ``data`` is a JSON value or ``bytes``. ``extras`` carries protocol details
    that survive a same-protocol hop (MQTT qos/retain, WAMP args/kwargs).
    ``encoded`` caches each protocol's frame so a fan-out encodes once.
    """

    channel: str
    data: Any
    offset: int = 0
    epoch: str = ""
    kind: Kind = Kind.MESSAGE
    publisher: ClientInfo | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    # Set by the node that accepted the publication, to avoid bridge loops.
    origin: str = ""
    encoded: dict[Any, bytes | str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class HistoryResult:
    publications: list[Publication]
    position: StreamPosition
    # False when ``since`` could not be served in full (gap or other epoch).
    complete: bool = True


class Broker(Protocol):
    """Node-level pub/sub: subscribed per node, not per client."""

    def set_handler(self, handler: Callable[[Publication], None]) -> None:
        """Where publications from any node (this one included) are handed."""

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, publication: Publication) -> None: ...

    async def close(self) -> None: ...


class HistoryStore(Protocol):
    async def add(self, publication: Publication, *, size: int, ttl: float) -> StreamPosition:
        """Append and assign the publication its offset and epoch."""

    async def read(
        self, channel: str, *, since: StreamPosition | None, limit: int | None
    ) -> HistoryResult: ...

    async def position(self, channel: str) -> StreamPosition: ...


@runtime_checkable
class RemovableHistory(Protocol):
    """A history store that can forget a channel's publications (server API history_remove)."""

    async def remove(self, channel: str) -> None:
        """Drop the publications; the stream's offset and epoch stay, so a client
        recovering from before sees a gap, never a reset that looks complete."""


class PresenceStore(Protocol):
    async def add(self, channel: str, member: ClientInfo) -> bool:
        """Add a connection; True when it is the user's first in the channel."""

    async def remove(self, channel: str, client_id: str) -> ClientInfo | None:
        """Remove a connection; the member when it was the user's last one."""

    async def members(self, channel: str) -> dict[str, ClientInfo]:
        """Connections in the channel, by client id."""


HealthCheck = Callable[[], Awaitable[bool]]
