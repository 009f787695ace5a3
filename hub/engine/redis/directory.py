"""Which node's callee serves a procedure: the cluster's registration directory in Redis.

Per realm, two hashes: ``<prefix>wamp:{<realm>}:exact`` (procedure -> holder)
and ``<prefix>wamp:{<realm>}:patterns`` (``<match>|<procedure>`` -> holder). A
holder is ``<node id>|<registration id>``. An entry counts only while its
node's heartbeat key (:mod:`hub.engine.redis.bus`) lives: a node that died
(SIGKILL) stops serving within a few seconds, and its entries are deleted by
the next lookup that meets them. Each node announces its registrations again
every few seconds, so they come back if Redis lost its data.
"""

from __future__ import annotations

from typing import Any

from redis.commands.core import AsyncScript

from hub.engine.directory import Entry
from hub.engine.redis.link import RedisLink

# KEYS: hash. ARGV: field, holder, alive key prefix, alive key suffix, this node.
# Nil when the field is ours now; the live holder's node id when another has it.
_CLAIM = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local node = string.match(current, '^([^|]*)')
  if node ~= ARGV[5] and redis.call('EXISTS', ARGV[3] .. node .. ARGV[4]) == 1 then
    return node
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return false
"""

# KEYS: hash. ARGV: field, holder. Forget the field if it still names this holder.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""

# KEYS: hash. ARGV: alive key prefix, alive key suffix, field (or '' for all).
# The live entries as a flat field/holder list; those of dead nodes are deleted.
_LOOKUP = """
local entries
if ARGV[3] ~= '' then
  local holder = redis.call('HGET', KEYS[1], ARGV[3])
  entries = holder and {ARGV[3], holder} or {}
else
  entries = redis.call('HGETALL', KEYS[1])
end
local live, alive = {}, {}
for i = 1, #entries, 2 do
  local node = string.match(entries[i + 1], '^([^|]*)')
  if alive[node] == nil then
    alive[node] = redis.call('EXISTS', ARGV[1] .. node .. ARGV[2]) == 1
  end
  if alive[node] then
    live[#live + 1] = entries[i]
    live[#live + 1] = entries[i + 1]
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return live
"""


class RedisDirectory:
    """The directory in two Redis hashes per realm."""

    def __init__(self, link: RedisLink, node_id: str) -> None:
        self._link = link
        self._prefix = link.keys.prefix
        self.node_id = node_id
        client = link.client
        self._claim: AsyncScript = client.register_script(_CLAIM)
        self._release: AsyncScript = client.register_script(_RELEASE)
        self._lookup: AsyncScript = client.register_script(_LOOKUP)

    def _key(self, realm: str, match: str) -> str:
        kind = "exact" if match == "exact" else "patterns"
        return f"{self._prefix}wamp:{{{realm}}}:{kind}"

    @staticmethod
    def _field(match: str, procedure: str) -> str:
        return procedure if match == "exact" else f"{match}|{procedure}"

    def _holder(self, registration: int) -> str:
        return f"{self.node_id}|{registration}"

    async def claim(self, realm: str, match: str, procedure: str, registration: int) -> str | None:
        """Announce a registration of this node; the node holding it already, if alive."""
        args = [
            self._field(match, procedure),
            self._holder(registration),
            f"{self._prefix}node:",
            ":alive",
            self.node_id,
        ]
        holder: Any = await self._link.run(
            "wamp register", self._claim(keys=[self._key(realm, match)], args=args)
        )
        return None if holder is None else bytes(holder).decode()

    async def release(self, realm: str, match: str, procedure: str, registration: int) -> None:
        args = [self._field(match, procedure), self._holder(registration)]
        await self._link.run(
            "wamp unregister", self._release(keys=[self._key(realm, match)], args=args)
        )

    async def exact(self, realm: str, procedure: str) -> Entry | None:
        """The live exact registration of ``procedure`` in the cluster, if any."""
        found = await self._read(realm, "exact", procedure)
        return found[0] if found else None

    async def patterns(self, realm: str) -> list[Entry]:
        """Every live prefix and wildcard registration of the realm."""
        return await self._read(realm, "prefix", "")

    async def _read(self, realm: str, match: str, field: str) -> list[Entry]:
        args = [f"{self._prefix}node:", ":alive", field]
        lookup = self._lookup(keys=[self._key(realm, match)], args=args)
        reply = await self._link.run("wamp lookup", lookup)
        entries = []
        for index in range(0, len(reply), 2):
            name, holder = reply[index].decode(), reply[index + 1].decode()
            node, _, registration = holder.partition("|")
            if match == "exact":
                entries.append(Entry("exact", name, node, int(registration)))
            else:
                policy, _, procedure = name.partition("|")
                entries.append(Entry(policy, procedure, node, int(registration)))
        return entries
