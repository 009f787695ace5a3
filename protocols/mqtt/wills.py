"""MQTT 5 wills with a Will Delay Interval (3.1.3.2.2), waiting to be published.

A hub service: the will of a connection lost without DISCONNECT waits its
delay. A connection that takes the session back drops it (MQTT-3.1.3-9); one
that starts a new session ends the old one, and the will goes at once. A hub
that stops drops the waiting wills, as it publishes no will on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = "mqtt.wills"

Publish = Callable[[], Awaitable[None]]


class DelayedWills:
    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.TimerHandle, Publish]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    def schedule(self, client_id: str, delay: float, publish: Publish) -> None:
        """Publish in ``delay`` seconds unless :meth:`resume` comes first."""
        self.resume(client_id, ended=False)
        timer = asyncio.get_running_loop().call_later(delay, self._fire, client_id)
        self._waiting[client_id] = (timer, publish)

    def resume(self, client_id: str, *, ended: bool) -> None:
        """A connection took the client id: its will waits no more.

        Dropped if the session is taken back; published now if the session
        ended instead (``ended``: a new session replaced it).
        """
        waiting = self._waiting.pop(client_id, None)
        if waiting is None:
            return
        timer, publish = waiting
        timer.cancel()
        if ended:
            self._run_soon(client_id, publish)

    def _fire(self, client_id: str) -> None:
        _, publish = self._waiting.pop(client_id)
        self._run_soon(client_id, publish)

    def _run_soon(self, client_id: str, publish: Publish) -> None:
        task = asyncio.get_running_loop().create_task(self._run(client_id, publish))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, client_id: str, publish: Publish) -> None:
        try:
            await publish()
        except Exception:
            logger.exception("MQTT will of %r: publishing failed", client_id)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for timer, _ in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
