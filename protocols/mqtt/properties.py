"""MQTT 5.0 properties (section 2.2.2): one typed record, and its pure codec.

A property list is a variable byte integer length, then (identifier, value)
pairs. Each identifier has one data type and a set of packets it may appear
in (the table of 2.2.2.2, kept here as ``SPECS``). Decoding raises
:class:`MqttProtocolError` with the reason code the spec assigns:

- an identifier unknown or not allowed in this packet, or a value cut short
  or of the wrong form: 0x81 Malformed Packet (2.2.2.2);
- a property other than User Property (and Subscription Identifier in a
  PUBLISH) given twice, or a value the spec calls a Protocol Error (a
  Receive Maximum of 0, a byte flag that is not 0 or 1, ...): 0x82.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Final

from .packets import NO_PROPERTIES, MqttProtocolError, Properties
from .reasons import ReasonCode
from .wire import (
    MAX_VARINT,
    binary,
    read_binary,
    read_string,
    read_varint,
    string,
    varint,
)

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")


class Where(Enum):
    """The places a property list appears (2.2.2.2's "Packet / Will Properties")."""

    CONNECT = "CONNECT"
    CONNACK = "CONNACK"
    PUBLISH = "PUBLISH"
    WILL = "Will Properties"
    PUBACK = "PUBACK"  # also PUBREC, PUBREL and PUBCOMP
    SUBSCRIBE = "SUBSCRIBE"
    SUBACK = "SUBACK"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    UNSUBACK = "UNSUBACK"
    DISCONNECT = "DISCONNECT"
    AUTH = "AUTH"


class Kind(Enum):
    """Data types of 1.5: byte, two/four-byte integer, varint, string, pair, binary."""

    BYTE = "byte"
    FLAG = "byte 0 or 1"  # a byte the spec restricts to 0 and 1
    U16 = "two byte integer"
    U32 = "four byte integer"
    VARINT = "variable byte integer"
    STRING = "UTF-8 string"
    PAIR = "UTF-8 string pair"
    BINARY = "binary data"


_PUBLISH_LIKE: Final = frozenset({Where.PUBLISH, Where.WILL})
_SESSION: Final = frozenset({Where.CONNECT, Where.CONNACK, Where.DISCONNECT})
_ACKS: Final = frozenset(
    {
        Where.CONNACK,
        Where.PUBACK,
        Where.SUBACK,
        Where.UNSUBACK,
        Where.DISCONNECT,
        Where.AUTH,
    }
)


@dataclass(frozen=True, slots=True)
class Spec:
    """One row of the table in 2.2.2.2."""

    identifier: int
    field: str
    kind: Kind
    where: frozenset[Where]
    # The least value that is not a Protocol Error (Receive Maximum 0 is one).
    minimum: int = 0
    # May appear more than once in one property list.
    repeats: bool = False


W = Where
#: 2.2.2.2, in identifier order (the order of encoding).
SPECS: Final = (
    Spec(0x01, "payload_format_indicator", Kind.FLAG, _PUBLISH_LIKE),
    Spec(0x02, "message_expiry_interval", Kind.U32, _PUBLISH_LIKE),
    Spec(0x03, "content_type", Kind.STRING, _PUBLISH_LIKE),
    Spec(0x08, "response_topic", Kind.STRING, _PUBLISH_LIKE),
    Spec(0x09, "correlation_data", Kind.BINARY, _PUBLISH_LIKE),
    # 3.8.2.1.2: 0 is a Protocol Error; several only in a PUBLISH (3.3.4-3).
    Spec(0x0B, "subscription_identifiers", Kind.VARINT, frozenset({W.PUBLISH, W.SUBSCRIBE}), 1),
    Spec(0x11, "session_expiry_interval", Kind.U32, _SESSION),
    Spec(0x12, "assigned_client_identifier", Kind.STRING, frozenset({W.CONNACK})),
    Spec(0x13, "server_keep_alive", Kind.U16, frozenset({W.CONNACK})),
    Spec(0x15, "authentication_method", Kind.STRING, frozenset({W.CONNECT, W.CONNACK, W.AUTH})),
    Spec(0x16, "authentication_data", Kind.BINARY, frozenset({W.CONNECT, W.CONNACK, W.AUTH})),
    Spec(0x17, "request_problem_information", Kind.FLAG, frozenset({W.CONNECT})),
    Spec(0x18, "will_delay_interval", Kind.U32, frozenset({W.WILL})),
    Spec(0x19, "request_response_information", Kind.FLAG, frozenset({W.CONNECT})),
    Spec(0x1A, "response_information", Kind.STRING, frozenset({W.CONNACK})),
    Spec(0x1C, "server_reference", Kind.STRING, frozenset({W.CONNACK, W.DISCONNECT})),
    Spec(0x1F, "reason_string", Kind.STRING, _ACKS),
    # 3.1.2.11.3 and 3.2.2.3.3: a Receive Maximum of 0 is a Protocol Error.
    Spec(0x21, "receive_maximum", Kind.U16, frozenset({W.CONNECT, W.CONNACK}), 1),
    Spec(0x22, "topic_alias_maximum", Kind.U16, frozenset({W.CONNECT, W.CONNACK})),
    # 3.3.2.3.4: a Topic Alias of 0 is a Protocol Error.
    Spec(0x23, "topic_alias", Kind.U16, frozenset({W.PUBLISH}), 1),
    Spec(0x24, "maximum_qos", Kind.FLAG, frozenset({W.CONNACK})),
    Spec(0x25, "retain_available", Kind.FLAG, frozenset({W.CONNACK})),
    Spec(0x26, "user_properties", Kind.PAIR, frozenset(Where), repeats=True),
    # 3.1.2.11.4 and 3.2.2.3.6: a Maximum Packet Size of 0 is a Protocol Error.
    Spec(0x27, "maximum_packet_size", Kind.U32, frozenset({W.CONNECT, W.CONNACK}), 1),
    Spec(0x28, "wildcard_subscription_available", Kind.FLAG, frozenset({W.CONNACK})),
    Spec(0x29, "subscription_identifier_available", Kind.FLAG, frozenset({W.CONNACK})),
    Spec(0x2A, "shared_subscription_available", Kind.FLAG, frozenset({W.CONNACK})),
)
BY_IDENTIFIER: Final = {spec.identifier: spec for spec in SPECS}
assert {spec.field for spec in SPECS} == {f.name for f in fields(Properties)}


def _protocol_error(message: str) -> MqttProtocolError:
    return MqttProtocolError(message, reason_code=ReasonCode.PROTOCOL_ERROR)


# --- encoding -----------------------------------------------------------------


def _check_range(spec: Spec, value: int) -> int:
    high = {
        Kind.BYTE: 0xFF,
        Kind.FLAG: 1,
        Kind.U16: 0xFFFF,
        Kind.U32: 0xFFFF_FFFF,
        Kind.VARINT: MAX_VARINT,
    }[spec.kind]
    if isinstance(value, bool) or not spec.minimum <= value <= high:
        raise ValueError(f"property {spec.field} = {value!r} is not in {spec.minimum}..{high}")
    return value


def _encode_value(spec: Spec, value: Any) -> bytes:
    kind = spec.kind
    if kind is Kind.STRING:
        return string(value, spec.field)
    if kind is Kind.BINARY:
        return binary(value, spec.field)
    if kind is Kind.PAIR:
        name, text = value
        return string(name, "user property name") + string(text, "user property value")
    number = _check_range(spec, value)
    if kind is Kind.U16:
        return _U16.pack(number)
    if kind is Kind.U32:
        return _U32.pack(number)
    if kind is Kind.VARINT:
        return varint(number)
    return bytes((number,))


def encode_properties(properties: Properties, where: Where) -> bytes:
    """The property list with its length prefix; ValueError if a value does not fit.

    A property that ``where`` does not allow is a ValueError too: the peer
    would treat it as a Malformed Packet.
    """
    if properties is NO_PROPERTIES:
        return b"\x00"
    parts: list[bytes] = []
    for spec in SPECS:
        value = getattr(properties, spec.field)
        if value is None or value == ():
            continue
        if where not in spec.where:
            raise ValueError(f"property {spec.field} is not allowed in {where.value}")
        head = varint(spec.identifier)
        if spec.repeats or spec.kind is Kind.VARINT:
            if spec.kind is Kind.VARINT and len(value) > 1 and where is not Where.PUBLISH:
                raise ValueError(f"one {spec.field} at most in {where.value}")
            parts += [head + _encode_value(spec, item) for item in value]
        else:
            parts.append(head + _encode_value(spec, value))
    body = b"".join(parts)
    return varint(len(body)) + body


# --- decoding -----------------------------------------------------------------


def _read_fixed(body: memoryview, pos: int, size: int, what: str) -> tuple[int, int]:
    end = pos + size
    if end > len(body):
        raise MqttProtocolError(f"property list ends inside {what}")
    return int.from_bytes(body[pos:end], "big"), end


def _decode_value(spec: Spec, body: memoryview, pos: int) -> tuple[Any, int]:
    kind = spec.kind
    if kind is Kind.STRING:
        return read_string(body, pos, spec.field)
    if kind is Kind.BINARY:
        raw, end = read_binary(body, pos, spec.field)
        return bytes(raw), end
    if kind is Kind.PAIR:
        name, pos = read_string(body, pos, "user property name")
        text, pos = read_string(body, pos, "user property value")
        return (name, text), pos
    if kind is Kind.VARINT:
        number, end = read_varint(body, pos, spec.field)
    else:
        size = {Kind.BYTE: 1, Kind.FLAG: 1, Kind.U16: 2, Kind.U32: 4}[kind]
        number, end = _read_fixed(body, pos, size, spec.field)
    if number < spec.minimum:
        raise _protocol_error(f"property {spec.field} is {number}")
    if kind is Kind.FLAG and number > 1:
        raise _protocol_error(f"property {spec.field} is {number}, not 0 or 1")
    return number, end


def decode_properties(body: memoryview, pos: int, where: Where) -> tuple[Properties, int]:
    """Read a property list at ``pos``; return it and the offset just past it."""
    length, pos = read_varint(body, pos, "property length")
    end = pos + length
    if end > len(body):
        raise MqttProtocolError("property length runs past the packet")
    if not length:
        return NO_PROPERTIES, end
    values: dict[str, Any] = {}
    view = body[:end]
    while pos < end:
        identifier, pos = read_varint(view, pos, "property identifier")
        spec = BY_IDENTIFIER.get(identifier)
        if spec is None:
            raise MqttProtocolError(f"unknown property identifier {identifier:#04x}")
        if where not in spec.where:
            raise MqttProtocolError(f"property {spec.field} is not allowed in {where.value}")
        value, pos = _decode_value(spec, view, pos)
        if spec.repeats or (spec.kind is Kind.VARINT and where is Where.PUBLISH):
            values[spec.field] = (*values.get(spec.field, ()), value)
        elif spec.field in values:
            raise _protocol_error(f"property {spec.field} appears twice")
        elif spec.kind is Kind.VARINT:
            values[spec.field] = (value,)
        else:
            values[spec.field] = value
    return Properties(**values), end
