"""Fuzz target: the MQTT 5.0 codec (``protocols.mqtt.codec5`` and ``properties``).

The first byte sets how the stream is cut (0: whole; n: chunks of n bytes),
the rest is a 5.0 byte stream (the reader starts at version 5, as after a
5.0 CONNECT). Properties: only ``MqttProtocolError`` escapes and its reason
code is 0x81, 0x82 or 0x95; the cut never changes the outcome; every decoded
packet encodes and decodes back to itself; a QoS 1/2 PUBLISH re-addressed
with ``with_packet_id`` decodes to the same PUBLISH with the new id.
Properties are where MQTT 5 parsers break: their lengths nest in the packet's.
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

MAX_PACKET_SIZE = 2048
VERSION = 5
_REASONS = (0x81, 0x82, 0x95)


def _feed(chunks: list[bytes]) -> list[Packet] | None:
    reader = PacketReader(max_packet_size=MAX_PACKET_SIZE, version=VERSION)
    packets: list[Packet] = []
    try:
        for chunk in chunks:
            packets += reader.feed(chunk)
    except MqttProtocolError as exc:
        if exc.reason_code not in _REASONS:
            raise AssertionError(f"reason code {exc.reason_code:#04x} for {exc}") from None
        return None
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
        frame = encode(packet, VERSION)
        if decode(frame, VERSION) != packet:
            raise AssertionError(f"round trip changed {packet!r}")
        if isinstance(packet, Publish) and packet.qos:
            new_id = (packet.packet_id or 0) % 0xFFFF + 1
            patched = decode(with_packet_id(frame, new_id, dup=not packet.dup), VERSION)
            expected = dataclasses.replace(packet, packet_id=new_id, dup=not packet.dup)
            if patched != expected:
                raise AssertionError(f"with_packet_id gave {patched!r}, not {expected!r}")
