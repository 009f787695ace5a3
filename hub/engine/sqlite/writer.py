"""One SQLite file, written by one thread: group commit off the event loop.

The event loop never touches the disk while serving. A store *submits* a
write (an SQL statement and its parameters); writes gather in a list and are
handed to the writer thread once the loop is free (``call_soon``), and the
thread commits everything handed to it since its last commit in one
transaction (group commit: one fsync for many writes). :meth:`Writer.stored`
returns once every write submitted so far is on disk, which is what an
acknowledgement waits for.

A *unit* of writes (:meth:`Writer.unit`) is never split across transactions:
an MQTT QoS 2 PUBLISH, its subscribers' queued copies and the packet id
awaiting PUBREL are stored together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from hub.errors import EngineUnavailable, StorageError

logger = logging.getLogger(__name__)

Write = tuple[str, Sequence[Any]]

# The unit of writes the current task is gathering, if any.
_UNIT: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar("sqlite_unit", default=None)


class _Unit:
    __slots__ = ("open", "writes")

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.open = True


_STOP = object()

# An idle writer still commits its sign of life this often (seconds): after a
# crash, a session that was connected counts as offline since the last one.
BEAT = 5.0
ALIVE = "INSERT OR REPLACE INTO meta (key, value) VALUES ('alive', ?)"


def open_database(path: Path) -> sqlite3.Connection:
    """Open (or create) the file for this process alone; StorageError says what is wrong."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"engine.path {str(path)!r}: cannot open: {exc}") from None
    try:
        connection.execute("PRAGMA busy_timeout = 0")
        # One hub per file: the first write takes a lock held until the process ends
        # (the OS drops it when the process dies, kill -9 included).
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk when it returns, so a power cut keeps it too.
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("COMMIT")
        check = connection.execute("PRAGMA quick_check").fetchone()
    except sqlite3.OperationalError as exc:
        connection.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise StorageError(
                f"engine.path {str(path)!r} is in use by another process (one hub per SQLite file)"
            ) from None
        raise StorageError(f"engine.path {str(path)!r}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StorageError(
            f"engine.path {str(path)!r} is not a usable SQLite database ({exc});"
            " move it away to start empty"
        ) from None
    if check is None or check[0] != "ok":
        connection.close()
        detail = check[0] if check else "no answer"
        raise StorageError(
            f"engine.path {str(path)!r} is corrupted ({detail}); move it away to start empty"
        )
    return connection


class Writer:
    """The loop side submits; a thread applies and commits, in submission order."""

    def __init__(self, commit_interval: float = 0.0) -> None:
        # Group commit: after the first write is handed over, wait this long
        # (seconds) for more before committing; 0: commit at once.
        self.commit_interval = commit_interval
        self._connection: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Write] = []
        self._scheduled = False
        # Resolved when the last batch handed over is committed (batches commit in order).
        self._last: asyncio.Future[None] | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.writes = 0

    def start(self, connection: sqlite3.Connection) -> None:
        """Write to ``connection`` from now on (what was submitted before goes first)."""
        self._connection = connection
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="wshub-sqlite", daemon=True)
        self._thread.start()
        self._schedule()

    async def stop(self) -> None:
        """Commit what was submitted, then end the thread and close the file."""
        with contextlib.suppress(EngineUnavailable):
            await self.stored()
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._loop = None

    # -- the loop side -------------------------------------------------------------

    def submit(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Write later, in order with every other write (never blocks)."""
        unit = _UNIT.get()
        if unit is not None and unit.open:
            unit.writes.append((sql, params))
            return
        self._pending.append((sql, params))
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        self._scheduled = False
        if not self._pending or self._loop is None:
            return
        writes, self._pending = self._pending, []
        done = self._loop.create_future()
        self._last = done
        self._queue.put((writes, done))

    def push(self) -> None:
        """Hand what is pending to the thread now, not when the loop is next free.

        Its commit (the fsync) then runs while the loop goes on, e.g. fanning
        the publication out. Inside a unit nothing is pending yet: no-op.
        """
        if self._pending:
            self._hand_over()

    @property
    def in_unit(self) -> bool:
        unit = _UNIT.get()
        return unit is not None and unit.open

    @contextlib.asynccontextmanager
    async def unit(self, *, wait: bool = True, atomic: bool = True) -> AsyncIterator[None]:
        """Writes submitted inside are committed together; with ``wait``, stored on exit.

        Not ``atomic``: the writes go as they come (their commits may start
        before the block ends, and a crash may keep some of them); ``wait``
        still returns only once all are stored.
        """
        if self.in_unit:
            yield
            return
        if not atomic:
            yield
            if wait:
                await self.stored()
            return
        unit = _Unit()
        token = _UNIT.set(unit)
        try:
            yield
        finally:
            _UNIT.reset(token)
            unit.open = False
            # What happened in memory happened: its writes go, even if the body raised.
            self._pending.extend(unit.writes)
            self._schedule()
        if wait:
            await self.stored()

    async def stored(self) -> None:
        """Return once every write submitted so far is committed; EngineUnavailable if not."""
        if self.in_unit:
            return  # the unit's exit waits
        self._hand_over()
        last = self._last
        if last is None:
            return
        try:
            await asyncio.shield(last)
        except sqlite3.Error as exc:
            raise EngineUnavailable(f"the SQLite write failed: {exc}") from None

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            batches: list[tuple[list[Write], asyncio.Future[None]]] = []
            try:
                item = self._queue.get(timeout=BEAT)
            except queue.Empty:
                self._commit([])  # the beat alone
                continue
            if self.commit_interval > 0 and item is not _STOP:
                time.sleep(self.commit_interval)  # let more gather
            # Group commit: everything handed over while the last commit ran goes in one.
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batches.append(item)  # type: ignore[arg-type]
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batches:
                self._commit(batches)

    def _commit(self, batches: list[tuple[list[Write], asyncio.Future[None]]]) -> None:
        error: BaseException | None = None
        connection = self._connection
        assert connection is not None
        try:
            connection.execute("BEGIN")
            for writes, _ in batches:
                for sql, params in writes:
                    connection.execute(sql, params)
            connection.execute(ALIVE, (repr(time.time()),))
            connection.execute("COMMIT")
            self.commits += 1
            self.writes += sum(len(writes) for writes, _ in batches)
        except sqlite3.Error as exc:
            logger.error("SQLite write failed, %d batch(es) not stored: %r", len(batches), exc)
            error = exc
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        loop = self._loop
        assert loop is not None
        for _, done in batches:
            loop.call_soon_threadsafe(_settle, done, error)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # only the last batch's future is awaited: the others are seen
