"""The multi-node engine: several hub processes share channels through Redis.

::

    engine = redis_engine("redis://127.0.0.1:6379/0", node_id="node-a")

- :class:`RedisBroker` (``hub/engine/redis/broker.py``): one pub/sub connection
  per node; reconnects, resubscribes and replays missed publications from history.
- :class:`RedisHistory` (``hub/engine/redis/stores.py``): a stream and a meta hash
  per channel; offsets are assigned, stored and published in one Lua script.
- :class:`RedisPresence`: members, their expiry and per-user counts per channel,
  refreshed by each node for its own connections; live nodes announce the
  leaves of a dead node's members once their entries expire.

See docs/scaling.md for the design, the configuration and failure behaviour.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from hub.engine.core import ChannelEngine
from hub.engine.redis.backend import RedisBackend
from hub.engine.redis.broker import RedisBroker
from hub.engine.redis.bus import RedisBus
from hub.engine.redis.link import RedisLink, RedisOptions
from hub.engine.redis.stores import RedisHistory, RedisPresence
from hub.errors import EngineUnavailable

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_engine(
    url: str = DEFAULT_URL,
    node_id: str = "",
    *,
    registry: CollectorRegistry | None = None,
    **options: Any,
) -> ChannelEngine:
    """A channel engine on Redis; ``options`` are :class:`RedisOptions` fields.

    The engine connects lazily (or when its broker is started as a hub
    service) and is closed with :meth:`ChannelEngine.close`.
    """
    if node_id:
        options.setdefault("client_name", f"wshub-{node_id}")
    return RedisBackend(RedisOptions(url=url, **options), node_id, registry=registry).engine


__all__ = [
    "DEFAULT_URL",
    "EngineUnavailable",
    "RedisBackend",
    "RedisBroker",
    "RedisBus",
    "RedisHistory",
    "RedisLink",
    "RedisOptions",
    "RedisPresence",
    "redis_engine",
]
