"""MQTT 3.1.1 and 5.0 control packets as frozen dataclasses, and the one protocol error.

Field values follow the wire: QoS levels and return/reason codes are plain
ints, payloads and passwords are bytes, every string is already decoded UTF-8.
One class per packet type serves both versions: the 5.0 fields (reason codes,
``properties``) default to what a 3.1.1 packet means, and the 3.1.1 encoder
ignores them. The property table and its codec are in ``properties``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias

from hub.errors import HubError


class PacketType(IntEnum):
    """Control packet type: the high nibble of the first fixed-header byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15  # MQTT 5.0 only


class ConnackCode(IntEnum):
    """CONNACK return codes (MQTT 3.1.1 section 3.2.2.3)."""

    ACCEPTED = 0x00
    UNACCEPTABLE_PROTOCOL_VERSION = 0x01
    IDENTIFIER_REJECTED = 0x02
    SERVER_UNAVAILABLE = 0x03
    BAD_USERNAME_OR_PASSWORD = 0x04
    NOT_AUTHORIZED = 0x05


#: SUBACK return code for a refused subscription.
SUBACK_FAILURE: Final = 0x80


#: MQTT 5.0 reason codes the codec raises with (the whole table is ``reasons``).
MALFORMED_PACKET: Final = 0x81
PROTOCOL_ERROR: Final = 0x82
PACKET_TOO_LARGE: Final = 0x95


class MqttProtocolError(HubError):
    """Malformed or forbidden input: the connection must be closed.

    ``connack_code`` is set when the spec asks the server to answer a CONNECT
    with that CONNACK return code before closing (0x01 unacceptable protocol
    level, 0x02 identifier rejected); otherwise it is ``None`` and the server
    closes without a reply.

    ``reason_code`` is the MQTT 5.0 reason code for the error (section 4.13):
    0x81 Malformed Packet unless the spec calls it a Protocol Error (0x82) or
    the packet is over the size limit (0x95). A 5.0 server sends it in a
    CONNACK (during CONNECT) or a DISCONNECT before closing.
    """

    def __init__(
        self,
        message: str,
        *,
        connack_code: int | None = None,
        reason_code: int = MALFORMED_PACKET,
    ) -> None:
        super().__init__(message)
        self.connack_code = connack_code
        self.reason_code = reason_code


@dataclass(frozen=True, slots=True, kw_only=True)
class Properties:
    """Every MQTT 5.0 property; None (or empty) where absent.

    Integers are the wire values (seconds, bytes, counts); the byte flags
    (Payload Format Indicator, the "... Available" and "Request ..." ones)
    stay ints 0/1 so that an explicit 0 and an absent property differ.
    User properties keep their order and may repeat a name (3.3.2.3.7).
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None

    def __bool__(self) -> bool:
        return self != NO_PROPERTIES

    def __repr__(self) -> str:
        # Only the properties present: most packets carry one or two.
        present = (
            f"{name}={getattr(self, name)!r}"
            for name in self.__dataclass_fields__
            if getattr(self, name) not in (None, ())
        )
        return f"Properties({', '.join(present)})"


#: The empty property list (encoded as one zero byte).
NO_PROPERTIES: Final = Properties()


@dataclass(frozen=True, slots=True)
class Will:
    """Will message carried in a CONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    # 5.0 Will Properties (3.1.3.2): will delay, expiry, content type, ...
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    """CONNECT: client to server, first packet of a connection.

    ``protocol_level`` 5 is MQTT 5.0, where ``clean_session`` is Clean Start
    (3.1.2.4) and a password may come without a username (3.1.2.9).
    """

    protocol_name: str = "MQTT"
    protocol_level: int = 4
    clean_session: bool = True
    keepalive: int = 60
    client_id: str = ""
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Connack:
    """CONNACK: server answer to CONNECT; in 5.0 ``return_code`` is the reason code."""

    session_present: bool = False
    return_code: int = ConnackCode.ACCEPTED
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH in either direction; ``packet_id`` is None exactly when QoS is 0."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    # 5.0: an empty topic is allowed when properties.topic_alias names one (3.3.2.3.4).
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Puback:
    """PUBACK: QoS 1 acknowledgement."""

    packet_id: int
    # 5.0 (3.4.2.1): omitted on the wire when 0 and without properties.
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Pubrec:
    """PUBREC: QoS 2 delivery, part 1."""

    packet_id: int
    # 5.0 (3.4.2.1): omitted on the wire when 0 and without properties.
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Pubrel:
    """PUBREL: QoS 2 delivery, part 2."""

    packet_id: int
    # 5.0 (3.4.2.1): omitted on the wire when 0 and without properties.
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Pubcomp:
    """PUBCOMP: QoS 2 delivery, part 3."""

    packet_id: int
    # 5.0 (3.4.2.1): omitted on the wire when 0 and without properties.
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: one or more (topic filter, subscription options) pairs.

    The options are the wire byte: the requested QoS in bits 0-1, and in 5.0
    also No Local (``NO_LOCAL``), Retain As Published (``RETAIN_AS_PUBLISHED``)
    and Retain Handling in bits 4-5 (3.8.3.1); ``SubscriptionOptions`` reads it.
    """

    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK: one return code (granted QoS or 0x80; in 5.0 a reason code) per filter."""

    packet_id: int
    return_codes: tuple[int, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: one or more topic filters."""

    packet_id: int
    filters: tuple[str, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Unsuback:
    """UNSUBACK: acknowledges an UNSUBSCRIBE; in 5.0 with one reason code per filter."""

    packet_id: int
    reason_codes: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Pingreq:
    """PINGREQ: keepalive probe from the client."""


@dataclass(frozen=True, slots=True)
class Pingresp:
    """PINGRESP: answer to PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: clean close from the client; in 5.0 from either side, with a reason."""

    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (5.0 only): a step of enhanced authentication (3.15)."""

    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


#: Subscription option bits of 5.0 (3.8.3.1) beside the QoS in bits 0-1.
NO_LOCAL: Final = 0x04
RETAIN_AS_PUBLISHED: Final = 0x08
RETAIN_HANDLING_SHIFT: Final = 4


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """The subscription options byte of 3.8.3.1, read."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    # 0: send retained messages on subscribe; 1: only if the subscription is new; 2: never.
    retain_handling: int = 0

    @classmethod
    def from_byte(cls, options: int) -> SubscriptionOptions:
        return cls(
            options & 0x03,
            bool(options & NO_LOCAL),
            bool(options & RETAIN_AS_PUBLISHED),
            (options >> RETAIN_HANDLING_SHIFT) & 0x03,
        )

    def to_byte(self) -> int:
        return (
            self.qos
            | (NO_LOCAL if self.no_local else 0)
            | (RETAIN_AS_PUBLISHED if self.retain_as_published else 0)
            | (self.retain_handling << RETAIN_HANDLING_SHIFT)
        )


Packet: TypeAlias = (
    Connect
    | Connack
    | Publish
    | Puback
    | Pubrec
    | Pubrel
    | Pubcomp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
)
