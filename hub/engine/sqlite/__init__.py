"""The durable single-node backend: SQLite in WAL mode, written by one thread (group commit).

The names load on first use, so the config reads ``hub.engine.sqlite.config``
without opening the backend's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.lazy import lazy_exports

if TYPE_CHECKING:
    from hub.engine.sqlite.backend import SqliteBackend
    from hub.engine.sqlite.config import SqliteEngineConfig
    from hub.engine.sqlite.writer import Writer, open_database

_EXPORTS = {
    "SqliteBackend": "hub.engine.sqlite.backend",
    "SqliteEngineConfig": "hub.engine.sqlite.config",
    "Writer": "hub.engine.sqlite.writer",
    "open_database": "hub.engine.sqlite.writer",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["SqliteBackend", "SqliteEngineConfig", "Writer", "open_database"]
