"""CONNECT: credentials, the will's rights, the session opened or resumed, CONNACK."""

from __future__ import annotations

import contextlib
import secrets
from typing import Final

from hub.access import Rule
from hub.auth import AuthenticationFailed, Credentials
from hub.close_codes import CloseCode
from hub.errors import ChannelError, EngineUnavailable, PermissionDenied
from protocols.mqtt.codec import Auth, Connack, ConnackCode, Connect, MqttProtocolError, Will
from protocols.mqtt.connection import MqttConnection, Phase, logger
from protocols.mqtt.packets import PROTOCOL_ERROR as PROTOCOL_ERROR_REASON
from protocols.mqtt.packets import Properties
from protocols.mqtt.reasons import ReasonCode, reason_name
from protocols.mqtt.reauthorize import reauthorize
from protocols.mqtt.session import SessionState
from protocols.mqtt.store import Claimant, ClientIdTaken
from protocols.mqtt.v5 import (
    CONNACK_REASON,
    OutboundAliases,
    Requested,
    TopicAliases,
    connack_properties,
    granted_expiry,
    granted_keepalive,
)

# MQTT 3.1 (MQIsdp) capped client ids at 23 characters; 3.1.1 lets servers allow more.
MQTT31_MAX_CLIENT_ID: Final = 23
# MQTT-3.1.2-24: the server allows one and a half keepalive periods.
KEEPALIVE_GRACE: Final = 1.5


async def on_connect(conn: MqttConnection, packet: Connect) -> None:
    if packet.protocol_level == 5:
        conn.version = 5
        conn.requested = Requested.from_connect(packet)
        # A refusal's CONNACK already keeps to it (MQTT-3.1.2-24).
        conn.max_packet_size = conn.requested.maximum_packet_size
        if packet.properties.authentication_method is not None:
            # 3.15: enhanced authentication is not offered.
            await refuse_connect(
                conn, ReasonCode.BAD_AUTHENTICATION_METHOD, "enhanced authentication not supported"
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
        code = await _login(conn, packet, client_id)
    if code == ConnackCode.ACCEPTED and packet.will is not None:
        code = _authorize_will(conn, packet.will)
    if conn.closed:  # the connect timer fired during the login
        return
    if code != ConnackCode.ACCEPTED:
        await refuse_connect(conn, code, "")
        return
    try:
        opened = await conn.store.open(client_id, packet.clean_session, conn, _claimant(conn))
    except ClientIdTaken:
        # 0x02 rather than 0x05: the credentials are good, this id is not the
        # user's to use; the client should pick another (MQTT-3.2.2-5 table).
        logger.info(
            "MQTT session %s: client id %r is another user's session, refused",
            conn.session.id,
            client_id,
        )
        conn.send_packet(Connack(False, connack_code(conn, ConnackCode.IDENTIFIER_REJECTED)))
        await conn.close(
            CloseCode.POLICY_VIOLATION, "connection refused: client id in use by another user"
        )
        return
    except EngineUnavailable:
        # Sessions live in Redis and Redis is away: MQTT's own "try later".
        conn.send_packet(Connack(False, connack_code(conn, ConnackCode.SERVER_UNAVAILABLE)))
        await conn.close(CloseCode.TRY_AGAIN_LATER, "connection refused: SERVER_UNAVAILABLE")
        return
    if conn.closed:  # the connect timer fired while the session was fetched
        await conn.store.close(client_id, conn)
        return
    conn.client_id = client_id
    conn.state = opened.state
    conn.will = packet.will
    conn.phase = Phase.CONNECTED
    # A delayed will of this client id waits no more (MQTT-3.1.3-9).
    conn.wills().resume(client_id, ended=not opened.present)
    if opened.present:
        # The kept session may be another user's, or hold rights this one lost.
        refused = await reauthorize(conn.channels, conn.context, opened.state)
        if conn.state is not opened.state:  # taken over meanwhile
            return
        if refused:
            with contextlib.suppress(EngineUnavailable):  # stored again when it goes offline
                await conn.store.save_subscriptions(opened.state)
    keepalive = packet.keepalive
    if conn.version == 5:
        keepalive, properties = _accept5(conn, packet, opened.state, assigned)
        conn.store.settings_changed(opened.state)
        conn.send_packet(Connack(opened.present, ConnackCode.ACCEPTED, properties))
    else:
        conn.send_packet(Connack(opened.present, ConnackCode.ACCEPTED))
    # After the CONNACK: unacknowledged messages again, then the queue.
    opened.state.attach(conn)
    if keepalive:
        conn.watch(keepalive * KEEPALIVE_GRACE, "keepalive timeout")
    else:
        conn.cancel_timer()
    if opened.stale is not None:
        await conn.store.discard(opened.stale)


def _accept5(
    conn: MqttConnection, packet: Connect, state: SessionState, assigned: str | None
) -> tuple[int, Properties]:
    """Apply what a 5.0 CONNECT asked to the session; the keepalive and CONNACK properties."""
    requested = conn.requested
    expiry, announced_expiry = granted_expiry(requested.session_expiry, conn.config.session_expiry)
    # 3.1.2.11.2: the session ends with the connection when the interval is 0.
    state.clean = expiry == 0
    state.expiry = expiry
    state.receive_maximum = requested.receive_maximum
    conn.max_packet_size = requested.maximum_packet_size
    conn.aliases = TopicAliases(conn.config.topic_alias_maximum)
    conn.out_aliases = OutboundAliases(requested.topic_alias_maximum)
    conn.aliasing = bool(conn.out_aliases)
    keepalive, announced_keepalive = granted_keepalive(packet.keepalive, conn.config.max_keepalive)
    return keepalive, connack_properties(
        conn.config,
        assigned_client_id=assigned,
        session_expiry=announced_expiry,
        server_keep_alive=announced_keepalive,
        shared_subscriptions=True,
    )


def connack_code(conn: MqttConnection, code: int) -> int:
    """A 3.1.1 CONNACK code, as a 5.0 reason code on a 5.0 connection."""
    if conn.version == 5:
        return CONNACK_REASON.get(ConnackCode(code), code) if code <= 5 else code
    return code


async def refuse_connect(conn: MqttConnection, code: int, detail: str) -> None:
    """CONNACK with a refusal code, then close (MQTT-3.2.2-5) with 1008.

    ``code`` is a 3.1.1 code (turned into its 5.0 reason on a 5.0 connection)
    or already a 5.0 reason code (0x80 and above).
    """
    code = connack_code(conn, code)
    name = reason_name(code) if code >= 0x80 else ConnackCode(code).name
    reason = f"connection refused: {name}" + (f" ({detail})" if detail else "")
    logger.info("MQTT session %s: %s", conn.session.id, reason)
    if conn.version == 5:
        conn.send_packet(Connack(False, code, Properties(reason_string=detail or None)))
    else:
        conn.send_packet(Connack(False, code))
    await conn.close(CloseCode.POLICY_VIOLATION, reason)


async def _login(conn: MqttConnection, packet: Connect, client_id: str) -> int:
    """The CONNACK code for the credentials; sets the identity on success.

    Without a username the handshake's identity (if any) stands; with one,
    the hub checks it (hub.auth: the user table, a JWT, the hook).
    """
    auth = conn.hub.auth
    allow_anonymous = conn.config.allow_anonymous
    if allow_anonymous is None:
        allow_anonymous = auth.allow_anonymous
    if packet.username is None:
        if conn.session.identity is not None or allow_anonymous:
            return ConnackCode.ACCEPTED
        return ConnackCode.NOT_AUTHORIZED
    if not auth.configured:
        # Nothing can check the password, so the username is not trusted.
        if conn.session.identity is not None or allow_anonymous:
            return ConnackCode.ACCEPTED
        return ConnackCode.BAD_USERNAME_OR_PASSWORD
    credentials = Credentials(
        username=packet.username,
        password=packet.password,
        protocol=conn.session.subprotocol,
        session_id=conn.session.id,
        remote_address=conn.session.remote_address,
        client_id=client_id,
    )
    try:
        identity = await auth.authenticate(credentials)
    except AuthenticationFailed:
        return ConnackCode.BAD_USERNAME_OR_PASSWORD
    except PermissionDenied:
        return ConnackCode.NOT_AUTHORIZED
    except Exception:
        logger.exception("MQTT session %s: the authentication hook failed", conn.session.id)
        return ConnackCode.SERVER_UNAVAILABLE
    conn.set_identity(identity)
    return ConnackCode.ACCEPTED


def _claimant(conn: MqttConnection) -> Claimant:
    identity = conn.session.identity
    rule = conn.config.takeover_access
    return Claimant(
        None if identity is None else identity.user_id,
        any_session=rule is not None and Rule(rule).admits(identity),
    )


def _authorize_will(conn: MqttConnection, will: Will) -> int:
    """A will the user could not publish is refused now (CONNACK 5), not dropped later.

    It is checked again when published, as any publication (hooks included).
    """
    try:
        conn.channels.check_channel(will.topic)
        conn.channels.authorize_publish(conn.context, will.topic)
    except ChannelError as exc:
        logger.info("MQTT session %s: will refused: %s", conn.session.id, exc)
        return ConnackCode.NOT_AUTHORIZED
    return ConnackCode.ACCEPTED


async def on_auth(conn: MqttConnection, packet: Auth) -> None:
    # 4.12: AUTH without an Authentication Method in CONNECT is a Protocol Error.
    raise MqttProtocolError(
        "AUTH without an authentication method", reason_code=PROTOCOL_ERROR_REASON
    )
