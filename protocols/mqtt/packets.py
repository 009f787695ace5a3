"""MQTT 3.1.1 control packets as frozen dataclasses, and the one protocol error.

Field values follow the wire: QoS levels and return codes are plain ints,
payloads and passwords are bytes, every string is already decoded UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias


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


class MqttProtocolError(Exception):
    """Malformed or forbidden input: the connection must be closed.

    ``connack_code`` is set when the spec asks the server to answer a CONNECT
    with that CONNACK return code before closing (0x01 unacceptable protocol
    level, 0x02 identifier rejected); otherwise it is ``None`` and the server
    closes without a reply.
    """

    def __init__(self, message: str, *, connack_code: int | None = None) -> None:
        super().__init__(message)
        self.connack_code = connack_code


@dataclass(frozen=True, slots=True)
class Will:
    """Will message carried in a CONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    """CONNECT: client to server, first packet of a connection."""

    protocol_name: str = "MQTT"
    protocol_level: int = 4
    clean_session: bool = True
    keepalive: int = 60
    client_id: str = ""
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None


@dataclass(frozen=True, slots=True)
class Connack:
    """CONNACK: server answer to CONNECT."""

    session_present: bool = False
    return_code: int = ConnackCode.ACCEPTED


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH in either direction; ``packet_id`` is None exactly when QoS is 0."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class Puback:
    """PUBACK: QoS 1 acknowledgement."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Pubrec:
    """PUBREC: QoS 2 delivery, part 1."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Pubrel:
    """PUBREL: QoS 2 delivery, part 2."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Pubcomp:
    """PUBCOMP: QoS 2 delivery, part 3."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: one or more (topic filter, requested QoS) pairs."""

    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK: one return code (granted QoS or 0x80) per requested filter."""

    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: one or more topic filters."""

    packet_id: int
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsuback:
    """UNSUBACK: acknowledges an UNSUBSCRIBE."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Pingreq:
    """PINGREQ: keepalive probe from the client."""


@dataclass(frozen=True, slots=True)
class Pingresp:
    """PINGRESP: answer to PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: clean close from the client."""


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
)
