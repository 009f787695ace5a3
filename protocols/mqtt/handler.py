"""The hub as an MQTT 3.1.1 and 5.0 server for one connection (WebSocket, spec section 6).

A 5.0 CONNECT makes the connection 5.0 (``self.version``): packets are
encoded in 5.0 form, acknowledgements carry reason codes, the server ends a
connection with a DISCONNECT naming the reason, and the rules of ``v5``
(properties, topic aliases, subscription options) apply. The session
machinery is the same for both versions.

Packets may span WebSocket frames and a frame may hold several (PacketReader).
What each packet may do depends on the phase, in one table (``_ROUTES``):
anything the table does not list is a protocol error that closes the
connection. Channels, permissions and hooks are the hub's ChannelService; the
session (subscriptions, QoS flows, queue) is a SessionState kept by the hub's
SessionStore, so it can outlive this connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from hub.access import Rule
from hub.auth import AuthenticationFailed, Credentials
from hub.errors import ChannelError, EngineUnavailable, PermissionDenied
from hub.handler import Identity, Session, SubprotocolHandler
from hub.rpc import CallContext
from protocols.mqtt.codec import (
    SUBACK_FAILURE,
    Auth,
    Connack,
    ConnackCode,
    Connect,
    Disconnect,
    MqttProtocolError,
    Packet,
    PacketReader,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)
from protocols.mqtt.frames import mqtt5_extras, mqtt_extras
from protocols.mqtt.packets import (
    NO_LOCAL,
    NO_PROPERTIES,
    RETAIN_AS_PUBLISHED,
    RETAIN_HANDLING_SHIFT,
    Properties,
)
from protocols.mqtt.packets import (
    PROTOCOL_ERROR as PROTOCOL_ERROR_REASON,
)
from protocols.mqtt.reasons import ReasonCode, reason_name
from protocols.mqtt.reauthorize import reauthorize
from protocols.mqtt.retain import keep_retained, send_retained
from protocols.mqtt.session import SessionState, SubscriptionOptions
from protocols.mqtt.shared import PREFIX as SHARED_PREFIX
from protocols.mqtt.shared import SERVICE_NAME as SHARED_SERVICE
from protocols.mqtt.shared import InvalidSharedFilter, SharedSubscriptions, parse_shared
from protocols.mqtt.store import SERVICE_NAME, Claimant, ClientIdTaken, SessionStore
from protocols.mqtt.sys_topics import SERVICE_NAME as SYS_SERVICE
from protocols.mqtt.sys_topics import SysTopics
from protocols.mqtt.v5 import (
    CONNACK_REASON,
    OutboundAliases,
    Requested,
    TopicAliases,
    check_publish,
    connack_properties,
    granted_expiry,
    granted_keepalive,
    payload_format_valid,
    refusal_reason,
)
from protocols.mqtt.wills import SERVICE_NAME as WILLS_SERVICE
from protocols.mqtt.wills import DelayedWills

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

# WebSocket close codes (docs/mqtt.md).
NORMAL_CLOSURE: Final = 1000
GOING_AWAY: Final = 1001
PROTOCOL_ERROR: Final = 1002
UNSUPPORTED_DATA: Final = 1003
POLICY_VIOLATION: Final = 1008
TRY_AGAIN_LATER: Final = 1013

# MQTT 3.1 (MQIsdp) capped client ids at 23 characters; 3.1.1 lets servers allow more.
MQTT31_MAX_CLIENT_ID: Final = 23
# MQTT-3.1.2-24: the server allows one and a half keepalive periods.
KEEPALIVE_GRACE: Final = 1.5
PUBLISH_TYPE: Final = 3

# A WebSocket message is parsed this many bytes at a time, and its packets
# handled this many at a time, between yields to the event loop.
READ_CHUNK: Final = 1024
YIELD_EVERY: Final = 32


class Phase(Enum):
    CONNECTING = "before CONNECT"
    CONNECTED = "after CONNECT"
    CLOSED = "after close"


def close_reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


class MqttHandler(SubprotocolHandler):
    """One connection: CONNECT, then packets routed by ``_ROUTES`` until it closes."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session
        self.hub = hub
        self.config = hub.config.mqtt
        self.channels = hub.channels
        self.store = hub.services.get(SERVICE_NAME, SessionStore)
        self.context = CallContext(hub, session.id, session.subprotocol, session.identity)
        self.phase = Phase.CONNECTING
        self.client_id = ""
        # The session while this connection owns it; None before CONNECT and
        # after a takeover.
        self.state: SessionState | None = None
        self.will: Will | None = None
        # The Link attributes: protocol level, and the client's Maximum Packet Size (5.0).
        self.version = 4
        self.max_packet_size: int | None = None
        # 5.0 only: what the CONNECT asked, and the client's topic aliases.
        self.requested = Requested()
        self._aliases = TopicAliases(0)
        self._out_aliases = OutboundAliases(0)
        self._reader = PacketReader(self.config.max_packet_size)
        self._stats = hub.services.get(SYS_SERVICE, SysTopics).stats
        self._loop = asyncio.get_running_loop()
        self._timeout = 0.0
        self._timeout_reason = ""
        self._last_seen = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    # -- the Link a SessionState sends through ---------------------------------

    def send(self, frame: bytes) -> None:
        if frame[0] >> 4 == PUBLISH_TYPE:
            self._stats.sent += 1
            if self._out_aliases:
                frame = self._out_aliases.apply(frame, self.max_packet_size)
        self.session.send(frame)

    def _send(self, packet: Packet) -> None:
        self.session.send(encode(packet, self.version))

    # -- connection events -------------------------------------------------------

    async def on_open(self) -> None:
        self._watch(self.config.connect_timeout, "no CONNECT in time")

    async def on_message(self, message: str | bytes) -> None:
        await self._receive(message, _ROUTES)

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Over the message rate: PUBLISH dropped, SUBSCRIBE refused (SUBACK 0x80).

        The bytes still go through the packet reader, since a packet may span
        frames and skipping a frame would cut the stream mid-packet. MQTT 3.1.1
        has no negative acknowledgement for PUBLISH: a refused QoS 1/2 PUBLISH
        is left unacknowledged, so the client sends it again (DUP) when it
        reconnects. Acknowledgements, PINGREQ, UNSUBSCRIBE and DISCONNECT are
        handled as usual: refusing them would stall flows or keepalives.
        """
        await self._receive(message, _RATE_LIMITED_ROUTES)

    async def _receive(self, message: str | bytes, routes: _RouteTable) -> None:
        if self.phase is Phase.CLOSED:
            return
        if isinstance(message, str):
            logger.info("MQTT session %s closed: protocol error: a text frame", self.session.id)
            await self._close(UNSUPPORTED_DATA, "MQTT over WebSocket takes binary frames only")
            return
        try:
            # Every packet is a unit of work: the server took the message's
            # token for the first, each further one takes its own, and the loop
            # is yielded to the other connections now and then, so one message
            # packed with tiny packets neither escapes the rate nor stalls anyone.
            view = memoryview(message)
            units = 0
            for start in range(0, len(view), READ_CHUNK):
                if start:
                    await asyncio.sleep(0)
                for packet in self._reader.feed(view[start : start + READ_CHUNK]):
                    if self.closed:
                        return
                    units += 1
                    table = routes
                    if units > 1:
                        if units % YIELD_EVERY == 0:
                            await asyncio.sleep(0)
                            if self.closed:
                                return
                        if not self.work.take():
                            if self.work.flooding:
                                await self._close(POLICY_VIOLATION, "message rate exceeded")
                                return
                            table = _RATE_LIMITED_ROUTES
                    self._last_seen = self._loop.time()
                    route = table[self.phase].get(type(packet))
                    if route is None:
                        raise MqttProtocolError(
                            _unexpected(packet, self.phase), reason_code=PROTOCOL_ERROR_REASON
                        )
                    await route(self, packet)
        except MqttProtocolError as exc:
            if self._reader.version == 5:
                await self._protocol_error5(exc)
                return
            if self.phase is Phase.CONNECTING and exc.connack_code is not None:
                # A well-formed CONNECT the server refuses (protocol level,
                # client id) is a refusal with its CONNACK code, as for
                # credentials: 1008, not a protocol error.
                await self._refuse_connect(exc.connack_code, str(exc))
                return
            logger.info("MQTT session %s closed: protocol error: %s", self.session.id, exc)
            await self._close(PROTOCOL_ERROR, f"MQTT protocol error: {exc}")

    async def _protocol_error5(self, exc: MqttProtocolError) -> None:
        """4.13: CONNACK (during CONNECT) or DISCONNECT with the reason code, then close."""
        reason = f"MQTT protocol error: {exc}"
        logger.info("MQTT session %s closed: protocol error: %s", self.session.id, exc)
        self.version = 5
        code = exc.reason_code
        if self.phase is Phase.CONNECTING:
            if exc.connack_code is not None:
                code = CONNACK_REASON.get(ConnackCode(exc.connack_code), code)
            self._send(Connack(False, code, Properties(reason_string=str(exc)[:200])))
            if exc.connack_code is not None:
                await self._close(POLICY_VIOLATION, f"connection refused: {exc}")
                return
        elif self.phase is Phase.CONNECTED:
            self._disconnect(code, str(exc))
        await self._close(PROTOCOL_ERROR, reason)

    def _disconnect(self, code: int, text: str) -> None:
        """5.0: the server's DISCONNECT with a reason code, before it closes (3.14)."""
        if self.version == 5:
            self._send(Disconnect(code, Properties(reason_string=text[:200])))

    async def on_close(self, code: int | None) -> None:
        self.phase = Phase.CLOSED
        self._cancel_timer()
        will, self.will = self.will, None
        state = self.state
        if state is not None:
            self.state = None
            if state.clean and state.shared:
                await self._shared().leave_all(state)
            await self.store.close(self.client_id, self)
        # MQTT-3.1.2-8: the will is for connections lost without DISCONNECT; a
        # hub shutting down is not the client's failure.
        if will is None or self.hub.stopping:
            return
        delay = will.properties.will_delay_interval
        if delay and state is not None and not state.clean:
            # MQTT-3.1.3-9: published after the delay (or when the session ends),
            # unless the session is taken back first.
            expiry = state.expiry if state.expiry is not None else delay
            self._wills().schedule(self.client_id, min(delay, expiry), lambda: self._will(will))
            return
        await self._will(will)

    async def _will(self, will: Will) -> None:
        try:
            await self._publish(will.topic, will.payload, will.qos, will.retain, will.properties)
        except EngineUnavailable:
            logger.warning(
                "MQTT session %s: will not published, engine unavailable", self.session.id
            )

    def _wills(self) -> DelayedWills:
        return self.hub.services.get(WILLS_SERVICE, DelayedWills)

    async def shutdown(self) -> None:
        """The hub stops: a 5.0 client hears DISCONNECT 0x8B Server shutting down."""
        if self.phase is Phase.CONNECTED:
            self._disconnect(ReasonCode.SERVER_SHUTTING_DOWN, "server shutting down")
        if not self.closed:
            await self._close(GOING_AWAY, "server shutting down")

    def take_over(self) -> None:
        """Another connection CONNECTed with our client id: it gets the session."""
        self.state = None
        # As Mosquitto does: the replaced connection's will is not sent.
        self.will = None
        if not self.closed:
            self._disconnect(ReasonCode.SESSION_TAKEN_OVER, "session taken over")
        self._close_soon(POLICY_VIOLATION, "session taken over by another connection")

    # -- closing and timers -------------------------------------------------------

    async def _close(self, code: int, reason: str) -> None:
        self.phase = Phase.CLOSED
        self._cancel_timer()
        await self.session.close(code, close_reason(reason))

    def _close_soon(self, code: int, reason: str) -> None:
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        self._cancel_timer()
        self._closing = self._loop.create_task(self.session.close(code, close_reason(reason)))

    def _watch(self, timeout: float, reason: str) -> None:
        """Close the connection when no packet arrives for ``timeout`` seconds."""
        self._cancel_timer()
        self._timeout = timeout
        self._timeout_reason = reason
        self._last_seen = self._loop.time()
        self._timer = self._loop.call_later(timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        # One timer per connection, pushed back lazily: packets only stamp a time.
        idle = self._loop.time() - self._last_seen
        if idle >= self._timeout:
            if self.phase is Phase.CONNECTED:
                self._disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT, self._timeout_reason)
            self._close_soon(POLICY_VIOLATION, self._timeout_reason)
        else:
            self._timer = self._loop.call_later(self._timeout - idle, self._check_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- CONNECT --------------------------------------------------------------------

    async def _on_connect(self, packet: Connect) -> None:
        if packet.protocol_level == 5:
            self.version = 5
            self.requested = Requested.from_connect(packet)
            if packet.properties.authentication_method is not None:
                # 3.15: enhanced authentication is not offered.
                await self._refuse_connect(
                    ReasonCode.BAD_AUTHENTICATION_METHOD, "enhanced authentication not supported"
                )
                return
        client_id = packet.client_id
        if packet.protocol_level == 3 and len(client_id) > MQTT31_MAX_CLIENT_ID:
            raise MqttProtocolError(
                "MQTT 3.1 client id longer than 23 characters",
                connack_code=ConnackCode.IDENTIFIER_REJECTED,
            )
        # MQTT-3.1.3-6: an empty id (clean session only, the codec checked) gets one;
        # 5.0 also for a persistent session, and names it in CONNACK (3.2.2.3.7).
        assigned = None if client_id else f"wshub-{secrets.token_urlsafe(12)}"
        client_id = client_id or assigned or ""
        if packet.will is not None and packet.will.topic.startswith("$"):
            code: int = ConnackCode.NOT_AUTHORIZED
        else:
            code = await self._login(packet, client_id)
        if code == ConnackCode.ACCEPTED and packet.will is not None:
            code = self._authorize_will(packet.will)
        if self.closed:  # the connect timer fired during the login
            return
        if code != ConnackCode.ACCEPTED:
            await self._refuse_connect(code, "")
            return
        try:
            opened = await self.store.open(client_id, packet.clean_session, self, self._claimant())
        except ClientIdTaken:
            # 0x02 rather than 0x05: the credentials are good, this id is not the
            # user's to use; the client should pick another (MQTT-3.2.2-5 table).
            logger.info(
                "MQTT session %s: client id %r is another user's session, refused",
                self.session.id,
                client_id,
            )
            self._send(Connack(False, self._connack_code(ConnackCode.IDENTIFIER_REJECTED)))
            await self._close(
                POLICY_VIOLATION, "connection refused: client id in use by another user"
            )
            return
        except EngineUnavailable:
            # Sessions live in Redis and Redis is away: MQTT's own "try later".
            self._send(Connack(False, self._connack_code(ConnackCode.SERVER_UNAVAILABLE)))
            await self._close(TRY_AGAIN_LATER, "connection refused: SERVER_UNAVAILABLE")
            return
        if self.closed:  # the connect timer fired while the session was fetched
            await self.store.close(client_id, self)
            return
        self.client_id = client_id
        self.state = opened.state
        self.will = packet.will
        self.phase = Phase.CONNECTED
        # A delayed will of this client id waits no more (MQTT-3.1.3-9).
        self._wills().resume(client_id, ended=not opened.present)
        if opened.present:
            # The kept session may be another user's, or hold rights this one lost.
            refused = await reauthorize(self.channels, self.context, opened.state)
            if self.state is not opened.state:  # taken over meanwhile
                return
            if refused:
                with contextlib.suppress(EngineUnavailable):  # stored again when it goes offline
                    await self.store.save_subscriptions(opened.state)
        keepalive = packet.keepalive
        if self.version == 5:
            keepalive, properties = self._accept5(packet, opened.state, assigned)
            self._send(Connack(opened.present, ConnackCode.ACCEPTED, properties))
        else:
            self._send(Connack(opened.present, ConnackCode.ACCEPTED))
        # After the CONNACK: unacknowledged messages again, then the queue.
        opened.state.attach(self)
        if keepalive:
            self._watch(keepalive * KEEPALIVE_GRACE, "keepalive timeout")
        else:
            self._cancel_timer()
        if opened.stale is not None:
            await self.store.discard(opened.stale)

    def _accept5(
        self, packet: Connect, state: SessionState, assigned: str | None
    ) -> tuple[int, Properties]:
        """Apply what a 5.0 CONNECT asked to the session; the keepalive and CONNACK properties."""
        requested = self.requested
        expiry, announced_expiry = granted_expiry(
            requested.session_expiry, self.config.session_expiry
        )
        # 3.1.2.11.2: the session ends with the connection when the interval is 0.
        state.clean = expiry == 0
        state.expiry = expiry
        state.receive_maximum = requested.receive_maximum
        self.max_packet_size = requested.maximum_packet_size
        self._aliases = TopicAliases(self.config.topic_alias_maximum)
        self._out_aliases = OutboundAliases(requested.topic_alias_maximum)
        keepalive, announced_keepalive = granted_keepalive(
            packet.keepalive, self.config.max_keepalive
        )
        return keepalive, connack_properties(
            self.config,
            assigned_client_id=assigned,
            session_expiry=announced_expiry,
            server_keep_alive=announced_keepalive,
            shared_subscriptions=True,
        )

    def _connack_code(self, code: int) -> int:
        """A 3.1.1 CONNACK code, as a 5.0 reason code on a 5.0 connection."""
        if self.version == 5:
            return CONNACK_REASON.get(ConnackCode(code), code) if code <= 5 else code
        return code

    async def _refuse_connect(self, code: int, detail: str) -> None:
        """CONNACK with a refusal code, then close (MQTT-3.2.2-5) with 1008.

        ``code`` is a 3.1.1 code (turned into its 5.0 reason on a 5.0 connection)
        or already a 5.0 reason code (0x80 and above).
        """
        code = self._connack_code(code)
        name = reason_name(code) if code >= 0x80 else ConnackCode(code).name
        reason = f"connection refused: {name}" + (f" ({detail})" if detail else "")
        logger.info("MQTT session %s: %s", self.session.id, reason)
        if self.version == 5:
            self._send(Connack(False, code, Properties(reason_string=detail or None)))
        else:
            self._send(Connack(False, code))
        await self._close(POLICY_VIOLATION, reason)

    async def _login(self, packet: Connect, client_id: str) -> int:
        """The CONNACK code for the credentials; sets the identity on success.

        Without a username the handshake's identity (if any) stands; with one,
        the hub checks it (hub.auth: the user table, a JWT, the hook).
        """
        auth = self.hub.auth
        allow_anonymous = self.config.allow_anonymous
        if allow_anonymous is None:
            allow_anonymous = auth.allow_anonymous
        if packet.username is None:
            if self.session.identity is not None or allow_anonymous:
                return ConnackCode.ACCEPTED
            return ConnackCode.NOT_AUTHORIZED
        if not auth.configured:
            # Nothing can check the password, so the username is not trusted.
            if self.session.identity is not None or allow_anonymous:
                return ConnackCode.ACCEPTED
            return ConnackCode.BAD_USERNAME_OR_PASSWORD
        credentials = Credentials(
            username=packet.username,
            password=packet.password,
            protocol=self.session.subprotocol,
            session_id=self.session.id,
            remote_address=self.session.remote_address,
            client_id=client_id,
        )
        try:
            identity = await auth.authenticate(credentials)
        except AuthenticationFailed:
            return ConnackCode.BAD_USERNAME_OR_PASSWORD
        except PermissionDenied:
            return ConnackCode.NOT_AUTHORIZED
        except Exception:
            logger.exception("MQTT session %s: the authentication hook failed", self.session.id)
            return ConnackCode.SERVER_UNAVAILABLE
        self._set_identity(identity)
        return ConnackCode.ACCEPTED

    def _claimant(self) -> Claimant:
        identity = self.session.identity
        rule = self.hub.config.mqtt.takeover_access
        return Claimant(
            None if identity is None else identity.user_id,
            any_session=rule is not None and Rule(rule).admits(identity),
        )

    def _authorize_will(self, will: Will) -> int:
        """A will the user could not publish is refused now (CONNACK 5), not dropped later.

        It is checked again when published, as any publication (hooks included).
        """
        try:
            self.channels.check_channel(will.topic)
            self.channels.authorize_publish(self.context, will.topic)
        except ChannelError as exc:
            logger.info("MQTT session %s: will refused: %s", self.session.id, exc)
            return ConnackCode.NOT_AUTHORIZED
        return ConnackCode.ACCEPTED

    def _set_identity(self, identity: Identity) -> None:
        self.session.identity = identity
        self.context = CallContext(self.hub, self.session.id, self.session.subprotocol, identity)

    # -- PUBLISH from the client --------------------------------------------------

    async def _on_publish(self, packet: Publish) -> None:
        self._stats.received += 1
        if self.version == 5:
            await self._on_publish5(packet)
            return
        if packet.topic.startswith("$"):
            # '$' topics belong to the server (MQTT 4.7.2). Closing would make a
            # clean_session=0 client resend it on every reconnect and loop, so it
            # is acknowledged and dropped, as Mosquitto does for a denied topic.
            self.hub.metrics.publications_dropped.labels("reserved_topic").inc()
            logger.info(
                "MQTT session %s: publish to %r dropped: '$' topics are the server's",
                self.session.id,
                packet.topic,
            )
            self._acknowledge(packet)
            return
        state = self.state
        packet_id = packet.packet_id
        if packet.qos == 2 and state is not None and packet_id in state.awaiting_pubrel:
            # A resent QoS 2 PUBLISH (DUP): delivered already, acknowledge again.
            self._send(Pubrec(packet_id))
            return
        try:
            # One write unit: the publication, its copies queued for persistent
            # sessions and the QoS 2 id are stored together, and before the ack.
            async with self.hub.backend.unit(wait=packet_id is not None):
                await self._publish(packet.topic, packet.payload, packet.qos, packet.retain)
                self._hold(packet)
        except EngineUnavailable:
            self._unhold(packet)
            # Redis is away. MQTT 3.1.1 has no negative ack: QoS 0 is dropped
            # (and counted); QoS 1/2 goes unacknowledged, so the client sends it
            # again (with DUP) when it reconnects. The connection stays up.
            if packet_id is None:
                self.hub.metrics.publications_dropped.labels("engine_unavailable").inc()
            logger.info(
                "MQTT session %s: QoS %d publish to %r not accepted: engine unavailable",
                self.session.id,
                packet.qos,
                packet.topic,
            )
            return
        self._acknowledge(packet)

    async def _on_publish5(self, packet: Publish) -> None:
        """A 5.0 PUBLISH: aliases resolved, checked, then acknowledged with a reason code."""
        topic = self._aliases.resolve(packet)
        check_publish(packet, self.config.max_qos)
        state = self.state
        packet_id = packet.packet_id
        if packet.qos == 2 and state is not None:
            if packet_id in state.awaiting_pubrel:
                self._send(Pubrec(packet_id))  # a resent QoS 2 PUBLISH: acknowledged again
                return
            if len(state.awaiting_pubrel) >= self.config.max_inflight:
                # MQTT-3.3.4-9: more unacknowledged QoS 2 than the Receive Maximum announced.
                raise MqttProtocolError(
                    "receive maximum exceeded", reason_code=ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
                )
        if topic.startswith("$"):
            # '$' topics belong to the server (MQTT 4.7.2): refused, not closed.
            self.hub.metrics.publications_dropped.labels("reserved_topic").inc()
            self._acknowledge(packet, ReasonCode.NOT_AUTHORIZED, "'$' topics are the server's")
            return
        if not payload_format_valid(packet):
            self._acknowledge(packet, ReasonCode.PAYLOAD_FORMAT_INVALID, "payload is not UTF-8")
            return
        try:
            async with self.hub.backend.unit(wait=packet_id is not None):
                await self._publish(
                    topic, packet.payload, packet.qos, packet.retain, packet.properties, packet
                )
                self._hold(packet)
        except EngineUnavailable:
            self._unhold(packet)
            # As for 3.1.1: unacknowledged, so the client sends it again on reconnect.
            if packet_id is None:
                self.hub.metrics.publications_dropped.labels("engine_unavailable").inc()
            logger.info(
                "MQTT session %s: publish to %r not accepted: engine unavailable",
                self.session.id,
                topic,
            )
            return
        except ChannelError as exc:
            self._acknowledge(packet, refusal_reason(exc), str(exc))
            return
        self._acknowledge(packet)

    def _acknowledge(self, packet: Publish, code: int = 0, text: str = "") -> None:
        """PUBACK (QoS 1) or PUBREC (QoS 2) for a PUBLISH delivered or dropped.

        5.0: a failure ``code`` (0x80 and above) ends the flow (no PUBREL follows).
        The code goes alone, without a reason string (``text`` is logged): the
        short form every client parses (the Eclipse interoperability client
        refuses a PUBACK with properties).
        """
        packet_id = packet.packet_id
        if packet_id is None:  # QoS 0
            return
        if code:
            logger.info(
                "MQTT session %s: publish to %r refused (%s): %s",
                self.session.id,
                packet.topic,
                reason_name(code),
                text,
            )
        if packet.qos == 1:
            self._send(Puback(packet_id, code))
        else:
            # Method A of the spec (4.3.3): delivered now, the id kept until PUBREL.
            if code < 0x80:
                self._hold(packet)
            self._send(Pubrec(packet_id, code))

    def _hold(self, packet: Publish) -> None:
        """A QoS 2 PUBLISH delivered: its id awaits PUBREL (a resend is then a copy)."""
        state, packet_id = self.state, packet.packet_id
        held = state is not None and packet_id in state.awaiting_pubrel
        if packet.qos == 2 and state is not None and packet_id is not None and not held:
            state.hold_pubrel(packet_id)

    def _unhold(self, packet: Publish) -> None:
        """Not stored after all: a resend is no copy."""
        if packet.qos == 2 and self.state is not None and packet.packet_id is not None:
            self.state.awaiting_pubrel.discard(packet.packet_id)

    async def _publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties = NO_PROPERTIES,
        packet: Publish | None = None,
    ) -> None:
        """Through the ChannelService, so namespaces and hooks apply as for every protocol.

        Raises EngineUnavailable when Redis is away. Other refusals are dropped
        for 3.1.1 (``packet`` None or 3.1.1), raised for a 5.0 PUBLISH to answer.
        """
        if self.version == 5:
            message = Publish(topic, payload, qos, retain, properties=properties)
            extras = mqtt5_extras(message, self.client_id)
        else:
            extras = mqtt_extras(qos, retain)
        try:
            publication = await self.channels.publish_from_client(
                self.context, topic, payload, extras=extras
            )
            if retain:
                await keep_retained(self.hub.retained, publication)
        except EngineUnavailable:
            raise
        except ChannelError as exc:
            logger.info("MQTT session %s: publish to %r refused: %s", self.session.id, topic, exc)
            if packet is not None and self.version == 5:
                raise
            # MQTT 3.1.1 cannot refuse a PUBLISH: it is acknowledged and dropped,
            # as Mosquitto does for a denied ACL.

    async def _on_pubrel(self, packet: Pubrel) -> None:
        code = 0
        state = self.state
        if state is not None:
            try:
                # Stored before PUBCOMP: the client may then reuse the id for a new message.
                async with self.hub.backend.unit():
                    released = state.release_pubrel(packet.packet_id)
            except EngineUnavailable:
                return  # no PUBCOMP: the client sends PUBREL again
            if not released and self.version == 5:
                code = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND  # 3.7.2.1
        self._send(Pubcomp(packet.packet_id, code))

    # -- acknowledgements of our PUBLISHes ----------------------------------------

    async def _on_puback(self, packet: Puback) -> None:
        if self.state is not None:
            self.state.puback(packet.packet_id)

    async def _on_pubrec(self, packet: Pubrec) -> None:
        state = self.state
        if state is None:
            return
        if packet.reason_code >= 0x80:
            # 4.3.3: a refusing PUBREC ends the flow; no PUBREL.
            state.refused(packet.packet_id)
            return
        try:
            # Stored before PUBREL: a client that got PUBREL has handed the message on.
            async with self.hub.backend.unit():
                release = state.pubrec(packet.packet_id)
        except EngineUnavailable:
            return  # no PUBREL yet: the client sends PUBREC again on reconnect
        if release:
            state.send_pubrel(packet.packet_id)

    async def _on_pubcomp(self, packet: Pubcomp) -> None:
        if self.state is not None:
            self.state.pubcomp(packet.packet_id)

    # -- subscriptions --------------------------------------------------------------

    async def _on_subscribe(self, packet: Subscribe) -> None:
        state = self.state
        if state is None:
            return
        held = set(state.subscriptions)
        identifier = next(iter(packet.properties.subscription_identifiers), None)
        codes = [
            await self._subscribe(state, f, options, identifier)
            for f, options in packet.subscriptions
        ]
        granted = [
            (topic_filter, code)
            for (topic_filter, options), code in zip(packet.subscriptions, codes, strict=True)
            if code < 0x80
            and _sends_retained(options, topic_filter in held)
            # 4.8.2: no retained messages for a shared subscription.
            and not topic_filter.startswith(SHARED_PREFIX)
        ]
        try:
            # Read before the SUBACK: a store that cannot be read refuses the filter.
            retained = [(await self.hub.retained.match(f), code) for f, code in granted]
            await self.store.save_subscriptions(state)
        except EngineUnavailable:
            # Redis away (retained messages and sessions live there): refused, as a whole.
            await self._unsubscribe(state, [f for f, _ in granted if f not in held])
            codes = [SUBACK_FAILURE] * len(codes)
            retained = []
        self._send(Suback(packet.packet_id, tuple(codes)))
        # MQTT-3.3.1-6: retained messages follow, with RETAIN set.
        for publications, code in retained:
            send_retained(state, publications, code)

    async def _subscribe(
        self, state: SessionState, topic_filter: str, options: int, identifier: int | None = None
    ) -> int:
        """Granted QoS, or a failure code (0x80; 5.0: its reason) when the filter is refused.

        ``options`` is the subscription options byte (3.1.1: the QoS alone).
        """
        v5 = self.version == 5
        try:
            shared = parse_shared(topic_filter)
        except InvalidSharedFilter as exc:
            logger.info("MQTT session %s: subscribe refused: %s", self.session.id, exc)
            return ReasonCode.TOPIC_FILTER_INVALID if v5 else SUBACK_FAILURE
        held = state.shared if shared is not None else state.subscriptions
        new = topic_filter not in held
        count = len(state.subscriptions) + len(state.shared)
        if new and count >= self.hub.config.channels.max_subscriptions:
            return ReasonCode.QUOTA_EXCEEDED if v5 else SUBACK_FAILURE
        # Access rules and hooks judge the filter the messages come from.
        inner = topic_filter if shared is None else shared[1]
        try:
            await self.channels.authorize_subscribe(self.context, inner)
        except ChannelError as exc:
            logger.info(
                "MQTT session %s: subscribe %r refused: %s", self.session.id, topic_filter, exc
            )
            return refusal_reason(exc) if v5 else SUBACK_FAILURE
        granted = min(options & 0x03, self.config.max_qos)
        # MQTT-3.8.4-3: the same filter again replaces the subscription (and its options).
        held[topic_filter] = granted
        extra = SubscriptionOptions(
            bool(options & NO_LOCAL), bool(options & RETAIN_AS_PUBLISHED), identifier
        )
        if extra != SubscriptionOptions():
            state.options[topic_filter] = extra
        else:
            state.options.pop(topic_filter, None)
        if new:
            if shared is None:
                await self.channels.subscribe(state, topic_filter)
            else:
                await self._shared().join(state, topic_filter, inner)
        return granted

    def _shared(self) -> SharedSubscriptions:
        return self.hub.services.get(SHARED_SERVICE, SharedSubscriptions)

    async def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        state = self.state
        codes: tuple[int, ...] = ()
        if state is not None:
            if self.version == 5:
                # 3.11.3: one reason per filter: 0x00, or 0x11 No subscription existed.
                codes = tuple(
                    0
                    if f in state.subscriptions or f in state.shared
                    else ReasonCode.NO_SUBSCRIPTION_EXISTED
                    for f in packet.filters
                )
            await self._unsubscribe(state, packet.filters)
        elif self.version == 5:
            codes = tuple(ReasonCode.NO_SUBSCRIPTION_EXISTED for _ in packet.filters)
        self._send(Unsuback(packet.packet_id, codes))

    async def _unsubscribe(self, state: SessionState, filters: Iterable[str]) -> None:
        changed = False
        for topic_filter in filters:
            if state.shared.pop(topic_filter, None) is not None:
                state.options.pop(topic_filter, None)
                await self._shared().leave(state, topic_filter)
            elif state.subscriptions.pop(topic_filter, None) is not None:
                state.options.pop(topic_filter, None)
                changed = True
                await self.channels.unsubscribe(state, topic_filter)
        if changed:
            try:
                await self.store.save_subscriptions(state)
            except EngineUnavailable:
                # Done on this node; a move to another node before the next save
                # brings the filter back.
                logger.warning("MQTT session %s: unsubscribe not stored", self.session.id)

    # -- server-side subscriptions (server API subscribe/unsubscribe) -----------------

    async def server_subscribe(self, channel: str) -> bool:
        """Add a subscription for the server; the client gets PUBLISH packets for it.

        MQTT has no packet telling a client of a subscription it did not ask for,
        but a client takes any PUBLISH: the session's default QoS is granted. No
        policy or hook applies; the per-session limit does. The session keeps it.
        """
        state = self.state
        if state is None:
            return False
        if channel in state.subscriptions:
            return True
        if len(state.subscriptions) >= self.hub.config.channels.max_subscriptions:
            return False
        state.subscriptions[channel] = min(self.config.default_qos, self.config.max_qos)
        await self.channels.subscribe(state, channel)
        try:
            await self.store.save_subscriptions(state)
        except EngineUnavailable:
            logger.warning("MQTT session %s: server subscribe not stored", self.session.id)
        return True

    async def server_unsubscribe(self, channel: str) -> bool:
        state = self.state
        if state is None or channel not in state.subscriptions:
            return False
        await self._unsubscribe(state, [channel])
        return True

    # -- the rest ---------------------------------------------------------------------

    async def _on_pingreq(self, packet: Pingreq) -> None:
        self._send(Pingresp())

    async def _on_disconnect(self, packet: Disconnect) -> None:
        expiry = packet.properties.session_expiry_interval
        if expiry is not None and self.state is not None:
            if self.state.clean and expiry:
                # MQTT-3.14.2-2: 0 at CONNECT cannot become non-zero at DISCONNECT.
                raise MqttProtocolError(
                    "session expiry set at DISCONNECT after 0 at CONNECT",
                    reason_code=PROTOCOL_ERROR_REASON,
                )
            self.state.expiry, _ = granted_expiry(expiry, self.config.session_expiry)
            self.state.clean = expiry == 0
        # MQTT-3.14.4-3: a clean DISCONNECT discards the will, unless 5.0's 0x04
        # "Disconnect with Will Message" asks for it.
        if packet.reason_code != ReasonCode.DISCONNECT_WITH_WILL:
            self.will = None
        await self._close(NORMAL_CLOSURE, "DISCONNECT")

    async def _on_auth(self, packet: Auth) -> None:
        # 4.12: AUTH without an Authentication Method in CONNECT is a Protocol Error.
        raise MqttProtocolError(
            "AUTH without an authentication method", reason_code=PROTOCOL_ERROR_REASON
        )

    # -- over the message rate ------------------------------------------------------

    async def _refuse_publish(self, packet: Publish) -> None:
        if self.version == 5:
            # 5.0 can say no: QoS 1/2 gets Quota exceeded, and is not resent.
            self._aliases.resolve(packet)  # keeps the client's aliases in step
            self._acknowledge(packet, ReasonCode.QUOTA_EXCEEDED, "message rate exceeded")
        logger.debug(
            "MQTT session %s: QoS %d publish to %r refused: message rate exceeded",
            self.session.id,
            packet.qos,
            packet.topic,
        )

    async def _refuse_subscribe(self, packet: Subscribe) -> None:
        code = ReasonCode.QUOTA_EXCEEDED if self.version == 5 else SUBACK_FAILURE
        self._send(Suback(packet.packet_id, tuple(code for _ in packet.subscriptions)))


def _sends_retained(options: int, existed: bool) -> bool:
    """3.8.3.1 Retain Handling: 0 always, 1 for a new subscription only, 2 never."""
    handling = options >> RETAIN_HANDLING_SHIFT
    return handling == 0 or (handling == 1 and not existed)


def _unexpected(packet: Packet, phase: Phase) -> str:
    name = type(packet).__name__.upper()
    if isinstance(packet, Connect):
        return "a second CONNECT"
    if phase is Phase.CONNECTING:
        return f"{name} before CONNECT"
    return f"{name} is a server-to-client packet"


_Route = Callable[[MqttHandler, Any], Awaitable[None]]
_RouteTable = dict[Phase, dict[type, _Route]]

# The state machine: which packets each phase accepts, and what they do.
_ROUTES: Final[_RouteTable] = {
    Phase.CONNECTING: {Connect: MqttHandler._on_connect},
    Phase.CONNECTED: {
        Publish: MqttHandler._on_publish,
        Puback: MqttHandler._on_puback,
        Pubrec: MqttHandler._on_pubrec,
        Pubrel: MqttHandler._on_pubrel,
        Pubcomp: MqttHandler._on_pubcomp,
        Subscribe: MqttHandler._on_subscribe,
        Unsubscribe: MqttHandler._on_unsubscribe,
        Pingreq: MqttHandler._on_pingreq,
        Disconnect: MqttHandler._on_disconnect,
        Auth: MqttHandler._on_auth,
    },
    Phase.CLOSED: {},
}

# The same, for a connection over its message rate (limits.message_rate).
_RATE_LIMITED_ROUTES: Final[_RouteTable] = {
    **_ROUTES,
    Phase.CONNECTED: {
        **_ROUTES[Phase.CONNECTED],
        Publish: MqttHandler._refuse_publish,
        Subscribe: MqttHandler._refuse_subscribe,
    },
}
