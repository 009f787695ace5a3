"""The server API's idempotency keys and revocations in Redis, shared by every node.

An idempotency key is one string: ``SET NX PX`` claims it with a short-lived
pending marker, the first publish's result (JSON) replaces the marker for the
window, and a request repeating the key on any node waits for that result.
If the publish fails, or its node dies, the marker goes (deleted, or its lease
lapses) and the key may be tried again, as on one node.

Revocations are one hash, user -> "<expires ms> <before>", read whole when a
node's API starts; a live node learns of a new one from the cluster control
message as well. Each lives ``ttl`` seconds (docs/api.md); an expired field
is skipped when read (not deleted: a node may be renewing it), and the hash
itself lapses ``ttl`` after the last revocation. Bytes are Redis's to bound
(maxmemory), as for retained messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from redis.commands.core import AsyncScript

from hub.engine.api_stores import JsonResult
from hub.engine.redis.link import RedisLink
from hub.errors import EngineUnavailable

logger = logging.getLogger("hub.engine.redis")

_PENDING = b"\x00pending:"
# How long a claimed key waits for its publish before another node may try it.
_LEASE_MS = 10_000
# How often a repeat polls for the first request's result.
_POLL = 0.02

# Delete the key only while it still holds this request's pending marker.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# ARGV: user, before (a number), "<expires ms> <before>", the hash's life in ms.
# The later ``before`` wins; either way the entry lives until the new expiry.
_REVOKE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local value = ARGV[3]
if old then
  local kept = string.match(old, ' (.*)$')
  if kept and tonumber(kept) and tonumber(kept) > tonumber(ARGV[2]) then
    value = string.match(ARGV[3], '^(%S+)') .. ' ' .. kept
  end
end
redis.call('HSET', KEYS[1], ARGV[1], value)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
"""


class RedisIdempotency:
    def __init__(self, link: RedisLink, *, window: float) -> None:
        self._link = link
        self._window_ms = max(1, int(window * 1000))
        self._lease_ms = min(_LEASE_MS, self._window_ms)
        self._release: AsyncScript = link.client.register_script(_RELEASE)

    async def run(self, key: str, operation: Callable[[], Awaitable[JsonResult]]) -> JsonResult:
        link, client = self._link, self._link.client
        name = link.keys.idempotency(key)
        marker = _PENDING + secrets.token_hex(8).encode()
        while True:
            claimed = await link.run(
                "idempotency", client.set(name, marker, nx=True, px=self._lease_ms)
            )
            if claimed:
                break
            found: Any = await link.run_idempotent("idempotency", partial(client.get, name))
            if found is None:
                continue  # released or lapsed since: claim it
            if not found.startswith(_PENDING):
                result: JsonResult = json.loads(found)
                return result
            # Bounded: the first request's lease lapses within _LEASE_MS.
            await asyncio.sleep(_POLL)
        try:
            result = await operation()
        except BaseException:
            # A publish that failed did not happen: the key may be tried again.
            with contextlib.suppress(EngineUnavailable):
                await link.run("idempotency", self._release(keys=[name], args=[marker]))
            raise
        stored = json.dumps(result, separators=(",", ":"))
        await link.run("idempotency", client.set(name, stored, px=self._window_ms))
        return result


class RedisRevocations:
    def __init__(self, link: RedisLink, *, ttl: float) -> None:
        self._link = link
        self._ttl = ttl
        self._key = link.keys.revocations()
        self._revoke: AsyncScript = link.client.register_script(_REVOKE)

    async def revoke(self, user: str, before: float) -> None:
        expires_ms = int((time.time() + self._ttl) * 1000)
        args: list[Any] = [user, repr(before), f"{expires_ms} {before!r}", int(self._ttl * 1000)]
        await self._link.run("revocation", self._revoke(keys=[self._key], args=args))

    async def load(self) -> dict[str, float]:
        client = self._link.client
        fields: Any = await self._link.run_idempotent(
            "revocations", partial(client.hgetall, self._key)
        )
        now_ms = time.time() * 1000
        kept: dict[str, float] = {}
        for user, value in fields.items():
            try:
                expires, before = value.decode().split(" ", 1)
                if float(expires) > now_ms:
                    kept[user.decode()] = float(before)
            except (UnicodeDecodeError, ValueError):
                logger.warning("skipping an unreadable revocation %r", user)
        return kept
