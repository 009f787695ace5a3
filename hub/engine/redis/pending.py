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
from collections.abc import Iterator
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

    def __iter__(self) -> Iterator[T]:
        return (item for item, _ in self._items)

    def __getitem__(self, index: int) -> T:
        return self._items[index][0]

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

    def popleft(self) -> T:
        item, size = self._items.popleft()
        self.bytes -= size
        if not self._items:
            self._warned = False  # the spell is over: the next drop is logged
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
