"""The SQLite writer's group commit: what overlaps the loop's work, what waits, what groups."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hub.engine import Publication
from hub.engine.sqlite import SqliteBackend, Writer, open_database
from hub.engine.sqlite.stores import create_schema
from tests.engine.conftest import Recorder


async def _writer(path: Path, commit_interval: float = 0.0) -> Writer:
    connection = open_database(path)
    create_schema(connection)
    writer = Writer(commit_interval)
    writer.start(connection)
    await writer.stored()
    return writer


def _busy(seconds: float) -> None:
    """Hold the loop (and the GIL) as a fan-out does: computing, no await."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def _insert(writer: Writer, key: str) -> None:
    writer.submit("INSERT INTO meta (key, value) VALUES (?, 'v')", (key,))


async def test_push_starts_the_commit_while_the_loop_is_busy(tmp_path: Path) -> None:
    """After push() the thread commits without the loop's help; without it, nothing moves."""
    writer = await _writer(tmp_path / "engine.sqlite3")
    try:
        await asyncio.sleep(0.05)
        before = writer.commits
        _insert(writer, "waits")
        _busy(0.3)  # the loop is busy (a fan-out): the write was not handed over
        assert writer.commits == before
        await writer.stored()
        before = writer.commits
        _insert(writer, "pushed")
        writer.push()
        _busy(0.3)  # busy again, but the commit ran meanwhile
        assert writer.commits == before + 1
        await writer.stored()
    finally:
        await writer.stop()


async def test_commit_interval_groups_writes_into_one_commit(tmp_path: Path) -> None:
    """Writes handed over within the interval share one commit."""
    writer = await _writer(tmp_path / "engine.sqlite3", 0.5)
    try:
        await asyncio.sleep(0.6)
        before = writer.commits
        for n in range(3):
            _insert(writer, f"k{n}")
            writer.push()
            await asyncio.sleep(0.03)
        await writer.stored()
        assert writer.commits - before == 1
    finally:
        await writer.stop()


async def test_a_loose_unit_hands_writes_over_as_they_come_and_waits_at_the_end(
    tmp_path: Path,
) -> None:
    """Not atomic: a publish inside commits before the block ends; the exit still waits."""
    backend = SqliteBackend(tmp_path / "engine.sqlite3", "node-1")
    await backend.start()
    recorder = Recorder()
    try:
        await backend.engine.subscribe(recorder, "room")
        async with backend.unit(atomic=False):
            await backend.engine.publish(Publication("room", 1), history_size=10, history_ttl=60)
            stored_inside = backend.writer.commits
            await backend.engine.publish(Publication("room", 2), history_size=10, history_ttl=60)
        assert stored_inside >= 1
        async with backend.unit():  # atomic: nothing is stored before the block ends
            before = backend.writer.commits
            await backend.engine.publish(Publication("room", 3), history_size=10, history_ttl=60)
            await asyncio.sleep(0.2)
            assert backend.writer.commits == before
        assert backend.writer.commits > before
        assert len(recorder.received) == 3
    finally:
        await backend.stop()
        await backend.close()
