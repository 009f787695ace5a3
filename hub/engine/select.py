"""The one place a backend is chosen: from the ``[engine]`` section of the config.

Each backend has one typed settings model beside it (``hub/engine/<name>/config.py``);
``[engine] backend = "..."`` picks the model the rest of the table is checked
against, so a key another backend uses is an unknown key here, with the file
and key path. :func:`open_backend` maps the chosen model to its backend.
"""

from __future__ import annotations

from typing import Annotated, Any

from prometheus_client import CollectorRegistry
from pydantic import BeforeValidator, Field

from hub.engine.backend import Backend
from hub.engine.memory.backend import MemoryBackend
from hub.engine.memory.config import MemoryEngineConfig
from hub.engine.redis.config import RedisEngineConfig
from hub.engine.sqlite.config import SqliteEngineConfig


def _memory_unless_named(value: Any) -> Any:
    # An [engine] table without ``backend`` is the memory engine's, as before.
    if isinstance(value, dict) and "backend" not in value:
        return {**value, "backend": "memory"}
    return value


EngineConfig = Annotated[
    MemoryEngineConfig | SqliteEngineConfig | RedisEngineConfig,
    BeforeValidator(_memory_unless_named),
    Field(discriminator="backend"),
]


def open_backend(
    config: MemoryEngineConfig | SqliteEngineConfig | RedisEngineConfig,
    node_id: str,
    *,
    registry: CollectorRegistry | None = None,
) -> Backend:
    """The configured backend; only the chosen one's modules (and client library) are imported."""
    if isinstance(config, RedisEngineConfig):
        from hub.engine.redis.backend import RedisBackend

        return RedisBackend(config, node_id, registry=registry)
    if isinstance(config, SqliteEngineConfig):
        from hub.engine.sqlite.backend import SqliteBackend

        return SqliteBackend(
            config.path,
            node_id,
            history_max_channels=config.history_max_channels,
            history_max_bytes=config.history_max_bytes,
            history_idle_ttl=config.history_idle_ttl,
            import_from=config.state_file,
            commit_interval=config.commit_interval,
        )
    return MemoryBackend(
        node_id,
        state_file=config.state_file,
        history_max_channels=config.history_max_channels,
        history_max_bytes=config.history_max_bytes,
        history_idle_ttl=config.history_idle_ttl,
    )
