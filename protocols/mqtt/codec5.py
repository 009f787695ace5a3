"""Pure MQTT 5.0 packet bodies: typed packets <-> bytes, no sockets, no asyncio.

``codec.encode(packet, version=5)`` and a ``codec.PacketReader`` that has seen
a 5.0 CONNECT (or was made with ``version=5``) come here; the fixed header,
streaming and size limit stay in ``codec``. Every decoding error raises
:class:`MqttProtocolError` with the reason code of section 4.13: 0x81
Malformed Packet for what cannot be parsed, 0x82 Protocol Error where the
spec says so. Clause numbers below are those of the MQTT 5.0 OASIS Standard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .packets import (
    NO_LOCAL,
    PROTOCOL_ERROR,
    RETAIN_HANDLING_SHIFT,
    Auth,
    Connack,
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
from .properties import Where, decode_properties, encode_properties
from .reasons import (
    AUTH_REASONS,
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    PUBREL_REASONS,
    SUBACK_REASONS,
    UNSUBACK_REASONS,
)
from .topics import validate_topic_filter, validate_topic_name
from .wire import (
    BYTE,
    MAX_VARINT,
    U16,
    binary,
    check_end,
    decode_varint,
    frame,
    packet_id,
    qos,
    read_binary,
    read_packet_id,
    read_string,
    string,
    u16,
    varint,
)
from .wire import frame as frame_of

PROTOCOL_LEVEL: Final = 5
#: The first bytes of every 5.0 CONNECT body: protocol name "MQTT", level 5 (3.1.2.1-2).
CONNECT_PREFIX: Final = b"\x00\x04MQTT\x05"
SHARED_PREFIX: Final = "$share/"


def _protocol_error(message: str) -> MqttProtocolError:
    return MqttProtocolError(message, reason_code=PROTOCOL_ERROR)


def _reason(code: int, allowed: frozenset[int], what: str) -> int:
    if code not in allowed:
        raise ValueError(f"{code:#04x} is not a {what} reason code")
    return code


def _read_reason(code: int, allowed: frozenset[int], what: str) -> int:
    if code not in allowed:
        raise _protocol_error(f"reason code {code:#04x} is not allowed in {what}")
    return code


# --- encoding -----------------------------------------------------------------


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    will = packet.will
    if will is not None:
        flags |= 0x04 | (qos(will.qos) << 3) | (0x20 if will.retain else 0)
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    parts = [
        CONNECT_PREFIX,
        BYTE[flags],
        u16(packet.keepalive, "keepalive"),
        encode_properties(packet.properties, Where.CONNECT),
        string(packet.client_id, "client id"),
    ]
    if will is not None:
        parts += [
            encode_properties(will.properties, Where.WILL),
            string(will.topic, "will topic"),
            binary(will.payload, "will payload"),
        ]
    if packet.username is not None:
        parts.append(string(packet.username, "username"))
    if packet.password is not None:
        parts.append(binary(packet.password, "password"))
    return frame(0x10, parts)


def _encode_connack(packet: Connack) -> bytes:
    code = _reason(packet.return_code, CONNACK_REASONS, "CONNACK")
    if code and packet.session_present:
        raise ValueError("session present on a refused connection (3.2.2-6)")
    head = bytes((1 if packet.session_present else 0, code))
    return frame(0x20, [head, encode_properties(packet.properties, Where.CONNACK)])


def _encode_publish(packet: Publish) -> bytes:
    level = qos(packet.qos)
    first = 0x30 | (level << 1) | (0x01 if packet.retain else 0)
    if packet.dup:
        if not level:
            raise ValueError("DUP must not be set on a QoS 0 PUBLISH")
        first |= 0x08
    topic = string(packet.topic, "topic")
    if level:
        head = topic + U16.pack(packet_id(packet.packet_id))
    elif packet.packet_id is not None:
        raise ValueError("a QoS 0 PUBLISH has no packet id")
    else:
        head = topic
    props = encode_properties(packet.properties, Where.PUBLISH)
    return frame(first, [head, props, packet.payload])


def _ack_encoder(first: int, allowed: frozenset[int], what: str) -> Callable[[Any], bytes]:
    def encode_ack(packet: Any) -> bytes:
        head = U16.pack(packet_id(packet.packet_id))
        code = _reason(packet.reason_code, allowed, what)
        if not packet.properties:
            # 3.4.2.1: the reason code may go when it is 0 and there are no properties.
            return frame(first, [head] if not code else [head, BYTE[code]])
        return frame(first, [head, BYTE[code], encode_properties(packet.properties, Where.PUBACK)])

    return encode_ack


def _check_options(options: int) -> int:
    if options & 0xC0 or options & 0x03 == 3 or options >> RETAIN_HANDLING_SHIFT == 3:
        raise ValueError(f"subscription options {options:#04x} are not valid (3.8.3.1)")
    return options


def _encode_subscribe(packet: Subscribe) -> bytes:
    if not packet.subscriptions:
        raise ValueError("SUBSCRIBE needs at least one topic filter")
    parts = [
        U16.pack(packet_id(packet.packet_id)),
        encode_properties(packet.properties, Where.SUBSCRIBE),
    ]
    for topic_filter, options in packet.subscriptions:
        parts += [string(topic_filter, "topic filter"), BYTE[_check_options(options)]]
    return frame(0x82, parts)


def _encode_suback(packet: Suback) -> bytes:
    if not packet.return_codes:
        raise ValueError("SUBACK needs at least one reason code")
    codes = bytes(_reason(code, SUBACK_REASONS, "SUBACK") for code in packet.return_codes)
    head = U16.pack(packet_id(packet.packet_id))
    return frame(0x90, [head, encode_properties(packet.properties, Where.SUBACK), codes])


def _encode_unsubscribe(packet: Unsubscribe) -> bytes:
    if not packet.filters:
        raise ValueError("UNSUBSCRIBE needs at least one topic filter")
    parts = [
        U16.pack(packet_id(packet.packet_id)),
        encode_properties(packet.properties, Where.UNSUBSCRIBE),
    ]
    parts += [string(topic_filter, "topic filter") for topic_filter in packet.filters]
    return frame(0xA2, parts)


def _encode_unsuback(packet: Unsuback) -> bytes:
    if not packet.reason_codes:
        raise ValueError("a 5.0 UNSUBACK needs one reason code per filter (3.11.3)")
    codes = bytes(_reason(code, UNSUBACK_REASONS, "UNSUBACK") for code in packet.reason_codes)
    head = U16.pack(packet_id(packet.packet_id))
    return frame(0xB0, [head, encode_properties(packet.properties, Where.UNSUBACK), codes])


def _reason_encoder(
    first: int, allowed: frozenset[int], where: Where, what: str
) -> Callable[[Any], bytes]:
    # DISCONNECT (3.14.2.1) and AUTH (3.15.2.1): the body may be cut short.
    def encode_reason(packet: Any) -> bytes:
        code = _reason(packet.reason_code, allowed, what)
        if not packet.properties:
            return bytes((first, 0)) if not code else bytes((first, 1, code))
        return frame(first, [BYTE[code], encode_properties(packet.properties, where)])

    return encode_reason


ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    Publish: _encode_publish,
    Puback: _ack_encoder(0x40, PUBACK_REASONS, "PUBACK"),
    Pubrec: _ack_encoder(0x50, PUBACK_REASONS, "PUBREC"),
    Pubrel: _ack_encoder(0x62, PUBREL_REASONS, "PUBREL"),
    Pubcomp: _ack_encoder(0x70, PUBREL_REASONS, "PUBCOMP"),
    Connect: _encode_connect,
    Connack: _encode_connack,
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_unsuback,
    Pingreq: lambda _: b"\xc0\x00",
    Pingresp: lambda _: b"\xd0\x00",
    Disconnect: _reason_encoder(0xE0, DISCONNECT_REASONS, Where.DISCONNECT, "DISCONNECT"),
    Auth: _reason_encoder(0xF0, AUTH_REASONS, Where.AUTH, "AUTH"),
}


def encode5(packet: Packet) -> bytes:
    """Encode one packet as MQTT 5.0; ValueError for values the spec does not allow."""
    try:
        encoder = ENCODERS[type(packet)]
    except KeyError:
        raise TypeError(f"not an MQTT packet: {packet!r}") from None
    return encoder(packet)


def publish_topic(frame: bytes) -> bytes:
    """The topic name of an encoded PUBLISH (UTF-8 bytes), read without decoding the rest."""
    pos = 1
    while frame[pos] & 0x80:
        pos += 1
    pos += 1
    length = (frame[pos] << 8) | frame[pos + 1]
    return frame[pos + 2 : pos + 2 + length]


def with_topic_alias(frame: bytes, alias: int, *, keep_topic: bool) -> bytes:
    """A 5.0 PUBLISH frame with a Topic Alias property added (3.3.2.3.4).

    ``keep_topic`` sets the alias up (topic and alias); otherwise the topic
    is left empty and the alias stands for it. The frame must carry no alias yet.
    """
    first = frame[0]
    if first >> 4 != PacketType.PUBLISH:
        raise ValueError("not an encoded PUBLISH")
    pos = 1
    while frame[pos] & 0x80:
        pos += 1
    pos += 1
    topic_end = pos + 2 + ((frame[pos] << 8) | frame[pos + 1])
    head_end = topic_end + (2 if first & 0x06 else 0)
    decoded = decode_varint(frame, head_end)
    if decoded is None:
        raise ValueError("PUBLISH frame ends inside its property length")
    props_length, props_start = decoded
    properties = b"\x23" + U16.pack(alias) + frame[props_start : props_start + props_length]
    topic = frame[pos:topic_end] if keep_topic else b"\x00\x00"
    return frame_of(
        first,
        [
            topic,
            frame[topic_end:head_end],
            varint(len(properties)),
            properties,
            frame[props_start + props_length :],
        ],
    )


# --- decoding: fixed header ---------------------------------------------------

# Per packet type: required header flags (None for PUBLISH) and remaining-length bounds.
TYPE_RULES: Final[dict[PacketType, tuple[int | None, int, int]]] = {
    # name, level, flags, keepalive, property length, empty client id
    PacketType.CONNECT: (0b0000, 13, MAX_VARINT),
    # flags, reason code, property length
    PacketType.CONNACK: (0b0000, 3, MAX_VARINT),
    # topic length, property length (and 2 for the packet id when QoS > 0)
    PacketType.PUBLISH: (None, 3, MAX_VARINT),
    # 3.4.2.1: packet id alone is the short form
    PacketType.PUBACK: (0b0000, 2, MAX_VARINT),
    PacketType.PUBREC: (0b0000, 2, MAX_VARINT),
    PacketType.PUBREL: (0b0010, 2, MAX_VARINT),
    PacketType.PUBCOMP: (0b0000, 2, MAX_VARINT),
    # packet id, property length: an empty payload is a Protocol Error (3.8.3-2)
    PacketType.SUBSCRIBE: (0b0010, 3, MAX_VARINT),
    # packet id, property length, one reason code
    PacketType.SUBACK: (0b0000, 4, MAX_VARINT),
    PacketType.UNSUBSCRIBE: (0b0010, 3, MAX_VARINT),
    PacketType.UNSUBACK: (0b0000, 4, MAX_VARINT),
    PacketType.PINGREQ: (0b0000, 0, 0),
    PacketType.PINGRESP: (0b0000, 0, 0),
    # 3.14.2.1 and 3.15.2.1: an empty body means success without properties
    PacketType.DISCONNECT: (0b0000, 0, MAX_VARINT),
    PacketType.AUTH: (0b0000, 0, MAX_VARINT),
}


# --- decoding: bodies -----------------------------------------------------------


def is_connect5(body: memoryview) -> bool:
    """Tell whether a CONNECT body announces MQTT 5.0 (protocol name MQTT, level 5)."""
    return bytes(body[: len(CONNECT_PREFIX)]) == CONNECT_PREFIX


def decode_connect(flags: int, body: memoryview) -> Connect:
    """3.1: a CONNECT whose body starts with CONNECT_PREFIX."""
    pos = len(CONNECT_PREFIX)
    connect_flags = body[pos]
    keepalive = (body[pos + 1] << 8) | body[pos + 2]
    pos += 3
    if connect_flags & 0x01:
        raise MqttProtocolError("CONNECT reserved flag is set (3.1.2-3)")
    will_flag = connect_flags & 0x04
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = bool(connect_flags & 0x20)
    if will_qos == 3:
        raise MqttProtocolError("will QoS 3 (3.1.2-12)")
    if not will_flag and (will_qos or will_retain):
        raise MqttProtocolError("will QoS or retain set without the will flag (3.1.2-11, -13)")
    properties, pos = decode_properties(body, pos, Where.CONNECT)
    if properties.authentication_data is not None and properties.authentication_method is None:
        raise _protocol_error("authentication data without a method (3.1.2.11.10)")
    client_id, pos = read_string(body, pos, "client id")
    will = None
    if will_flag:
        will_properties, pos = decode_properties(body, pos, Where.WILL)
        will_topic, pos = read_string(body, pos, "will topic")
        validate_topic_name(will_topic)
        will_payload, pos = read_binary(body, pos, "will payload")
        will = Will(will_topic, bytes(will_payload), will_qos, will_retain, will_properties)
    username = password = None
    if connect_flags & 0x80:
        username, pos = read_string(body, pos, "username")
    if connect_flags & 0x40:
        raw_password, pos = read_binary(body, pos, "password")
        password = bytes(raw_password)
    check_end(body, pos, "CONNECT")
    return Connect(
        protocol_name="MQTT",
        protocol_level=PROTOCOL_LEVEL,
        clean_session=bool(connect_flags & 0x02),
        keepalive=keepalive,
        client_id=client_id,
        will=will,
        username=username,
        password=password,
        properties=properties,
    )


def _decode_connack(flags: int, body: memoryview) -> Connack:
    ack_flags, code = body[0], body[1]
    if ack_flags & 0xFE:
        raise MqttProtocolError("CONNACK reserved flags are set (3.2.2.1)")
    _read_reason(code, CONNACK_REASONS, "CONNACK")
    if ack_flags and code:
        raise _protocol_error("session present on a refused connection (3.2.2-6)")
    properties, pos = decode_properties(body, 2, Where.CONNACK)
    check_end(body, pos, "CONNACK")
    return Connack(bool(ack_flags), code, properties)


def _decode_publish(flags: int, body: memoryview) -> Publish:
    level = (flags >> 1) & 0x03
    topic, pos = read_string(body, 0, "topic name")
    pid = None
    if level:
        pid = read_packet_id(body, pos)
        pos += 2
    properties, pos = decode_properties(body, pos, Where.PUBLISH)
    if topic:
        if "+" in topic or "#" in topic:
            validate_topic_name(topic)
    elif properties.topic_alias is None:
        raise _protocol_error("empty topic name without a topic alias (3.3.2.3.4)")
    payload = bytes(body[pos:])
    return Publish(topic, payload, level, bool(flags & 0x01), bool(flags & 0x08), pid, properties)


def _ack_decoder(cls: Callable[..., Packet], allowed: frozenset[int], what: str) -> Any:
    def decode_ack(flags: int, body: memoryview) -> Packet:
        pid = read_packet_id(body, 0)
        if len(body) == 2:
            return cls(pid)
        code = _read_reason(body[2], allowed, what)
        if len(body) == 3:
            # 3.4.2.2.1: less than 4 bytes means no property length.
            return cls(pid, code)
        properties, pos = decode_properties(body, 3, Where.PUBACK)
        check_end(body, pos, what)
        return cls(pid, code, properties)

    return decode_ack


def _decode_subscribe(flags: int, body: memoryview) -> Subscribe:
    pid = read_packet_id(body, 0)
    properties, pos = decode_properties(body, 2, Where.SUBSCRIBE)
    if len(properties.subscription_identifiers) > 1:
        raise _protocol_error("subscription identifier given twice (3.8.2.1.2)")
    end = len(body)
    subscriptions = []
    while pos < end:
        topic_filter, pos = read_string(body, pos, "topic filter")
        validate_topic_filter(topic_filter)
        if pos == end:
            raise MqttProtocolError("SUBSCRIBE ends before the subscription options")
        options = body[pos]
        pos += 1
        if options & 0xC0:
            raise MqttProtocolError(f"subscription options {options:#04x} set reserved bits")
        if options & 0x03 == 3:
            raise _protocol_error("SUBSCRIBE requests QoS 3 (3.8.3.1)")
        if options >> RETAIN_HANDLING_SHIFT == 3:
            raise _protocol_error("retain handling 3 (3.8.3.1)")
        if options & NO_LOCAL and topic_filter.startswith(SHARED_PREFIX):
            raise _protocol_error("no local on a shared subscription (3.8.3-4)")
        subscriptions.append((topic_filter, options))
    if not subscriptions:
        raise _protocol_error("SUBSCRIBE without topic filters (3.8.3-2)")
    return Subscribe(pid, tuple(subscriptions), properties)


def _decode_suback(flags: int, body: memoryview) -> Suback:
    pid = read_packet_id(body, 0)
    properties, pos = decode_properties(body, 2, Where.SUBACK)
    codes = tuple(_read_reason(code, SUBACK_REASONS, "SUBACK") for code in body[pos:])
    if not codes:
        raise _protocol_error("SUBACK without reason codes (3.9.3)")
    return Suback(pid, codes, properties)


def _decode_unsubscribe(flags: int, body: memoryview) -> Unsubscribe:
    pid = read_packet_id(body, 0)
    properties, pos = decode_properties(body, 2, Where.UNSUBSCRIBE)
    end = len(body)
    filters = []
    while pos < end:
        topic_filter, pos = read_string(body, pos, "topic filter")
        validate_topic_filter(topic_filter)
        filters.append(topic_filter)
    if not filters:
        raise _protocol_error("UNSUBSCRIBE without topic filters (3.10.3-2)")
    return Unsubscribe(pid, tuple(filters), properties)


def _decode_unsuback(flags: int, body: memoryview) -> Unsuback:
    pid = read_packet_id(body, 0)
    properties, pos = decode_properties(body, 2, Where.UNSUBACK)
    codes = tuple(_read_reason(code, UNSUBACK_REASONS, "UNSUBACK") for code in body[pos:])
    if not codes:
        raise _protocol_error("UNSUBACK without reason codes (3.11.3)")
    return Unsuback(pid, codes, properties)


def _reason_decoder(
    cls: Callable[..., Packet], allowed: frozenset[int], where: Where, what: str
) -> Any:
    def decode_reason(flags: int, body: memoryview) -> Packet:
        if not body:
            return cls()
        code = _read_reason(body[0], allowed, what)
        if len(body) == 1:
            # 3.14.2.2.1: less than 2 bytes means no property length.
            return cls(code)
        properties, pos = decode_properties(body, 1, where)
        check_end(body, pos, what)
        return cls(code, properties)

    return decode_reason


def _decode_connect_again(flags: int, body: memoryview) -> Packet:
    # After a 5.0 CONNECT the reader stays 5.0; the handler refuses a second CONNECT.
    if is_connect5(body):
        return decode_connect(flags, body)
    raise _protocol_error("a CONNECT of another protocol version")


def _constant(packet: Packet) -> Callable[[int, memoryview], Packet]:
    return lambda flags, body: packet


def _reserved(flags: int, body: memoryview) -> Packet:
    # Unreachable: TYPE_RULES refuses type 0 first.
    raise MqttProtocolError("reserved packet type")


# Indexed by packet type; bodies reach them with length and flags already checked.
DECODERS: Final[tuple[Callable[[int, memoryview], Packet], ...]] = (
    _reserved,
    _decode_connect_again,
    _decode_connack,
    _decode_publish,
    _ack_decoder(Puback, PUBACK_REASONS, "PUBACK"),
    _ack_decoder(Pubrec, PUBACK_REASONS, "PUBREC"),
    _ack_decoder(Pubrel, PUBREL_REASONS, "PUBREL"),
    _ack_decoder(Pubcomp, PUBREL_REASONS, "PUBCOMP"),
    _decode_subscribe,
    _decode_suback,
    _decode_unsubscribe,
    _decode_unsuback,
    _constant(Pingreq()),
    _constant(Pingresp()),
    _reason_decoder(Disconnect, DISCONNECT_REASONS, Where.DISCONNECT, "DISCONNECT"),
    _reason_decoder(Auth, AUTH_REASONS, Where.AUTH, "AUTH"),
)
