"""``[engine] backend = "redis"``: how one node reaches Redis and names its keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hub.config_section import Section


class RedisEngineConfig(Section):
    """Several hubs share channels, presence, history and sessions through Redis."""

    backend: Literal["redis"] = "redis"
    # redis:// (or rediss://, unix://) URL of the server; with Sentinel, only
    # its database, password and TLS settings count.
    url: str = "redis://127.0.0.1:6379/0"
    # Prepended to every key and pub/sub channel: several hubs (or apps) may
    # share one Redis with different prefixes.
    prefix: str = "wshub:"
    # Seconds a presence entry outlives its node: a node that dies (kill -9)
    # leaves no members behind after this long. Live nodes refresh every third.
    presence_ttl: float = Field(30.0, gt=0)
    # Sentinel: the master's name and the sentinels as "host:port".
    sentinel_master: str | None = None
    sentinels: list[str] = []
    # Reconnect backoff (full jitter) of the pub/sub connection, in seconds.
    reconnect_min_delay: float = Field(0.1, gt=0)
    reconnect_max_delay: float = Field(5.0, gt=0)
    # Seconds to connect, and to wait for a command's reply, before Redis
    # counts as away (the operation fails with "temporarily unavailable").
    connect_timeout: float = Field(2.0, gt=0)
    command_timeout: float = Field(5.0, gt=0)
    # Seconds between health pings (and at most between presence refreshes),
    # and without a pong before the pub/sub connection counts as dead.
    health_interval: float = Field(1.0, gt=0)
    pubsub_ping_timeout: float = Field(10.0, gt=0)
    # A stream's epoch outlives its last retained publication by this long.
    stream_idle_ttl: float = Field(3600.0, gt=0)
    # CLIENT SETNAME of this node's connections ("<name>-pubsub" for pub/sub),
    # so CLIENT LIST tells the nodes apart. Unset: "wshub-<node id>".
    client_name: str | None = None
    # MQTT shared subscriptions ($share/...) across nodes (hub/engine/redis/groups.py).
    # Seconds a message's claim (the node picked to deliver it) stays in Redis for
    # the other nodes' copies to find: a copy arriving later claims it again and it
    # is delivered twice. One small key per message of a group, so a busy group
    # keeps rate x TTL of them.
    shared_claim_ttl: float = Field(30.0, ge=1.0, le=86400.0)
    # Seconds between a node's announcements of its member counts (Redis may lose
    # them); a group's keys outlive the last announcement by three of these.
    shared_announce_interval: float = Field(5.0, ge=0.1, le=3600.0)
    # Payload bytes of the offers waiting for Redis's decision, and apart of the
    # messages waiting to be handed to another node; past it new ones are dropped.
    shared_max_pending_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    # Encoded bytes of the messages for this node's offline MQTT sessions waiting
    # to be written to their queues in Redis (hub/engine/redis/mqtt_sessions.py);
    # past it the oldest are dropped.
    sessions_max_pending_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"engine url must start with redis://, rediss:// or unix://, got {url!r}"
            )
        return url

    @field_validator("sentinels")
    @classmethod
    def _host_ports(cls, sentinels: list[str]) -> list[str]:
        for sentinel in sentinels:
            host, _, port = sentinel.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"a sentinel is 'host:port', got {sentinel!r}")
        return sentinels

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """The sentinels as (host, port) pairs, as the client wants them."""
        return [(host, int(port)) for host, _, port in (s.rpartition(":") for s in self.sentinels)]
