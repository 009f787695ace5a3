"""The memory backend (``engine.backend = "memory"``): one process, nothing kept on restart."""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from hub.engine.core import ChannelEngine
from hub.engine.memory.stores import MemoryBroker, MemoryHistory, MemoryPresence
from hub.engine.one_node import OneNodeStores
from hub.engine.retained import MemoryRetainedStore, RetainedStore
from hub.engine.sessions import SessionJournal
from hub.engine.snapshot import load_history, save_history
from hub.services import Service

logger = logging.getLogger(__name__)


class _StateFile:
    """History saved on a graceful stop and loaded at start (``engine.state_file``)."""

    def __init__(self, history: MemoryHistory, path: Path) -> None:
        self._history = history
        self._path = path

    async def start(self) -> None:
        restored = load_history(self._history, self._path)
        logger.info("restored history of %d channel(s) from %s", restored, self._path)

    async def stop(self) -> None:
        saved = save_history(self._history, self._path)
        logger.info("saved history of %d channel(s) to %s", saved, self._path)


class MemoryBackend(OneNodeStores):
    name = "memory"

    def __init__(
        self,
        node_id: str = "",
        *,
        state_file: Path | None = None,
        history_max_channels: int = 10_000,
        history_max_bytes: int = 64 * 1024 * 1024,
        history_idle_ttl: float = 600.0,
    ) -> None:
        history = MemoryHistory(
            max_channels=history_max_channels,
            max_bytes=history_max_bytes,
            idle_ttl=history_idle_ttl,
        )
        self.engine = ChannelEngine(
            MemoryBroker(history), history, MemoryPresence(), node_id=node_id
        )
        self.service: Service | None = (
            _StateFile(history, state_file) if state_file is not None else None
        )

    def retained(
        self, max_channels: int, *, max_bytes: int = 64 * 1024 * 1024, expiry: float | None = None
    ) -> RetainedStore:
        return MemoryRetainedStore(max_channels, max_bytes=max_bytes, expiry=expiry)

    def session_journal(self) -> SessionJournal | None:
        return None

    def unit(self, *, wait: bool = True, atomic: bool = True) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def close(self) -> None:
        await self.engine.close()
