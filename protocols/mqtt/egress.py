"""Delivery to the client: its acknowledgements of the PUBLISHes the session sent.

The PUBLISHes themselves go out through the SessionState (QoS flows, the
queue) and the connection's ``send``; these advance their flows.
"""

from __future__ import annotations

from hub.errors import EngineUnavailable
from protocols.mqtt.codec import Puback, Pubcomp, Pubrec
from protocols.mqtt.connection import MqttConnection


async def on_puback(conn: MqttConnection, packet: Puback) -> None:
    if conn.state is not None:
        conn.state.puback(packet.packet_id)


async def on_pubrec(conn: MqttConnection, packet: Pubrec) -> None:
    state = conn.state
    if state is None:
        return
    if packet.reason_code >= 0x80:
        # 4.3.3: a refusing PUBREC ends the flow; no PUBREL.
        state.refused(packet.packet_id)
        return
    try:
        # Stored before PUBREL: a client that got PUBREL has handed the message on.
        async with conn.hub.backend.unit():
            release = state.pubrec(packet.packet_id)
    except EngineUnavailable:
        return  # no PUBREL yet: the client sends PUBREC again on reconnect
    if release:
        state.send_pubrel(packet.packet_id)


async def on_pubcomp(conn: MqttConnection, packet: Pubcomp) -> None:
    if conn.state is not None:
        conn.state.pubcomp(packet.packet_id)
