"""Pure MQTT codec (3.1.1, and 5.0 through ``codec5``): typed packets <-> bytes.

No sockets, no asyncio. ``encode(packet, version)`` turns any packet into
bytes; ``PacketReader.feed(chunk)`` turns a byte stream cut anywhere (MQTT
over WebSocket, section 6: packets may span frames; TCP: segments) into
packets. A reader speaks 3.1.1 until it decodes a 5.0 CONNECT, then 5.0
(``PacketReader.version``). Decoding checks every rule of the spec that can be
checked on one packet and raises :class:`MqttProtocolError` for anything else;
rules about the order of packets belong to the connection handler.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from . import codec5
from .packets import (
    PACKET_TOO_LARGE,
    SUBACK_FAILURE,
    Auth,
    Connack,
    ConnackCode,
    Connect,
    Disconnect,
    MqttProtocolError,
    Packet,
    PacketType,
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
)
from .topics import validate_topic_filter, validate_topic_name
from .wire import BYTE as _BYTE
from .wire import MAX_VARINT, decode_varint, varint
from .wire import U16 as _U16
from .wire import binary as _binary
from .wire import check_end as _check_end
from .wire import frame as _frame
from .wire import packet_id as _packet_id
from .wire import qos as _qos
from .wire import read_binary as _read_binary
from .wire import read_packet_id as _read_packet_id
from .wire import read_string as _read_string
from .wire import string as _string
from .wire import u16 as _u16

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "MAX_PACKET_SIZE",
    "MAX_REMAINING_LENGTH",
    "SUBACK_FAILURE",
    "Auth",
    "Connack",
    "ConnackCode",
    "Connect",
    "Disconnect",
    "MqttProtocolError",
    "Packet",
    "PacketReader",
    "PacketType",
    "Pingreq",
    "Pingresp",
    "Puback",
    "Pubcomp",
    "Publish",
    "Pubrec",
    "Pubrel",
    "Suback",
    "Subscribe",
    "Unsuback",
    "Unsubscribe",
    "Will",
    "decode",
    "decode_remaining_length",
    "encode",
    "encode_remaining_length",
    "with_packet_id",
]

#: Largest remaining length the 4-byte variable-length encoding can carry.
MAX_REMAINING_LENGTH: Final = MAX_VARINT
#: Largest whole packet: type byte, 4 bytes of remaining length, the rest.
MAX_PACKET_SIZE: Final = 1 + 4 + MAX_REMAINING_LENGTH
#: PacketReader's default limit on a whole packet, like websockets' max_size.
DEFAULT_MAX_PACKET_SIZE: Final = 1 << 20

_HEADER_U16: Final = struct.Struct(">BBH")  # first byte, remaining length 2, packet id
_CONNECT_HEAD: Final = struct.Struct(">BBH")  # protocol level, connect flags, keepalive

# Protocol names a server accepts, with the one level each implies.
_PROTOCOL_LEVELS: Final = {"MQTT": 4, "MQIsdp": 3}


# --- remaining length ---------------------------------------------------------


#: The remaining length is a variable byte integer (2.2.3).
encode_remaining_length = varint
decode_remaining_length = decode_varint


# --- encoding -----------------------------------------------------------------


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    will = packet.will
    if will is not None:
        flags |= 0x04 | (_qos(will.qos) << 3) | (0x20 if will.retain else 0)
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    if not 0 <= packet.protocol_level <= 0xFF:
        raise ValueError(f"protocol level {packet.protocol_level} does not fit in 8 bits")
    parts = [
        _string(packet.protocol_name, "protocol name"),
        bytes((packet.protocol_level, flags)),
        _u16(packet.keepalive, "keepalive"),
        _string(packet.client_id, "client id"),
    ]
    if will is not None:
        parts += [_string(will.topic, "will topic"), _binary(will.payload, "will payload")]
    if packet.username is not None:
        parts.append(_string(packet.username, "username"))
    if packet.password is not None:
        parts.append(_binary(packet.password, "password"))
    return _frame(0x10, parts)


def _encode_connack(packet: Connack) -> bytes:
    if not 0 <= packet.return_code <= 0xFF:
        raise ValueError(f"return code {packet.return_code} does not fit in 8 bits")
    return bytes((0x20, 2, 1 if packet.session_present else 0, packet.return_code))


def _encode_publish(packet: Publish) -> bytes:
    # Hot path: one join copies the payload once.
    qos = _qos(packet.qos)
    first = 0x30 | (qos << 1)
    if packet.retain:
        first |= 0x01
    if packet.dup:
        if not qos:
            raise ValueError("DUP must not be set on a QoS 0 PUBLISH")
        first |= 0x08
    topic = packet.topic.encode()
    if qos:
        head = _u16(len(topic), "topic length") + topic + _U16.pack(_packet_id(packet.packet_id))
    elif packet.packet_id is not None:
        raise ValueError("a QoS 0 PUBLISH has no packet id")
    else:
        head = _u16(len(topic), "topic length") + topic
    return _frame(first, [head, packet.payload])


def _ack_encoder(first: int) -> Callable[[Any], bytes]:
    def encode_ack(packet: Any) -> bytes:
        return _HEADER_U16.pack(first, 2, _packet_id(packet.packet_id))

    return encode_ack


def _encode_subscribe(packet: Subscribe) -> bytes:
    if not packet.subscriptions:
        raise ValueError("SUBSCRIBE needs at least one topic filter")
    parts = [_U16.pack(_packet_id(packet.packet_id))]
    for topic_filter, qos in packet.subscriptions:
        parts += [_string(topic_filter, "topic filter"), _BYTE[_qos(qos)]]
    return _frame(0x82, parts)


def _encode_suback(packet: Suback) -> bytes:
    if not packet.return_codes:
        raise ValueError("SUBACK needs at least one return code")
    for code in packet.return_codes:
        if code not in (0, 1, 2, SUBACK_FAILURE):
            raise ValueError(f"SUBACK return code {code!r} is not 0, 1, 2 or 0x80")
    return _frame(0x90, [_U16.pack(_packet_id(packet.packet_id)), bytes(packet.return_codes)])


def _encode_unsubscribe(packet: Unsubscribe) -> bytes:
    if not packet.filters:
        raise ValueError("UNSUBSCRIBE needs at least one topic filter")
    parts = [_U16.pack(_packet_id(packet.packet_id))]
    parts += [_string(topic_filter, "topic filter") for topic_filter in packet.filters]
    return _frame(0xA2, parts)


_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    Publish: _encode_publish,
    Puback: _ack_encoder(0x40),
    Pubrec: _ack_encoder(0x50),
    Pubrel: _ack_encoder(0x62),
    Pubcomp: _ack_encoder(0x70),
    Connect: _encode_connect,
    Connack: _encode_connack,
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _ack_encoder(0xB0),
    Pingreq: lambda _: b"\xc0\x00",
    Pingresp: lambda _: b"\xd0\x00",
    Disconnect: lambda _: b"\xe0\x00",
}


def encode(packet: Packet, version: int = 4) -> bytes:
    """Encode one packet, fixed header included, as MQTT 3.1.1 (4) or 5.0 (5).

    Raise ValueError when a numeric field is out of range (QoS, packet id,
    return codes, lengths); strings are not checked, see ``topics``. A
    CONNECT's own ``protocol_level`` decides its form. 3.1.1 ignores the 5.0
    fields (reason codes, properties); AUTH has no 3.1.1 form (TypeError).
    """
    if version == codec5.PROTOCOL_LEVEL or (
        isinstance(packet, Connect) and packet.protocol_level == codec5.PROTOCOL_LEVEL
    ):
        return codec5.encode5(packet)
    try:
        encoder = _ENCODERS[type(packet)]
    except KeyError:
        raise TypeError(f"not an MQTT packet: {packet!r}") from None
    return encoder(packet)


def with_packet_id(frame: bytes, packet_id: int, *, dup: bool = False) -> bytes:
    """A copy of an encoded QoS 1/2 PUBLISH with another packet id and DUP flag.

    A fan-out encodes a PUBLISH once and patches two bytes per subscriber,
    instead of encoding topic and payload again for each one.
    """
    first = frame[0]
    if first >> 4 != PacketType.PUBLISH or not first & 0x06:
        raise ValueError("not an encoded QoS 1 or 2 PUBLISH")
    pos = 1
    while frame[pos] & 0x80:
        pos += 1
    pos += 1  # past the remaining length
    pos += 2 + ((frame[pos] << 8) | frame[pos + 1])  # past the topic
    out = bytearray(frame)
    out[pos : pos + 2] = _U16.pack(_packet_id(packet_id))
    out[0] = first | 0x08 if dup else first & ~0x08
    return bytes(out)


# --- decoding: fixed header ---------------------------------------------------


# Per packet type: the fixed-header flags it must carry (None for PUBLISH, whose
# flags mean DUP/QoS/RETAIN) and the remaining-length bounds of a valid body.
_TYPE_RULES: Final[dict[PacketType, tuple[int | None, int, int]]] = {
    # "MQTT", level, flags, keepalive, empty client id
    PacketType.CONNECT: (0b0000, 12, MAX_REMAINING_LENGTH),
    PacketType.CONNACK: (0b0000, 2, 2),
    # topic length, then 2 more for the packet id when QoS > 0
    PacketType.PUBLISH: (None, 2, MAX_REMAINING_LENGTH),
    PacketType.PUBACK: (0b0000, 2, 2),
    PacketType.PUBREC: (0b0000, 2, 2),
    PacketType.PUBREL: (0b0010, 2, 2),
    PacketType.PUBCOMP: (0b0000, 2, 2),
    # packet id, one filter length, one requested QoS
    PacketType.SUBSCRIBE: (0b0010, 5, MAX_REMAINING_LENGTH),
    # packet id, one return code
    PacketType.SUBACK: (0b0000, 3, MAX_REMAINING_LENGTH),
    # packet id, one filter length
    PacketType.UNSUBSCRIBE: (0b0010, 4, MAX_REMAINING_LENGTH),
    PacketType.UNSUBACK: (0b0000, 2, 2),
    PacketType.PINGREQ: (0b0000, 0, 0),
    PacketType.PINGRESP: (0b0000, 0, 0),
    PacketType.DISCONNECT: (0b0000, 0, 0),
}


def _header_rule(
    first: int, type_rules: dict[PacketType, tuple[int | None, int, int]]
) -> tuple[int, int] | str:
    """Remaining-length bounds for a first header byte, or why it is malformed."""
    kind, flags = first >> 4, first & 0x0F
    if kind not in type_rules:
        return f"reserved packet type {kind}"
    packet_type = PacketType(kind)
    required_flags, low, high = type_rules[packet_type]
    if required_flags is None:  # PUBLISH
        qos = (flags >> 1) & 0x03
        if qos == 3:
            return "PUBLISH with QoS 3"
        if flags & 0x08 and qos == 0:
            return "PUBLISH with DUP set at QoS 0"
        return (low + 2 if qos else low), high
    if flags != required_flags:
        return f"{packet_type.name} with reserved header flags {flags:#06b}"
    return low, high


# Precomputed for all 256 first bytes: one lookup validates type and flags.
_HEADER_RULES: Final = tuple(_header_rule(first, _TYPE_RULES) for first in range(256))
_HEADER_RULES5: Final = tuple(_header_rule(first, codec5.TYPE_RULES) for first in range(256))


# --- decoding: variable header and payload ------------------------------------


def _decode_connect(flags: int, body: memoryview) -> Connect:
    name, pos = _read_string(body, 0, "protocol name")
    level = _PROTOCOL_LEVELS.get(name)
    if level is None:
        raise MqttProtocolError(f"unknown protocol name {name!r}")
    if pos + 4 > len(body):
        raise MqttProtocolError("CONNECT ends inside its variable header")
    protocol_level, connect_flags, keepalive = _CONNECT_HEAD.unpack_from(body, pos)
    pos += 4
    # Checked before the rest: a newer client's CONNECT may not parse as 3.1.1.
    if protocol_level != level:
        raise MqttProtocolError(
            f"unsupported protocol level {protocol_level} for {name}",
            connack_code=ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION,
        )
    if connect_flags & 0x01:
        raise MqttProtocolError("CONNECT reserved flag is set")
    will_flag = connect_flags & 0x04
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = bool(connect_flags & 0x20)
    if will_qos == 3:
        raise MqttProtocolError("will QoS 3")
    if not will_flag and (will_qos or will_retain):
        raise MqttProtocolError("will QoS or retain set without the will flag")
    has_password = connect_flags & 0x40
    has_username = connect_flags & 0x80
    if has_password and not has_username:
        raise MqttProtocolError("password flag set without the username flag")
    clean_session = bool(connect_flags & 0x02)

    client_id, pos = _read_string(body, pos, "client id")
    will = None
    if will_flag:
        will_topic, pos = _read_string(body, pos, "will topic")
        validate_topic_name(will_topic)
        will_payload, pos = _read_binary(body, pos, "will payload")
        will = Will(will_topic, bytes(will_payload), will_qos, will_retain)
    username = password = None
    if has_username:
        username, pos = _read_string(body, pos, "username")
    if has_password:
        raw_password, pos = _read_binary(body, pos, "password")
        password = bytes(raw_password)
    _check_end(body, pos, "CONNECT")

    # 3.1.1 allows an empty id only with a clean session; 3.1 never did.
    if not client_id and (not clean_session or protocol_level == 3):
        raise MqttProtocolError(
            "empty client id without clean session",
            connack_code=ConnackCode.IDENTIFIER_REJECTED,
        )
    return Connect(
        protocol_name=name,
        protocol_level=protocol_level,
        clean_session=clean_session,
        keepalive=keepalive,
        client_id=client_id,
        will=will,
        username=username,
        password=password,
    )


def _decode_connack(flags: int, body: memoryview) -> Connack:
    ack_flags, return_code = body[0], body[1]
    if ack_flags & 0xFE:
        raise MqttProtocolError("CONNACK reserved flags are set")
    if return_code > ConnackCode.NOT_AUTHORIZED:
        raise MqttProtocolError(f"reserved CONNACK return code {return_code}")
    if ack_flags and return_code:
        raise MqttProtocolError("session present set on a refused connection")
    return Connack(bool(ack_flags), return_code)


def _decode_publish(flags: int, body: memoryview) -> Publish:
    # QoS 3 and DUP at QoS 0 were refused with the fixed header.
    qos = (flags >> 1) & 0x03
    topic, pos = _read_string(body, 0, "topic name")
    # Hot path: the wire already bounds the length and _read_string refused U+0000.
    if not topic or "+" in topic or "#" in topic:
        validate_topic_name(topic)  # raises with the precise reason
    packet_id = None
    if qos:
        packet_id = _read_packet_id(body, pos)
        pos += 2
    return Publish(topic, bytes(body[pos:]), qos, bool(flags & 0x01), bool(flags & 0x08), packet_id)


def _decode_subscribe(flags: int, body: memoryview) -> Subscribe:
    packet_id = _read_packet_id(body, 0)
    pos, end = 2, len(body)
    subscriptions = []
    while pos < end:
        topic_filter, pos = _read_string(body, pos, "topic filter")
        validate_topic_filter(topic_filter)
        if pos == end:
            raise MqttProtocolError("SUBSCRIBE ends before a requested QoS")
        options = body[pos]
        pos += 1
        if options & 0xFC:
            raise MqttProtocolError(f"SUBSCRIBE options {options:#04x} set reserved bits")
        if options == 3:
            raise MqttProtocolError("SUBSCRIBE requests QoS 3")
        subscriptions.append((topic_filter, options))
    if not subscriptions:
        raise MqttProtocolError("SUBSCRIBE without topic filters")
    return Subscribe(packet_id, tuple(subscriptions))


def _decode_suback(flags: int, body: memoryview) -> Suback:
    packet_id = _read_packet_id(body, 0)
    codes = tuple(body[2:])
    for code in codes:
        if code not in (0, 1, 2, SUBACK_FAILURE):
            raise MqttProtocolError(f"reserved SUBACK return code {code:#04x}")
    return Suback(packet_id, codes)


def _decode_unsubscribe(flags: int, body: memoryview) -> Unsubscribe:
    packet_id = _read_packet_id(body, 0)
    pos, end = 2, len(body)
    filters = []
    while pos < end:
        topic_filter, pos = _read_string(body, pos, "topic filter")
        validate_topic_filter(topic_filter)
        filters.append(topic_filter)
    if not filters:
        raise MqttProtocolError("UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, tuple(filters))


def _id_decoder(cls: Callable[[int], Packet]) -> Callable[[int, memoryview], Packet]:
    def decode_ack(flags: int, body: memoryview) -> Packet:
        return cls(_read_packet_id(body, 0))

    return decode_ack


def _constant(packet: Packet) -> Callable[[int, memoryview], Packet]:
    return lambda flags, body: packet


def _reserved(flags: int, body: memoryview) -> Packet:
    # Unreachable: _HEADER_RULES refuses types 0 and 15 (AUTH is 5.0 only) first.
    raise MqttProtocolError("reserved packet type")


# Indexed by packet type; bodies reach them with length and flags already checked.
_DECODERS: Final[tuple[Callable[[int, memoryview], Packet], ...]] = (
    _reserved,
    _decode_connect,
    _decode_connack,
    _decode_publish,
    _id_decoder(Puback),
    _id_decoder(Pubrec),
    _id_decoder(Pubrel),
    _id_decoder(Pubcomp),
    _decode_subscribe,
    _decode_suback,
    _decode_unsubscribe,
    _id_decoder(Unsuback),
    _constant(Pingreq()),
    _constant(Pingresp()),
    _constant(Disconnect()),
    _reserved,
)


# --- decoding: streams --------------------------------------------------------


class PacketReader:
    """Incremental decoder: feed it byte chunks, get whole packets back.

    Chunks may be cut anywhere: a packet may span many chunks and a chunk may
    hold many packets. A packet over ``max_packet_size`` bytes, counted whole
    (fixed header, remaining length and body), is refused as soon as its fixed
    header arrives, before any of the body is kept.
    After an MqttProtocolError the reader is spent: every later feed raises.

    ``version`` is the protocol level the bodies are read as: 4 (3.1.1, and
    3 for MQTT 3.1, which reads the same) until a 5.0 CONNECT arrives, which
    switches the reader to 5 before that CONNECT's body is parsed, so an error
    in it already carries a 5.0 reason code. A client's reader is made with
    the version it asked for.
    """

    __slots__ = (
        "_buffer",
        "_decoders",
        "_error",
        "_max_packet_size",
        "_pending",
        "_rules",
        "version",
    )

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, version: int = 4) -> None:
        if not 0 <= max_packet_size <= MAX_PACKET_SIZE:
            raise ValueError(f"max_packet_size must be in 0..{MAX_PACKET_SIZE}")
        self._max_packet_size = max_packet_size
        self._buffer = bytearray()
        # The whole size of the buffered packet once its fixed header is in
        # (0: none, or its header is not whole yet).
        self._pending = 0
        self._error: MqttProtocolError | None = None
        self.version = 4
        self._rules = _HEADER_RULES
        self._decoders = _DECODERS
        if version == codec5.PROTOCOL_LEVEL:
            self._use_version5()

    def _use_version5(self) -> None:
        self.version = codec5.PROTOCOL_LEVEL
        self._rules = _HEADER_RULES5
        self._decoders = codec5.DECODERS

    @property
    def buffered(self) -> int:
        """Bytes held back as the start of an incomplete packet."""
        return len(self._buffer)

    @property
    def missing(self) -> int:
        """Bytes the buffered packet still lacks, once its size is known (else 0).

        A caller feeding small chunks may feed this many at once: a 60 KB
        PUBLISH fed a KiB at a time was sixty feeds, each decoding its header again.
        """
        return max(0, self._pending - len(self._buffer))

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Consume a chunk and return the packets it completes, in order.

        Raise MqttProtocolError on malformed input; packets completed earlier
        in the same chunk are dropped, since the connection must close anyway.
        """
        if self._error is not None:
            raise MqttProtocolError(
                f"reader failed earlier: {self._error}",
                connack_code=self._error.connack_code,
                reason_code=self._error.reason_code,
            )
        packets: list[Packet] = []
        try:
            if self._buffer:
                self._buffer += data
                if len(self._buffer) < self._pending:
                    return packets  # still short of the packet's size: nothing to parse
                consumed = self._parse(self._buffer, packets)
                del self._buffer[:consumed]
            else:
                # Common case: whole packets in one chunk, decoded without a copy.
                consumed = self._parse(data, packets)
                if consumed < len(data):
                    self._buffer = bytearray(memoryview(data)[consumed:])
        except MqttProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            raise
        return packets

    def _parse(self, data: bytes | bytearray | memoryview, packets: list[Packet]) -> int:
        """Append every complete packet in ``data``; return the bytes they used."""
        pos = 0
        self._pending = 0
        with memoryview(data) as view:
            size = len(view)
            while pos < size:
                first = view[pos]
                rule = self._rules[first]
                if isinstance(rule, str):
                    raise MqttProtocolError(rule)
                header = decode_remaining_length(view, pos + 1)
                if header is None:
                    break
                length, start = header
                # The whole packet counts, fixed header included (5.0 3.1.2.11.4):
                # the size the hub announces as its Maximum Packet Size.
                total = start - pos + length
                if total > self._max_packet_size:
                    raise MqttProtocolError(
                        f"packet of {total} bytes exceeds the limit {self._max_packet_size}",
                        reason_code=PACKET_TOO_LARGE,
                    )
                low, high = rule
                if not low <= length <= high:
                    name = PacketType(first >> 4).name
                    raise MqttProtocolError(f"remaining length {length} is invalid for {name}")
                end = start + length
                if end > size:
                    self._pending = end - pos
                    break
                body = view[start:end]
                kind = first >> 4
                if kind == PacketType.CONNECT and codec5.is_connect5(body):
                    self._use_version5()
                packets.append(self._decoders[kind](first & 0x0F, body))
                pos = end
        return pos


def decode(data: bytes | bytearray | memoryview, version: int = 4) -> Packet:
    """Decode exactly one whole packet; MqttProtocolError if short or followed by more."""
    reader = PacketReader(MAX_PACKET_SIZE, version)
    packets = reader.feed(data)
    if len(packets) != 1 or reader.buffered:
        raise MqttProtocolError(
            f"expected one whole packet, got {len(packets)} and {reader.buffered} more bytes"
        )
    return packets[0]
