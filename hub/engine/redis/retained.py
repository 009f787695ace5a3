"""Retained publications in Redis, shared by every node (the MQTT retain flag).

A hash maps each channel to its retained publication (the engine's msgpack
body, framed with its offset and epoch) and a sorted set holds the channel
names, all with score 0, so they sort by name. A pattern reads only the names
under its literal prefix (``sensors/kitchen/`` for ``sensors/kitchen/+``),
filters them with the MQTT rules, then fetches the publications. The store
is bounded in channels and in bytes (the stored bodies' total, kept in a
counter key), checked in the script that stores: a new retained message that
would pass either is refused, as on the memory engine.

With ``expiry`` (``mqtt.retained_expiry``) a retained message is forgotten
that many seconds after it was set, as on the memory engine: its deadline
(wall clock, ms, from the node that set it) goes into a sorted set; reads go
through a script that hides what is past its deadline, and a store found full
deletes expired messages (up to ``RETAINED_SWEEP`` of them) before refusing.
A hash field has no TTL of its own, and a key per channel would lose the
name index, hence the deadline set. Without ``expiry`` they stay until
replaced or cleared, as in any broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, cast

from redis.commands.core import AsyncScript

from hub.engine.base import Publication
from hub.engine.bodies import decode_body, encode_body
from hub.engine.redis.codec import frame, unframe
from hub.engine.redis.link import RedisLink
from hub.engine.redis.scripts import RETAINED_DELETE, RETAINED_READ, RETAINED_SET
from hub.engine.topics import MULTI, SEPARATOR, SINGLE, is_pattern, matches

logger = logging.getLogger("hub.engine.redis")

# Names read per ZRANGEBYLEX while matching a pattern.
_BATCH = 500
# Above every byte of UTF-8, so "(prefix\xff" ends the range of names under prefix.
_AFTER = b"\xff"


def literal_prefix(pattern: str) -> str:
    """The longest start every channel matching ``pattern`` shares (before its first wildcard)."""
    levels: list[str] = []
    for level in pattern.split(SEPARATOR):
        if level in (SINGLE, MULTI):
            # 'a/#' matches 'a' too: its prefix stops before the separator.
            return SEPARATOR.join(levels) + (SEPARATOR if level == SINGLE and levels else "")
        levels.append(level)
    return pattern


class RedisRetainedStore:
    def __init__(
        self,
        link: RedisLink,
        max_channels: int = 100_000,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        expiry: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._link = link
        self._keys = link.keys.retained()
        self._max_channels = max_channels
        self._max_bytes = max_bytes
        self._expiry = expiry
        # Wall clock, not monotonic: deadlines are compared on every node.
        self._clock = clock
        client = link.client
        self._set: AsyncScript = client.register_script(RETAINED_SET)
        self._delete: AsyncScript = client.register_script(RETAINED_DELETE)
        self._read_script: AsyncScript = client.register_script(RETAINED_READ)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def set(self, publication: Publication) -> bool:
        body = frame(publication.offset, publication.epoch, encode_body(publication, b""))
        now = self._now_ms()
        deadline = now + max(1, int(self._expiry * 1000)) if self._expiry is not None else 0
        stored = await self._link.run(
            "retain",
            self._set(
                keys=self._keys,
                args=[
                    publication.channel,
                    body,
                    self._max_channels,
                    self._max_bytes,
                    now,
                    deadline,
                ],
            ),
        )
        if not stored:
            logger.warning(
                "retained store full (%d channels, %d bytes): not retaining %r",
                self._max_channels,
                self._max_bytes,
                publication.channel,
            )
        return bool(stored)

    async def delete(self, channel: str) -> None:
        await self._link.run("retain", self._delete(keys=self._keys, args=[channel]))

    async def _read(self, command: str, *args: Any, **options: Any) -> Any:
        """One read command on the client, retried once after a reconnect."""
        method = getattr(self._link.client, command)
        return await self._link.run_idempotent(
            "retained read", partial(cast(Callable[..., Awaitable[Any]], method), *args, **options)
        )

    async def _bodies(self, channels: list[str]) -> list[bytes | None]:
        """The stored bodies of ``channels``; None for one missing or past its deadline."""
        keys = [self._keys[0], self._keys[3]]
        found = await self._link.run_idempotent(
            "retained read",
            partial(self._read_script, keys=keys, args=[self._now_ms(), *channels]),
        )
        return [body or None for body in found]

    async def get(self, channel: str) -> Publication | None:
        (found,) = await self._bodies([channel])
        return None if found is None else self._decode(channel, found)

    async def match(self, subscription: str) -> list[Publication]:
        if not is_pattern(subscription):
            found = await self.get(subscription)
            return [found] if found is not None else []
        out: list[Publication] = []
        async for names in self._names_under(literal_prefix(subscription)):
            wanted = [name for name in names if matches(subscription, name)]
            if not wanted:
                continue
            bodies = await self._bodies(wanted)
            for name, body in zip(wanted, bodies, strict=True):
                if body is not None:  # cleared (or expired) since the names were read
                    publication = self._decode(name, body)
                    if publication is not None:
                        out.append(publication)
        return out

    async def count(self) -> int:
        return int(await self._read("hlen", self._keys[0]))

    async def _names_under(self, prefix: str) -> AsyncIterator[list[str]]:
        raw = prefix.encode()
        low = b"[" + raw if raw else b"-"
        high = b"(" + raw + _AFTER if raw else b"+"
        offset = 0
        while True:
            batch = await self._read(
                "zrangebylex", self._keys[1], low, high, start=offset, num=_BATCH
            )
            if batch:
                yield [name.decode() for name in batch]
            if len(batch) < _BATCH:
                return
            offset += len(batch)

    @staticmethod
    def _decode(channel: str, stored: bytes) -> Publication | None:
        try:
            offset, epoch, body = unframe(stored)
            return decode_body(channel, body, offset, epoch)
        except ValueError as exc:
            logger.warning("skipping the retained publication of %r: %s", channel, exc)
            return None
