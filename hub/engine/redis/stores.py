"""History and presence kept in Redis, shared by every node.

:class:`RedisHistory` keeps the same contract as :class:`~hub.engine.memory.MemoryHistory`:
offsets from 1 per channel, a random epoch per stream, at most ``size`` entries
each living ``ttl`` seconds, and the same rules for when ``read(since)`` is
complete. :class:`RedisPresence` merges connections of one user over all nodes;
each node refreshes its own entries, so those of a node that died expire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from redis.commands.core import AsyncScript

from hub.engine.base import ClientInfo, HistoryResult, Publication, StreamPosition
from hub.engine.bodies import decode_body, encode_body
from hub.engine.memory import new_epoch
from hub.engine.redis.codec import (
    MessageIds,
    decode_departure,
    decode_member,
    encode_member,
    entry_offset,
)
from hub.engine.redis.link import RedisLink, cancel_requested
from hub.engine.redis.scripts import (
    HISTORY_ADD,
    HISTORY_READ,
    PRESENCE_ADD,
    PRESENCE_FORGET_NODE,
    PRESENCE_LAPSED_NODES,
    PRESENCE_MEMBERS,
    PRESENCE_REFRESH,
    PRESENCE_REMOVE,
    PRESENCE_RESTORE,
    PRESENCE_SWEEP,
)
from hub.errors import EngineUnavailable

logger = logging.getLogger("hub.engine.redis")

# Largest stream id Redis accepts (ids are 64-bit).
_MAX_OFFSET = 2**64 - 1


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class RedisHistory:
    """A Redis stream per channel plus a meta hash holding its epoch and top offset.

    With ``broadcast`` on (the Redis engine sets it), :meth:`add` also publishes
    the publication, in the same Lua script that gives it its offset: every node
    then receives a channel's publications in offset order, whichever nodes
    published them. The broker skips publications marked as already published.
    """

    def __init__(self, link: RedisLink, *, broadcast: bool = False) -> None:
        self._link = link
        self._keys = link.keys
        self.broadcast = broadcast
        self.message_ids = MessageIds()
        client = link.client
        self._add: AsyncScript = client.register_script(HISTORY_ADD)
        self._read: AsyncScript = client.register_script(HISTORY_READ)
        self._meta_ttl = _ms(link.options.stream_idle_ttl)

    async def add(self, publication: Publication, *, size: int, ttl: float) -> StreamPosition:
        """Append (and, with ``broadcast``, publish: :meth:`append`)."""
        message_id = next(self.message_ids)
        return await self.append(
            publication, size=size, ttl=ttl, message_id=message_id, broadcast=self.broadcast
        )

    async def append(
        self, publication: Publication, *, size: int, ttl: float, message_id: bytes, broadcast: bool
    ) -> StreamPosition:
        """Offset, history entry and (``broadcast``) the pub/sub message, in one script."""
        channel = publication.channel
        body = encode_body(publication, message_id)
        reply = await self._link.run(
            "publish",
            self._add(
                keys=self._keys.history(channel),
                args=[
                    new_epoch(),
                    body,
                    max(size, 0),
                    _ms(ttl),
                    self._meta_ttl,
                    self._keys.pubsub(channel) if broadcast else "",
                ],
            ),
        )
        position = StreamPosition(int(reply[0]), reply[1].decode())
        publication.offset = position.offset
        publication.epoch = position.epoch
        return position

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int | None,
        max_bytes: int | None = None,
    ) -> HistoryResult:
        """Read only what the reply may carry: a page at a time, up to ``max_bytes``.

        A large stream is never loaded whole for a reply that carries a few
        entries: the script stops at ``limit`` and after the first entry past
        ``max_bytes`` of bodies (``truncated`` then says more were left).
        """
        budget = -1 if max_bytes is None else max(max_bytes, 0)
        if since is None:
            count = -1 if limit is None else max(limit, 0)
            epoch, top, _first_kept, entries, stopped = await self._call(
                channel, "latest", "+", count, budget
            )
            publications = self._publications(channel, epoch, entries)
            publications.reverse()  # newest first, as read
            return HistoryResult(publications, StreamPosition(top, epoch), truncated=stopped)
        start = min(max(since.offset, 0) + 1, _MAX_OFFSET)
        # One more than the limit tells whether more were missed than returned.
        count = -1 if limit is None else max(limit, 0) + 1
        epoch, top, first_kept, entries, stopped = await self._call(
            channel, "since", f"{start}-0", count, budget
        )
        position = StreamPosition(top, epoch)
        # The same completeness rules as MemoryHistory.read.
        if since.epoch != epoch or since.offset > top:
            return HistoryResult([], position, complete=False)
        if since.offset + 1 < first_kept:
            return HistoryResult([], position, complete=False)
        missed = self._publications(channel, epoch, entries)
        if limit is not None and len(missed) > limit:
            return HistoryResult(missed[:limit], position, complete=False)
        return HistoryResult(missed, position, truncated=stopped)

    async def remove(self, channel: str) -> None:
        """Forget the channel's publications; the meta hash keeps its offset and epoch."""
        stream = self._keys.stream(channel)
        await self._link.run_idempotent("history remove", lambda: self._link.client.delete(stream))

    async def position(self, channel: str) -> StreamPosition:
        reply = await self._link.run_idempotent(
            "history position",
            lambda: self._read(
                keys=self._keys.history(channel),
                args=[new_epoch(), self._meta_ttl, "position", "-", 0],
            ),
        )
        return StreamPosition(int(reply[1]), reply[0].decode())

    async def _call(
        self, channel: str, mode: str, start: str, count: int, budget: int
    ) -> tuple[str, int, int, list[Any], bool]:
        reply = await self._link.run_idempotent(
            "history read",
            lambda: self._read(
                keys=self._keys.history(channel),
                args=[new_epoch(), self._meta_ttl, mode, start, count, budget],
            ),
        )
        return (
            reply[0].decode(),
            int(reply[1]),
            int(reply[2]),
            list(reply[3]),
            bool(int(reply[4])),
        )

    @staticmethod
    def _publications(channel: str, epoch: str, entries: list[Any]) -> list[Publication]:
        publications = []
        for entry_id, fields in entries:
            offset = entry_offset(entry_id)
            try:
                publications.append(decode_body(channel, fields[1], offset, epoch))
            except ValueError as exc:
                # Not ours (another writer, another format): skip it rather than
                # fail every recovery of the channel.
                logger.warning("skipping history entry %s: %s", entry_id, exc)
        return publications


class RedisPresence:
    """Presence shared by every node: a hash of members, an expiry set, user counts.

    This node remembers the connections it added and pushes back their expiry
    every third of ``presence_ttl`` (and puts them back if Redis lost them), so
    the members of a node that stopped doing so disappear after the TTL.

    Their leaves are not lost: the script that removes an expired entry queues
    the leave (when it was its user's last connection) in one Redis list, and
    every tick each live node pops what is queued and hands it to
    :attr:`on_departed`; a pop is atomic, so each leave goes to one node. So
    that expired entries are found even in channels nobody touches any more,
    each node records the channels where it has entries and until when it
    refreshed them; a live node seeing that deadline pass sweeps those channels
    (under a short lock, so one node does it).
    """

    def __init__(self, link: RedisLink, node_id: str = "") -> None:
        self._link = link
        self._keys = link.keys
        self.node_id = node_id or new_epoch()
        client = link.client
        self._add: AsyncScript = client.register_script(PRESENCE_ADD)
        self._remove: AsyncScript = client.register_script(PRESENCE_REMOVE)
        self._members: AsyncScript = client.register_script(PRESENCE_MEMBERS)
        self._refresh: AsyncScript = client.register_script(PRESENCE_REFRESH)
        self._restore: AsyncScript = client.register_script(PRESENCE_RESTORE)
        self._sweep: AsyncScript = client.register_script(PRESENCE_SWEEP)
        self._lapsed: AsyncScript = client.register_script(PRESENCE_LAPSED_NODES)
        self._forget: AsyncScript = client.register_script(PRESENCE_FORGET_NODE)
        self.ttl = link.options.presence_ttl
        # Told of each member that left without a leave of its own (its node
        # died); the engine wires it to ChannelEngine.on_departed.
        self.on_departed: Callable[[str, ClientInfo], Awaitable[None]] | None = None
        # This node's connections: channel -> client -> member.
        self._local: dict[str, dict[str, ClientInfo]] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def _ttl_ms(self) -> int:
        return max(1, _ms(self.ttl))

    def _script_keys(self, channel: str) -> list[str]:
        return self._keys.presence(channel, self.node_id)

    def _script_args(self, channel: str, *args: Any) -> list[Any]:
        return [channel, self._ttl_ms, self.node_id, *args]

    async def add(self, channel: str, member: ClientInfo) -> bool:
        self._ensure_heartbeat()
        first = await self._link.run(
            "presence add",
            self._add(
                keys=self._script_keys(channel),
                args=self._script_args(channel, member.client, encode_member(member)),
            ),
        )
        self._local.setdefault(channel, {})[member.client] = member
        return bool(first)

    async def remove(self, channel: str, client_id: str) -> ClientInfo | None:
        local = self._local.get(channel)
        if local is not None:
            local.pop(client_id, None)
            if not local:
                del self._local[channel]
        # The last one here: this node no longer needs the channel swept for it.
        # (An add racing with this puts it back at the next refresh.)
        none_left = "1" if channel not in self._local else "0"
        try:
            reply = await self._link.run(
                "presence remove",
                self._remove(
                    keys=self._script_keys(channel),
                    args=self._script_args(channel, client_id, none_left),
                ),
            )
        except EngineUnavailable:
            # No longer refreshed by this node, the entry expires after the TTL
            # and a live node announces the leave then.
            return None
        if not reply:
            return None
        blob, last = reply
        return decode_member(client_id, blob) if int(last) else None

    async def members(self, channel: str) -> dict[str, ClientInfo]:
        reply = await self._link.run_idempotent(
            "presence members",
            lambda: self._members(keys=self._script_keys(channel), args=self._script_args(channel)),
        )
        members: dict[str, ClientInfo] = {}
        for index in range(0, len(reply), 2):
            client = reply[index].decode()
            try:
                members[client] = decode_member(client, reply[index + 1])
            except ValueError as exc:
                logger.warning("skipping presence entry %r of %r: %s", client, channel, exc)
        return members

    def local_count(self) -> int:
        """Connections this node keeps alive in presence."""
        return sum(len(clients) for clients in self._local.values())

    # -- refreshing --------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if (self._heartbeat is None or self._heartbeat.done()) and not self._link.closed:
            self._heartbeat = self._link.spawn(self._beat(), "wshub-redis-presence")

    async def start(self) -> None:
        self._ensure_heartbeat()

    async def _beat(self) -> None:
        """Every tick: ping, sweep for dead nodes, announce queued leaves; refresh every TTL/3."""
        options = self._link.options
        interval = max(0.05, min(options.health_interval, self.ttl / 3))
        due = time.monotonic() + self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            cancel_requested()
            if not await self._link.ping():
                continue
            try:
                if time.monotonic() >= due:
                    await self.refresh()
                    due = time.monotonic() + self.ttl / 3
                await self.reap()
                await self.announce_departed()
            except EngineUnavailable:
                continue  # retried at the next tick

    async def refresh(self) -> None:
        """Push back the expiry of this node's entries; put back any Redis lost."""
        for channel, clients in list(self._local.items()):
            missing = await self._link.run_idempotent(
                "presence refresh",
                partial(
                    self._refresh,
                    keys=self._script_keys(channel),
                    args=self._script_args(channel, *clients),
                ),
            )
            # Put back those Redis lost, unless they left meanwhile.
            current = self._local.get(channel, {})
            lost = [current[c] for c in (m.decode() for m in missing) if c in current]
            if lost:
                pairs: list[Any] = []
                for member in lost:
                    pairs += [member.client, encode_member(member)]
                await self._link.run_idempotent(
                    "presence restore",
                    partial(
                        self._restore,
                        keys=self._script_keys(channel),
                        args=self._script_args(channel, *pairs),
                    ),
                )

    # -- nodes that died ------------------------------------------------------

    async def reap(self) -> None:
        """Sweep the channels of nodes whose entries all expired, one node at a time."""
        keys = self._keys
        lapsed = await self._link.run_idempotent(
            "presence lapsed nodes", partial(self._lapsed, keys=[keys.presence_nodes()], args=[])
        )
        for raw in lapsed:
            node = raw.decode()
            if node == self.node_id:
                continue  # alive, only without entries to refresh
            lock = keys.reaper(node)
            token = f"{self.node_id}:{new_epoch()}"
            # One node sweeps; if it dies doing so, the lock lapses and another does.
            claim = self._link.client.set(lock, token, nx=True, px=self._ttl_ms)
            if not await self._link.run("presence reap", claim):
                continue
            channels = await self._link.run_idempotent(
                "presence reap", partial(self._link.client.smembers, keys.node_channels(node))
            )
            for channel in sorted(_text(c) for c in channels):
                await self._link.run_idempotent(
                    "presence sweep",
                    partial(
                        self._sweep,
                        keys=self._script_keys(channel),
                        args=self._script_args(channel),
                    ),
                )
            await self._link.run_idempotent(
                "presence reap",
                partial(
                    self._forget,
                    keys=[keys.presence_nodes(), keys.node_channels(node), lock],
                    args=[node, token],
                ),
            )
            logger.info("swept the presence of node %s (%d channels)", node, len(channels))

    async def announce_departed(self, batch: int = 64) -> int:
        """Pop queued leaves and hand each to :attr:`on_departed`; how many were popped."""
        key = self._keys.departed()
        popped = 0
        while True:
            items = await self._link.run("presence departed", self._link.client.lpop(key, batch))
            if not isinstance(items, list) or not items:
                return popped
            popped += len(items)
            for item in items:
                await self._announce(item if isinstance(item, bytes) else str(item).encode())
            if len(items) < batch:
                return popped

    async def _announce(self, item: bytes) -> None:
        try:
            channel, member = decode_departure(item)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.warning("skipping undecodable departed member %r: %s", item[:80], exc)
            return
        if self.on_departed is None:
            return
        # The leave was popped, so no other node will tell it: a failure is logged.
        try:
            await self.on_departed(channel, member)
        except Exception:
            logger.exception("announcing the leave of %r from %r failed", member.client, channel)
