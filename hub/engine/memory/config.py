"""``[engine] backend = "memory"``: the memory backend's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config_section import FilePath, Section


class HistoryLimits(Section):
    """Bounds of the history streams a single-node backend keeps in memory."""

    # Channels with a history stream, and bytes of payload kept in all of them.
    # Past either, the least recently used stream is dropped (a client
    # recovering from it gets "recovered" false). A stream with nothing kept is
    # forgotten after history_idle_ttl seconds untouched.
    history_max_channels: int = Field(10_000, gt=0)
    history_max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    history_idle_ttl: float = Field(600.0, gt=0)


class MemoryEngineConfig(HistoryLimits):
    """One process, nothing kept across a restart (but ``state_file``)."""

    backend: Literal["memory"] = "memory"
    # History (offsets, epochs, retained publications) is saved here on
    # graceful stop and loaded at start, so clients recover across a restart.
    # Unset: history lives and dies with the process.
    state_file: FilePath | None = None
