"""The engine's vocabulary and the narrow interfaces every backend implements.

Three stores, as in centrifuge: a :class:`Broker` moves publications between hub
processes, a :class:`PresenceStore` knows who is in a channel, a
:class:`HistoryStore` keeps recent publications with offsets for recovery. The
memory backend implements them for one process, the Redis backend for many.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


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


class Memo(Generic[T]):
    """A typed key for a value derived once per publication (a WAMP publication id)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Memo({self.name!r})"


class Encodings:
    """What each protocol made of one publication, made once per fan-out and shared.

    ``frame``: encoded bytes by a key that starts with the protocol's name.
    ``memo``: a typed value derived from the publication. Per process: never
    stored, copied into a retained store or sent to another node.
    """

    __slots__ = ("_frames", "_memos", "cached_frame")

    def __init__(self) -> None:
        self._frames: dict[Hashable, bytes] = {}
        self._memos: dict[Memo[Any], Any] = {}
        # The frame under a key if one was made. The dict's own get: a fan-out
        # asks once per subscriber, and a Python method costs a frame each time.
        self.cached_frame: Callable[[Hashable], bytes | None] = self._frames.get

    def frame(self, key: Hashable, encode: Callable[[], bytes]) -> bytes:
        """The frame under ``key``, encoded by ``encode`` the first time."""
        made = self._frames.get(key)
        if made is None:
            made = self._frames[key] = encode()
        return made

    def frame_keys(self) -> Iterator[Hashable]:
        return iter(self._frames)

    def memo(self, key: Memo[T], derive: Callable[[], T]) -> T:
        """The value under ``key``, derived by ``derive`` the first time."""
        if key in self._memos:
            value: T = self._memos[key]
            return value
        value = self._memos[key] = derive()
        return value

    def __len__(self) -> int:
        return len(self._frames) + len(self._memos)


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
    encoded: Encodings = field(default_factory=Encodings, repr=False)
    # The same on every node that receives it (Redis engine; empty on one node):
    # what a shared group's nodes agree on to deliver it once (hub.engine.groups).
    message_id: bytes = field(default=b"", repr=False)


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
    # True when the store stopped at the reader's ``max_bytes``: older
    # publications (a latest read) or newer ones (a read since) were left out.
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """How a publication is kept: the newest ``size`` of its channel, for ``ttl`` seconds."""

    size: int
    ttl: float


class Broker(Protocol):
    """Node-level pub/sub: subscribed per node, not per client.

    Publishing is one call, as centrifuge's ``Broker.Publish``: with
    ``history``, it assigns the offset and epoch, keeps the publication and
    reaches every node in one step (one Redis script, one SQLite write unit);
    it returns once this node's subscribers have it and, on a durable backend,
    once it is stored. Without, it only broadcasts (presence events, control
    messages) and returns None.
    """

    def set_handler(self, handler: Callable[[Publication], None]) -> None:
        """Where publications from any node (this one included) are handed."""

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(
        self, publication: Publication, history: HistoryOptions | None = None
    ) -> StreamPosition | None: ...

    async def close(self) -> None: ...


class HistoryStore(Protocol):
    async def add(self, publication: Publication, *, size: int, ttl: float) -> StreamPosition:
        """Append and assign the publication its offset and epoch."""

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int | None,
        max_bytes: int | None = None,
    ) -> HistoryResult:
        """The newest ``limit`` publications, or those after ``since`` (at most ``limit``).

        ``max_bytes`` is what the reply may carry: a store that reads from
        elsewhere (Redis) stops after the first publication whose stored size
        takes the total past it and says ``truncated``; one that holds them in
        memory may ignore it (the caller sizes the reply exactly).
        """

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
