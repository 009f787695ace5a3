"""The single-process engine backend: everything in this process's memory."""

from __future__ import annotations

import builtins
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from hub.engine.base import (
    ClientInfo,
    HistoryOptions,
    HistoryResult,
    HistoryStore,
    Publication,
    StreamPosition,
)
from hub.engine.bodies import decode_body, encode_body

# Seconds between sweeps of idle streams, done when a new stream is created.
PRUNE_INTERVAL = 60.0


def new_epoch() -> str:
    return secrets.token_hex(4)


class MemoryBroker:
    """Keeps the publication in ``history``, then hands it straight to this node's fan-out."""

    def __init__(self, history: HistoryStore) -> None:
        self._history = history
        self._handler: Callable[[Publication], None] | None = None
        self.channels: set[str] = set()

    def set_handler(self, handler: Callable[[Publication], None]) -> None:
        self._handler = handler

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def publish(
        self, publication: Publication, history: HistoryOptions | None = None
    ) -> StreamPosition | None:
        position = None
        if history is not None:
            position = await self._history.add(publication, size=history.size, ttl=history.ttl)
        if self._handler is not None:
            self._handler(publication)
        return position

    async def close(self) -> None:
        self.channels.clear()


# One kept publication: when it expires, its size, its offset, its body
# (hub.engine.bodies). Atomic values only, so the collector stops tracking the
# tuple at its first collection: a Publication kept as an object was four
# tracked objects (itself, its Encodings, their dict's bound get, the tuple),
# and 10,000 streams x 100 entries made each full collection scan 4 million
# of them, ~540 ms with the event loop held (issue 13). Reads rebuild the
# publications they return.
_Entry = tuple[float, int, int, bytes]
# What an empty stream holds: the empty tuple, which the garbage collector does
# not track, where a deque always is. Any name read creates a stream, so up to
# max_channels of them may be empty; each full collection walked two deques
# per stream (issue 13: 30k of the ~45k objects it scanned under store growth).
_NONE: tuple[()] = ()


class _Stream:
    __slots__ = ("bytes", "entries", "epoch", "top", "touched")

    def __init__(self, now: float) -> None:
        self.epoch = new_epoch()
        self.top = 0
        self.entries: deque[_Entry] | tuple[()] = _NONE
        # Sizes of all entries.
        self.bytes = 0
        self.touched = now


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream as exported: entries carry their remaining lifetime in seconds."""

    epoch: str
    top: int
    entries: list[tuple[float, Publication]]


class MemoryHistory:
    """A bounded, expiring stream per channel with a monotonic offset and an epoch.

    The epoch is random per process and per stream, so offsets remembered by a
    client from before a restart (or from a stream that expired) are never
    mistaken for today's.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_channels: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        idle_ttl: float = 600.0,
    ) -> None:
        # Least recently used first: every access moves a stream to the end.
        # An OrderedDict: a dict's first key, after many deletions from its
        # front, is found by skipping their dead slots (next(iter()) in
        # _evict was ~5% of the hub's CPU under bench/hostile.py's store
        # growth, 100 new names per connection).
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._clock = clock
        # A stream with nothing retained and untouched for this long is forgotten.
        self.idle_ttl = idle_ttl
        self.max_channels = max_channels
        self.max_bytes = max_bytes
        self._bytes = 0
        self._next_prune = clock() + PRUNE_INTERVAL

    @property
    def bytes(self) -> int:
        """Bytes of the bodies kept in every stream."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._streams)

    def _stream(self, channel: str) -> _Stream:
        now = self._clock()
        streams = self._streams
        stream = streams.get(channel)
        if stream is None:
            # Any channel name creates a stream (a subscribe asks its position),
            # so idle ones are swept now and then, and the least recently used
            # goes past max_channels, or memory would only grow.
            if now >= self._next_prune:
                self.prune()
            stream = streams[channel] = _Stream(now)
        else:
            streams.move_to_end(channel)
        stream.touched = now
        self._evict(keep=stream)
        return stream

    def _evict(self, keep: _Stream) -> None:
        """Drop least recently used streams while over max_channels or max_bytes."""
        while len(self._streams) > self.max_channels or self._bytes > self.max_bytes:
            oldest = next(iter(self._streams))
            if self._streams[oldest] is keep:
                break
            self._bytes -= self._streams.pop(oldest).bytes

    async def add(self, publication: Publication, *, size: int, ttl: float) -> StreamPosition:
        # Encoded first: a payload no body can hold is refused before it takes an offset.
        body = encode_body(publication, b"") if size > 0 else b""
        stream = self._stream(publication.channel)
        now = self._clock()
        stream.top += 1
        stream.touched = now
        publication.offset = stream.top
        publication.epoch = stream.epoch
        if size > 0:
            self._push(stream, now + ttl, stream.top, body)
            while len(stream.entries) > size:
                self._pop(stream)
        self._expire(stream, now)
        self._evict(keep=stream)
        # One stream alone over max_bytes keeps its newest entry, at least.
        while self._bytes > self.max_bytes and len(stream.entries) > 1:
            self._pop(stream)
        return StreamPosition(stream.top, stream.epoch)

    def _push(self, stream: _Stream, expires: float, offset: int, body: builtins.bytes) -> None:
        # (builtins.bytes: in this class ``bytes`` is the property above.)
        # Sized by its body, not by payload_size(data): the body is what is
        # held (payload, publisher, metadata), and its length costs nothing
        # where payload_size encodes JSON data a second time per publication.
        size = len(body)
        entries = stream.entries
        if not isinstance(entries, deque):
            entries = stream.entries = deque()
        entries.append((expires, size, offset, body))
        stream.bytes += size
        self._bytes += size

    def _pop(self, stream: _Stream) -> None:
        entries = stream.entries
        assert isinstance(entries, deque), "popped only when not empty"
        _, size, _, _ = entries.popleft()
        if not entries:
            stream.entries = _NONE
        stream.bytes -= size
        self._bytes -= size

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int | None,
        max_bytes: int | None = None,
    ) -> HistoryResult:
        # max_bytes ignored: the caller sizes the reply exactly. Only the
        # entries selected are decoded.
        stream = self._stream(channel)
        self._expire(stream, self._clock())
        position = StreamPosition(stream.top, stream.epoch)
        retained = list(stream.entries)
        if since is None:
            selected = retained if limit is None else retained[-limit:] if limit > 0 else []
            return HistoryResult(_publications(channel, stream.epoch, selected), position)
        if since.epoch != stream.epoch or since.offset > stream.top:
            return HistoryResult([], position, complete=False)
        first_kept = retained[0][2] if retained else stream.top + 1
        # Everything after since.offset must still be here, else there is a gap.
        if since.offset + 1 < first_kept:
            return HistoryResult([], position, complete=False)
        missed = [entry for entry in retained if entry[2] > since.offset]
        complete = limit is None or len(missed) <= limit
        if not complete:
            missed = missed[:limit]
        return HistoryResult(_publications(channel, stream.epoch, missed), position, complete)

    async def remove(self, channel: str) -> None:
        """Forget the channel's publications; its offset and epoch stay (no reset)."""
        stream = self._streams.get(channel)
        while stream is not None and stream.entries:
            self._pop(stream)

    async def position(self, channel: str) -> StreamPosition:
        stream = self._stream(channel)
        return StreamPosition(stream.top, stream.epoch)

    def export(self) -> dict[str, StreamState]:
        now = self._clock()
        return {
            channel: StreamState(
                stream.epoch,
                stream.top,
                [
                    (expires - now, decode_body(channel, body, offset, stream.epoch))
                    for expires, _, offset, body in stream.entries
                    if expires > now
                ],
            )
            for channel, stream in self._streams.items()
        }

    def restore(self, streams: dict[str, StreamState]) -> None:
        now = self._clock()
        for channel, state in streams.items():
            stream = self._streams[channel] = _Stream(now)
            stream.epoch = state.epoch
            stream.top = state.top
            for remaining, publication in state.entries:
                body = encode_body(publication, b"")
                self._push(stream, now + remaining, publication.offset, body)
        self._evict(keep=_Stream(now))

    def prune(self) -> int:
        """Forget idle streams; returns how many were dropped."""
        now = self._clock()
        self._next_prune = now + PRUNE_INTERVAL
        # Expire first: a stream whose entries all expired is as empty as any.
        for stream in self._streams.values():
            self._expire(stream, now)
        idle = [
            name
            for name, stream in self._streams.items()
            if not stream.entries and now - stream.touched > self.idle_ttl
        ]
        for name in idle:
            del self._streams[name]
        return len(idle)

    def _expire(self, stream: _Stream, now: float) -> None:
        while stream.entries and stream.entries[0][0] <= now:
            self._pop(stream)


def _publications(channel: str, epoch: str, entries: list[_Entry]) -> list[Publication]:
    return [decode_body(channel, body, offset, epoch) for _, _, offset, body in entries]


class MemoryPresence:
    """Connections per channel, merged by user for join/leave."""

    def __init__(self) -> None:
        self._members: dict[str, dict[str, ClientInfo]] = {}
        self._user_connections: dict[str, dict[str, int]] = {}

    async def add(self, channel: str, member: ClientInfo) -> bool:
        members = self._members.setdefault(channel, {})
        if member.client in members:
            members[member.client] = member
            return False
        members[member.client] = member
        users = self._user_connections.setdefault(channel, {})
        users[member.user] = users.get(member.user, 0) + 1
        return users[member.user] == 1

    async def remove(self, channel: str, client_id: str) -> ClientInfo | None:
        members = self._members.get(channel)
        if members is None or client_id not in members:
            return None
        member = members.pop(client_id)
        users = self._user_connections[channel]
        users[member.user] -= 1
        last = users[member.user] == 0
        if last:
            del users[member.user]
        if not members:
            del self._members[channel]
            del self._user_connections[channel]
        return member if last else None

    async def members(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._members.get(channel, {}))

    def channel_count(self) -> int:
        return len(self._members)
