"""``[engine] backend = "redis"``: the config, and a Hub running on the Redis engine."""

from __future__ import annotations

import pytest

from hub import Hub, HubConfig
from hub.config import ConfigError, parse_config
from hub.engine.redis import RedisBroker
from hub.errors import EngineUnavailable
from tests.multinode.redis_server import shared_redis_server
from tests.ports import free_port

pytestmark = pytest.mark.service


def redis_config(**engine: object) -> HubConfig:
    return parse_config({"engine": {"backend": "redis", **engine}})


def test_redis_engine_settings_are_checked() -> None:
    """A URL of another scheme, or a sentinel without a port, stops the start with the key."""
    with pytest.raises(ConfigError, match=r"engine\.url"):
        redis_config(url="http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match=r"engine\.sentinels"):
        redis_config(sentinel_master="mymaster", sentinels=["127.0.0.1"])
    with pytest.raises(ConfigError, match=r"engine\.presence_ttl"):
        redis_config(presence_ttl=0)
    # Shared subscriptions: a claim shorter than a second could be claimed twice.
    for key, value in [
        ("shared_claim_ttl", 0.5),
        ("shared_announce_interval", 0),
        ("shared_max_pending_bytes", 1000),
        ("sessions_max_pending_bytes", 1000),
    ]:
        with pytest.raises(ConfigError, match=rf"engine\.{key}"):
            redis_config(**{key: value})
    config = redis_config(url="redis://127.0.0.1:1/0", prefix="app:", presence_ttl=5)
    assert (config.engine.prefix, config.engine.presence_ttl) == ("app:", 5)


async def test_a_hub_on_redis_reports_the_engine_in_health_and_metrics() -> None:
    """The hub starts the engine as a service: /healthz and /metrics show Redis."""
    server = shared_redis_server()
    hub = Hub(redis_config(url=server.url, prefix=f"cfg{free_port()}:"))
    assert isinstance(hub.engine.broker, RedisBroker)
    await hub.start(port=0)
    try:
        health = hub.health()
        assert health["status"] == "ok"
        assert health["services"]["engine"]["backend"] == "redis"
        publication = await hub.publish("news", {"n": 1})
        assert publication.offset == 1
        assert [p.data for p in (await hub.history("news")).publications] == [{"n": 1}]
        assert b"wshub_engine_up 1.0" in hub.metrics.render()
    finally:
        await hub.stop()


async def test_a_hub_starts_degraded_when_redis_is_away() -> None:
    """No Redis at start is no crash: the hub serves, degraded, and publishing fails cleanly."""
    hub = Hub(redis_config(url=f"redis://127.0.0.1:{free_port()}/0"))
    await hub.start(port=0)
    try:
        health = hub.health()
        assert health["status"] == "degraded"
        assert health["services"]["engine"]["pubsub"] == "down"
        with pytest.raises(EngineUnavailable):
            await hub.publish("news", 1)
        assert b"wshub_engine_up 0.0" in hub.metrics.render()
    finally:
        await hub.stop()
