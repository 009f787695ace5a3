"""Messages waiting in memory for Redis: bounded in count and in bytes.

While Redis is slow or away, what a node still has to write piles up here; a
client publishing large payloads must not make it hold gigabytes before the
count bound is reached. What does not fit is dropped, counted in
``wshub_engine_dropped`` (labelled with the queue's name) and logged once
per spell: again only after the queue has emptied.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final, Generic, TypeVar

from prometheus_client import Counter

logger = logging.getLogger("hub.engine.redis")

# The default bytes bound: payloads summed, framing left out.
MAX_PENDING_BYTES: Final = 16 * 1024 * 1024

T = TypeVar("T")


class PendingQueue(Generic[T]):
    """A FIFO of ``(item, size)`` bounded by ``max_items`` and ``max_bytes``."""

    def __init__(
        self,
        name: str,
        dropped: Counter,
        *,
        max_items: int,
        max_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.name = name
        self._dropped = dropped.labels(name)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self.bytes = 0
        self._warned = False

    def __len__(self) -> int:
        return len(self._items)

    def fits(self, size: int) -> bool:
        return len(self._items) < self.max_items and self.bytes + size <= self.max_bytes

    def append(self, item: T, size: int) -> bool:
        """Queue ``item`` (``size`` bytes) if it fits, else drop it (False)."""
        if not self.fits(size):
            self.drop(1)
            return False
        self._items.append((item, size))
        self.bytes += size
        return True

    def append_evicting(self, item: T, size: int) -> None:
        """Queue ``item``, dropping the oldest ones until it fits (or it, if it never can)."""
        evicted = 0
        while self._items and not self.fits(size):
            self._pop()
            evicted += 1
        if evicted:
            self.drop(evicted)
        self.append(item, size)

    def take(self, count: int) -> list[tuple[T, int]]:
        """Up to ``count`` of the oldest, with their sizes, out of the queue (and its bounds)."""
        return [self._pop() for _ in range(min(count, len(self._items)))]

    def restore(self, taken: list[tuple[T, int]]) -> None:
        """Put back what :meth:`take` took (not written after all), first in line again."""
        for item, size in reversed(taken):
            self._items.appendleft((item, size))
            self.bytes += size

    def written(self) -> None:
        """What :meth:`take` took is stored: with nothing left, the spell is over."""
        if not self._items:
            self._warned = False

    def _pop(self) -> tuple[T, int]:
        entry = self._items.popleft()
        self.bytes -= entry[1]
        return entry

    def popleft(self) -> T:
        item, _ = self._pop()
        self.written()  # the spell is over when the queue empties: the next drop is logged
        return item

    def drop(self, count: int) -> None:
        """Count ``count`` messages dropped; the first of a spell is logged."""
        self._dropped.inc(count)
        if not self._warned:
            self._warned = True
            logger.warning(
                "%s: %d messages (%d bytes) waiting for Redis, dropping messages"
                " (wshub_engine_dropped counts them)",
                self.name,
                len(self._items),
                self.bytes,
            )
