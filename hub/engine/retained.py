"""Retained publications: the last one kept per channel, handed to new subscribers.

MQTT's retain flag uses it, and any protocol with the same idea may. The store
is owned by the hub (``hub.retained``), not by a connection. The interface is
narrow: :class:`MemoryRetainedStore` here, and
:class:`~hub.engine.redis.retained.RedisRetainedStore` for the Redis engine
(the backend supplies the one that goes with it: ``Backend.retained``).
"""

from __future__ import annotations

import logging
from typing import Protocol

from hub.engine.base import Publication
from hub.engine.topics import MULTI, SEPARATOR, SINGLE, is_pattern

logger = logging.getLogger(__name__)


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
    __slots__ = ("children", "publication")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.publication: Publication | None = None


class MemoryRetainedStore:
    """A trie over channel levels, so a pattern visits only the branches it can match."""

    def __init__(self, max_channels: int = 100_000) -> None:
        self._root = _Node()
        self._count = 0
        self._max_channels = max_channels

    async def set(self, publication: Publication) -> bool:
        node = self._root
        for level in publication.channel.split(SEPARATOR):
            node = node.children.setdefault(level, _Node())
        if node.publication is None:
            if self._count >= self._max_channels:
                logger.warning(
                    "retained store full (%d channels): not retaining %r",
                    self._max_channels,
                    publication.channel,
                )
                return False
            self._count += 1
        node.publication = retained_copy(publication)
        return True

    async def delete(self, channel: str) -> None:
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
        # Prune branches left empty, so deleted channels cost nothing.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.publication is not None or child.children:
                break
            del parent.children[level]

    async def get(self, channel: str) -> Publication | None:
        node: _Node | None = self._root
        for level in channel.split(SEPARATOR):
            node = node.children.get(level) if node is not None else None
        return node.publication if node is not None else None

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
            if node.publication is not None:
                out.append(node.publication)
            return
        level = levels[depth]
        if level == MULTI:
            # 'a/#' matches 'a' itself too.
            if node.publication is not None and depth > 0:
                out.append(node.publication)
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
            if current.publication is not None:
                out.append(current.publication)
            stack.extend(current.children.values())
