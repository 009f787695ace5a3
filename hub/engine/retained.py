"""Retained publications: the last one kept per channel, handed to new subscribers.

MQTT's retain flag uses it, and any protocol with the same idea may. The store
is owned by the hub (``hub.retained``), not by a connection. The interface is
narrow: :class:`MemoryRetainedStore` here, and
:class:`~hub.engine.redis.retained.RedisRetainedStore` for the Redis engine
(the backend supplies the one that goes with it: ``Backend.retained``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from hub.engine.base import Publication
from hub.engine.topics import MULTI, SEPARATOR, SINGLE, is_pattern
from hub.payloads import payload_size

logger = logging.getLogger(__name__)

# Seconds between two sweeps of expired retained messages in a full store.
SWEEP_INTERVAL = 1.0


class RetainedStore(Protocol):
    async def set(self, publication: Publication) -> bool:
        """Keep ``publication`` as its channel's retained one; False if refused (store full)."""

    async def delete(self, channel: str) -> None:
        """Forget the channel's retained publication, if any."""

    async def get(self, channel: str) -> Publication | None: ...

    async def match(self, subscription: str) -> list[Publication]:
        """Retained publications of every channel a name or pattern matches."""

    async def count(self) -> int: ...


def retained_copy(publication: Publication) -> Publication:
    """A copy without per-fan-out caches, so the store keeps only what it needs."""
    return Publication(
        publication.channel,
        publication.data,
        offset=publication.offset,
        epoch=publication.epoch,
        publisher=publication.publisher,
        extras=dict(publication.extras),
        origin=publication.origin,
    )


class _Node:
    __slots__ = ("children", "expires", "publication", "size")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.publication: Publication | None = None
        self.size = 0
        self.expires = math.inf


class MemoryRetainedStore:
    """A trie over channel levels, so a pattern visits only the branches it can match.

    Bounded in channels and in payload bytes; with ``expiry``, a retained
    message is forgotten that many seconds after it was set.
    """

    def __init__(
        self,
        max_channels: int = 100_000,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        expiry: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = _Node()
        self._count = 0
        self._bytes = 0
        self._max_channels = max_channels
        self._max_bytes = max_bytes
        self._expiry = expiry
        self._clock = clock
        self._next_sweep = -math.inf

    async def set(self, publication: Publication) -> bool:
        size = payload_size(publication.data)
        if not self._room_for(publication.channel, size):
            # Full: expired ones make room first, if there are any.
            self._sweep()
            if not self._room_for(publication.channel, size):
                logger.warning(
                    "retained store full (%d channels, %d bytes): not retaining %r",
                    self._max_channels,
                    self._max_bytes,
                    publication.channel,
                )
                return False
        node = self._root
        for level in publication.channel.split(SEPARATOR):
            node = node.children.setdefault(level, _Node())
        if node.publication is None:
            self._count += 1
        self._bytes += size - node.size
        node.publication = retained_copy(publication)
        node.size = size
        node.expires = self._clock() + self._expiry if self._expiry is not None else math.inf
        return True

    def _room_for(self, channel: str, size: int) -> bool:
        node = self._find(channel)
        held = node is not None and node.publication is not None
        count = self._count + (0 if held else 1)
        total = self._bytes + size - (node.size if node is not None and held else 0)
        return count <= self._max_channels and total <= self._max_bytes

    def _find(self, channel: str) -> _Node | None:
        node: _Node | None = self._root
        for level in channel.split(SEPARATOR):
            node = node.children.get(level) if node is not None else None
        return node

    def _live(self, node: _Node) -> Publication | None:
        return node.publication if node.expires > self._clock() else None

    def _sweep(self) -> None:
        """Delete every expired retained message (when the store is full).

        A walk of the whole trie, so at most once per SWEEP_INTERVAL: a full
        store of live messages must not make every refused set a walk.
        """
        now = self._clock()
        if self._expiry is None or now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        expired: list[str] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.publication is not None and node.expires <= now:
                expired.append(node.publication.channel)
            stack.extend(node.children.values())
        for channel in expired:
            self._remove(channel)

    async def delete(self, channel: str) -> None:
        self._remove(channel)

    def _remove(self, channel: str) -> None:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in channel.split(SEPARATOR):
            child = node.children.get(level)
            if child is None:
                return
            path.append((node, level))
            node = child
        if node.publication is None:
            return
        node.publication = None
        self._count -= 1
        self._bytes -= node.size
        node.size = 0
        # Prune branches left empty, so deleted channels cost nothing.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.publication is not None or child.children:
                break
            del parent.children[level]

    async def get(self, channel: str) -> Publication | None:
        node = self._find(channel)
        return self._live(node) if node is not None else None

    async def match(self, subscription: str) -> list[Publication]:
        if not is_pattern(subscription):
            found = await self.get(subscription)
            return [found] if found is not None else []
        levels = subscription.split(SEPARATOR)
        out: list[Publication] = []
        self._collect(self._root, levels, 0, out)
        return out

    async def count(self) -> int:
        return self._count

    def _collect(self, node: _Node, levels: list[str], depth: int, out: list[Publication]) -> None:
        if depth == len(levels):
            if (found := self._live(node)) is not None:
                out.append(found)
            return
        level = levels[depth]
        if level == MULTI:
            # 'a/#' matches 'a' itself too.
            if depth > 0 and (found := self._live(node)) is not None:
                out.append(found)
            for name, child in node.children.items():
                if depth == 0 and name.startswith("$"):
                    continue
                self._subtree(child, out)
        elif level == SINGLE:
            for name, child in node.children.items():
                if depth == 0 and name.startswith("$"):
                    continue
                self._collect(child, levels, depth + 1, out)
        else:
            exact = node.children.get(level)
            if exact is not None:
                self._collect(exact, levels, depth + 1, out)

    def _subtree(self, node: _Node, out: list[Publication]) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if (found := self._live(current)) is not None:
                out.append(found)
            stack.extend(current.children.values())
