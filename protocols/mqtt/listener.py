"""MQTT over plain TCP and TLS for devices (``[[mqtt.listeners]]``): a transport, not a broker.

Each accepted socket becomes a :class:`TcpSession` (the ``hub.handler.Session``
a handler sees) joined to the same :class:`MqttHandler` as MQTT over
WebSocket: the codec reads the byte stream as it reads WebSocket frames, and
sessions, retained messages, limits, authentication, access rules, hooks and
the engine are the hub's. What differs is only the transport:

- TLS (mqtts) when the listener has certificate files; with ``ca_file`` the
  client must present a certificate that CA signed, and its common name is
  the connection's identity (as a handshake login is over WebSocket).
- Connection counts (``limits.max_connections``, per address) are enforced
  per listener set with the same numbers, counted apart from WebSocket.
- The outbound buffer is bounded by ``limits.max_outbound_bytes``: a client
  that does not read is dropped as a slow consumer.
- On shutdown, 5.0 clients get DISCONNECT 0x8B before the socket closes.
- An address that flooded again under its rate penalty (``RatePenalties``,
  shared with WebSocket) has its sockets held unread until the penalty ends,
  then refused with a CONNACK (5.0: 0x9F Connection rate exceeded; 3.1.1: 3
  Server unavailable), as its WebSocket upgrades are held, then refused 429.
- New connections per address (``limits.connection_rate_per_ip``) share one
  bucket with WebSocket upgrades; over it, a socket is held a second, then
  refused with the same CONNACK codes.
- On a TLS listener all of this is decided on plain TCP, before the TLS
  handshake: a refused socket is held, then closed without any TLS work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final, cast

from hub.close_codes import CloseCode
from hub.handler import Identity, ProtocolSpec, Session
from hub.hangups import hangups
from hub.limits import ConnectionSlots, address_key
from hub.serving import serve_session
from hub.session import BoundedSession
from hub.tls import TlsError
from protocols.mqtt.codec import encode
from protocols.mqtt.handler import MqttHandler
from protocols.mqtt.packets import Connack, ConnackCode, Properties
from protocols.mqtt.reasons import ReasonCode

if TYPE_CHECKING:
    from hub.app import Hub
    from protocols.mqtt.config import MqttListenerConfig

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = "mqtt.listeners"
PROTOCOL: Final = "mqtt"
READ_SIZE: Final = 64 * 1024
# Seconds a closing connection keeps reading (and dropping) what the client
# still sends, so the kernel does not answer it with a reset that would
# destroy the DISCONNECT not yet read (RFC 1122 4.2.2.13).
LINGER: Final = 2.0
# Why a repeat flooder is refused (the text of the WebSocket path's 429).
FLOOD_REFUSED_TEXT: Final = "closed twice for flooding: wait (limits.message_rate)"
# 0x9F, not 0x97 Quota exceeded: the refusal is for reconnecting in a loop,
# and 0x9F is the CONNACK code that tells a 5.0 client to back off before its
# next connection (MQTT 5.0 3.2.2.2). 3.1.1 has only 3, Server unavailable.
FLOODER_CONNACK_V5: Final = encode(
    Connack(
        False,
        ReasonCode.CONNECTION_RATE_EXCEEDED,
        Properties(reason_string=FLOOD_REFUSED_TEXT),
    ),
    5,
)
FLOODER_CONNACK_V4: Final = encode(Connack(False, ConnackCode.SERVER_UNAVAILABLE), 4)
# A connection over limits.connection_rate_per_ip: the same codes, its own text.
RATE_REFUSED_TEXT: Final = (
    "too many new connections from your address (limits.connection_rate_per_ip)"
)
RATE_CONNACK_V5: Final = encode(
    Connack(
        False,
        ReasonCode.CONNECTION_RATE_EXCEEDED,
        Properties(reason_string=RATE_REFUSED_TEXT),
    ),
    5,
)
# Seconds a connection over the rate is held unread before its CONNACK (as
# the WebSocket path's 429): answered at once, a reconnect loop would spin.
RATE_HOLD: Final = 1.0
# A CONNECT's head up to its protocol level: type, remaining length (up to 4
# bytes), the protocol name's length and "MQIsdp" (3.1), the level.
CONNECT_HEAD: Final = 1 + 4 + 2 + 6 + 1


def tls_context(config: MqttListenerConfig) -> ssl.SSLContext | None:
    """The listener's server context (None: plain TCP); TlsError names a bad file."""
    if config.cert_file is None or config.key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if config.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    where = f"mqtt.listeners ({config.host}:{config.port})"
    files = [config.cert_file, config.key_file]
    if config.ca_file is not None:
        files.append(config.ca_file)
    for path in files:
        if not path.is_file():
            raise TlsError(f"{where}: {path}: no such file")
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
        if config.ca_file is not None:
            context.load_verify_locations(config.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{where}: cannot use its certificate files: {exc}") from None
    return context


def certificate_identity(peercert: Any) -> Identity | None:
    """The identity a verified client certificate stands for: its common name."""
    if not peercert:
        return None
    subject = {key: value for rdn in peercert.get("subject", ()) for key, value in rdn}
    common_name = subject.get("commonName")
    if not common_name:
        return None
    return Identity(str(common_name), {"certificate": subject}, method="tls")


class _StreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, telling its session when the transport stops taking writes.

    The transport calls ``pause_writing`` when its buffer grows past the
    high-water mark (``limits.max_outbound_bytes``, set by the session) and
    ``connection_lost`` when the socket is gone: so ``TcpSession.send`` is one
    write, with no question to the transport per delivery.
    """

    session: TcpSession | None = None
    # False: Nagle's algorithm on the socket (mqtt.listeners[].nodelay).
    nodelay = True
    # A TLS listener's socket: nothing is read until the address is admitted
    # and the handshake starts (MqttListeners._serve), so the ClientHello
    # reaches TLS, not the stream.
    gated = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.gated:
            cast("asyncio.Transport", transport).pause_reading()
        if not self.nodelay:
            # asyncio sets TCP_NODELAY on every TCP socket; this listener wants it off.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        super().connection_made(transport)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.session is not None:
            self.session._slow_consumer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session._stop_writing()
        super().connection_lost(exc)


class TcpSession(BoundedSession):
    """A TCP (or TLS) connection as a ``hub.handler.Session``: writes are bounded."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        *,
        identity: Identity | None,
        remote_address: str,
        max_outbound_bytes: int,
    ) -> None:
        super().__init__(
            PROTOCOL,
            identity=identity,
            max_outbound_bytes=max_outbound_bytes,
            on_slow_consumer=None,
            wire_name=PROTOCOL,
        )
        self._remote_address = remote_address
        self.forwarded_headers: dict[str, str] = {}
        self._writer = writer
        self._transport = transport = writer.transport
        # A fan-out calls send once per subscriber: it writes straight to the
        # transport (the StreamWriter's methods only forward to it) while
        # _writing; the slow-consumer bound is the transport's high-water
        # mark, which calls _slow_consumer (via _StreamProtocol) once passed.
        self._write = transport.write
        self._writing = True
        self.close_code: int | None = None
        protocol = transport.get_protocol()
        if not isinstance(protocol, _StreamProtocol):
            raise TypeError("a TcpSession needs the listener's _StreamProtocol")
        protocol.session = self
        transport.set_write_buffer_limits(high=max_outbound_bytes)

    @property
    def remote_address(self) -> str:
        return self._remote_address

    def outbound_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def _given_up(self) -> bool:
        return self.close_code is not None

    def _give_up(self, code: int, reason: str) -> None:
        self.close_code = code
        self._writing = False
        self._transport.abort()

    def _stop_writing(self) -> None:
        """The socket is gone or going: later sends are dropped, not buffered."""
        self._writing = False

    def _slow_consumer(self) -> None:
        """The transport's buffer passed ``limits.max_outbound_bytes``: drop the client."""
        if self.close_code is not None:
            return
        logger.warning(
            "MQTT/TCP session %s: slow consumer dropped, %d bytes waiting",
            self.id,
            self._transport.get_write_buffer_size(),
        )
        self._give_up(CloseCode.POLICY_VIOLATION, "slow consumer")

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        if self._writing:
            try:
                self._write(message)  # type: ignore[arg-type]  # a str: below
            except TypeError:
                # The transport takes bytes only; a str is rare, so not tested first.
                if not isinstance(message, str):
                    raise
                self._write(message.encode())

    def outbound_room(self) -> int:
        return max(0, self._max_outbound_bytes - self._transport.get_write_buffer_size())

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close after what is written has gone (TCP has no close code: it is only logged).

        Plain TCP half-closes first: the client reads the last packets (a
        DISCONNECT) and sees the end; the socket closes when it closes its
        side or after LINGER seconds.
        """
        if self.close_code is not None:
            return
        self.close_code = code
        self._writing = False
        logger.debug("MQTT/TCP session %s closing (%d %s)", self.id, code, reason)
        writer = self._writer
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()
            asyncio.get_running_loop().call_later(LINGER, writer.close)
        else:
            writer.close()


class MqttListeners:
    """The hub service running every ``[[mqtt.listeners]]`` entry."""

    def __init__(self, hub: Hub, configs: list[MqttListenerConfig]) -> None:
        self._hub = hub
        self._configs = configs
        # Loaded now: a bad certificate fails at start, not at the first client.
        self._contexts = [tls_context(config) for config in configs]
        limits = hub.config.limits
        self._slots = ConnectionSlots(limits.max_connections, limits.max_connections_per_ip)
        self._servers: list[asyncio.Server] = []
        self._handlers: dict[str, MqttHandler] = {}
        # Repeat flooders' sockets being held (_refuse_flooder); stop() ends them.
        self._held: set[asyncio.Task[Any]] = set()
        # Only its name (the metrics' label) and factory are read by serve_session.
        self._spec = ProtocolSpec(name=PROTOCOL, factory=self._handler)

    @property
    def addresses(self) -> list[tuple[str, int, bool]]:
        """(host, port, TLS) of each running listener, ports as bound (port 0 picks one)."""
        out = []
        for server, context in zip(self._servers, self._contexts, strict=True):
            host, port = server.sockets[0].getsockname()[:2]
            out.append((str(host), int(port), context is not None))
        return out

    async def start(self) -> None:
        for config, context in zip(self._configs, self._contexts, strict=True):
            # TLS is started by _serve once the address is admitted, not by the
            # server at accept: a refused address costs no handshake.
            server = await asyncio.get_running_loop().create_server(
                functools.partial(self._protocol, config.nodelay, context),
                config.host,
                config.port,
            )
            self._servers.append(server)
        for host, port, tls in self.addresses:
            logger.info("MQTT listening on %s://%s:%d", "mqtts" if tls else "mqtt", host, port)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._held):
            task.cancel()
        for handler in list(self._handlers.values()):
            with contextlib.suppress(Exception):
                await handler.shutdown()
        for server in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await server.wait_closed()
        self._servers.clear()

    def _protocol(self, nodelay: bool, context: ssl.SSLContext | None) -> _StreamProtocol:
        # asyncio.start_server's factory, with the protocol that tells the session.
        loop = asyncio.get_running_loop()
        serve = self._serve if context is None else functools.partial(self._serve, context=context)
        protocol = _StreamProtocol(asyncio.StreamReader(READ_SIZE, loop), serve, loop)
        protocol.nodelay = nodelay
        protocol.gated = context is not None
        return protocol

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext | None = None,
    ) -> None:
        """Admit (or refuse) the address on plain TCP, then start TLS if the
        listener has it, then serve the session.

        Slots, penalties and the connection rate are checked before the TLS
        handshake, which costs the hub far more than the checks: a refused
        address on a TLS listener is held unread like any other, then closed
        without a word (a CONNACK would need the handshake).
        """
        peer = writer.get_extra_info("peername") or ("?", 0)
        host = str(peer[0])
        key = address_key(host)
        if self._slots.acquire(key) is not None:
            logger.info("MQTT/TCP connection from %s refused: connection limit", host)
            writer.close()
            return
        try:
            left = self._hub.server.penalties.refusal(key)
            if left is not None:
                await self._refuse_flooder(reader, writer, host, left, answer=context is None)
            elif self._hub.server.connection_rate.take(key) is not None:
                self._hub.metrics.handshakes_refused.labels("connection_rate").inc()
                logger.info("MQTT/TCP connection from %s refused: connection rate", host)
                connack = RATE_CONNACK_V5 if context is None else None
                await self._refuse(reader, writer, RATE_HOLD, connack)
            elif context is None or await _start_tls(writer, context, host):
                await self._run(reader, writer, f"{host}:{peer[1]}", key)
        finally:
            self._slots.release(key)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _run(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str, key: str
    ) -> None:
        hub = self._hub
        session = TcpSession(
            writer,
            identity=certificate_identity(writer.get_extra_info("peercert")),
            remote_address=remote,
            max_outbound_bytes=hub.config.limits.max_outbound_bytes,
        )
        try:
            # The WebSocket steps (hooks, table, expiry, rate, penalty), not a copy.
            await serve_session(
                hub,
                self._spec,
                session,
                _packets(reader, session),
                address=key,
                penalties=hub.server.penalties,
                pool=hub.server.opening_pool,
                closed=(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError),
                close_codes=lambda: (
                    session.close_code,
                    session.close_code or CloseCode.ABNORMAL_CLOSURE,
                ),
            )
        finally:
            self._handlers.pop(session.id, None)
            session._stop_writing()
        if session.close_code is not None:
            await _linger(reader)

    async def _refuse_flooder(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        left: float,
        *,
        answer: bool,
    ) -> None:
        """Hold a repeat flooder's socket unread for ``left`` seconds, then refuse its CONNECT.

        Refused at once, a reconnect loop would spin on refusals; held, it
        waits, holding one of its address's max_connections_per_ip slots, so
        it cannot hold more sockets. Nothing it sends meanwhile is read.
        """
        self._hub.metrics.handshakes_refused.labels("flooding").inc()
        logger.info("MQTT/TCP connection from %s held: it flooded twice (%.1fs)", host, left)
        await self._refuse(reader, writer, left, FLOODER_CONNACK_V5 if answer else None)

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hold: float,
        connack_v5: bytes | None,
    ) -> None:
        """Hold the socket unread ``hold`` seconds, then answer its CONNECT with a
        refusing CONNACK (5.0: ``connack_v5``; 3.1.1: 3 Server unavailable);
        ``connack_v5`` None: close without an answer (TLS not started).
        A client that closes (or resets) meanwhile ends the hold."""
        task = asyncio.current_task()
        assert task is not None
        self._held.add(task)
        # A socket's transport reads too (StreamWriter types it as write-only).
        transport = cast("asyncio.Transport", writer.transport)
        try:
            transport.pause_reading()
            # Unread, a client that leaves shows only to the watch: its socket
            # (and its address's slot) are freed at once, not after the hold.
            if await hangups().hold(transport.get_extra_info("socket"), hold):
                return
            if connack_v5 is None:
                return
            transport.resume_reading()
            level = await _connect_level(reader, self._connect_timeout)
        finally:
            self._held.discard(task)
        if level is None:
            return  # no CONNECT in time, or not one: closed without an answer
        writer.write(connack_v5 if level == 5 else FLOODER_CONNACK_V4)
        if writer.can_write_eof():
            # Half-closed, as TcpSession.close: the CONNACK is read before the end.
            with contextlib.suppress(OSError):
                writer.write_eof()
            await _linger(reader)

    @property
    def _connect_timeout(self) -> float:
        from protocols.mqtt.config import MqttConfig

        return self._hub.config.section(MqttConfig).connect_timeout

    def _handler(self, session: Session, hub: Hub) -> MqttHandler:
        # Remembered for stop(): 5.0 clients get DISCONNECT 0x8B on shutdown.
        handler = MqttHandler(session, hub)
        self._handlers[session.id] = handler
        return handler


async def _start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, host: str) -> bool:
    """The server side of the TLS handshake on an admitted socket; False if it failed."""
    try:
        await writer.start_tls(context)
    except (OSError, EOFError) as exc:  # ssl.SSLError and ConnectionError are OSErrors
        logger.debug("MQTT/TLS handshake with %s failed: %r", host, exc)
        return False
    return True


async def _packets(reader: asyncio.StreamReader, session: TcpSession) -> AsyncIterator[bytes]:
    """The bytes the client sends, until it ends or the session closes."""
    # Closed by the handler (checked before waiting for more): the session
    # ends now, its address punished at once for a flood, and _linger drops
    # what still comes.
    while session.close_code is None:
        data = await reader.read(READ_SIZE)
        if not data or session.close_code is not None:
            return
        yield data


def connect_level(head: bytes) -> int | None:
    """The protocol level of the CONNECT ``head`` starts, 0 if it is not one, None: too short."""
    if not head:
        return None
    if head[0] != 0x10:
        return 0
    # The remaining length: 1 to 4 bytes, the high bit saying another follows.
    at = 1
    while True:
        if at >= len(head):
            return None
        if not head[at] & 0x80:
            break
        at += 1
        if at > 4:
            return 0
    at += 1
    if at + 2 > len(head):
        return None
    name_length = int.from_bytes(head[at : at + 2], "big")
    if name_length > 6:
        return 0
    at += 2 + name_length
    return head[at] if at < len(head) else None


async def _connect_level(reader: asyncio.StreamReader, timeout: float) -> int | None:
    """The protocol level of the CONNECT the client sends first; None: none in ``timeout``."""
    head = b""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            while (level := connect_level(head)) is None:
                data = await reader.read(CONNECT_HEAD - len(head))
                if not data:
                    return None
                head += data
            return level or None
    return None


async def _linger(reader: asyncio.StreamReader) -> None:
    """Read and drop until the client closes or LINGER ends (TcpSession.close)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(LINGER + 1):
            while await reader.read(READ_SIZE):
                pass
