"""The data types of MQTT (3.1.1 section 1.5, 5.0 section 1.5), shared by both codecs.

Writers raise ValueError for values that do not fit; readers work on a
memoryview of one packet body and raise :class:`MqttProtocolError` (reason
0x81, Malformed Packet) when the body ends early or a string is not
well-formed UTF-8 (5.0 1.5.4, 3.1.1 1.5.3).
"""

from __future__ import annotations

import struct
from typing import Final

from .packets import MqttProtocolError

#: Largest variable byte integer (4 bytes): remaining lengths, property lengths,
#: subscription identifiers.
MAX_VARINT: Final = 268_435_455

U16: Final = struct.Struct(">H")
BYTE: Final = tuple(bytes((value,)) for value in range(256))


# --- writing ------------------------------------------------------------------


def varint(value: int) -> bytes:
    """Encode a variable byte integer as 1 to 4 bytes; ValueError if out of range."""
    if 0 <= value < 128:
        return BYTE[value]
    if not 0 <= value <= MAX_VARINT:
        raise ValueError(f"variable byte integer {value} out of range")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(first: int, parts: list[bytes]) -> bytes:
    """Join a fixed header and body parts, copying each part once."""
    length = sum(map(len, parts))
    return b"".join([BYTE[first], varint(length), *parts])


def u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit in 16 bits")
    return U16.pack(value)


def packet_id(value: int | None) -> int:
    if value is None or not 0 < value <= 0xFFFF:
        raise ValueError(f"packet id {value!r} is not in 1..65535")
    return value


def qos(value: int) -> int:
    if not 0 <= value <= 2:
        raise ValueError(f"QoS {value!r} is not 0, 1 or 2")
    return value


def binary(data: bytes, what: str) -> bytes:
    return u16(len(data), f"{what} length") + data


def string(text: str, what: str) -> bytes:
    return binary(text.encode(), what)


# --- reading ------------------------------------------------------------------


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 1) -> tuple[int, int] | None:
    """Decode a variable byte integer starting at ``offset``.

    Return ``(value, offset just past it)``, or None when ``data`` ends first.
    Raise MqttProtocolError as soon as a fourth byte asks for a fifth.
    """
    value = 0
    shift = 0
    end = len(data)
    while offset < end:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
        if shift == 28:
            raise MqttProtocolError("variable byte integer is longer than 4 bytes")
    return None


def read_varint(body: memoryview, pos: int, what: str) -> tuple[int, int]:
    """A variable byte integer inside a packet body: running out is malformed."""
    decoded = decode_varint(body, pos)
    if decoded is None:
        raise MqttProtocolError(f"packet ends inside the {what}")
    return decoded


def read_u16(body: memoryview, pos: int, what: str) -> int:
    if pos + 2 > len(body):
        raise MqttProtocolError(f"packet ends inside the {what}")
    return (body[pos] << 8) | body[pos + 1]


def read_packet_id(body: memoryview, pos: int) -> int:
    value = read_u16(body, pos, "packet id")
    if value == 0:
        raise MqttProtocolError("packet id 0")
    return value


def read_binary(body: memoryview, pos: int, what: str) -> tuple[memoryview, int]:
    start = pos + 2
    if start > len(body):
        raise MqttProtocolError(f"packet ends inside the {what} length")
    end = start + ((body[pos] << 8) | body[pos + 1])
    if end > len(body):
        raise MqttProtocolError(f"packet ends inside the {what}")
    return body[start:end], end


def read_string(body: memoryview, pos: int, what: str) -> tuple[str, int]:
    raw, end = read_binary(body, pos, what)
    try:
        # tobytes().decode() beats str(raw, "utf-8") on short strings.
        text = raw.tobytes().decode()
    except UnicodeDecodeError:
        raise MqttProtocolError(f"{what} is not well-formed UTF-8") from None
    if "\x00" in text:
        raise MqttProtocolError(f"{what} contains U+0000")
    return text, end


def check_end(body: memoryview, pos: int, name: str) -> None:
    if pos != len(body):
        raise MqttProtocolError(f"{name} has {len(body) - pos} bytes past its contents")
