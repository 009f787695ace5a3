"""Shared subscription groups across nodes: each message claimed in Redis for one node.

Per group, ``<prefix>share:{<group>}:nodes`` maps each node holding members to
their count, and ``...:next`` counts the messages handed out. Every node with
members receives each message of the group's filter and offers it; one script
call per batch of offers decides: the first node to offer a message picks its
owner, the next live node in turn weighted by member count, and stores the
choice under ``...:m:<message id>`` for ``engine.shared_claim_ttl``, where the other
nodes' offers find it. Only the owner delivers.

A node picked for a message it can no longer deliver (its last member left,
or met its absence, after the node's count was read) hands the message back:
one script call picks another live node with members, the nodes that could
not deliver it left out, and the node bus carries the message there. The
claim stays with the first owner, so the late offers of the new one deliver
nothing: the message is delivered once, through the bus.

A node counts while its heartbeat key lives (:mod:`hub.engine.redis.bus`): a
node killed with SIGKILL is skipped, and forgotten, within a few health
intervals; the messages claimed for it meanwhile are lost with it. With no
live node announced (Redis lost its data, or announcements still on their
way), the first node to offer a message delivers it: still once. Each node
announces its counts again every ``engine.shared_announce_interval`` seconds, so they come
back if Redis lost them; the announcement also renews the nodes hash's expiry
(and the counter's), so the keys of a group nobody announces any more (its
nodes died, or its last count 0 was not stored) vanish.

The offers waiting for a decision, and the messages waiting to be handed
back, are bounded in count and in bytes (:mod:`hub.engine.redis.pending`;
``engine.shared_max_pending_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Final

from redis.commands.core import AsyncScript

from hub.engine.base import Publication
from hub.engine.bodies import decode_body, encode_body
from hub.engine.bus import NodeBus
from hub.engine.groups import Deliver
from hub.engine.redis.link import RedisLink
from hub.engine.redis.pending import MAX_PENDING_BYTES, PendingQueue
from hub.errors import EngineUnavailable
from hub.payloads import payload_size

logger = logging.getLogger("hub.engine.redis")

# Long enough for every node's copy of a message to arrive and be offered
# (the default of engine.shared_claim_ttl, as the other two defaults below).
CLAIM_TTL_MS: Final = 30_000
# Offers decided by one script call.
BATCH: Final = 256
# Offers waiting for a decision; beyond this, new ones are dropped (Redis too slow).
MAX_PENDING: Final = 100_000
# Seconds between announcements of this node's member counts (Redis may lose them).
ANNOUNCE_EVERY: Final = 5.0
# A group's keys outlive the last announcement by this many intervals.
KEYS_LIVE: Final = 3
# After its count 0 is stored, how long a node keeps receiving a group's messages:
# those picked for it before are still on their way over pub/sub.
LINGER: Final = 0.5
# At most this long waiting for the count 0 to be stored (Redis unreachable).
LEAVE_TIMEOUT: Final = 5.0

# The choice both scripts make (prepended to each): of the live nodes
# ({node, member count}, total > 0), the next in turn by the group's counter,
# weighted by count. The counter lives as long as the nodes hash (ms).
_IN_TURN = """
local function in_turn(live, total, counter, keys_ttl)
  table.sort(live, function(a, b) return a[1] < b[1] end)
  local turn = redis.call('INCR', counter) % total
  redis.call('PEXPIRE', counter, keys_ttl)
  for _, entry in ipairs(live) do
    if turn < entry[2] then
      return entry[1]
    end
    turn = turn - entry[2]
  end
end
"""

# KEYS: per offer, the group's nodes hash, its counter, the message's claim key.
# ARGV: this node, alive key prefix, alive key suffix, claim TTL (ms), keys TTL (ms).
# Per offer, 1 when this node delivers the message, else 0.
_OFFER = """
local me, prefix, suffix, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local keys_ttl = tonumber(ARGV[5])
local alive = {}
local function pick(nodes, counter)
  local entries = redis.call('HGETALL', nodes)
  local live, total = {}, 0
  for j = 1, #entries, 2 do
    local node, weight = entries[j], tonumber(entries[j + 1])
    if alive[node] == nil then
      alive[node] = node == me or redis.call('EXISTS', prefix .. node .. suffix) == 1
    end
    if alive[node] and weight and weight > 0 then
      live[#live + 1] = {node, weight}
      total = total + weight
    else
      redis.call('HDEL', nodes, node)
    end
  end
  if total == 0 then
    return me
  end
  return in_turn(live, total, counter, keys_ttl) or me
end
local out = {}
for i = 1, #KEYS, 3 do
  local owner = redis.call('GET', KEYS[i + 2])
  if not owner then
    owner = pick(KEYS[i], KEYS[i + 1])
    redis.call('SET', KEYS[i + 2], owner, 'PX', ttl)
  end
  out[#out + 1] = owner == me and 1 or 0
end
return out
"""

# KEYS: the group's nodes hash, its counter.
# ARGV: alive key prefix, alive key suffix, keys TTL (ms), then the nodes to leave out.
# The next live node with members in turn, weighted by count; nil if none.
_PICK_OTHER = """
local prefix, suffix, keys_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local skip = {}
for i = 4, #ARGV do
  skip[ARGV[i]] = true
end
local entries = redis.call('HGETALL', KEYS[1])
local live, total = {}, 0
for j = 1, #entries, 2 do
  local node, weight = entries[j], tonumber(entries[j + 1])
  if not skip[node] and weight and weight > 0
      and redis.call('EXISTS', prefix .. node .. suffix) == 1 then
    live[#live + 1] = {node, weight}
    total = total + weight
  end
end
if total == 0 then
  return false
end
return in_turn(live, total, KEYS[2], keys_ttl) or false
"""

# The node bus message kind of a message handed back: [group, channel,
# offset, epoch, body, the nodes that could not deliver it].
HAND_BACK: Final = "share.deliver"


class RedisGroups:
    """This node's side of every shared group: its member counts, and its offers, in order."""

    def __init__(
        self,
        link: RedisLink,
        bus: NodeBus,
        *,
        announce_every: float = ANNOUNCE_EVERY,
        claim_ttl_ms: int = CLAIM_TTL_MS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._link = link
        self._announce_every = announce_every
        self._keys_ttl_ms = max(1, int(KEYS_LIVE * announce_every * 1000))
        self._claim_ttl_ms = claim_ttl_ms
        self._next_announcement = 0.0
        self._prefix = link.keys.prefix
        self._bus = bus
        self.node_id = bus.node_id
        self._offer: AsyncScript = link.client.register_script(_IN_TURN + _OFFER)
        self._pick_other: AsyncScript = link.client.register_script(_IN_TURN + _PICK_OTHER)
        # Each group's delivery here (the latest offer's), for messages handed to this node.
        self._deliverers: dict[str, Deliver] = {}
        # Messages this node could not deliver, with the nodes that could not either.
        dropped = link.metrics.dropped
        self._handed: PendingQueue[tuple[str, Publication, list[str]]] = PendingQueue(
            "shared group hand-backs",
            dropped,
            max_items=MAX_PENDING,
            max_bytes=max_pending_bytes,
        )
        # left() calls waiting for the next announcement to be stored.
        self._announced: list[asyncio.Future[None]] = []
        bus.on(HAND_BACK, self._on_handed)
        # What Redis should hold for this node, written by one task in order.
        self._counts: dict[str, int] = {}
        self._dirty: dict[str, int] = {}
        self._pending: PendingQueue[tuple[str, Publication, Deliver]] = PendingQueue(
            "shared group offers", dropped, max_items=MAX_PENDING, max_bytes=max_pending_bytes
        )
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def _key(self, group: str, part: str) -> str:
        return f"{self._prefix}share:{{{group}}}:{part}"

    def members(self, group: str, count: int) -> None:
        if self._counts.get(group, 0) == count:
            return
        if count:
            self._counts[group] = count
        else:
            self._counts.pop(group, None)
            self._deliverers.pop(group, None)
        self._dirty[group] = count
        self._kick()

    def offer(self, group: str, publication: Publication, deliver: Deliver) -> None:
        if not publication.message_id:
            deliver(publication)  # not from the pub/sub (no id): only this node has it
            return
        if group in self._counts:  # not for a group this node is leaving: kept no longer
            self._deliverers[group] = deliver
        if self._pending.append((group, publication, deliver), payload_size(publication.data)):
            self._kick()

    def _kick(self) -> None:
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = self._link.spawn(self._work(), "wshub-redis-groups")

    async def _work(self) -> None:
        while True:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._next_announcement):
                    await self._wake.wait()
            if loop.time() >= self._next_announcement:
                # On a clock, busy or not: the counts again, in case Redis lost
                # them, and the keys' expiry renewed.
                self._next_announcement = loop.time() + self._announce_every
                self._dirty = {**self._counts, **self._dirty}
            self._wake.clear()
            await self._announce()
            while self._pending:
                await self._decide()
            while self._handed:
                await self._hand_back(*self._handed.popleft())

    async def left(self, group: str) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._announced.append(waiter)
        self._kick()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await waiter
        await asyncio.sleep(LINGER)

    async def _announce(self) -> None:
        # Waiters registered before this point see their change stored by its end.
        waiters, self._announced = self._announced, []
        try:
            await self._store_counts()
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _store_counts(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for group, count in dirty.items():
            key = self._key(group, "nodes")
            command: Awaitable[Any]
            if count:
                pipe = self._link.client.pipeline(transaction=True)
                pipe.hset(key, self.node_id, count)
                pipe.pexpire(key, self._keys_ttl_ms)
                command = pipe.execute()
            else:
                command = self._link.client.hdel(key, self.node_id)
            try:
                await self._link.run("shared group members", command)
            except EngineUnavailable:
                # Told again with the next change; meanwhile other nodes may
                # not pick this one, and no message is delivered twice for it.
                logger.warning("shared group %r: member count not stored", group)

    async def _decide(self) -> None:
        batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
        keys: list[str] = []
        for group, publication, _ in batch:
            keys += [
                self._key(group, "nodes"),
                self._key(group, "next"),
                self._key(group, "m:" + publication.message_id.hex()),
            ]
        args: list[str | int] = [
            self.node_id,
            f"{self._prefix}node:",
            ":alive",
            self._claim_ttl_ms,
            self._keys_ttl_ms,
        ]
        try:
            owned: list[int] = await self._link.run("shared group offer", self._offer(keys, args))
        except EngineUnavailable:
            # No node can claim them: dropped rather than delivered twice.
            logger.warning("shared groups: %d message(s) dropped, Redis unavailable", len(batch))
            return
        for (group, publication, deliver), mine in zip(batch, owned, strict=True):
            if mine:
                self._deliver(group, publication, deliver, [])

    def _deliver(
        self, group: str, publication: Publication, deliver: Deliver, tried: list[str]
    ) -> None:
        """Deliver here; hand the message back when no member here can take it."""
        try:
            if deliver(publication):
                return
        except Exception:
            logger.exception("shared group delivery failed")
            return
        handed = (group, publication, [*tried, self.node_id])
        if self._handed.append(handed, payload_size(publication.data)):
            self._kick()

    async def _hand_back(self, group: str, publication: Publication, tried: list[str]) -> None:
        """Pass a message this node could not deliver to another node with members."""
        keys = [self._key(group, "nodes"), self._key(group, "next")]
        args: list[str | int] = [f"{self._prefix}node:", ":alive", self._keys_ttl_ms, *tried]
        try:
            node: bytes | None = await self._link.run(
                "shared group hand-back", self._pick_other(keys, args)
            )
            if node is None:
                logger.info("shared group %r: no member left on any node, message dropped", group)
                return
            body = encode_body(publication, publication.message_id)
            message = [group, publication.channel, publication.offset, publication.epoch, body]
            await self._bus.send(_text(node), HAND_BACK, [*message, tried])
        except EngineUnavailable:
            logger.warning("shared group %r: message not handed back, Redis unavailable", group)

    def _on_handed(self, sender: str, message: Any) -> None:
        """Another node could not deliver a message of a group: deliver it here, or pass it on."""
        try:
            group, channel, offset, epoch, body, tried = message
            publication = decode_body(str(channel), body, int(offset), str(epoch))
            tried = [str(node) for node in tried]
        except (TypeError, ValueError):
            logger.warning("shared groups: a malformed hand-back from node %s", sender)
            return
        deliver = self._deliverers.get(str(group))
        if deliver is None:
            deliver = _nobody
        self._deliver(str(group), publication, deliver, tried)

    async def close(self) -> None:
        """Leave every group: other nodes stop picking this one at once."""
        for group in list(self._counts):
            self.members(group, 0)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        try:
            await self._announce()
        except Exception:
            logger.warning("shared groups: could not leave the groups", exc_info=True)


def _nobody(publication: Publication) -> bool:
    """The delivery of a group this node has no members of."""
    return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
