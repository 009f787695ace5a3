"""The multi-node engine: several hub processes share channels through Redis.

::

    engine = redis_engine(RedisEngineConfig(url="redis://127.0.0.1:6379/0"), node_id="node-a")

- :class:`RedisBroker` (``hub/engine/redis/broker.py``): one pub/sub connection
  per node; reconnects, resubscribes and replays missed publications from history.
- :class:`RedisHistory` (``hub/engine/redis/stores.py``): a stream and a meta hash
  per channel; offsets are assigned, stored and published in one Lua script.
- :class:`RedisPresence`: members, their expiry and per-user counts per channel,
  refreshed by each node for its own connections; live nodes announce the
  leaves of a dead node's members once their entries expire.
- :class:`RedisEngineConfig` (``hub/engine/redis/config.py``): every setting,
  the ``[engine]`` table's model when ``backend = "redis"``.

The names load on first use, so the config reads ``hub.engine.redis.config``
without importing the Redis client library. See docs/scaling.md for the design,
the configuration and failure behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.engine.redis.config import RedisEngineConfig
from hub.errors import EngineUnavailable
from hub.lazy import lazy_exports

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from hub.engine.core import ChannelEngine
    from hub.engine.redis.backend import RedisBackend
    from hub.engine.redis.broker import RedisBroker
    from hub.engine.redis.bus import RedisBus
    from hub.engine.redis.link import RedisLink
    from hub.engine.redis.stores import RedisHistory, RedisPresence

_EXPORTS = {
    "RedisBackend": "hub.engine.redis.backend",
    "RedisBroker": "hub.engine.redis.broker",
    "RedisBus": "hub.engine.redis.bus",
    "RedisHistory": "hub.engine.redis.stores",
    "RedisLink": "hub.engine.redis.link",
    "RedisPresence": "hub.engine.redis.stores",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


def redis_engine(
    config: RedisEngineConfig | None = None,
    node_id: str = "",
    *,
    registry: CollectorRegistry | None = None,
) -> ChannelEngine:
    """A channel engine on Redis (the defaults of :class:`RedisEngineConfig` unless given).

    The engine connects lazily (or when its broker is started as a hub
    service) and is closed with :meth:`ChannelEngine.close`.
    """
    from hub.engine.redis.backend import RedisBackend

    return RedisBackend(config or RedisEngineConfig(), node_id, registry=registry).engine


__all__ = [
    "EngineUnavailable",
    "RedisBackend",
    "RedisBroker",
    "RedisBus",
    "RedisEngineConfig",
    "RedisHistory",
    "RedisLink",
    "RedisPresence",
    "redis_engine",
]
