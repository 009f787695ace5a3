"""The one place a backend is chosen: from the ``[engine]`` section of the config."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from hub.config import EngineConfig
from hub.engine.backend import Backend
from hub.engine.memory.backend import MemoryBackend


def open_backend(
    config: EngineConfig, node_id: str, *, registry: CollectorRegistry | None = None
) -> Backend:
    """The configured backend; only the chosen one's modules (and client library) are imported."""
    if config.backend == "redis":
        from hub.engine.redis.backend import RedisBackend
        from hub.engine.redis.link import RedisOptions

        options = RedisOptions(
            url=config.url,
            prefix=config.prefix,
            presence_ttl=config.presence_ttl,
            sentinel_master=config.sentinel_master,
            sentinels=tuple(
                (host, int(port)) for host, _, port in (s.rpartition(":") for s in config.sentinels)
            ),
            reconnect_min_delay=config.reconnect_min_delay,
            reconnect_max_delay=config.reconnect_max_delay,
            client_name=f"wshub-{node_id}",
        )
        return RedisBackend(options, node_id, registry=registry)
    if config.backend == "sqlite":
        from hub.engine.sqlite.backend import SqliteBackend

        return SqliteBackend(
            config.path,
            node_id,
            history_max_channels=config.history_max_channels,
            history_max_bytes=config.history_max_bytes,
            history_idle_ttl=config.history_idle_ttl,
            import_from=config.state_file,
        )
    return MemoryBackend(
        node_id,
        state_file=config.state_file,
        history_max_channels=config.history_max_channels,
        history_max_bytes=config.history_max_bytes,
        history_idle_ttl=config.history_idle_ttl,
    )
