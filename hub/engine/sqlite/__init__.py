"""The durable single-node backend: SQLite in WAL mode, written by one thread (group commit)."""

from hub.engine.sqlite.backend import SqliteBackend
from hub.engine.sqlite.writer import Writer, open_database

__all__ = ["SqliteBackend", "Writer", "open_database"]
