"""The single-process engine backend: everything in this process's memory."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hub.engine.base import ClientInfo, HistoryResult, Publication, StreamPosition

# Seconds between sweeps of idle streams, done when a new stream is created.
PRUNE_INTERVAL = 60.0


def new_epoch() -> str:
    return secrets.token_hex(4)


class MemoryBroker:
    """Hands every publication straight to this node's fan-out."""

    def __init__(self) -> None:
        self._handler: Callable[[Publication], None] | None = None
        self.channels: set[str] = set()

    def set_handler(self, handler: Callable[[Publication], None]) -> None:
        self._handler = handler

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def publish(self, publication: Publication) -> None:
        if self._handler is not None:
            self._handler(publication)

    async def close(self) -> None:
        self.channels.clear()


class _Stream:
    __slots__ = ("entries", "epoch", "top", "touched")

    def __init__(self, now: float) -> None:
        self.epoch = new_epoch()
        self.top = 0
        self.entries: deque[tuple[float, Publication]] = deque()
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

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._streams: dict[str, _Stream] = {}
        self._clock = clock
        # A stream with nothing retained and untouched for this long is forgotten.
        self.idle_ttl = 3600.0
        self._next_prune = clock() + PRUNE_INTERVAL

    def _stream(self, channel: str) -> _Stream:
        now = self._clock()
        stream = self._streams.get(channel)
        if stream is None:
            # Any channel name creates a stream (a subscribe asks its position),
            # so idle ones are swept now and then, or memory would only grow.
            if now >= self._next_prune:
                self.prune()
            stream = self._streams[channel] = _Stream(now)
        stream.touched = now
        return stream

    async def add(self, publication: Publication, *, size: int, ttl: float) -> StreamPosition:
        stream = self._stream(publication.channel)
        now = self._clock()
        stream.top += 1
        stream.touched = now
        publication.offset = stream.top
        publication.epoch = stream.epoch
        if size > 0:
            stream.entries.append((now + ttl, publication))
            while len(stream.entries) > size:
                stream.entries.popleft()
        self._expire(stream, now)
        return StreamPosition(stream.top, stream.epoch)

    async def read(
        self, channel: str, *, since: StreamPosition | None, limit: int | None
    ) -> HistoryResult:
        stream = self._stream(channel)
        self._expire(stream, self._clock())
        position = StreamPosition(stream.top, stream.epoch)
        retained = [publication for _, publication in stream.entries]
        if since is None:
            selected = retained if limit is None else retained[-limit:] if limit > 0 else []
            return HistoryResult(selected, position)
        if since.epoch != stream.epoch or since.offset > stream.top:
            return HistoryResult([], position, complete=False)
        first_kept = retained[0].offset if retained else stream.top + 1
        # Everything after since.offset must still be here, else there is a gap.
        if since.offset + 1 < first_kept:
            return HistoryResult([], position, complete=False)
        missed = [p for p in retained if p.offset > since.offset]
        if limit is not None and len(missed) > limit:
            return HistoryResult(missed[:limit], position, complete=False)
        return HistoryResult(missed, position)

    async def position(self, channel: str) -> StreamPosition:
        stream = self._stream(channel)
        return StreamPosition(stream.top, stream.epoch)

    def export(self) -> dict[str, StreamState]:
        now = self._clock()
        return {
            channel: StreamState(
                stream.epoch,
                stream.top,
                [(expires - now, p) for expires, p in stream.entries if expires > now],
            )
            for channel, stream in self._streams.items()
        }

    def restore(self, streams: dict[str, StreamState]) -> None:
        now = self._clock()
        for channel, state in streams.items():
            stream = self._streams[channel] = _Stream(now)
            stream.epoch = state.epoch
            stream.top = state.top
            stream.entries.extend((now + remaining, p) for remaining, p in state.entries)

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

    @staticmethod
    def _expire(stream: _Stream, now: float) -> None:
        entries = stream.entries
        while entries and entries[0][0] <= now:
            entries.popleft()


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
