"""How a connection's session ends: DISCONNECT, a lost connection and its will, shutdown."""

from __future__ import annotations

from hub.close_codes import CloseCode
from hub.errors import EngineUnavailable
from protocols.mqtt.codec import Disconnect, MqttProtocolError, Will
from protocols.mqtt.connection import MqttConnection, Phase, logger
from protocols.mqtt.ingress import publish
from protocols.mqtt.packets import PROTOCOL_ERROR as PROTOCOL_ERROR_REASON
from protocols.mqtt.reasons import ReasonCode
from protocols.mqtt.v5 import granted_expiry


async def on_disconnect(conn: MqttConnection, packet: Disconnect) -> None:
    expiry = packet.properties.session_expiry_interval
    if expiry is not None and conn.state is not None:
        if conn.state.clean and expiry:
            # MQTT-3.14.2-2: 0 at CONNECT cannot become non-zero at DISCONNECT.
            raise MqttProtocolError(
                "session expiry set at DISCONNECT after 0 at CONNECT",
                reason_code=PROTOCOL_ERROR_REASON,
            )
        conn.state.expiry, _ = granted_expiry(expiry, conn.config.session_expiry)
        conn.state.clean = expiry == 0
        conn.store.settings_changed(conn.state)
    # MQTT-3.14.4-3: a clean DISCONNECT discards the will, unless 5.0's 0x04
    # "Disconnect with Will Message" asks for it.
    if packet.reason_code != ReasonCode.DISCONNECT_WITH_WILL:
        conn.will = None
    await conn.close(CloseCode.NORMAL_CLOSURE, "DISCONNECT")


async def connection_lost(conn: MqttConnection) -> None:
    """The connection is closed: the session let go (or ended), then the will."""
    conn.phase = Phase.CLOSED
    conn.cancel_timer()
    will, conn.will = conn.will, None
    state = conn.state
    if state is not None:
        conn.state = None
        if state.clean and state.shared:
            await conn.shared().leave_all(state)
        await conn.store.close(conn.client_id, conn)
    # MQTT-3.1.2-8: the will is for connections lost without DISCONNECT; a
    # hub shutting down is not the client's failure.
    if will is None or conn.hub.stopping:
        return
    delay = will.properties.will_delay_interval
    if delay and state is not None and not state.clean:
        # MQTT-3.1.3-9: published after the delay (or when the session ends),
        # unless the session is taken back first.
        expiry = state.expiry if state.expiry is not None else delay
        conn.wills().schedule(conn.client_id, min(delay, expiry), lambda: _will(conn, will))
        return
    await _will(conn, will)


async def _will(conn: MqttConnection, will: Will) -> None:
    try:
        await publish(conn, will.topic, will.payload, will.qos, will.retain, will.properties)
    except EngineUnavailable:
        logger.warning("MQTT session %s: will not published, engine unavailable", conn.session.id)


# 0xA0 Maximum connect time, not 0x87 Not authorized: MQTT 5.0 3.14.2.1 gives
# 0x87 for "the request is not authorized" (a refused request), 0xA0 for "the
# maximum connection time authorized for this connection has been exceeded",
# which is what a token's exp is. Nothing the client did is refused; it may
# connect again at once with a new token.
TOKEN_EXPIRED_TEXT = "token expired: connect again with a new one"


def identity_expired(conn: MqttConnection) -> None:
    """The login's token expired (the hub closes the connection next): a 5.0 client
    hears DISCONNECT 0xA0 Maximum connect time first; 3.1.1 has no server DISCONNECT."""
    if conn.phase is Phase.CONNECTED:
        conn.disconnect(ReasonCode.MAXIMUM_CONNECT_TIME, TOKEN_EXPIRED_TEXT)


RATE_TEXT = "message rate exceeded"


def flooding(conn: MqttConnection) -> None:
    """Closed for its message rate next: a 5.0 client hears DISCONNECT 0x96 Message rate
    too high first (4.13.2, 3.14.2.1); 3.1.1 has no server DISCONNECT."""
    if conn.phase is Phase.CONNECTED:
        conn.disconnect(ReasonCode.MESSAGE_RATE_TOO_HIGH, RATE_TEXT)


def last_words(conn: MqttConnection, code: int, reason: str) -> bytes | None:
    """The WebSocket layer refused a message over its limit (1009) before the packet
    reader saw it: a 5.0 client hears DISCONNECT 0x95 Packet too large, as for a
    packet over mqtt.max_packet_size (the bytes, framed ahead of the close frame)."""
    if code != CloseCode.MESSAGE_TOO_BIG or conn.phase is not Phase.CONNECTED:
        return None
    return conn.farewell(ReasonCode.PACKET_TOO_LARGE, f"WebSocket message too big: {reason}")


def going_away(conn: MqttConnection) -> None:
    """The hub stops: a 5.0 client hears DISCONNECT 0x8B Server shutting down."""
    if conn.phase is Phase.CONNECTED:
        conn.disconnect(ReasonCode.SERVER_SHUTTING_DOWN, "server shutting down")


def kicked(conn: MqttConnection, reason: str) -> None:
    """The server API's disconnect closes the client next: a 5.0 client hears
    DISCONNECT 0x98 Administrative action with the API's reason (3.14.2.1)."""
    if conn.phase is Phase.CONNECTED:
        conn.disconnect(ReasonCode.ADMINISTRATIVE_ACTION, reason)


# 0x87 Not authorized, not 0x98 Administrative action (the API's disconnect) nor
# 0xA0 (an expired token, which a new one cures at once): 3.14.2.1 has no code
# for withdrawn credentials, and 0x87 is the one saying the client is no longer
# authorized as it is; connecting again with the same token is refused (CONNACK
# 0x86), a newer token works.
def revoked(conn: MqttConnection, reason: str) -> None:
    """The server API revoked the login's token (the hub closes the connection next):
    a 5.0 client hears DISCONNECT 0x87 Not authorized with the reason first."""
    if conn.phase is Phase.CONNECTED:
        conn.disconnect(ReasonCode.NOT_AUTHORIZED, reason)


async def shutdown(conn: MqttConnection) -> None:
    """The hub stops (the TCP listener's sessions): DISCONNECT 0x8B (5.0), then the close."""
    going_away(conn)
    if not conn.closed:
        await conn.close(CloseCode.GOING_AWAY, "server shutting down")
