"""The SQLite backend's stores: the memory stores, with every change journaled to the file.

Reads are served from memory, as in the memory backend; the file is the
write-ahead copy, read once at start. History keeps its offsets and epochs
(a client resumes with ``since`` after a crash), retained publications stay
retained, and MQTT persistent sessions keep subscriptions, queued and
unacknowledged messages and their QoS 2 state.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

from hub.engine.base import Publication, StreamPosition
from hub.engine.bodies import decode_body, encode_body
from hub.engine.memory.stores import MemoryHistory, StreamState, _Stream
from hub.engine.retained import MemoryRetainedStore
from hub.engine.sessions import JournaledMessage, JournaledSession, Options, Queued
from hub.engine.sqlite.writer import Writer

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
  channel TEXT PRIMARY KEY, epoch TEXT NOT NULL, top INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (
  channel TEXT NOT NULL, offset INTEGER NOT NULL, expires REAL NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (channel, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retained (
  channel TEXT PRIMARY KEY, offset INTEGER NOT NULL, epoch TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mqtt_sessions (
  client_id TEXT PRIMARY KEY, user TEXT, subscriptions TEXT NOT NULL,
  version INTEGER NOT NULL, settings TEXT, offline_at REAL);
CREATE TABLE IF NOT EXISTS mqtt_messages (
  client_id TEXT NOT NULL, seq INTEGER NOT NULL,
  qos INTEGER, retain INTEGER, channel TEXT, offset INTEGER, epoch TEXT, body BLOB,
  packet_id INTEGER, frame BLOB, awaiting TEXT, subscription_ids TEXT,
  PRIMARY KEY (client_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mqtt_pubrel (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
"""


# Version 1 -> 2: MQTT sessions keep their 5.0 settings and when they went offline,
# queued messages their subscription identifiers.
MIGRATIONS = {
    1: (
        "ALTER TABLE mqtt_sessions ADD COLUMN settings TEXT",
        "ALTER TABLE mqtt_sessions ADD COLUMN offline_at REAL",
        "ALTER TABLE mqtt_messages ADD COLUMN subscription_ids TEXT",
    ),
}


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the tables of a new file, bring an older file up to date; refuse a newer one."""
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    row = None
    if "meta" in tables:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    # No version: a new file, or a version 1 file whose first start stopped before it.
    unversioned = 1 if "mqtt_sessions" in tables else SCHEMA_VERSION
    version = int(row[0]) if row is not None else unversioned
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema version {version}, this hub reads {SCHEMA_VERSION}")
    connection.execute("BEGIN")
    try:
        for old in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[old]:
                connection.execute(statement)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def last_alive(connection: sqlite3.Connection) -> float | None:
    """The wall-clock time of the last commit (or idle beat) of the process before this one."""
    row = connection.execute("SELECT value FROM meta WHERE key = 'alive'").fetchone()
    return None if row is None else float(row[0])


class SqliteHistory(MemoryHistory):
    """The memory history, mirrored in the file: each change of a stream is written.

    Memory decides (offsets, epochs, trimming by size, bytes and age, streams
    dropped when idle or least recently used); the file follows, so a restart
    finds what memory held.
    """

    def __init__(
        self,
        writer: Writer,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_channels: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        idle_ttl: float = 600.0,
    ) -> None:
        super().__init__(clock, max_channels=max_channels, max_bytes=max_bytes, idle_ttl=idle_ttl)
        self._writer = writer

    async def add(self, publication: Publication, *, size: int, ttl: float) -> StreamPosition:
        # Memory encodes the body first (a payload it cannot hold is refused
        # before it is published); the file keeps that same body.
        position = await super().add(publication, size=size, ttl=ttl)
        channel = publication.channel
        submit = self._writer.submit
        submit(
            "INSERT INTO streams (channel, epoch, top) VALUES (?, ?, ?) ON CONFLICT (channel)"
            " DO UPDATE SET epoch = excluded.epoch, top = excluded.top",
            (channel, position.epoch, position.offset),
        )
        kept = self._streams[channel].entries
        # Kept unless history size 0 or memory trimmed it at once (bytes, age).
        if kept and kept[-1][2] == position.offset:
            submit(
                "INSERT OR REPLACE INTO history (channel, offset, expires, body)"
                " VALUES (?, ?, ?, ?)",
                (channel, position.offset, time.time() + ttl, kept[-1][3]),
            )
        # What memory trimmed (size, bytes, age) leaves the file too.
        first = kept[0][2] if kept else position.offset + 1
        if first > 1:
            submit("DELETE FROM history WHERE channel = ? AND offset < ?", (channel, first))
        return position

    def write_all(self) -> None:
        """Write every stream held in memory (after an import from elsewhere)."""
        now, wall = self._clock(), time.time()
        for channel, stream in self._streams.items():
            self._writer.submit(
                "INSERT OR REPLACE INTO streams (channel, epoch, top) VALUES (?, ?, ?)",
                (channel, stream.epoch, stream.top),
            )
            for expires, _, offset, body in stream.entries:
                self._writer.submit(
                    "INSERT OR REPLACE INTO history (channel, offset, expires, body)"
                    " VALUES (?, ?, ?, ?)",
                    (channel, offset, wall + expires - now, body),
                )

    async def remove(self, channel: str) -> None:
        await super().remove(channel)
        self._writer.submit("DELETE FROM history WHERE channel = ?", (channel,))

    def _evict(self, keep: _Stream) -> None:
        if len(self._streams) <= self.max_channels and self.bytes <= self.max_bytes:
            return  # the common case: nothing to drop
        before = list(self._streams)
        super()._evict(keep)
        self._forget(set(before) - set(self._streams))

    def prune(self) -> int:
        before = set(self._streams)
        dropped = super().prune()
        self._forget(before - set(self._streams))
        return dropped

    def _forget(self, channels: set[str]) -> None:
        for channel in channels:
            self._writer.submit("DELETE FROM streams WHERE channel = ?", (channel,))
            self._writer.submit("DELETE FROM history WHERE channel = ?", (channel,))

    def load(self, connection: sqlite3.Connection) -> int:
        """Restore the streams stored in the file; how many."""
        now = time.time()
        connection.execute("DELETE FROM history WHERE expires <= ?", (now,))
        streams: dict[str, StreamState] = {
            channel: StreamState(epoch, top, [])
            for channel, epoch, top in connection.execute("SELECT channel, epoch, top FROM streams")
        }
        rows = connection.execute(
            "SELECT channel, offset, expires, body FROM history ORDER BY channel, offset"
        )
        for channel, offset, expires, body in rows:
            state = streams.get(channel)
            if state is not None:
                publication = decode_body(channel, body, offset, state.epoch)
                state.entries.append((expires - now, publication))
        self.restore(streams)
        return len(streams)


class SqliteRetainedStore(MemoryRetainedStore):
    """The memory trie; each set and removal (deleted, expired) also goes to the file.

    After a restart a retained message's ``expiry`` starts again.
    """

    def __init__(
        self,
        writer: Writer,
        max_channels: int = 100_000,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        expiry: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_channels, max_bytes=max_bytes, expiry=expiry, clock=clock)
        self._writer = writer

    async def set(self, publication: Publication) -> bool:
        body = encode_body(publication, b"")
        kept = await super().set(publication)
        if kept:
            self._writer.submit(
                "INSERT OR REPLACE INTO retained (channel, offset, epoch, body)"
                " VALUES (?, ?, ?, ?)",
                (publication.channel, publication.offset, publication.epoch, body),
            )
        return kept

    def _remove(self, channel: str) -> None:
        super()._remove(channel)
        self._writer.submit("DELETE FROM retained WHERE channel = ?", (channel,))

    async def load(self, connection: sqlite3.Connection) -> int:
        count = 0
        for channel, offset, epoch, body in connection.execute(
            "SELECT channel, offset, epoch, body FROM retained ORDER BY channel"
        ):
            if await super().set(decode_body(channel, body, offset, epoch)):
                count += 1
        return count


class SqliteJournal:
    """MQTT persistent sessions, change by change (a :class:`SessionJournal`)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._loaded: list[JournaledSession] = []

    def sessions(self) -> list[JournaledSession]:
        return self._loaded

    def save(
        self,
        client_id: str,
        user: str | None,
        subscriptions: dict[str, int],
        version: int,
        *,
        shared: dict[str, int] | None = None,
        options: dict[str, Options] | None = None,
        expiry: float | None = None,
    ) -> None:
        # JSON keeps math.inf (never expires) as Infinity, which json.loads reads back.
        settings = json.dumps({"shared": shared or {}, "options": options or {}, "expiry": expiry})
        self._writer.submit(
            "INSERT INTO mqtt_sessions (client_id, user, subscriptions, version, settings)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET"
            " user = excluded.user, subscriptions = excluded.subscriptions,"
            " version = excluded.version, settings = excluded.settings",
            (client_id, user, json.dumps(subscriptions), version, settings),
        )

    def offline(self, client_id: str, offline: bool) -> None:
        self._writer.submit(
            "UPDATE mqtt_sessions SET offline_at = ? WHERE client_id = ?",
            (time.time() if offline else None, client_id),
        )

    def drop(self, client_id: str) -> None:
        submit = self._writer.submit
        submit("DELETE FROM mqtt_sessions WHERE client_id = ?", (client_id,))
        submit("DELETE FROM mqtt_messages WHERE client_id = ?", (client_id,))
        submit("DELETE FROM mqtt_pubrel WHERE client_id = ?", (client_id,))

    def queue(self, client_id: str, message: Queued) -> None:
        publication = message.publication
        self._writer.submit(
            "INSERT OR REPLACE INTO mqtt_messages"
            " (client_id, seq, qos, retain, channel, offset, epoch, body, subscription_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                client_id,
                message.seq,
                message.qos,
                int(message.retain),
                publication.channel,
                publication.offset,
                publication.epoch,
                encode_body(publication, b""),
                ",".join(map(str, message.subscription_ids)) or None,
            ),
        )

    def send(self, client_id: str, seq: int, packet_id: int, frame: bytes, awaiting: str) -> None:
        self._writer.submit(
            "INSERT INTO mqtt_messages (client_id, seq, packet_id, frame, awaiting)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_id, seq) DO UPDATE SET"
            " packet_id = excluded.packet_id, frame = excluded.frame,"
            " awaiting = excluded.awaiting, body = NULL",
            (client_id, seq, packet_id, frame, awaiting),
        )

    def advance(self, client_id: str, seq: int, awaiting: str) -> None:
        self._writer.submit(
            "UPDATE mqtt_messages SET awaiting = ? WHERE client_id = ? AND seq = ?",
            (awaiting, client_id, seq),
        )

    def remove(self, client_id: str, seq: int) -> None:
        self._writer.submit(
            "DELETE FROM mqtt_messages WHERE client_id = ? AND seq = ?", (client_id, seq)
        )

    def pubrel(self, client_id: str, packet_id: int, *, waiting: bool) -> None:
        if waiting:
            sql = "INSERT OR IGNORE INTO mqtt_pubrel (client_id, packet_id) VALUES (?, ?)"
        else:
            sql = "DELETE FROM mqtt_pubrel WHERE client_id = ? AND packet_id = ?"
        self._writer.submit(sql, (client_id, packet_id))

    def load(self, connection: sqlite3.Connection) -> int:
        sessions: dict[str, JournaledSession] = {}
        now = time.time()
        # A session still connected when the process died went offline then, at
        # the latest: its expiry counts from the last sign of life.
        alive = last_alive(connection) or now
        for client_id, user, subscriptions, version, settings, offline_at in connection.execute(
            "SELECT client_id, user, subscriptions, version, settings, offline_at"
            " FROM mqtt_sessions"
        ):
            kept = json.loads(settings) if settings else {}
            options: dict[str, Options] = {
                f: (bool(no_local), bool(as_published), identifier)
                for f, (no_local, as_published, identifier) in kept.get("options", {}).items()
            }
            sessions[client_id] = JournaledSession(
                client_id,
                user,
                json.loads(subscriptions),
                [],
                [],
                version,
                shared=kept.get("shared", {}),
                options=options,
                expiry=kept.get("expiry"),
                offline_for=max(0.0, now - (alive if offline_at is None else offline_at)),
            )
        rows = connection.execute(
            "SELECT client_id, seq, qos, retain, channel, offset, epoch, body, packet_id, frame,"
            " awaiting, subscription_ids FROM mqtt_messages ORDER BY client_id, seq"
        )
        for row in rows:
            (
                client_id,
                seq,
                qos,
                retain,
                channel,
                offset,
                epoch,
                body,
                packet_id,
                frame,
                awaiting,
                subscription_ids,
            ) = row
            session = sessions.get(client_id)
            if session is None:
                continue
            if packet_id is not None:
                session.messages.append(JournaledMessage(seq, None, packet_id, frame, awaiting))
            else:
                publication = decode_body(channel, body, offset, epoch)
                ids = tuple(int(i) for i in subscription_ids.split(",")) if subscription_ids else ()
                queued = Queued(publication, qos, bool(retain), ids, seq=seq)
                session.messages.append(JournaledMessage(seq, queued))
        for client_id, packet_id in connection.execute(
            "SELECT client_id, packet_id FROM mqtt_pubrel ORDER BY client_id, packet_id"
        ):
            session = sessions.get(client_id)
            if session is not None:
                session.awaiting_pubrel.append(packet_id)
        self._loaded = list(sessions.values())
        return len(self._loaded)
