"""Fuzz target: WAMP messages (``protocols.wamp.codec``) under each serializer.

The first byte picks the serializer (json, msgpack, cbor) and the frame type
(the serializer's own, or the wrong one); the rest is the frame. Properties:
``decode`` raises only ``WampProtocolError``; a decoded message encodes (or is
refused with ``WampProtocolError``), and encoding is a fixed point: the
message decoded from its own encoding encodes to the same frame. The router
relays payloads between serializers, so the message must also encode for the
other two, or be refused with ``WampProtocolError``, and what they encode must
decode again.
"""

from __future__ import annotations

from protocols.wamp.codec import WampProtocolError
from protocols.wamp.serializers import CBOR, JSON, MSGPACK, Serializer

SERIALIZERS: tuple[Serializer, ...] = (JSON, MSGPACK, CBOR)


def check(data: bytes) -> None:
    if not data:
        return
    selector, raw = data[0], data[1:]
    serializer = SERIALIZERS[selector % 3]
    wrong_type = bool(selector & 0x80)
    frame: str | bytes = raw
    # A text frame is valid UTF-8 (websockets checks it before we see it).
    if serializer.is_binary == wrong_type:
        frame = raw.decode("utf-8", "replace")
    try:
        message = serializer.decode(frame)
    except WampProtocolError:
        return
    try:
        encoded = serializer.encode(message)
    except WampProtocolError:
        return  # refused before sending, which the router answers cleanly
    again = serializer.decode(encoded)
    if serializer.encode(again) != encoded:
        raise AssertionError(f"{serializer.name}: re-encoding {message!r} is not stable")
    for other in SERIALIZERS:
        try:
            relayed = other.encode_bytes(message)
        except WampProtocolError:
            continue
        other.decode(relayed.decode() if not other.is_binary else relayed)
