"""PUBLISH from the client: checked, handed to the ChannelService, acknowledged (and PUBREL)."""

from __future__ import annotations

from hub.errors import ChannelError, EngineUnavailable
from protocols.mqtt.codec import MqttProtocolError, Puback, Pubcomp, Publish, Pubrec, Pubrel
from protocols.mqtt.connection import MqttConnection, logger
from protocols.mqtt.frames import mqtt5_extras, mqtt_extras
from protocols.mqtt.packets import NO_PROPERTIES, Properties
from protocols.mqtt.reasons import ReasonCode, reason_name
from protocols.mqtt.retain import keep_retained
from protocols.mqtt.v5 import check_publish, payload_format_valid, refusal_reason


async def on_publish(conn: MqttConnection, packet: Publish) -> None:
    conn.stats.received += 1
    if conn.version == 5:
        await _on_publish5(conn, packet)
        return
    if packet.topic.startswith("$"):
        # '$' topics belong to the server (MQTT 4.7.2). Closing would make a
        # clean_session=0 client resend it on every reconnect and loop, so it
        # is acknowledged and dropped, as Mosquitto does for a denied topic.
        conn.hub.metrics.publications_dropped.labels("reserved_topic").inc()
        logger.info(
            "MQTT session %s: publish to %r dropped: '$' topics are the server's",
            conn.session.id,
            packet.topic,
        )
        acknowledge(conn, packet)
        return
    state = conn.state
    packet_id = packet.packet_id
    if packet.qos == 2 and state is not None and packet_id in state.awaiting_pubrel:
        # A resent QoS 2 PUBLISH (DUP): delivered already, acknowledge again.
        conn.send_packet(Pubrec(packet_id))
        return
    try:
        # Stored before the ack; QoS 2: the publication, its copies queued for
        # persistent sessions and the packet id together (one write unit).
        async with conn.hub.backend.unit(wait=packet_id is not None, atomic=packet.qos == 2):
            await publish(conn, packet.topic, packet.payload, packet.qos, packet.retain)
            _hold(conn, packet)
    except EngineUnavailable:
        _not_accepted(conn, packet, packet.topic)
        return
    acknowledge(conn, packet)


async def _on_publish5(conn: MqttConnection, packet: Publish) -> None:
    """A 5.0 PUBLISH: aliases resolved, checked, then acknowledged with a reason code."""
    topic = conn.aliases.resolve(packet)
    check_publish(packet, conn.config.max_qos)
    state = conn.state
    packet_id = packet.packet_id
    if packet.qos == 2 and state is not None:
        if packet_id in state.awaiting_pubrel:
            conn.send_packet(Pubrec(packet_id))  # a resent QoS 2 PUBLISH: acknowledged again
            return
        if len(state.awaiting_pubrel) >= conn.config.max_inflight:
            # MQTT-3.3.4-9: more unacknowledged QoS 2 than the Receive Maximum announced.
            raise MqttProtocolError(
                "receive maximum exceeded", reason_code=ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
            )
    if topic.startswith("$"):
        # '$' topics belong to the server (MQTT 4.7.2): refused, not closed.
        conn.hub.metrics.publications_dropped.labels("reserved_topic").inc()
        acknowledge(conn, packet, ReasonCode.NOT_AUTHORIZED, "'$' topics are the server's")
        return
    if not payload_format_valid(packet):
        acknowledge(conn, packet, ReasonCode.PAYLOAD_FORMAT_INVALID, "payload is not UTF-8")
        return
    try:
        async with conn.hub.backend.unit(wait=packet_id is not None, atomic=packet.qos == 2):
            await publish(
                conn, topic, packet.payload, packet.qos, packet.retain, packet.properties, packet
            )
            _hold(conn, packet)
    except EngineUnavailable:
        # As for 3.1.1: unacknowledged, so the client sends it again on reconnect.
        _not_accepted(conn, packet, topic)
        return
    except ChannelError as exc:
        acknowledge(conn, packet, refusal_reason(exc), str(exc))
        return
    acknowledge(conn, packet)


def acknowledge(conn: MqttConnection, packet: Publish, code: int = 0, text: str = "") -> None:
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
            conn.session.id,
            packet.topic,
            reason_name(code),
            text,
        )
    if packet.qos == 1:
        conn.send_packet(Puback(packet_id, code))
    else:
        # Method A of the spec (4.3.3): delivered now, the id kept until PUBREL.
        if code < 0x80:
            _hold(conn, packet)
        conn.send_packet(Pubrec(packet_id, code))


def _not_accepted(conn: MqttConnection, packet: Publish, topic: str) -> None:
    """The engine (Redis) is away: the PUBLISH is not acknowledged.

    MQTT 3.1.1 has no negative ack: QoS 0 is dropped (and counted); QoS 1/2
    goes unacknowledged, so the client sends it again (with DUP) when it
    reconnects. The connection stays up.
    """
    _unhold(conn, packet)
    if packet.packet_id is None:
        conn.hub.metrics.publications_dropped.labels("engine_unavailable").inc()
    logger.info(
        "MQTT session %s: QoS %d publish to %r not accepted: engine unavailable",
        conn.session.id,
        packet.qos,
        topic,
    )


def _hold(conn: MqttConnection, packet: Publish) -> None:
    """A QoS 2 PUBLISH delivered: its id awaits PUBREL (a resend is then a copy)."""
    state, packet_id = conn.state, packet.packet_id
    held = state is not None and packet_id in state.awaiting_pubrel
    if packet.qos == 2 and state is not None and packet_id is not None and not held:
        state.hold_pubrel(packet_id)


def _unhold(conn: MqttConnection, packet: Publish) -> None:
    """Not stored after all: a resend is no copy."""
    if packet.qos == 2 and conn.state is not None and packet.packet_id is not None:
        conn.state.awaiting_pubrel.discard(packet.packet_id)


async def publish(
    conn: MqttConnection,
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
    if conn.version == 5:
        message = Publish(topic, payload, qos, retain, properties=properties)
        extras = mqtt5_extras(message, conn.client_id)
    else:
        extras = mqtt_extras(qos, retain)
    try:
        publication = await conn.channels.publish_from_client(
            conn.context, topic, payload, extras=extras
        )
        if retain:
            await keep_retained(conn.hub.retained, publication)
    except EngineUnavailable:
        raise
    except ChannelError as exc:
        logger.info("MQTT session %s: publish to %r refused: %s", conn.session.id, topic, exc)
        if packet is not None and conn.version == 5:
            raise
        # MQTT 3.1.1 cannot refuse a PUBLISH: it is acknowledged and dropped,
        # as Mosquitto does for a denied ACL.


async def on_pubrel(conn: MqttConnection, packet: Pubrel) -> None:
    code = 0
    state = conn.state
    if state is not None:
        try:
            # Stored before PUBCOMP: the client may then reuse the id for a new message.
            async with conn.hub.backend.unit():
                released = state.release_pubrel(packet.packet_id)
        except EngineUnavailable:
            return  # no PUBCOMP: the client sends PUBREL again
        if not released and conn.version == 5:
            code = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND  # 3.7.2.1
    conn.send_packet(Pubcomp(packet.packet_id, code))


async def refuse_publish(conn: MqttConnection, packet: Publish) -> None:
    """Over the message rate: 3.1.1 drops the PUBLISH, 5.0 says Quota exceeded."""
    if conn.version == 5:
        # 5.0 can say no: QoS 1/2 gets Quota exceeded, and is not resent.
        conn.aliases.resolve(packet)  # keeps the client's aliases in step
        acknowledge(conn, packet, ReasonCode.QUOTA_EXCEEDED, "message rate exceeded")
    logger.debug(
        "MQTT session %s: QoS %d publish to %r refused: message rate exceeded",
        conn.session.id,
        packet.qos,
        packet.topic,
    )
