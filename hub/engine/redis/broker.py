"""Node-level pub/sub over Redis: one connection per node, resubscribed after a loss.

The node subscribes a channel when its first local subscriber arrives and
unsubscribes when the last leaves (:class:`~hub.engine.core.ChannelEngine` calls
:meth:`RedisBroker.subscribe` exactly then). A pattern becomes a ``PSUBSCRIBE``
glob that may match more than the MQTT pattern; the engine's own index decides
who gets what. Redis sends one copy of a message per matching subscription of
the connection, back to back; the node hands each publication to the engine once.

When the pub/sub connection is lost, the broker reconnects with full-jitter
backoff, subscribes everything again and, before delivering anything live,
replays from history what each channel published meanwhile (from the last offset
it delivered). Where history cannot cover the gap (history off or trimmed,
Redis lost its data) it counts a gap and calls :attr:`RedisBroker.on_gap`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from hub.engine.base import HistoryOptions, Kind, Publication, StreamPosition
from hub.engine.bodies import decode_body, encode_body, message_id
from hub.engine.redis.codec import frame, unframe
from hub.engine.redis.link import RedisLink, cancel_requested, full_jitter
from hub.engine.redis.stores import RedisHistory, RedisPresence
from hub.engine.topics import PatternIndex, is_pattern
from hub.errors import EngineUnavailable, HubError

logger = logging.getLogger("hub.engine.redis")

# Seconds the reader waits for data before it checks its own state.
_POLL = 0.5
# History reads run at once while catching up after a reconnect.
_CATCH_UP_CONCURRENCY = 16
# Channels delivered through patterns whose position is remembered for a
# replay after a loss (the least recently delivered are forgotten first).
_MAX_PATTERN_CHANNELS = 10_000


class _Lost(HubError):
    """The pub/sub connection is no longer trusted."""


class RedisBroker:
    """This node's pub/sub on Redis; also the engine's lifecycle and health (a hub service)."""

    def __init__(
        self, link: RedisLink, history: RedisHistory, presence: RedisPresence | None = None
    ) -> None:
        self._link = link
        self._keys = link.keys
        self._history = history
        self._presence = presence
        self._handler: Callable[[Publication], None] | None = None
        # What this node needs from Redis.
        self._channels: set[str] = set()
        self._patterns: PatternIndex[bool] = PatternIndex()
        self._globs: dict[str, set[str]] = {}
        # Per subscribed channel: the last message delivered, and the position
        # read when the node subscribed. A reconnect replays from the first,
        # or from the second when nothing was delivered yet.
        self._delivered: dict[str, StreamPosition] = {}
        self._baseline: dict[str, StreamPosition] = {}
        # The same for channels this node receives through patterns only.
        self._seen: OrderedDict[str, StreamPosition] = OrderedDict()
        # The pub/sub connection and its bookkeeping.
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()  # orders commands on the connection and its swaps
        self._waiters: dict[tuple[bytes, bytes], deque[asyncio.Future[None]]] = {}
        self._syncing = True
        self._held: list[tuple[str, bytes]] = []
        self._last_message: bytes | None = None
        self._broken: BaseException | None = None
        self._reader: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._had_connection = False
        # publish() calls waiting for this node's own copy, by message id.
        self._own: dict[bytes, asyncio.Future[None]] = {}
        self.on_gap: Callable[[str], None] = lambda channel: None
        # Pub/sub names that are not hub channels (the node bus), with their handlers.
        self._direct: dict[bytes, Callable[[bytes], None]] = {}
        # Run by start(), for what shares this connection (the node bus).
        self.starting: list[Callable[[], Awaitable[None]]] = []

    # -- the Broker interface ----------------------------------------------

    def set_handler(self, handler: Callable[[Publication], None]) -> None:
        self._handler = handler

    async def subscribe(self, channel: str) -> None:
        self._ensure_reader()
        if is_pattern(channel):
            glob = self._keys.pubsub_pattern(channel)
            self._patterns.add(channel, True)
            patterns = self._globs.setdefault(glob, set())
            first = not patterns
            patterns.add(channel)
            if first:
                await self._command(b"PSUBSCRIBE", glob.encode())
            return
        self._channels.add(channel)
        await self._command(b"SUBSCRIBE", self._keys.pubsub(channel).encode())
        try:
            position = await self._history.position(channel)
        except EngineUnavailable:
            return  # no baseline: a loss of this channel before its first message is a gap
        if channel in self._channels:
            self._baseline[channel] = position

    async def unsubscribe(self, channel: str) -> None:
        if is_pattern(channel):
            glob = self._keys.pubsub_pattern(channel)
            self._patterns.remove(channel)
            patterns = self._globs.get(glob)
            if patterns is None:
                return
            patterns.discard(channel)
            if not patterns:
                del self._globs[glob]
                await self._command(b"PUNSUBSCRIBE", glob.encode())
            return
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        self._delivered.pop(channel, None)
        self._baseline.pop(channel, None)
        await self._command(b"UNSUBSCRIBE", self._keys.pubsub(channel).encode())

    async def publish(
        self, publication: Publication, history: HistoryOptions | None = None
    ) -> StreamPosition | None:
        """Publish to every node; returns once this node's own subscribers have it.

        With ``history``, one script assigns the offset, keeps the entry and
        publishes it (:meth:`RedisHistory.append`).
        """
        message_id = next(self._history.message_ids)
        unwatch = self.watch(publication.channel, message_id)
        position = None
        try:
            if history is not None:
                position = await self._history.append(
                    publication,
                    size=history.size,
                    ttl=history.ttl,
                    message_id=message_id,
                    broadcast=True,
                )
            else:
                body = encode_body(publication, message_id)
                await self._link.run(
                    "publish",
                    self._link.client.publish(
                        self._keys.pubsub(publication.channel),
                        frame(publication.offset, publication.epoch, body),
                    ),
                )
        except BaseException:
            unwatch()
            raise
        await self._own_copy(message_id)
        return position

    def watch(self, channel: str, message_id: bytes) -> Callable[[], None]:
        """Before publishing: expect this node's own copy if it delivers ``channel``.

        Waiting for it makes local delivery happen before publish() returns, as
        with the memory engine (a publisher subscribed to its channel gets the
        message before the reply to its publish).
        """
        if self.connected and self._wanted(channel):
            self._own[message_id] = asyncio.get_running_loop().create_future()
        return lambda: self._settle_id(message_id)

    async def _own_copy(self, message_id: bytes) -> None:
        waiter = self._own.get(message_id)
        if waiter is None:
            return
        try:
            async with asyncio.timeout(self._link.options.command_timeout):
                await waiter
        except TimeoutError:
            logger.warning("no copy of our own publication came back from Redis in time")
        finally:
            self._settle_id(message_id)

    def _settle_id(self, message_id: bytes) -> None:
        waiter = self._own.pop(message_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _settle(self, message: bytes) -> None:
        """Release a publish() waiting for this message (one of this node's)."""
        if not self._own:
            return
        try:
            body = unframe(message)[2]
        except ValueError:
            return
        found = message_id(body)
        if found is not None:
            self._settle_id(found)

    async def close(self) -> None:
        await self._link.close()

    async def listen(self, name: str, handler: Callable[[bytes], None]) -> None:
        """Hand each message of the pub/sub channel ``name`` (not a hub channel) to ``handler``.

        Subscribed on this node's one pub/sub connection, and again after each
        reconnect. Messages sent while the connection is down are lost.
        """
        self._ensure_reader()
        raw = name.encode()
        first = raw not in self._direct
        self._direct[raw] = handler
        if first:
            await self._command(b"SUBSCRIBE", raw)

    @property
    def link(self) -> RedisLink:
        """The node's link to Redis, shared with the other Redis stores of the node."""
        return self._link

    # -- the hub service -----------------------------------------------------

    async def start(self) -> None:
        """Connect now (waiting at most the connect timeout); Redis being away is no error."""
        self._link.reopen()
        self._ensure_reader()
        if self._presence is not None:
            await self._presence.start()
        for start in self.starting:
            await start()
        try:
            async with asyncio.timeout(self._link.options.connect_timeout):
                await self._up.wait()
        except TimeoutError:
            logger.warning("redis %s not reachable yet; serving degraded", self._link.url)

    async def stop(self) -> None:
        await self._link.close()

    def health(self) -> dict[str, Any]:
        report = self._link.health()
        report.update(channels=len(self._channels), patterns=len(self._patterns))
        if self._presence is not None:
            report["presence_connections"] = self._presence.local_count()
        return report

    @property
    def subscriptions(self) -> set[str]:
        """Channels and patterns this node needs from Redis."""
        return self._channels | {p for patterns in self._globs.values() for p in patterns}

    @property
    def connected(self) -> bool:
        return self._link.state.pubsub == "up"

    # -- commands on the pub/sub connection -------------------------------------

    async def _command(self, command: bytes, name: bytes) -> None:
        """Send (P)(UN)SUBSCRIBE and wait for Redis to confirm it.

        Without a connection this returns at once: the next connection sends
        every subscription this node needs.
        """
        async with self._lock:
            connection = self._connection
            if connection is None:
                return
            waiter = self._expect(command.lower(), name)
            try:
                await connection.send_command(command, name)
            except (RedisError, OSError) as exc:
                self._lose(exc)
                return
        try:
            async with asyncio.timeout(self._link.options.command_timeout):
                await waiter
        except TimeoutError:
            self._lose(TimeoutError(f"no confirmation of {command.decode()} {name!r}"))
        except _Lost:
            pass  # the reconnect subscribes again

    def _expect(self, kind: bytes, name: bytes) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((kind, name), deque()).append(waiter)
        return waiter

    def _confirm(self, kind: bytes, name: bytes) -> None:
        waiters = self._waiters.get((kind, name))
        if not waiters:
            return
        waiter = waiters.popleft()
        if not waiters:
            del self._waiters[(kind, name)]
        if not waiter.done():
            waiter.set_result(None)

    def _lose(self, exc: BaseException) -> None:
        """Give up on the current connection; the reader reconnects."""
        if self._broken is None:
            self._broken = exc
        self._fail_waiters(exc)

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters = self._waiters, {}
        for queue in waiters.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(_Lost(str(exc)))
                    # Nobody may be awaiting it any more: do not warn about that.
                    waiter.exception()

    # -- the reader ----------------------------------------------------------------

    def _ensure_reader(self) -> None:
        if (self._reader is None or self._reader.done()) and not self._link.closed:
            self._reader = self._link.spawn(self._run(), "wshub-redis-pubsub")

    async def _run(self) -> None:
        options = self._link.options
        attempt = 0
        while True:
            cancel_requested()
            connection = self._link.pubsub_connection()
            sync: asyncio.Task[None] | None = None
            try:
                await connection.connect()  # type: ignore[no-untyped-call]
                waiters = await self._resubscribe(connection)
                if self._had_connection:
                    self._link.state.pubsub_reconnects += 1
                    self._link.metrics.reconnects.inc()
                sync = self._link.spawn(self._sync(waiters, self._had_connection), "wshub-sync")
                self._had_connection = True
                attempt = 0
                await self._read(connection)
            except (RedisError, OSError, _Lost) as exc:
                self._link.record_failure("pub/sub", exc)
            except Exception:
                # A bug here must not end this node's pub/sub for good.
                logger.exception("redis pub/sub reader failed; reconnecting")
            finally:
                if sync is not None:
                    sync.cancel()
                await self._teardown(connection)
            await asyncio.sleep(
                full_jitter(
                    attempt, base=options.reconnect_min_delay, cap=options.reconnect_max_delay
                )
            )
            attempt += 1

    async def _resubscribe(self, connection: AbstractConnection) -> list[asyncio.Future[None]]:
        """Adopt a new connection and subscribe everything this node needs."""
        async with self._lock:
            self._broken = None
            self._syncing = True
            self._held = []
            self._last_message = None
            self._link.pubsub_state("syncing")
            names = [self._keys.pubsub(channel).encode() for channel in sorted(self._channels)]
            names += sorted(self._direct)
            globs = [glob.encode() for glob in sorted(self._globs)]
            waiters = [self._expect(b"subscribe", name) for name in names]
            waiters += [self._expect(b"psubscribe", glob) for glob in globs]
            if names:
                await connection.send_command(b"SUBSCRIBE", *names)
            if globs:
                await connection.send_command(b"PSUBSCRIBE", *globs)
            self._connection = connection
        return waiters

    async def _teardown(self, connection: AbstractConnection) -> None:
        async with self._lock:
            if self._connection is connection:
                self._connection = None
        self._fail_waiters(_Lost("pub/sub connection closed"))
        for own in list(self._own):
            self._settle_id(own)
        self._held = []
        self._syncing = True
        self._up.clear()
        self._link.pubsub_state("down")
        try:
            await connection.disconnect()
        except (RedisError, OSError) as exc:
            logger.debug("closing the pub/sub connection: %r", exc)

    async def _read(self, connection: AbstractConnection) -> None:
        options = self._link.options
        last_traffic = time.monotonic()
        ping_sent: float | None = None
        while True:
            cancel_requested()
            if self._broken is not None:
                raise _Lost(str(self._broken))
            # push_request: under RESP3 (redis-py's default) messages are pushes.
            response = await connection.read_response(timeout=_POLL, push_request=True)
            now = time.monotonic()
            if response is None:
                if ping_sent is not None:
                    if now - ping_sent > options.pubsub_ping_timeout:
                        raise _Lost("no reply to PING")
                elif now - last_traffic > options.pubsub_ping_timeout / 2:
                    async with self._lock:
                        await connection.send_command(b"PING")
                    ping_sent = now
                continue
            last_traffic, ping_sent = now, None
            self._on_response(response)

    def _on_response(self, response: Any) -> None:
        if not isinstance(response, list) or not response:
            return
        kind = response[0]
        if kind == b"message":
            direct = self._direct.get(response[1])
            if direct is not None:
                try:
                    direct(response[2])
                except Exception:
                    logger.exception("handling a message on %r failed", response[1])
                return
            self._on_message(response[1], response[2])
        elif kind == b"pmessage":
            self._on_message(response[2], response[3])
        elif kind in (b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe"):
            self._confirm(kind, response[1])

    def _on_message(self, pubsub_channel: bytes, message: bytes) -> None:
        # One PUBLISH reaches this connection once per matching subscription, the
        # copies back to back; every message is unique (it holds a message id).
        if message == self._last_message:
            return
        self._last_message = message
        channel = self._keys.channel_of(pubsub_channel)
        if channel is None or not self._wanted(channel):
            self._settle(message)
            return
        if self._syncing:
            self._held.append((channel, message))
            return
        self._deliver_message(channel, message)

    def _wanted(self, channel: str) -> bool:
        if channel in self._channels:
            return True
        return any(True for _ in self._patterns.match(channel))

    def _deliver_message(self, channel: str, message: bytes) -> None:
        try:
            offset, epoch, body = unframe(message)
            publication = decode_body(channel, body, offset, epoch)
        except ValueError as exc:
            logger.warning("dropping a message on %r: %s", channel, exc)
            return
        self._deliver(publication)
        if self._own:
            # The id decoded with the publication: no second parse of the message.
            self._settle_id(publication.message_id)

    def _deliver(self, publication: Publication) -> None:
        channel = publication.channel
        positions = self._positions_of(channel)
        if positions is not None and publication.offset > 0 and publication.kind is Kind.MESSAGE:
            last = positions.get(channel)
            seen = last is not None and last.epoch == publication.epoch
            if seen and last is not None and publication.offset <= last.offset:
                return  # already replayed from history
            positions[channel] = StreamPosition(publication.offset, publication.epoch)
            if positions is self._seen:
                self._seen.move_to_end(channel)
                if len(self._seen) > _MAX_PATTERN_CHANNELS:
                    self._seen.popitem(last=False)
        if self._handler is None:
            return
        try:
            self._handler(publication)
        except Exception:
            logger.exception("dispatching %s (offset %d) failed", channel, publication.offset)

    def _positions_of(self, channel: str) -> dict[str, StreamPosition] | None:
        """Where the last delivered position of ``channel`` is kept, if anywhere."""
        if channel in self._channels:
            return self._delivered
        if len(self._patterns):
            return self._seen
        return None

    # -- catching up after a (re)connect ---------------------------------------------

    async def _sync(self, waiters: list[asyncio.Future[None]], reconnected: bool) -> None:
        """Once subscribed: replay what was missed, then deliver what was held."""
        try:
            async with asyncio.timeout(self._link.options.command_timeout):
                await asyncio.gather(*waiters)
        except (TimeoutError, _Lost) as exc:
            self._lose(exc)
            return
        channels = sorted(self._channels)
        # Channels known only through patterns, and still wanted through one.
        for channel in [c for c in self._seen if c in self._channels or not self._wanted(c)]:
            del self._seen[channel]
        through_patterns = list(self._seen)
        try:
            limit = asyncio.Semaphore(_CATCH_UP_CONCURRENCY)

            async def catch_up(channel: str) -> list[Publication] | None:
                async with limit:
                    if channel in self._channels:
                        return await self._missed(channel, reconnected)
                    return await self._missed_through_patterns(channel)

            replays = await asyncio.gather(
                *(catch_up(channel) for channel in channels + through_patterns)
            )
        except EngineUnavailable as exc:
            self._lose(exc)
            return
        for channel, publications in zip(channels + through_patterns, replays, strict=True):
            if publications is None or not self._wanted(channel):
                continue
            for publication in publications:
                self._deliver(publication)
            self._link.metrics.replayed.inc(len(publications))
        if reconnected:
            # A pattern's channels that published nothing here before the loss
            # cannot be known, so what they published meanwhile cannot be read.
            for pattern in sorted({p for patterns in self._globs.values() for p in patterns}):
                self._gap(pattern, "channels it had not delivered before are not replayed")
        held, self._held = self._held, []
        for channel, message in held:
            self._deliver_message(channel, message)
        self._syncing = False
        self._link.pubsub_state("up")
        self._up.set()

    async def _missed(self, channel: str, reconnected: bool) -> list[Publication] | None:
        """Publications of ``channel`` this node has not delivered, read from history."""
        since = self._delivered.get(channel) or self._baseline.get(channel)
        if since is None:
            if reconnected:
                self._gap(channel, "no known position")
            return None
        result = await self._history.read(channel, since=since, limit=None)
        self._baseline[channel] = result.position
        if result.complete:
            return result.publications
        replay: list[Publication] = []
        if result.position.epoch != since.epoch:
            # The stream was recreated (Redis lost it): its new epoch may still be
            # complete from its first offset.
            fresh = await self._history.read(
                channel, since=StreamPosition(0, result.position.epoch), limit=None
            )
            replay = fresh.publications if fresh.complete else []
        # Live messages held meanwhile are not in the replay: let them through.
        self._delivered.pop(channel, None)
        self._gap(channel, f"history since {since.offset}@{since.epoch} is incomplete")
        return replay

    async def _missed_through_patterns(self, channel: str) -> list[Publication] | None:
        """What a channel delivered through patterns published since, read from history."""
        since = self._seen.get(channel)
        if since is None:
            return None
        result = await self._history.read(channel, since=since, limit=None)
        if result.complete:
            return result.publications
        self._seen.pop(channel, None)
        self._gap(channel, f"history since {since.offset}@{since.epoch} is incomplete")
        return []

    def _gap(self, channel: str, why: str) -> None:
        logger.warning("channel %r: publications missed during a pub/sub loss: %s", channel, why)
        self._link.metrics.gaps.inc()
        try:
            self.on_gap(channel)
        except Exception:
            logger.exception("on_gap(%r) failed", channel)
