"""One MQTT connection's state, and what every packet handler uses: sending, closing, timers.

The packet handlers (``connect``, ``ingress``, ``egress``, ``subscribe``,
``lifecycle``) are functions of an :class:`MqttConnection`; ``handler`` routes
packets to them. The connection is the ``Link`` a SessionState sends through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from hub.close_codes import CloseCode
from hub.handler import Identity, Session, SubprotocolHandler
from hub.rpc import CallContext
from protocols.mqtt.codec import Connack, Disconnect, Packet, PacketReader, Publish, Will, encode
from protocols.mqtt.config import MqttConfig
from protocols.mqtt.packets import Properties
from protocols.mqtt.reasons import ReasonCode
from protocols.mqtt.session import SessionState
from protocols.mqtt.shared import SERVICE_NAME as SHARED_SERVICE
from protocols.mqtt.shared import SharedSubscriptions
from protocols.mqtt.store import SERVICE_NAME, SessionStore
from protocols.mqtt.sys_topics import SERVICE_NAME as SYS_SERVICE
from protocols.mqtt.sys_topics import SysTopics
from protocols.mqtt.v5 import OutboundAliases, Requested, TopicAliases
from protocols.mqtt.wills import SERVICE_NAME as WILLS_SERVICE
from protocols.mqtt.wills import DelayedWills

if TYPE_CHECKING:
    from hub.app import Hub

# One logger for all the connection's modules: operators' logging settings
# (and docs) name protocols.mqtt.handler, as before the handler was split.
logger = logging.getLogger("protocols.mqtt.handler")

PUBLISH_TYPE: Final = 3


def fitted(packet: Packet, version: int, limit: int | None) -> bytes | None:
    """``packet`` encoded within the client's Maximum Packet Size, or None (not sent).

    MQTT-3.1.2-24: nothing over it is sent. A control packet over it goes
    without its Reason String and User Properties, which the sender must leave
    out rather than exceed it (e.g. MQTT-3.14.2-3, -4 for DISCONNECT). A
    CONNACK still over it (a size below the server's own announcements, some
    20 bytes) goes all the same: without one the client cannot go on.
    """
    frame = encode(packet, version)
    if limit is None or len(frame) <= limit:
        return frame
    if isinstance(packet, Publish):
        return None
    props = getattr(packet, "properties", None)
    if isinstance(props, Properties) and (props.reason_string or props.user_properties):
        bare = dataclasses.replace(props, reason_string=None, user_properties=())
        # Every packet type with properties names the field so (mypy cannot see it).
        with_props: Any = packet
        frame = encode(dataclasses.replace(with_props, properties=bare), version)
        if len(frame) <= limit:
            return frame
    return frame if isinstance(packet, Connack) else None


class Phase(Enum):
    CONNECTING = "before CONNECT"
    CONNECTED = "after CONNECT"
    CLOSED = "after close"


def close_reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


class MqttConnection(SubprotocolHandler):
    """The state of one connection, from CONNECT until it closes."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session
        self.hub = hub
        self.config = hub.config.section(MqttConfig)
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
        self.aliases = TopicAliases(0)
        self.out_aliases = OutboundAliases(0)
        # Whether out_aliases sets any up: read per PUBLISH sent, a plain attribute.
        self.aliasing = False
        self.reader = PacketReader(self.config.max_packet_size)
        self.stats = hub.services.get(SYS_SERVICE, SysTopics).stats
        self.loop = asyncio.get_running_loop()
        self.last_seen = self.loop.time()
        self._timeout = 0.0
        self._timeout_reason = ""
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        # 3.14: the server sends at most one DISCONNECT, then closes.
        self._disconnect_sent = False

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    # -- the Link a SessionState sends through ---------------------------------

    def send(self, frame: bytes) -> None:
        if frame[0] >> 4 == PUBLISH_TYPE:
            self.send_publish(frame)
        else:
            self.session.send(frame)

    def send_publish(self, frame: bytes) -> None:
        """A PUBLISH: counted, its topic aliased where the client allows aliases."""
        self.stats.sent += 1
        if self.aliasing:
            frame = self.out_aliases.apply(frame, self.max_packet_size)
        self.session.send(frame)

    def send_packet(self, packet: Packet) -> None:
        frame = fitted(packet, self.version, self.max_packet_size)
        if frame is None:
            logger.info(
                "MQTT session %s: %s over the client's maximum packet size, not sent",
                self.session.id,
                type(packet).__name__,
            )
            return
        self.session.send(frame)

    def take_over(self) -> None:
        """Another connection CONNECTed with our client id: it gets the session."""
        self.state = None
        # As Mosquitto does: the replaced connection's will is not sent.
        self.will = None
        if not self.closed:
            self.disconnect(ReasonCode.SESSION_TAKEN_OVER, "session taken over")
        self.close_soon(CloseCode.POLICY_VIOLATION, "session taken over by another connection")

    def disconnect(self, code: int, text: str) -> None:
        """5.0: the server's DISCONNECT with a reason code, before it closes (3.14).

        Once: a shutdown's goodbye, said by the hub, is not repeated by the TCP
        listener's close.
        """
        words = self.farewell(code, text)
        if words is not None:
            self.session.send(words)

    def farewell(self, code: int, text: str) -> bytes | None:
        """The DISCONNECT ``disconnect`` sends, encoded; None for 3.1.1 or once sent."""
        if self.version != 5 or self._disconnect_sent:
            return None
        self._disconnect_sent = True
        packet = Disconnect(code, Properties(reason_string=text[:200]))
        return fitted(packet, 5, self.max_packet_size)

    # -- hub services and identity -------------------------------------------------

    def shared(self) -> SharedSubscriptions:
        return self.hub.services.get(SHARED_SERVICE, SharedSubscriptions)

    def wills(self) -> DelayedWills:
        return self.hub.services.get(WILLS_SERVICE, DelayedWills)

    def set_identity(self, identity: Identity) -> None:
        self.session.identity = identity
        self.context = CallContext(self.hub, self.session.id, self.session.subprotocol, identity)

    # -- closing and timers -------------------------------------------------------

    async def close(self, code: int, reason: str) -> None:
        self.phase = Phase.CLOSED
        self.cancel_timer()
        await self.session.close(code, close_reason(reason))

    def close_soon(self, code: int, reason: str) -> None:
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        self.cancel_timer()
        self._closing = self.loop.create_task(self.session.close(code, close_reason(reason)))

    def watch(self, timeout: float, reason: str) -> None:
        """Close the connection when no packet arrives for ``timeout`` seconds."""
        self.cancel_timer()
        self._timeout = timeout
        self._timeout_reason = reason
        self.last_seen = self.loop.time()
        self._timer = self.loop.call_later(timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        # One timer per connection, pushed back lazily: packets only stamp a time.
        idle = self.loop.time() - self.last_seen
        if idle >= self._timeout:
            if self.phase is Phase.CONNECTED:
                self.disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT, self._timeout_reason)
            self.close_soon(CloseCode.POLICY_VIOLATION, self._timeout_reason)
        else:
            self._timer = self.loop.call_later(self._timeout - idle, self._check_timeout)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
