"""``[engine] backend = "sqlite"``: the SQLite backend's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from hub.config_section import FilePath
from hub.engine.memory.config import HistoryLimits


class SqliteEngineConfig(HistoryLimits):
    """One node, durable: what is acknowledged is stored in ``path`` and survives a crash."""

    backend: Literal["sqlite"] = "sqlite"
    # The database file (created if missing; one hub per file).
    path: FilePath = Path("wshub.sqlite3")
    # Seconds the writer waits after a write is handed to it before it
    # commits, so more writes share the commit and its fsync (0: at once).
    commit_interval: float = Field(0.0, ge=0, le=1)
    # A memory engine's state file, imported once into an empty database (so
    # moving from the memory engine keeps recovery); never written.
    state_file: FilePath | None = None
