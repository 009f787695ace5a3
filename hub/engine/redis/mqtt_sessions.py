"""MQTT sessions as Redis keeps them, for the nodes of one cluster to share.

Per client id (the id is the hash tag, so a session's keys share a slot):

============================  ======  ==============================================
``<prefix>mqtt:{<id>}``       hash    ``subs`` (filter -> QoS), ``inflight``, ``pubrel``,
                                      ``last_id``: what must survive a move
``<prefix>mqtt:{<id>}:queue`` list    QoS 1/2 messages waiting for the client, oldest first
``<prefix>mqtt:{<id>}:qbytes`` string the queue's bytes (its items' total length)
``<prefix>mqtt:{<id>}:owner`` string  the node holding the session (its id)
``<prefix>mqtt:{<id>}:user``  string  whose session it is: ``u:<user id>``, ``-`` anonymous
``<prefix>mqtt:offline``      zset    client ids of the offline sessions, scored by
                                      when they expire (µs, Redis time): the cluster's
                                      count for ``mqtt.max_offline_sessions``
============================  ======  ==============================================

The keys expire the session's expiry after the client went offline: its
own (MQTT 5.0 Session Expiry Interval, at most ``mqtt.session_expiry``) or
``mqtt.session_expiry`` (never, when unset). Only ``clean_session = 0`` sessions are stored;
the owner key exists for every connected client id, so another node can take
it over.

While the client is offline, the node holding the session appends what its
subscriptions receive to the queue through one ordered writer (:meth:`spill`),
so a message is never written before one that came earlier.
"""

from __future__ import annotations

import asyncio
import logging
import math
from functools import partial
from typing import Any

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type hints
from redis.commands.core import AsyncScript

from hub.engine.bodies import carry, decode_body, encode_body
from hub.engine.redis.link import RedisLink, cancel_requested
from hub.engine.redis.pending import MAX_PENDING_BYTES, PendingQueue
from hub.engine.sessions import Queued, StoredSession
from hub.errors import EngineUnavailable

logger = logging.getLogger(__name__)

# Spilled messages written per round trip.
_BATCH = 256
# Spilled messages held in memory while Redis is away; the oldest go first.
_MAX_PENDING = 100_000
_PENDING_NAME = "MQTT sessions' queued messages"
_RETRY_DELAY = 0.5

# KEYS: owner, user. ARGV: node. Delete both if the owner key still names this node.
_DISOWN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""

_ANONYMOUS = b"-"

# KEYS: session, queue, queue bytes, owner, user. ARGV: the dead owner ('' when
# the owner key is gone), expiry ms (0: none). Nothing changes if another node
# claimed the id meanwhile. A clean session leaves no stored session: its record
# is deleted (1). A persistent one stays its user's, and starts the expiry its
# node died before starting (0).
_FORGET_ORPHAN = """
local owner = redis.call('GET', KEYS[4])
if (owner or '') ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  return 1
end
local expiry = tonumber(ARGV[2])
if expiry > 0 then
  for i = 1, #KEYS do
    if redis.call('PTTL', KEYS[i]) == -1 then
      redis.call('PEXPIRE', KEYS[i], expiry)
    end
  end
end
return 0
"""

# KEYS: the offline set. ARGV: client id, max offline, the session's lifetime
# in µs (-1: never expires). Run in the transaction that stores the session
# going offline, so every node counts against one set. The id is scored by
# when it expires, in Redis's own time (the nodes' clocks do not matter), so
# the sessions whose keys expired, each at its own expiry (a 5.0 client's may
# be shorter than the hub's), leave the set before the count. Past the cap,
# the first to expire (the longest offline, among equal expiries) are taken
# out and returned, each to this one caller, which drops them. A session that
# never expires is scored 2^32 s ahead: after any 5.0 expiry (< 2^32 s), and
# exact in a double (now + 2^32 s < 2^53 µs).
_OFFLINE = """
local now = redis.call('TIME')
local score = tonumber(now[1]) * 1000000 + tonumber(now[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', score)
local lifetime = tonumber(ARGV[3])
if lifetime < 0 then
  lifetime = 4294967296000000
end
redis.call('ZADD', KEYS[1], score + lifetime, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
local dropped = {}
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #popped, 2 do
    dropped[#dropped + 1] = popped[i]
  end
end
return dropped
"""

# KEYS: session, queue, queue bytes. ARGV: max queued, max bytes, items...
# Append, drop the oldest past either bound (the newest is kept, however
# large), and give the queue the session's remaining lifetime. Nothing is
# queued for a session that is not stored (ended, expired or dropped).
_PUSH = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local added = 0
for i = 3, #ARGV do
  added = added + string.len(ARGV[i])
end
local count = redis.call('RPUSH', KEYS[2], unpack(ARGV, 3))
local bytes = redis.call('INCRBY', KEYS[3], added)
local max_count, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local dropped = 0
while count > 1 and (count > max_count or bytes - dropped > max_bytes) do
  dropped = dropped + string.len(redis.call('LPOP', KEYS[2]))
  count = count - 1
end
if dropped > 0 then
  redis.call('DECRBY', KEYS[3], dropped)
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 1
"""

# KEYS: queue, queue bytes. Everything queued, and the queue emptied, in one step.
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
return items
"""


def encode_queued(queued: Queued) -> bytes:
    publication = queued.publication
    item: bytes = msgpack.packb(
        [
            queued.qos,
            queued.retain,
            publication.channel,
            publication.offset,
            publication.epoch,
            encode_body(publication, b""),
        ],
        use_bin_type=True,
        default=carry,
    )
    return item


def decode_queued(item: bytes) -> Queued:
    """ValueError when the item is not one of ours."""
    try:
        qos, retain, channel, offset, epoch, body = msgpack.unpackb(item, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"undecodable queued message: {exc}") from None
    return Queued(decode_body(channel, body, offset, epoch), qos, retain)


class RedisSessions:
    """One node's access to the sessions in Redis."""

    def __init__(
        self,
        link: RedisLink,
        node_id: str,
        *,
        expiry: float | None,
        max_queued: int,
        max_queued_bytes: int = 1024 * 1024,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_offline: int | None = None,
    ) -> None:
        self._link = link
        self._prefix = link.keys.prefix + "mqtt:"
        self.node_id = node_id
        self._expiry_ms = None if expiry is None else max(1, round(expiry * 1000))
        self._max_queued = max_queued
        self._max_queued_bytes = max_queued_bytes
        self._offline_set = self._prefix + "offline"
        self._max_offline = max_offline
        client = link.client
        self._count_offline: AsyncScript = client.register_script(_OFFLINE)
        self._disown: AsyncScript = client.register_script(_DISOWN)
        self._push: AsyncScript = client.register_script(_PUSH)
        self._take: AsyncScript = client.register_script(_TAKE)
        self._forget_orphan: AsyncScript = client.register_script(_FORGET_ORPHAN)
        # The ordered writer of spilled messages: what waits for Redis, bounded
        # in count and in (encoded) bytes.
        self._pending: PendingQueue[tuple[str, bytes]] = PendingQueue(
            _PENDING_NAME, link.metrics.dropped, max_items=_MAX_PENDING, max_bytes=max_pending_bytes
        )
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None

    def _session(self, client_id: str) -> str:
        return f"{self._prefix}{{{client_id}}}"

    def _queue(self, client_id: str) -> str:
        return f"{self._prefix}{{{client_id}}}:queue"

    def _queue_bytes(self, client_id: str) -> str:
        return f"{self._prefix}{{{client_id}}}:qbytes"

    def _owner(self, client_id: str) -> str:
        return f"{self._prefix}{{{client_id}}}:owner"

    def _user(self, client_id: str) -> str:
        return f"{self._prefix}{{{client_id}}}:user"

    # -- ownership -------------------------------------------------------------

    async def claim(self, client_id: str) -> str | None:
        """Name this node the client id's holder; the node that held it before, if any."""
        client = self._link.client
        previous: Any = await self._link.run(
            "session claim", client.set(self._owner(client_id), self.node_id, get=True)
        )
        return None if previous is None else bytes(previous).decode()

    async def disown(self, client_id: str) -> None:
        """Forget this node as the holder, unless another node took the id since."""
        keys = [self._owner(client_id), self._user(client_id)]
        await self._link.run("session disown", self._disown(keys=keys, args=[self.node_id]))

    async def owner(self, client_id: str) -> str | None:
        """The node named as the client id's holder, if any."""
        client = self._link.client
        key = self._owner(client_id)
        found: Any = await self._link.run_idempotent("session read", partial(client.get, key))
        return None if found is None else bytes(found).decode()

    async def forget_orphan(self, client_id: str, dead_node: str | None) -> bool:
        """The holder ``dead_node`` is gone: whether the id is free now (see _FORGET_ORPHAN)."""
        keys = [
            self._session(client_id),
            self._queue(client_id),
            self._queue_bytes(client_id),
            self._owner(client_id),
            self._user(client_id),
        ]
        args: list[str | int] = [dead_node or "", self._expiry_ms or 0]
        freed = await self._link.run("session orphan", self._forget_orphan(keys=keys, args=args))
        return bool(freed)

    async def user(self, client_id: str) -> tuple[bool, str | None]:
        """(whether the session has a user on record, its user id or None for anonymous)."""
        client = self._link.client
        key = self._user(client_id)
        found: Any = await self._link.run_idempotent("session read", partial(client.get, key))
        if found is None:
            return False, None
        raw = bytes(found)
        return True, None if raw == _ANONYMOUS else raw[2:].decode()

    async def set_user(self, client_id: str, user: str | None) -> None:
        """Record whose session it is (kept until the session ends or expires)."""
        value = _ANONYMOUS if user is None else b"u:" + user.encode()
        client = self._link.client
        await self._link.run("session save", client.set(self._user(client_id), value))

    # -- the session -----------------------------------------------------------

    async def subscriptions(self, client_id: str) -> dict[str, int]:
        """The stored session's subscriptions (none if there is no stored session)."""
        client = self._link.client
        key = self._session(client_id)
        raw = await self._link.run_idempotent("session read", partial(client.hget, key, "subs"))
        return {} if raw is None else dict(msgpack.unpackb(raw, raw=False))

    async def load(self, client_id: str) -> StoredSession | None:
        client = self._link.client
        key = self._session(client_id)
        fields = await self._link.run_idempotent("session read", partial(client.hgetall, key))
        if not fields:
            return None
        try:
            stored = StoredSession(
                dict(msgpack.unpackb(fields.get(b"subs", b"\x80"), raw=False)),
                [tuple(entry) for entry in msgpack.unpackb(fields.get(b"inflight", b"\x90"))],
                list(msgpack.unpackb(fields.get(b"pubrel", b"\x90"))),
                int(fields.get(b"last_id", 0)),
            )
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            logger.warning(
                "MQTT session %r: stored state unreadable, starting empty: %s", client_id, exc
            )
            return StoredSession()
        return stored

    def _lifetime_ms(self, expiry: float | None) -> int | None:
        """How long an offline session's keys live, ms (None: for ever); ``expiry``
        is the session's own in seconds (inf: never), None for the hub's."""
        if expiry is None:
            return self._expiry_ms
        if math.isinf(expiry):
            return None
        return max(1, round(expiry * 1000))

    async def save(
        self,
        client_id: str,
        stored: StoredSession,
        *,
        offline: bool,
        counted: bool = True,
        expiry: float | None = None,
    ) -> list[str]:
        """Write the whole session; ``offline`` starts its expiry (if any): ``expiry``
        seconds (inf: never), or ``mqtt.session_expiry`` when None.

        Offline and ``counted``, the session joins the cluster's offline count
        in the same transaction; returned: the ids past ``max_offline`` (the
        first to expire), out of the count, for the caller to drop. Not
        offline, it leaves the count.
        """
        client = self._link.client
        inflight = [[pid, frame, awaiting] for pid, frame, awaiting in stored.inflight]
        pipe = client.pipeline(transaction=True)
        key = self._session(client_id)
        pipe.hset(
            key,
            mapping={
                "subs": msgpack.packb(stored.subscriptions),
                "inflight": msgpack.packb(inflight, use_bin_type=True),
                "pubrel": msgpack.packb(stored.awaiting_pubrel),
                "last_id": stored.last_packet_id,
            },
        )
        keys = (
            key,
            self._queue(client_id),
            self._queue_bytes(client_id),
            self._owner(client_id),
            self._user(client_id),
        )
        lifetime = self._lifetime_ms(expiry)
        for name in keys:
            if offline and lifetime is not None:
                pipe.pexpire(name, lifetime)
            else:
                pipe.persist(name)
        max_offline = self._max_offline if offline and counted else None
        counting = max_offline is not None
        if max_offline is not None:
            lifetime_us = -1 if lifetime is None else lifetime * 1000
            args: list[str | int] = [client_id, max_offline, lifetime_us]
            # Queued on the transaction (an async pipeline is awaitable: it returns itself).
            await self._count_offline(keys=[self._offline_set], args=args, client=pipe)
        elif not offline:
            pipe.zrem(self._offline_set, client_id)
        replies: list[Any] = await self._link.run("session save", pipe.execute())
        if not counting:
            return []
        return [bytes(dropped).decode() for dropped in replies[-1]]

    async def save_subscriptions(self, client_id: str, subscriptions: dict[str, int]) -> None:
        client = self._link.client
        key = self._session(client_id)
        await self._link.run("session save", client.hset(key, "subs", msgpack.packb(subscriptions)))

    async def delete(self, client_id: str) -> None:
        pipe = self._link.client.pipeline(transaction=True)
        pipe.delete(self._session(client_id), self._queue(client_id), self._queue_bytes(client_id))
        pipe.zrem(self._offline_set, client_id)
        await self._link.run("session delete", pipe.execute())

    async def take_queue(self, client_id: str) -> list[Queued]:
        """Everything queued for the client, oldest first; the stored queue is emptied."""
        keys = [self._queue(client_id), self._queue_bytes(client_id)]
        items = await self._link.run("session queue", self._take(keys=keys))
        out = []
        for item in items:
            try:
                out.append(decode_queued(item))
            except ValueError as exc:
                logger.warning("MQTT session %r: skipping a queued message: %s", client_id, exc)
        return out

    # -- the offline queue's writer ------------------------------------------------

    def spill(self, client_id: str, queued: Queued) -> None:
        """Append to the client's stored queue, after everything spilled before (no await)."""
        item = encode_queued(queued)
        self._pending.append_evicting((client_id, item), len(item))
        self._idle.clear()
        self._wake.set()
        if (self._writer is None or self._writer.done()) and not self._link.closed:
            self._writer = self._link.spawn(self._write(), "wshub-mqtt-spill")

    async def flushed(self, timeout: float) -> bool:
        """Wait until every spilled message is in Redis; False after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _write(self) -> None:
        while True:
            cancel_requested()
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            # Out of the queue while written: what spill() drops to make room
            # meanwhile is never one of these.
            batch = self._pending.take(_BATCH)
            by_client: dict[str, list[bytes]] = {}
            for (client_id, item), _ in batch:
                by_client.setdefault(client_id, []).append(item)
            try:
                await self._push_batch(by_client)
            except EngineUnavailable:
                self._pending.restore(batch)  # written once Redis is back
                await asyncio.sleep(_RETRY_DELAY)
                continue
            except BaseException:
                self._pending.restore(batch)  # cancelled: kept for flushed()'s caller
                raise
            self._pending.written()

    async def _push_batch(self, by_client: dict[str, list[bytes]]) -> None:
        pipe = self._link.client.pipeline(transaction=False)
        for client_id, items in by_client.items():
            keys = [self._session(client_id), self._queue(client_id), self._queue_bytes(client_id)]
            args: list[int | bytes] = [self._max_queued, self._max_queued_bytes, *items]
            # Queued on the pipeline (an async pipeline is awaitable: it returns itself).
            await self._push(keys=keys, args=args, client=pipe)
        await self._link.run("session queue", pipe.execute())
