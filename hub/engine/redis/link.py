"""One node's link to Redis: the client, its health, its metrics, its background tasks.

The broker, history and presence of a node share one :class:`RedisLink`. Every
command goes through :meth:`RedisLink.run`, which turns a Redis failure into
:class:`EngineUnavailable` and keeps the link's health up to date; the pub/sub
connection reports its own state. Commands are never retried by the client
(``Retry(NoBackoff(), 0)``): a publish whose reply was lost must not run twice,
and a caller learns at once that Redis is away instead of hanging in retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.engine.redis.codec import Keys
from hub.engine.redis.config import RedisEngineConfig
from hub.errors import EngineUnavailable

logger = logging.getLogger("hub.engine.redis")

T = TypeVar("T")


def full_jitter(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0-based): AWS "full jitter".

    The exponent stops growing long before a float would overflow: after hours of
    Redis being away the delay stays at ``cap`` instead of raising OverflowError.
    """
    return random.uniform(0, min(cap, base * 2.0 ** min(attempt, 64)))


def redact(url: str) -> str:
    """The URL without its password, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


class EngineMetrics:
    """Prometheus metrics of the Redis link (in the hub's registry when given one)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry or CollectorRegistry(auto_describe=True)
        self.up = Gauge(
            "wshub_engine_up",
            "1 while the engine reaches Redis for commands and pub/sub, else 0",
            registry=registry,
        )
        self.errors = Counter(
            "wshub_engine_errors", "Engine operations that failed to reach Redis", registry=registry
        )
        self.reconnects = Counter(
            "wshub_engine_reconnects",
            "Pub/sub connections re-established after a loss",
            registry=registry,
        )
        self.replayed = Counter(
            "wshub_engine_replayed",
            "Publications missed during a pub/sub loss and delivered from history",
            registry=registry,
        )
        self.gaps = Counter(
            "wshub_engine_gaps",
            "Channels whose publications missed during a pub/sub loss could not all be replayed",
            registry=registry,
        )
        self.dropped = Counter(
            "wshub_engine_dropped",
            "Messages dropped because too many (or too many bytes) were waiting for Redis",
            ["queue"],
            registry=registry,
        )


@dataclass
class LinkState:
    commands_ok: bool = True
    pubsub: str = "down"  # "down", "syncing" or "up"
    last_error: str = ""
    last_error_at: float = 0.0
    pubsub_reconnects: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class RedisLink:
    def __init__(
        self,
        options: RedisEngineConfig,
        *,
        client_name: str = "wshub",
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.options = options
        # CLIENT SETNAME of this node's connections: the configured name, else the caller's.
        self.client_name = options.client_name or client_name
        self.keys = Keys(options.prefix)
        self.metrics = EngineMetrics(registry)
        self.state = LinkState()
        self._sentinel: Sentinel | None = None
        self.client: Redis = self._make_client()
        self._closed = False
        self._update_gauge()

    def _make_client(self) -> Redis:
        options = self.options
        common: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 0),
            "socket_connect_timeout": options.connect_timeout,
            # No socket timeout: run() bounds each command as a whole. On Python
            # 3.11 redis-py's own is an asyncio.wait_for, a task and two more loop
            # iterations per command (an eighth of a publish's CPU, docs/benchmarks.md).
            "socket_timeout": None,
            "client_name": self.client_name,
        }
        if options.sentinel_master is not None:
            parts = urlsplit(options.url)
            database = int(parts.path.lstrip("/") or 0)
            sentinel = self._sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
                options.sentinel_addresses,
                sentinel_kwargs={"socket_connect_timeout": options.connect_timeout},
                **common,
            )
            client: Redis = sentinel.master_for(
                options.sentinel_master,
                db=database,
                username=parts.username,
                password=parts.password,
            )
            return client
        return Redis.from_url(options.url, **common)

    def pubsub_connection(self) -> AbstractConnection:
        """A new connection of the client's kind, for this node's pub/sub only."""
        pool = self.client.connection_pool
        connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
        # redis-py's own health check would PING and read the reply itself,
        # which a subscribed connection cannot do: the reader pings instead.
        connection.health_check_interval = 0
        connection.client_name = f"{self.client_name}-pubsub"
        # Its reads name their own timeout; a (P)(UN)SUBSCRIBE or PING sent to a
        # Redis that stopped reading must still give up.
        connection.socket_timeout = self.options.command_timeout
        return connection

    @property
    def url(self) -> str:
        """Where this node's Redis is, without secrets (for logs and /healthz)."""
        options = self.options
        if options.sentinel_master is not None:
            sentinels = ",".join(options.sentinels)
            return f"sentinel://{sentinels}/{options.sentinel_master}"
        return redact(options.url)

    # -- health ------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.state.commands_ok and self.state.pubsub == "up"

    def _update_gauge(self) -> None:
        self.metrics.up.set(1 if self.healthy else 0)

    def record_failure(self, what: str, exc: BaseException) -> None:
        state = self.state
        message = f"{what}: {exc}"
        # Once per distinct error, not once per reconnect attempt.
        if message != state.last_error:
            logger.warning("redis %s: %s failed: %r", self.url, what, exc)
        state.last_error = message
        state.last_error_at = time.time()
        self.metrics.errors.inc()

    def commands(self, ok: bool) -> None:
        if ok != self.state.commands_ok:
            logger.info("redis %s: commands %s", self.url, "reach Redis" if ok else "fail")
        self.state.commands_ok = ok
        self._update_gauge()

    def pubsub_state(self, state: str) -> None:
        if state != self.state.pubsub:
            logger.info("redis %s: pub/sub %s", self.url, state)
        self.state.pubsub = state
        self._update_gauge()

    def health(self) -> dict[str, Any]:
        state = self.state
        report: dict[str, Any] = {
            "status": "ok" if self.healthy else "degraded",
            "backend": "redis",
            "url": self.url,
            "commands": "up" if state.commands_ok else "down",
            "pubsub": state.pubsub,
            "pubsub_reconnects": state.pubsub_reconnects,
        }
        if state.last_error:
            report["last_error"] = state.last_error
        return report

    # -- commands ----------------------------------------------------------

    async def run(self, what: str, operation: Awaitable[T]) -> T:
        """Await one Redis operation; EngineUnavailable if Redis could not be reached
        or did not answer within the command timeout."""
        try:
            result = await self._bounded(operation)
        except (RedisError, OSError) as exc:
            self.record_failure(what, exc)
            if _is_link_error(exc):
                self.commands(False)
            raise EngineUnavailable(f"{what} temporarily unavailable") from exc
        if not self.state.commands_ok:
            self.commands(True)
        return result

    async def run_idempotent(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """:meth:`run` for an operation safe to repeat: once more at once if the link failed.

        After Redis restarts, the first command on each pooled connection finds
        it closed; a read need not fail for that.
        """
        try:
            result = await self._bounded(operation())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return await self.run(what, operation())
        except RedisError as exc:
            self.record_failure(what, exc)
            raise EngineUnavailable(f"{what} temporarily unavailable") from exc
        if not self.state.commands_ok:
            self.commands(True)
        return result

    async def _bounded(self, operation: Awaitable[T]) -> T:
        """The operation, given up after the command timeout (redis-py's socket
        timeout is off, so this is the only bound: sending, reading, a script reload)."""
        timeout = self.options.command_timeout
        try:
            async with asyncio.timeout(timeout):
                return await operation
        except TimeoutError:
            raise RedisTimeoutError(f"no reply within {timeout} s") from None

    async def ping(self) -> bool:
        try:
            await self.run_idempotent("ping", self.client.ping)
        except EngineUnavailable:
            return False
        return True

    # -- background tasks --------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)
        return task

    async def stop_tasks(self) -> None:
        pending = set(self.state.tasks)
        while pending:
            for task in pending:
                task.cancel()
            # A cancellation can be swallowed inside a client call racing its own
            # timeout: loops also check cancel_requested(), and are cancelled again.
            _, pending = await asyncio.wait(pending, timeout=1.0)

    def reopen(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        await self.stop_tasks()
        clients = [self.client]
        if self._sentinel is not None:
            clients += self._sentinel.sentinels
        for client in clients:
            try:
                await client.aclose()
            except (RedisError, OSError) as exc:
                logger.debug("redis %s: closing a client: %r", self.url, exc)


def cancel_requested() -> None:
    """Raise CancelledError if this task was asked to stop, even if a callee swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _is_link_error(exc: BaseException) -> bool:
    """A failure to reach Redis, as opposed to Redis refusing one command."""
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)
