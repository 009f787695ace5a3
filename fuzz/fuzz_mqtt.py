"""Fuzz target: the MQTT 3.1.1 packet codec (``protocols.mqtt.codec``).

The first byte sets how the stream is cut (0: whole; n: chunks of n bytes, as
WebSocket frames may cut it), the rest is the byte stream. Properties: only
``MqttProtocolError`` escapes, the cut never changes the outcome, every
decoded packet encodes and decodes back to itself, and a QoS 1/2 PUBLISH
re-addressed with ``with_packet_id`` (the fan-out's shortcut) decodes to the
same PUBLISH with the new id.
"""

from __future__ import annotations

import dataclasses

from protocols.mqtt.codec import (
    MqttProtocolError,
    Packet,
    PacketReader,
    Publish,
    decode,
    encode,
    with_packet_id,
)

# Small enough that the fuzzer reaches the limit check, large enough for real packets.
MAX_PACKET_SIZE = 2048


def _feed(chunks: list[bytes]) -> list[Packet] | None:
    reader = PacketReader(max_packet_size=MAX_PACKET_SIZE)
    packets: list[Packet] = []
    try:
        for chunk in chunks:
            packets += reader.feed(chunk)
    except MqttProtocolError:
        # A spent reader refuses everything after.
        try:
            reader.feed(b"\xc0\x00")
        except MqttProtocolError:
            return None
        raise AssertionError("the reader accepted input after an error") from None
    return packets


def check(data: bytes) -> None:
    if not data:
        return
    step, stream = data[0], data[1:]
    whole = _feed([stream])
    if step:
        chunked = _feed([stream[i : i + step] for i in range(0, len(stream), step)])
        if chunked != whole:
            raise AssertionError(f"cut every {step} bytes: {chunked!r} != {whole!r}")
    for packet in whole or []:
        frame = encode(packet)
        if decode(frame) != packet:
            raise AssertionError(f"round trip changed {packet!r}")
        if isinstance(packet, Publish) and packet.qos:
            new_id = (packet.packet_id or 0) % 0xFFFF + 1
            patched = decode(with_packet_id(frame, new_id, dup=not packet.dup))
            expected = dataclasses.replace(packet, packet_id=new_id, dup=not packet.dup)
            if patched != expected:
                raise AssertionError(f"with_packet_id gave {patched!r}, not {expected!r}")
