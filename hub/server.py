"""The WebSocket server: handshake, negotiation, HTTP on the same port, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from time import perf_counter
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, NegotiationError, PayloadTooBig
from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CTRL_OPCODES, DATA_OPCODES, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import ExtensionName, Subprotocol

from hub.auth import HandshakeRefused, handshake_request
from hub.close_codes import CloseCode
from hub.config_coherence import coherence_warnings
from hub.handler import Identity, ProtocolSpec, SubprotocolHandler
from hub.hangups import hangups
from hub.hosts import HostPolicy, is_loopback_address
from hub.http import HttpRoutes, text_response
from hub.limits import (
    ConnectionRate,
    ConnectionSlots,
    OpeningPool,
    RatePenalties,
    SlotRefused,
    address_key,
)
from hub.metrics import Gauge
from hub.origins import OriginPolicy
from hub.proxies import TrustedProxies
from hub.registry import NegotiationRefused, ProtocolRegistry
from hub.serving import serve_session
from hub.session import WebSocketSession
from hub.tls import ServerTls

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

# Seconds an address closed for its message rate gets empty buckets for new connections.
RATE_PENALTY = 10.0
# Seconds a client refused for a connection limit is asked to wait.
RETRY_AFTER = 5
# Seconds an upgrade over limits.connection_rate_per_ip is held before its 429.
RATE_HOLD = 1.0
CONNECTION_RATE_TEXT = (
    "too many new connections from your address (limits.connection_rate_per_ip)\n"
)


def _refused_at_accept(body: bytes) -> bytes:
    """The 503 written to a socket refused at accept: no request has been read,
    so the answer goes out before it, then the connection closes."""
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nRetry-After: %d\r\nConnection: close\r\n\r\n%s"
        % (len(body), RETRY_AFTER, body)
    )


FLOOD_REFUSED_TEXT = "closed twice for flooding: wait (limits.message_rate)\n"
# The answer to a repeat flooder once its penalty is over (HubConnection.held_back).
FLOODER_REFUSED = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nRetry-After: 0\r\nConnection: close\r\n\r\n%s"
    % (len(FLOOD_REFUSED_TEXT), FLOOD_REFUSED_TEXT.encode())
)

SLOT_REFUSED_TEXT = {
    SlotRefused.MAX_CONNECTIONS: "server full: too many connections (limits.max_connections)\n",
    SlotRefused.PER_IP: "too many connections from your address (limits.max_connections_per_ip)\n",
}
ACCEPT_REFUSED = {
    reason: _refused_at_accept(text.encode()) for reason, text in SLOT_REFUSED_TEXT.items()
}
# Request headers the hub reads as one value: a second copy is a 400, not a
# guess at which one a proxy or the browser meant.
SINGLE_HEADERS = ("Host", "Origin", "Upgrade", "Authorization")


# A compressed connection's reads are fed to websockets this many bytes at a
# time (a whole frame of ~1 KiB can inflate to max_message_size), and a read
# yields to the loop once its slices have run FEED_STEP seconds (1 ms let
# a few attackers' steps add up to several ms before others' turn; see
# CHUNK_SLICE in protocols/mqtt/handler.py).
INFLATE_SLICE = 1024
FEED_STEP = 0.0003
# Uncompressed bytes fed at a time: parsing is cheap, copying a slice cheaper.
PLAIN_SLICE = 16 * 1024
# Inflated bytes a compressed connection may have queued, not yet handled,
# before its reads wait (checked every FEED_STEP): the queue's bound counts
# messages, and 16 of them can be 16 MiB inflated ahead of a handler that
# may close the connection at the first (a flooder's packed MQTT frames).
INFLATED_AHEAD = 1024 * 1024


class _DropData(Extension):
    """Stands in for permessage-deflate once the hub has sent its Close frame.

    The client's data frames are then dropped without being inflated (and
    HubConnection.process_event hands none to the session): a client can
    keep a connection the hub closed (kicked by its own second connection,
    say) sending 1.5 KB frames that each inflate to max_message_size, all of
    it for a handler that ignores it, until its Close arrives or
    close_timeout. Control frames (that Close) pass as they are.
    """

    name = ExtensionName("wshub-drop-data")

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if frame.opcode in CTRL_OPCODES:
            return frame
        return dataclasses.replace(frame, data=b"", rsv1=False)

    def encode(self, frame: Frame) -> Frame:
        return frame


# The extensions of a compressed connection once its Close frame is sent.
_DROPPING: list[Extension] = [_DropData()]


class _HeldSlot:
    """Gives back a connection's slot of ConnectionSlots: slotted, where a closure
    and its cells cost ~150 bytes more per connection (idle ones included)."""

    __slots__ = ("_gauge", "_key", "_pending", "_slots")

    def __init__(
        self, slots: ConnectionSlots, key: str, *, pending: bool = False, gauge: Gauge | None = None
    ) -> None:
        self._slots = slots
        self._key = key
        self._pending = pending
        self._gauge = gauge

    def __call__(self) -> None:
        self._slots.release(self._key, pending=self._pending)
        if self._gauge is not None:
            self._gauge.dec()


class _Received:
    """A connection's messages for ``async for``, without websockets' async
    generator (its object, frame and entry in the loop's set of async
    generators cost ~0.6 KiB per connection, idle ones included).

    Unlike websockets' iterator it raises ConnectionClosedOK at a normal close
    instead of stopping: serve_session treats both ends alike.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def __aiter__(self) -> _Received:
        return self

    def __anext__(self) -> Awaitable[str | bytes]:
        return self._connection.recv()


class HubConnection(ServerConnection):
    """A server connection that remembers which protocol it negotiated."""

    # Slots, not instance attributes: websockets' connection already has 25 and
    # CPython shares instance-dict keys for at most 30; past that every
    # connection carries a dict of its own (~1.3 KiB, docs/benchmarks.md).
    __slots__ = (
        "_held",
        "_next_ping",
        "_stopped",
        "_unread",
        "_unwatch",
        "forwarded_for",
        "forwarded_headers",
        "identity",
        "negotiated",
        "release_slot",
        "session_handler",
        "wire_name",
    )

    # Told when the TCP connection ends before a whole HTTP request arrived
    # (handshake timeout, or the client left); set per hub, see HubServer.
    on_incomplete_request: Callable[[], None] | None = None
    # Told when the TCP connection is accepted; a refusal closes it at once (the
    # connection limits count a socket from its accept, not its request).
    on_accept: Callable[[HubConnection], SlotRefused | None] | None = None
    # Told when the TCP connection is accepted (and holds its slot): the
    # seconds a repeat flooder's socket is held before its 429, or None.
    held_back: Callable[[HubConnection], float | None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.negotiated: ProtocolSpec | None = None
        self.wire_name = ""
        # Who the handshake's credentials (or the on_handshake hook) identified.
        self.identity: Identity | None = None
        # Set while the connection holds a slot of ConnectionSlots.
        self.release_slot: Callable[[], None] | None = None
        # The client's address as a trusted proxy forwarded it (hub.proxies);
        # read at the handshake, since the headers are dropped once open.
        self.forwarded_for: str | None = None
        # The handshake headers [proxy.*] pass on to the backend, kept past
        # forget_handshake_headers().
        self.forwarded_headers: dict[str, str] | None = None
        # Bytes read but not yet fed to the protocol (see data_received).
        self._unread = b""
        # Set once the client is closed for flooding (stop_reading).
        self._stopped = False
        # The session's handler, asked for its last words when websockets fails
        # the connection itself (send_data); None once asked.
        self.session_handler: SubprotocolHandler | None = None
        # The timer of a repeat flooder's delayed 429 (see connection_made).
        self._held: asyncio.TimerHandle | None = None
        # While held: stops watching for the client leaving (hub.hangups).
        self._unwatch: Callable[[], None] | None = None
        # The keepalive's timer until the next ping (see start_keepalive).
        self._next_ping: asyncio.TimerHandle | None = None
        super().__init__(*args, **kwargs)
        # websockets' deque of drain waiters is appended to, removed from and
        # walked only while writes are paused (which the hub's write limit
        # makes rare); a deque costs ~0.7 KiB empty, a list 56 bytes.
        self.drain_waiters = []  # type: ignore[assignment]

    # -- inbound, in slices (a compressed connection, or a large plain read) ----------

    def data_received(self, data: bytes) -> None:
        """Feed what was read to websockets a slice at a time.

        One read is up to 256 KiB, and with permessage-deflate a 1.5 KB frame
        inflates to a 1 MiB message: websockets parsed (and inflated) every
        frame of a read in one call, ~170 MiB and ~280 ms in one loop step, all
        queued whatever the queue's bound (packed MQTT frames, issue 13); 256
        KiB of small uncompressed messages were ~3,000 parsed and queued at
        once. Fed INFLATE_SLICE bytes at a time (PLAIN_SLICE uncompressed), a
        read stops once the step has run FEED_STEP, the message queue is full
        or it holds INFLATED_AHEAD bytes of inflated messages; reading pauses
        and the rest is fed behind the next poll's I/O (or once the queue
        drains).
        """
        if self._stopped:
            return
        if self._unread:
            self._unread += data
            return
        if len(data) <= PLAIN_SLICE and not self.protocol.extensions:
            # The common read, a few small messages: one slice, no bookkeeping.
            super().data_received(data)
            return
        self._feed(data)

    def _inflated_ahead(self) -> bool:
        """Whether the frames queued, not yet handled, hold INFLATED_AHEAD bytes
        and a whole message (waiting for the handler to take it is progress;
        the frames of one unfinished message are bounded by max_message_size)."""
        queued = 0
        whole = False
        for frame in self.recv_messages.frames.queue:
            queued += len(frame.data)
            whole = whole or frame.fin
        return whole and queued >= INFLATED_AHEAD

    def _feed(self, data: bytes) -> None:
        ends = perf_counter() + FEED_STEP
        protocol = self.protocol
        size = INFLATE_SLICE if protocol.extensions else PLAIN_SLICE
        for start in range(0, len(data), size):
            if self._stopped:
                return
            if protocol.close_sent is not None and protocol.extensions is not _DROPPING:
                protocol.extensions = _DROPPING
            ahead = self._inflated_ahead()
            if ahead or (start and (self.recv_messages.paused or perf_counter() >= ends)):
                self._unread = data[start:]
                self.transport.pause_reading()
                if ahead:
                    # Nothing tells when the handler has taken them: look again.
                    self.loop.call_later(FEED_STEP, self._feed_unread)
                elif not self.recv_messages.paused:
                    # A timer due now: after the I/O of the next poll (hub.turns).
                    self.loop.call_later(0, self._feed_unread)
                return
            super().data_received(data[start : start + size])

    def _feed_unread(self) -> None:
        data, self._unread = self._unread, b""
        if not data or self._stopped or self.transport.is_closing():
            return
        self._feed(data)
        if not self._unread and not self.recv_messages.paused:
            self.transport.resume_reading()

    def process_event(self, event: Any) -> None:
        """Frames as websockets hands them, less the client's data once the hub
        has sent its Close: the session is over for the hub (see _DropData)."""
        if (
            isinstance(event, Frame)
            and event.opcode in DATA_OPCODES
            and self.protocol.close_sent is not None
        ):
            return
        super().process_event(event)

    def stop_reading(self) -> None:
        """Parse nothing more from a client closed for flooding.

        What it sent past the refusal that decided it would only be inflated
        and thrown away (a 1.5 KB frame is 1 MiB to inflate): it is read and
        dropped unparsed. The close that follows (close()) sends its frame and
        half-closes the TCP connection without waiting for the client's close
        frame (RFC 6455 7.1.7, failing the connection); the client's EOF, or
        close_timeout, ends it. Before, the hub waited for that frame with
        reading paused (its message queue full) for close_timeout, holding
        the slot, and the address's penalty started only then.
        """
        self._stopped = True
        self._unread = b""
        self.transport.resume_reading()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code``, even in the middle of a fragmented message.

        websockets fails a connection closed while a message goes out in
        fragments (hub/session.py sends large compressed ones so) with 1011,
        losing the code asked (1008 slow consumer, 1009, 1001 shutdown). A
        Close frame may come between the fragments of a message (RFC 6455,
        5.4): it is sent there, and the rest of the message is abandoned (the
        sender's next fragment finds the connection closing).
        """
        if self._stopped:
            await self._drop(code, reason)
            return
        if self.send_in_progress is None or self.protocol.state is not State.OPEN:
            await super().close(code, reason)
            return
        # As websockets' close() does it, without its fragmented-message check.
        with contextlib.suppress(ConnectionClosed):
            async with self.send_context():
                self.protocol.send_close(code, reason)

    async def _drop(self, code: int, reason: str) -> None:
        """The close frame and EOF, then the client's EOF, or close_timeout and abort."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self.send_data()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        try:
            async with asyncio.timeout(self.close_timeout):
                await asyncio.shield(self.connection_lost_waiter)
        except TimeoutError:
            self.transport.abort()

    @property
    def peer_host(self) -> str:
        """The TCP peer's address, without the port."""
        address = self.remote_address
        return str(address[0] if isinstance(address, tuple) and address else address)

    @property
    def client_address(self) -> str:
        """Who the client is: its forwarded address, else the peer's "ip:port"."""
        if self.forwarded_for is not None:
            return self.forwarded_for
        address = self.remote_address
        if isinstance(address, tuple) and len(address) >= 2:
            return f"{address[0]}:{address[1]}"
        return str(address)

    def _resumed(self) -> None:
        if self._unread:
            # Behind the I/O of the next poll, as every continued read (hub.turns).
            self.loop.call_later(0, self._feed_unread)
        else:
            self.transport.resume_reading()

    def bind(self, handler: SubprotocolHandler | None) -> None:
        self.session_handler = handler

    def send_data(self) -> None:
        """What websockets has to send; a frame over the inbound limit first gets the
        handler's last words (MQTT 5.0 DISCONNECT 0x95) ahead of the 1009 close frame.

        websockets fails the connection inside its parser, the Close frame queued
        in the same step as this call, so the handler cannot send them itself:
        they are framed here, before the Close (RFC 6455 5.5.1 lets none follow).
        Not between the fragments of a message going out (5.4 forbids it).
        """
        protocol = self.protocol
        if (
            protocol.close_sent is not None
            and self.session_handler is not None
            and isinstance(protocol.parser_exc, PayloadTooBig)
        ):
            handler, self.session_handler = self.session_handler, None
            words = None
            if self.send_in_progress is None:
                try:
                    words = handler.last_words(protocol.close_sent.code, protocol.close_sent.reason)
                except Exception:
                    logger.exception("last_words failed")
            if words:
                frame = Frame(Opcode.BINARY, words)
                self.transport.write(frame.serialize(mask=False, extensions=protocol.extensions))
        super().send_data()

    def close_codes(self) -> tuple[int | None, int | None]:
        """(the code of the Close frame sent, the code the connection closed with)."""
        sent = self.protocol.close_sent
        return (sent.code if sent is not None else None), self.close_code

    def forget_handshake_headers(self) -> None:
        """Drop the upgrade's request and response headers; the request path stays.

        They were read at the handshake; holding a browser's (cookies, tokens,
        user agent) for the life of a connection costs kilobytes each.
        """
        if self.request is not None:
            self.request.headers = Headers()
        self.response = None
        # websockets binds a closure calling the server's select_subprotocol to
        # every connection's protocol (~0.2 KiB, with a reference cycle back to
        # the connection); it is only asked during the handshake.
        vars(self.protocol).pop("select_subprotocol", None)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # The message queue's flow control resumes reading when it drains; with
        # bytes still unread, they are fed first (reading resumes after them).
        # A bound method, not a closure: ~140 bytes less per idle connection.
        self.recv_messages.resume = self._resumed
        refused = self.on_accept(self) if self.on_accept is not None else None
        if refused is not None:
            transport.write(ACCEPT_REFUSED[refused])
            transport.close()
            return
        held = self.held_back(self) if self.held_back is not None else None
        if held is not None:
            # An address that flooded again under its penalty: its request
            # is not read, and its 429 comes when the penalty ends. Answered
            # at once, a reconnect loop would spin on refusals (~0.2 ms of
            # the hub each); held, it waits, holding one of its address's
            # max_connections_per_ip slots, so it cannot hold more sockets.
            transport.pause_reading()
            self._held = self.loop.call_later(held, self._refuse_flooder, transport)
            # Unread, its leaving shows only to the watch: then it is closed at once.
            self._unwatch = hangups(self.loop).watch(
                transport.get_extra_info("socket"), transport.close
            )

    # -- keepalive: a timer between pings, a task only while one is out ------------

    def start_keepalive(self) -> None:
        """Ping every ping_interval; no pong within ping_timeout fails the connection (1011).

        websockets' keepalive is a task sleeping between pings: its task,
        coroutine frame, sleep future and timer cost ~0.9 KiB per connection,
        idle ones included. Here a timer waits, and a task lives only from a
        ping to its pong, as websockets' loop would run it once.
        """
        if self.ping_interval is not None:
            self._next_ping = self.loop.call_later(self.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._next_ping = None
        # Closing: connection_lost follows, no ping is needed.
        if self.protocol.state is State.OPEN:
            # websockets' connection_lost cancels this task as it would its own.
            self.keepalive_task = self.loop.create_task(self._keepalive_ping())

    async def _keepalive_ping(self) -> None:
        latency = 0.0
        try:
            pong_received = await self.ping()
            if self.ping_timeout is not None:
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        latency = await pong_received
                except TimeoutError:
                    async with self.send_context():
                        self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    # send_context() waits for connection_lost(), which cancels this task.
                    return
        except Exception:
            self.logger.error("keepalive ping failed", exc_info=True)
            return
        self.keepalive_task = None
        if self.ping_interval is not None and self.protocol.state is State.OPEN:
            # As websockets: the next ping an interval after this one was sent.
            delay = max(self.ping_interval - latency, 0.0)
            self._next_ping = self.loop.call_later(delay, self._ping_due)

    def _refuse_flooder(self, transport: Any) -> None:
        self._held = None
        self._stop_watching()
        transport.write(FLOODER_REFUSED)
        transport.close()

    def _stop_watching(self) -> None:
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()

    def release(self) -> None:
        """Give back the connection's slot now (it takes another, or none, next)."""
        release, self.release_slot = self.release_slot, None
        if release is not None:
            release()

    def connection_lost(self, exc: Exception | None) -> None:
        # Every end of a connection passes here exactly once, handshake
        # refused, timed out, aborted or closed cleanly: the slot is freed here.
        held, self._held = self._held, None
        self._stop_watching()
        if self._next_ping is not None:
            self._next_ping.cancel()
            self._next_ping = None
        if held is not None:
            held.cancel()
        try:
            super().connection_lost(exc)
        finally:
            self.release()
            if (
                self.request is None
                and held is None
                and not self._stopped
                and self.on_incomplete_request is not None
            ):
                self.on_incomplete_request()


class HubServer:
    """Runs one hub on one port; :class:`hub.app.Hub` owns it."""

    def __init__(self, hub: Hub, registry: ProtocolRegistry) -> None:
        self._hub = hub
        self._registry = registry
        config = hub.config
        # Pins are kept by canonical name; the config may use an alias.
        self._pins = {
            spec.name if (spec := registry.get(name)) is not None else name: path
            for name, path in config.server.paths.items()
        }
        self._pinned_paths = {path: name for name, path in self._pins.items()}
        self._http = HttpRoutes(hub, config.server.static_dir)
        self._server: Server | None = None
        self._origins = OriginPolicy(config.server.allowed_origins)
        self._proxies = TrustedProxies(config.server.trusted_proxies)
        proxy = config.proxy
        self._forward_headers = sorted(
            {
                name
                for endpoint in (
                    proxy.connect,
                    proxy.subscribe,
                    proxy.publish,
                    proxy.rpc,
                    proxy.refresh,
                )
                if endpoint is not None
                for name in endpoint.headers
            }
        )
        limits = config.limits
        self._slots = ConnectionSlots(limits.max_connections, limits.max_connections_per_ip)
        self._penalties = RatePenalties(RATE_PENALTY)
        self._opening_pool = OpeningPool(limits.message_rate, limits.message_burst)
        # Shared with the MQTT TCP listeners and the fallback: one rate per address.
        self._connection_rate = ConnectionRate(
            limits.connection_rate_per_ip, limits.connection_burst_per_ip
        )
        # Message size limits by canonical name (the config may use an alias).
        self._max_sizes = {
            spec.name if (spec := registry.get(name)) is not None else name: size
            for name, size in limits.max_message_size.items()
        }
        # Loaded now, so a bad certificate fails at start (and `wshub --check`).
        self._tls = ServerTls(config.server.tls) if config.server.tls is not None else None
        self._reloader_added = False
        self._hosts = HostPolicy(config.server.allowed_hosts, config.server.host)
        incomplete = hub.metrics.handshakes_incomplete
        on_accept = self._accept
        hold = self._held_back

        class Connection(HubConnection):
            on_incomplete_request = incomplete.inc

            def on_accept(self, connection: HubConnection) -> SlotRefused | None:
                return on_accept(connection)

            def held_back(self, connection: HubConnection) -> float | None:
                return hold(connection)

        self._connection_class = Connection

    def config_problems(self) -> list[str]:
        """Settings that name subprotocols this server does not speak."""
        speaks = ", ".join(self._registry.wire_names)
        problems = []
        default = self._hub.config.server.default_subprotocol
        if self._registry.get(default) is None:
            problems.append(
                f"server.default_subprotocol: {default!r} is not served "
                f"(clients offering no subprotocol would be refused); this server speaks {speaks}"
            )
        for name in self._hub.config.server.paths:
            if self._registry.get(name) is None:
                problems.append(
                    f"server.paths: {name!r} is not served; this server speaks {speaks}"
                )
        return problems

    @property
    def http(self) -> HttpRoutes:
        return self._http

    @property
    def scheme(self) -> str:
        """``wss`` when TLS is configured, else ``ws``."""
        return "wss" if self._tls is not None else "ws"

    def reload_tls(self) -> None:
        """Serve new handshakes with the certificate files as they are now on disk."""
        if self._tls is None:
            return
        outcome = self._hub.metrics.tls_reloads
        try:
            self._tls.reload()
        except Exception:
            outcome.labels("error").inc()
            raise
        outcome.labels("ok").inc()

    @property
    def registry(self) -> ProtocolRegistry:
        return self._registry

    @property
    def penalties(self) -> RatePenalties:
        """Addresses just closed for their message rate, on every transport."""
        return self._penalties

    @property
    def opening_pool(self) -> OpeningPool:
        """The burst each address's young connections share, on every transport."""
        return self._opening_pool

    @property
    def connection_rate(self) -> ConnectionRate:
        """New connections per address (limits.connection_rate_per_ip)."""
        return self._connection_rate

    @property
    def slots(self) -> ConnectionSlots:
        """The connection limits, shared with the HTTP fallback sessions (hub.fallback)."""
        return self._slots

    @property
    def origins(self) -> OriginPolicy:
        return self._origins

    @property
    def forward_headers(self) -> list[str]:
        """Handshake headers [proxy.*] endpoints pass on to the backend."""
        return self._forward_headers

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        for problem in [*self.config_problems(), *coherence_warnings(self._hub.config)]:
            logger.warning("%s", problem)
        config = self._hub.config
        ws = config.websocket
        self._hosts = HostPolicy(
            config.server.allowed_hosts, host if host is not None else config.server.host
        )
        if self._tls is not None and not self._reloader_added:
            self._hub.add_reloader("TLS certificate", self.reload_tls)
            self._reloader_added = True
        extensions = None
        if ws.compression:
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=ws.compression_window_bits,
                    client_max_window_bits=ws.compression_window_bits,
                    compress_settings={"memLevel": ws.compression_memory_level},
                )
            ]
        self._server = await serve(
            self._handle,
            host if host is not None else config.server.host,
            port if port is not None else config.server.port,
            extensions=extensions,
            compression=None,
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            process_response=self._process_response,
            create_connection=self._connection_class,
            # Bounds the TLS handshake too (ssl_handshake_timeout defaults to it).
            open_timeout=ws.open_timeout,
            ping_interval=ws.ping_interval,
            ping_timeout=ws.ping_timeout,
            close_timeout=ws.close_timeout,
            # The bound until a protocol is negotiated; then that protocol's
            # limit (limits.max_message_size) replaces it.
            max_size=ws.max_message_size,
            # Our own bound closes slow consumers; below it, websockets must not
            # pause writes, or keepalive pings wait on a drain that never comes
            # and a stalled reader is never dropped.
            write_limit=config.limits.max_outbound_bytes,
            logger=logging.getLogger("hub.websockets"),
            ssl=self._tls.context if self._tls is not None else None,
        )

    @property
    def sockets(self) -> list[Any]:
        return list(self._server.sockets) if self._server is not None else []

    async def stop(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Stop accepting, close every client with ``code`` and wait for handlers."""
        if self._server is None:
            return
        self._server.close(close_connections=True, code=code, reason=reason)
        await self._server.wait_closed()
        self._server = None

    # -- handshake -------------------------------------------------------

    def _accept(self, connection: HubConnection) -> SlotRefused | None:
        """A TCP connection holds a slot from its accept, so sockets that never send a
        request count against the limits (and are dropped after open_timeout).

        A trusted proxy's sockets count in all but not per address: its clients
        are told apart once their request names them.
        """
        peer = connection.peer_host
        key = f"accept:{id(connection)}" if self._proxies.trusts_host(peer) else address_key(peer)
        refused = self._slots.acquire(key, pending=True)
        if refused is not None:
            self._hub.metrics.handshakes_refused.labels(refused.value).inc()
            return refused

        connection.release_slot = _HeldSlot(self._slots, key, pending=True)
        return None

    def _held_back(self, connection: HubConnection) -> float | None:
        """Seconds to hold a repeat flooder's socket before its 429 (RatePenalties).

        A trusted proxy's sockets are not held: its clients are told apart
        by their request, checked at the upgrade (_check_penalty).
        """
        peer = connection.peer_host
        if self._proxies.trusts_host(peer):
            return None
        left = self._penalties.refusal(address_key(peer))
        if left is not None:
            self._hub.metrics.handshakes_refused.labels("flooding").inc()
        return left

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        assert isinstance(connection, HubConnection)
        # The request is here: the slot taken at accept is given back, and an
        # upgrade takes one for its client below.
        connection.release()
        refused = self._check_request(request)
        if refused is not None:
            return refused
        if self._proxies:
            connection.forwarded_for = self._proxies.forwarded_client(
                connection.peer_host, request.headers
            )
        upgrade = request.headers.get("Upgrade", "")
        if upgrade.lower() != "websocket":
            # A plain request is a connection too (one per request: no
            # keep-alive here) and takes a token of its address's rate, as an
            # upgrade does; an operator's probe of /healthz from this host or
            # a trusted proxy never waits for one (docs/security.md).
            if not self._probe(connection, request):
                refused = await self._check_rate(connection)
                if refused is not None:
                    return refused
            return await self._http_get(connection, request)
        if self._forward_headers:
            connection.forwarded_headers = {
                name: value
                for name in self._forward_headers
                if (value := request.headers.get(name)) is not None
            }
        # Cheapest checks first: a refused origin costs nothing, a slot is
        # taken before anything expensive (authentication) runs. Every upgrade
        # not refused for flooding counts for the connection rate.
        refused = self._check_penalty(connection)
        if refused is None:
            refused = await self._check_rate(connection)
        if refused is None:
            refused = self._check_origin(request)
        if refused is None:
            refused = self._take_slot(connection)
        if refused is None:
            refused = await self._authenticate(connection, request)
        return refused

    def _check_request(self, request: Request) -> Response | None:
        """400 for a second copy of a header read as one value; 421 for a foreign Host."""
        headers = request.headers
        for name in SINGLE_HEADERS:
            if len(headers.get_all(name)) > 1:
                self._hub.metrics.handshakes_refused.labels("bad_request").inc()
                logger.info("request refused: more than one %s header", name)
                return text_response(HTTPStatus.BAD_REQUEST, f"more than one {name} header\n")
        # /healthz carries nothing a rebinding page could want, and probes send any Host.
        if self._hosts.allows(headers.get("Host")) or self._http.path_of(request) == "/healthz":
            return None
        self._hub.metrics.handshakes_refused.labels("host").inc()
        logger.info("request refused: Host %r is not allowed", headers.get("Host"))
        return text_response(
            HTTPStatus.MISDIRECTED_REQUEST, "host not allowed (server.allowed_hosts)\n"
        )

    def _probe(self, connection: HubConnection, request: Request) -> bool:
        """A health check the connection rate does not count: ``/healthz`` from a
        loopback address, or from a trusted proxy for no forwarded client."""
        if self._http.path_of(request) != "/healthz" or connection.forwarded_for is not None:
            return False
        peer = connection.peer_host
        return is_loopback_address(peer) or self._proxies.trusts_host(peer)

    async def _http_get(self, connection: HubConnection, request: Request) -> Response:
        """A plain HTTP request; guarded routes first learn who asks, as a handshake would."""
        if not self._http.guarded(request):
            return self._http.handle(request)
        try:
            identity = await self._hub.auth.handshake(
                handshake_request(request, connection.client_address)
            )
        except HandshakeRefused as refused:
            return refused.response(connection)
        return self._http.handle(request, identity)

    async def _authenticate(self, connection: HubConnection, request: Request) -> Response | None:
        """Set the connection's identity from its credentials (hub.auth), or refuse it."""
        try:
            connection.identity = await self._hub.auth.handshake(
                handshake_request(request, connection.client_address)
            )
        except HandshakeRefused as refused:
            self._hub.metrics.handshakes_refused.labels("auth").inc()
            logger.info("handshake refused (%d): %s", refused.status, refused.message)
            return refused.response(connection)
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        assert isinstance(connection, HubConnection)
        spec = connection.negotiated
        # Known only now that the protocol is negotiated: protocols that log in
        # after the handshake (MQTT, WAMP) refuse anonymous logins themselves.
        if (
            response.status_code == 101
            and spec is not None
            and not spec.logs_in
            and connection.identity is None
            and not self._hub.auth.allow_anonymous
        ):
            self._hub.metrics.handshakes_refused.labels("auth").inc()
            return self._hub.auth.anonymous_refused().response(connection)
        return None

    def _check_origin(self, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if self._origins.allows(origin, request.headers.get("Host")):
            return None
        self._hub.metrics.handshakes_refused.labels("origin").inc()
        logger.info("handshake refused: origin %r is not allowed", origin)
        return text_response(HTTPStatus.FORBIDDEN, "origin not allowed\n")

    async def _check_rate(self, connection: HubConnection) -> Response | None:
        """429 for an upgrade over its address's limits.connection_rate_per_ip.

        Held RATE_HOLD seconds first, holding a pending slot of its address:
        answered at once, a reconnect loop would spin on refusals (~0.2 ms of
        the hub each); held, a loop makes one a second, and an address cannot
        hold more than max_connections_per_ip of them.
        """
        key = address_key(connection.forwarded_for or connection.peer_host)
        wait = self._connection_rate.take(key)
        if wait is None:
            return None
        self._hub.metrics.handshakes_refused.labels("connection_rate").inc()
        if self._slots.acquire(key, pending=True) is None:
            try:
                # Ended early by the client leaving: its socket is freed at once.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RATE_HOLD):
                        await asyncio.shield(connection.connection_lost_waiter)
            finally:
                self._slots.release(key, pending=True)
        response = text_response(HTTPStatus.TOO_MANY_REQUESTS, CONNECTION_RATE_TEXT)
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response

    def _check_penalty(self, connection: HubConnection) -> Response | None:
        """429 for an address that flooded again under its penalty, until it ends."""
        key = address_key(connection.forwarded_for or connection.peer_host)
        left = self._penalties.refusal(key)
        if left is None:
            return None
        self._hub.metrics.handshakes_refused.labels("flooding").inc()
        response = text_response(HTTPStatus.TOO_MANY_REQUESTS, FLOOD_REFUSED_TEXT)
        response.headers["Retry-After"] = str(math.ceil(left))
        return response

    def _take_slot(self, connection: HubConnection) -> Response | None:
        key = address_key(connection.forwarded_for or connection.peer_host)
        refused = self._slots.acquire(key)
        if refused is not None:
            self._hub.metrics.handshakes_refused.labels(refused.value).inc()
            response = text_response(HTTPStatus.SERVICE_UNAVAILABLE, SLOT_REFUSED_TEXT[refused])
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
        gauge = self._hub.metrics.connection_slots
        gauge.inc()
        connection.release_slot = _HeldSlot(self._slots, key, gauge=gauge)
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        assert isinstance(connection, HubConnection)
        request = connection.request
        path = request.path.split("?", 1)[0] if request is not None else "/"
        pinned_here = self._pinned_paths.get(path)
        # A protocol pinned to another path is not spoken here.
        allowed = [
            name
            for name in self._registry.names
            if name not in self._pins or self._pins[name] == path
        ]
        try:
            chosen = self._registry.select(list(offered), allowed)
        except NegotiationRefused as exc:
            self._hub.metrics.handshakes_refused.labels("subprotocol").inc()
            raise NegotiationError(str(exc)) from None
        if chosen is not None:
            spec = self._registry.get(chosen)
        else:
            default = pinned_here or self._hub.config.server.default_subprotocol
            spec = self._registry.get(default)
            if spec is None or spec.name not in allowed:
                self._hub.metrics.handshakes_refused.labels("subprotocol").inc()
                raise NegotiationError(
                    f"no subprotocol offered and the default {default!r} is not served here; "
                    f"offer one of {', '.join(self._registry.wire_names)}"
                )
        assert spec is not None
        connection.negotiated = spec
        connection.wire_name = chosen or spec.name
        # websockets reads this limit afresh for every frame it parses.
        connection.protocol.max_message_size = spec.message_size(self._max_sizes, self._hub.config)
        if not spec.websocket_pings:
            connection.ping_interval = None
        return Subprotocol(chosen) if chosen is not None else None

    # -- connections -----------------------------------------------------

    def _handle(self, connection: ServerConnection) -> Awaitable[None]:
        # Not a coroutine: it hands websockets serve_session's own coroutine,
        # so an idle connection keeps one frame alive, not two (~0.5 KiB).
        assert isinstance(connection, HubConnection)
        spec = connection.negotiated
        if spec is None:  # pragma: no cover - negotiation always sets it
            return connection.close(CloseCode.INTERNAL_ERROR, "no protocol negotiated")
        hub = self._hub
        metrics = hub.metrics
        session = WebSocketSession(
            connection,
            spec.name,
            identity=connection.identity,
            max_outbound_bytes=hub.config.limits.max_outbound_bytes,
            on_slow_consumer=metrics.slow_consumers_closed.inc,
            wire_name=connection.wire_name,
            remote_address=connection.client_address,
        )
        if connection.forwarded_headers:
            session.forwarded_headers = connection.forwarded_headers
        connection.forget_handshake_headers()

        return serve_session(
            hub,
            spec,
            session,
            _Received(connection),
            address=address_key(connection.forwarded_for or connection.peer_host),
            penalties=self._penalties,
            pool=self._opening_pool,
            closed=(ConnectionClosed,),
            close_codes=connection.close_codes,
            stop_reading=connection.stop_reading,
            bind=connection.bind,
        )
