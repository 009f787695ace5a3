"""Publishes by idempotency key: a key repeated within the window publishes once.

Bounded in count (the oldest key is forgotten first) and in time. A request
repeating a key whose first publish is still running waits for that one's
result instead of publishing again. Kept per node: a retry that lands on
another node of a cluster publishes again (docs/api.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

Clock = Callable[[], float]


class IdempotencyStore:
    def __init__(self, *, window: float, max_keys: int, clock: Clock = time.monotonic) -> None:
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        # key -> (expires at, the first request's result, as a future).
        self._entries: OrderedDict[str, tuple[float, asyncio.Future[Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def run(self, key: str, operation: Callable[[], Awaitable[Any]]) -> Any:
        """The result of ``operation``, run once per key within the window."""
        self._expire()
        entry = self._entries.get(key)
        if entry is not None:
            return await asyncio.shield(entry[1])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[key] = (self._clock() + self._window, future)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)
        try:
            result = await operation()
        except BaseException as exc:
            # A publish that failed did not happen: the key may be tried again.
            if self._entries.get(key, (0.0, None))[1] is future:
                del self._entries[key]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                # Retrieved here, so a failure nobody else waited on is not logged.
                future.exception()
            raise
        future.set_result(result)
        return result

    def _expire(self) -> None:
        now = self._clock()
        while self._entries:
            key, (expires, _) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[key]
