"""The SQLite backend (``engine.backend = "sqlite"``): one node, durable.

What a client was told is done is in the file: a channels.v1 publish result,
an MQTT PUBACK or PUBREC wait for the commit that holds the publication, its
history entry, the copies queued for persistent sessions and the QoS 2 state.
Presence is not kept: it belongs to connections, which a restart ends.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from hub.engine.base import HistoryOptions, HistoryStore, Publication, StreamPosition
from hub.engine.core import ChannelEngine
from hub.engine.memory.stores import MemoryBroker, MemoryPresence
from hub.engine.one_node import OneNodeStores
from hub.engine.retained import RetainedStore
from hub.engine.sessions import SessionJournal
from hub.engine.snapshot import load_history
from hub.engine.sqlite.stores import (
    SqliteHistory,
    SqliteJournal,
    SqliteRetainedStore,
    create_schema,
)
from hub.engine.sqlite.writer import Writer, open_database
from hub.errors import StorageError
from hub.services import Service

logger = logging.getLogger(__name__)


class SqliteBroker(MemoryBroker):
    """The memory broker, returning from a publish with history once it is stored.

    Stored: the publication, its history entry and the copies the fan-out
    queued for persistent MQTT sessions, all in one commit (or the enclosing
    write unit's, which waits on its exit).
    """

    def __init__(self, history: HistoryStore, writer: Writer) -> None:
        super().__init__(history)
        self._writer = writer

    async def publish(
        self, publication: Publication, history: HistoryOptions | None = None
    ) -> StreamPosition | None:
        if history is None:
            return await super().publish(publication, history)
        position = await self._history.add(publication, size=history.size, ttl=history.ttl)
        # The commit starts now, in the writer thread, while the loop fans out.
        self._writer.push()
        if self._handler is not None:
            self._handler(publication)
        # Waits for the history entry and what the fan-out queued for persistent sessions.
        await self._writer.stored()
        return position


class SqliteBackend(OneNodeStores):
    name = "sqlite"

    def __init__(
        self,
        path: Path,
        node_id: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
        history_max_channels: int = 10_000,
        history_max_bytes: int = 64 * 1024 * 1024,
        history_idle_ttl: float = 600.0,
        import_from: Path | None = None,
        commit_interval: float = 0.0,
    ) -> None:
        self.path = path
        # A memory engine's state file, imported into an empty file at start.
        self.import_from = import_from
        self.writer = Writer(commit_interval)
        # The memory engine's bounds: the file mirrors what memory keeps.
        self.history = SqliteHistory(
            self.writer,
            clock,
            max_channels=history_max_channels,
            max_bytes=history_max_bytes,
            idle_ttl=history_idle_ttl,
        )
        self.journal = SqliteJournal(self.writer)
        self.engine = ChannelEngine(
            SqliteBroker(self.history, self.writer), self.history, MemoryPresence(), node_id=node_id
        )
        self._retained: list[SqliteRetainedStore] = []
        self.service: Service | None = self

    def retained(
        self, max_channels: int, *, max_bytes: int = 64 * 1024 * 1024, expiry: float | None = None
    ) -> RetainedStore:
        store = SqliteRetainedStore(self.writer, max_channels, max_bytes=max_bytes, expiry=expiry)
        self._retained.append(store)
        return store

    def session_journal(self) -> SessionJournal | None:
        return self.journal

    def unit(self, *, wait: bool = True, atomic: bool = True) -> AbstractAsyncContextManager[None]:
        return self.writer.unit(wait=wait, atomic=atomic)

    # -- the hub service ------------------------------------------------------------

    async def start(self) -> None:
        """Open the file and read what it keeps; StorageError when it cannot be used."""
        connection = open_database(self.path)
        try:
            create_schema(connection)
            streams = self.history.load(connection)
            retained = 0
            for store in self._retained:
                retained += await store.load(connection)
            sessions = self.journal.load(connection)
            if streams == 0 and self.import_from is not None:
                streams = load_history(self.history, self.import_from)
                self.history.write_all()
                logger.info("imported history of %d channel(s) from %s", streams, self.import_from)
        except (sqlite3.Error, ValueError) as exc:
            connection.close()
            raise StorageError(
                f"engine.path {str(self.path)!r} cannot be read ({exc});"
                " move it away to start empty"
            ) from None
        logger.info(
            "SQLite engine %s: %d channel(s) of history, %d retained, %d MQTT session(s)",
            self.path,
            streams,
            retained,
            sessions,
        )
        self.writer.start(connection)

    async def stop(self) -> None:
        await self.writer.stop()

    def health(self) -> dict[str, object]:
        return {"status": "ok", "path": str(self.path), "commits": self.writer.commits}

    async def close(self) -> None:
        await self.engine.close()
