"""The SQLite engine's file: what it keeps across a restart, and a clear refusal of a bad one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from hub.engine import ClientInfo, Publication, StreamPosition
from hub.engine.memory.backend import MemoryBackend
from hub.engine.sessions import Queued
from hub.engine.sqlite import SqliteBackend
from hub.errors import StorageError
from tests.engine.conftest import Recorder


async def _started(path: Path) -> SqliteBackend:
    backend = SqliteBackend(path, "node-1")
    backend.retained(100)
    await backend.start()
    return backend


async def _stopped(backend: SqliteBackend) -> None:
    await backend.stop()
    await backend.close()


async def test_history_offsets_and_epoch_survive_a_restart(tmp_path: Path) -> None:
    """Publications, their offsets and the channel's epoch are read back from the file."""
    path = tmp_path / "engine.sqlite3"
    first = await _started(path)
    publisher = ClientInfo("c1", "alice", {"tab": 1})
    for n in range(5):
        await first.engine.publish(
            Publication("room", {"n": n}, publisher=publisher), history_size=3, history_ttl=60
        )
    before = await first.engine.position("room")
    await _stopped(first)

    second = await _started(path)
    try:
        assert await second.engine.position("room") == before
        since = StreamPosition(3, before.epoch)
        result = await second.engine.read_history("room", since=since)
        assert result.complete
        assert [(p.offset, p.data, p.publisher) for p in result.publications] == [
            (4, {"n": 3}, publisher),
            (5, {"n": 4}, publisher),
        ]
        # Trimmed to the last three in the file as in memory: offset 1 is a gap.
        gap = await second.engine.read_history("room", since=StreamPosition(1, before.epoch))
        assert not gap.complete
    finally:
        await _stopped(second)


async def test_retained_messages_survive_a_restart(tmp_path: Path) -> None:
    """A retained publication is there after a restart; a deleted one stays deleted."""
    path = tmp_path / "engine.sqlite3"
    first = SqliteBackend(path)
    store = first.retained(100)
    await first.start()
    await store.set(Publication("status/door", b"open", offset=7, epoch="e"))
    await store.set(Publication("status/lamp", b"on"))
    await store.delete("status/lamp")
    await first.writer.stored()
    await _stopped(first)

    second = SqliteBackend(path)
    again = second.retained(100)
    await second.start()
    try:
        found = await again.match("status/#")
        assert [(p.channel, p.data, p.offset, p.epoch) for p in found] == [
            ("status/door", b"open", 7, "e")
        ]
    finally:
        await _stopped(second)


async def test_session_journal_reads_back_what_was_written(tmp_path: Path) -> None:
    """Subscriptions, queued and in-flight messages and QoS 2 ids come back in order."""
    path = tmp_path / "engine.sqlite3"
    first = await _started(path)
    journal = first.journal
    journal.save("dev-1", "alice", {"a/#": 1}, 5)
    journal.queue("dev-1", Queued(Publication("a/b", b"one", offset=1, epoch="e"), 1, False, seq=1))
    journal.queue("dev-1", Queued(Publication("a/c", b"two"), 2, True, seq=2))
    journal.send("dev-1", 1, 17, b"frame", "puback")
    journal.queue("dev-1", Queued(Publication("a/d", b"three"), 1, False, seq=3))
    journal.remove("dev-1", 3)
    journal.pubrel("dev-1", 5, waiting=True)
    journal.pubrel("dev-1", 6, waiting=True)
    journal.pubrel("dev-1", 6, waiting=False)
    journal.save("gone", None, {}, 4)
    journal.drop("gone")
    await first.writer.stored()
    await _stopped(first)

    second = await _started(path)
    try:
        (session,) = second.journal.sessions()
        assert (session.client_id, session.user, session.subscriptions) == (
            "dev-1",
            "alice",
            {"a/#": 1},
        )
        assert session.awaiting_pubrel == [5]
        assert session.version == 5
        sent, queued = session.messages
        assert (sent.seq, sent.packet_id, sent.frame, sent.awaiting) == (1, 17, b"frame", "puback")
        assert queued.queued is not None
        assert (queued.seq, queued.queued.qos, queued.queued.retain) == (2, 2, True)
        assert (queued.queued.publication.channel, queued.queued.publication.data) == (
            "a/c",
            b"two",
        )
    finally:
        await _stopped(second)


async def test_session_settings_read_back_and_a_version_1_file_is_upgraded(
    tmp_path: Path,
) -> None:
    """A file written before sessions kept their 5.0 settings opens; the settings then persist."""
    import math
    import sqlite3

    path = tmp_path / "engine.sqlite3"
    with sqlite3.connect(path) as connection:  # the version 1 layout, with one session
        connection.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema', '1');"
            "CREATE TABLE mqtt_sessions (client_id TEXT PRIMARY KEY, user TEXT,"
            " subscriptions TEXT NOT NULL, version INTEGER NOT NULL);"
            "CREATE TABLE mqtt_messages (client_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " qos INTEGER, retain INTEGER, channel TEXT, offset INTEGER, epoch TEXT, body BLOB,"
            " packet_id INTEGER, frame BLOB, awaiting TEXT,"
            " PRIMARY KEY (client_id, seq)) WITHOUT ROWID;"
            "INSERT INTO mqtt_sessions VALUES ('old', NULL, '{\"x\": 1}', 4);"
        )
    first = await _started(path)
    (old,) = first.journal.sessions()
    assert (old.client_id, old.subscriptions, old.shared, old.expiry) == ("old", {"x": 1}, {}, None)
    first.journal.save(
        "dev",
        None,
        {"a/#": 1},
        5,
        shared={"$share/g/b": 2},
        options={"a/#": (True, False, 9)},
        expiry=math.inf,
    )
    first.journal.queue("dev", Queued(Publication("a/q", b"q"), 1, False, (9, 3), seq=1))
    first.journal.offline("dev", True)
    await first.writer.stored()
    await _stopped(first)

    second = await _started(path)
    try:
        dev = next(s for s in second.journal.sessions() if s.client_id == "dev")
        assert (dev.shared, dev.options, dev.expiry) == (
            {"$share/g/b": 2},
            {"a/#": (True, False, 9)},
            math.inf,
        )
        assert 0 <= dev.offline_for < 30
        (message,) = dev.messages
        assert message.queued is not None
        assert message.queued.subscription_ids == (9, 3)
    finally:
        await _stopped(second)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (
            "2",
        )


async def test_publish_returns_once_stored(tmp_path: Path) -> None:
    """engine.publish returns after the commit: a reader of the file sees the publication."""
    import sqlite3

    path = tmp_path / "engine.sqlite3"
    backend = await _started(path)
    recorder = Recorder()
    try:
        await backend.engine.subscribe(recorder, "room")
        await backend.engine.publish(Publication("room", "hi"), history_size=10, history_ttl=60)
        assert backend.writer.commits >= 1
        assert len(recorder.received) == 1
    finally:
        await _stopped(backend)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT top FROM streams WHERE channel = 'room'").fetchone() == (
            1,
        )


async def test_a_corrupted_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a SQLite database stops the start with StorageError naming it."""
    path = tmp_path / "engine.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    backend = SqliteBackend(path)
    with pytest.raises(StorageError, match=r"not a usable SQLite database.*move it away"):
        await backend.start()


async def test_a_file_in_use_by_another_hub_is_refused(tmp_path: Path) -> None:
    """A second hub on the same file stops at start: one hub per file."""
    path = tmp_path / "engine.sqlite3"
    first = await _started(path)
    try:
        with pytest.raises(StorageError, match="in use by another process"):
            await SqliteBackend(path).start()
    finally:
        await _stopped(first)


@pytest.mark.parametrize("problem", ["corrupted", "locked"])
async def test_wshub_says_what_is_wrong_with_the_file(tmp_path: Path, problem: str) -> None:
    """`wshub` on a corrupted or locked file prints one line naming it and exits 1, no traceback."""
    path = tmp_path / "engine.sqlite3"
    config = tmp_path / "hub.toml"
    config.write_text(f'[engine]\nbackend = "sqlite"\npath = "{path}"\n')
    holder = None
    if problem == "corrupted":
        path.write_bytes(b"\x00garbage" * 512)
    else:
        holder = await _started(path)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub",
            "--config",
            str(config),
            "--port",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    finally:
        if holder is not None:
            await _stopped(holder)
    text = stderr.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text
    expected = "not a usable SQLite database" if problem == "corrupted" else "in use by another"
    assert expected in text
    assert str(path) in text


async def test_a_memory_state_file_is_imported_into_an_empty_file(tmp_path: Path) -> None:
    """engine.state_file is an import path: its streams, offsets and epochs go into the file."""
    state_file = tmp_path / "state.json"
    memory = MemoryBackend("node-1", state_file=state_file)
    assert memory.service is not None
    await memory.service.start()
    await memory.engine.publish(Publication("room", {"n": 1}), history_size=10, history_ttl=60)
    await memory.engine.publish(Publication("room", {"n": 2}), history_size=10, history_ttl=60)
    before = await memory.engine.position("room")
    await memory.service.stop()
    await memory.close()

    path = tmp_path / "engine.sqlite3"
    first = SqliteBackend(path, import_from=state_file)
    await first.start()
    await _stopped(first)
    # Read back from the SQLite file alone: the import was written there.
    second = await _started(path)
    try:
        assert await second.engine.position("room") == before
        result = await second.engine.read_history("room", since=StreamPosition(0, before.epoch))
        assert result.complete
        assert [p.data for p in result.publications] == [{"n": 1}, {"n": 2}]
    finally:
        await _stopped(second)
