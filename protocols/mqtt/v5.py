"""MQTT 5.0 rules of one connection, apart from the handler's flow.

What a CONNECT asked for (:class:`Requested`), what the CONNACK announces
(:func:`connack_properties`), inbound topic aliases (:class:`TopicAliases`),
the checks a client's PUBLISH must pass, and the 5.0 reason code for each
3.1.1 CONNACK code and each hub refusal. Pure: no asyncio, no sockets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from hub.errors import ChannelError, LimitExceeded, PayloadTooLarge, PermissionDenied
from protocols.mqtt.codec5 import publish_topic, with_topic_alias
from protocols.mqtt.config import MqttConfig
from protocols.mqtt.packets import (
    PROTOCOL_ERROR,
    ConnackCode,
    Connect,
    MqttProtocolError,
    Properties,
    Publish,
)
from protocols.mqtt.reasons import ReasonCode
from protocols.mqtt.topics import validate_topic_name

#: 3.1.2.11.2: a Session Expiry Interval of 0xFFFFFFFF never expires.
NEVER: Final = 0xFFFF_FFFF

#: The 5.0 reason code for each 3.1.1 CONNACK return code (3.2.2.2).
CONNACK_REASON: Final = {
    ConnackCode.ACCEPTED: ReasonCode.SUCCESS,
    ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION: ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    ConnackCode.IDENTIFIER_REJECTED: ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    ConnackCode.SERVER_UNAVAILABLE: ReasonCode.SERVER_UNAVAILABLE,
    ConnackCode.BAD_USERNAME_OR_PASSWORD: ReasonCode.BAD_USER_NAME_OR_PASSWORD,
    ConnackCode.NOT_AUTHORIZED: ReasonCode.NOT_AUTHORIZED,
}


@dataclass(frozen=True, slots=True)
class Requested:
    """What a 5.0 client asked for in its CONNECT properties (3.1.2.11)."""

    session_expiry: int = 0
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None
    topic_alias_maximum: int = 0
    # 3.1.2.11.7: 0 means no reason strings or user properties on acknowledgements.
    problem_information: bool = True

    @classmethod
    def from_connect(cls, packet: Connect) -> Requested:
        props = packet.properties
        return cls(
            session_expiry=props.session_expiry_interval or 0,
            receive_maximum=props.receive_maximum,
            maximum_packet_size=props.maximum_packet_size,
            topic_alias_maximum=props.topic_alias_maximum or 0,
            problem_information=props.request_problem_information != 0,
        )


def granted_expiry(requested: int, cap: float | None) -> tuple[float, int | None]:
    """Seconds the session outlives the connection, and the value to announce if capped.

    3.2.2.3.2: the server may use a shorter interval and then says so in CONNACK.
    """
    wanted = math.inf if requested == NEVER else float(requested)
    if cap is None or wanted <= cap:
        return wanted, None
    return cap, int(cap)


def granted_keepalive(requested: int, cap: int | None) -> tuple[int, int | None]:
    """The keepalive in force, and the Server Keep Alive to announce if it differs (3.2.2.3.14)."""
    if cap is None or 0 < requested <= cap:
        return requested, None
    return cap, cap


def connack_properties(
    config: MqttConfig,
    *,
    assigned_client_id: str | None,
    session_expiry: int | None,
    server_keep_alive: int | None,
    shared_subscriptions: bool,
) -> Properties:
    """3.2.2.3: what the hub announces to a 5.0 client on success."""
    return Properties(
        session_expiry_interval=session_expiry,
        receive_maximum=config.max_inflight,
        maximum_qos=config.max_qos if config.max_qos < 2 else None,
        retain_available=1,
        maximum_packet_size=config.max_packet_size,
        assigned_client_identifier=assigned_client_id,
        topic_alias_maximum=config.topic_alias_maximum or None,
        wildcard_subscription_available=1,
        subscription_identifier_available=1,
        shared_subscription_available=1 if shared_subscriptions else 0,
        server_keep_alive=server_keep_alive,
    )


class TopicAliases:
    """The client's topic aliases on this connection (3.3.2.3.4); they die with it."""

    __slots__ = ("_maximum", "_topics")

    def __init__(self, maximum: int) -> None:
        self._maximum = maximum
        self._topics: dict[int, str] = {}

    def resolve(self, packet: Publish) -> str:
        """The PUBLISH's topic: as given (setting its alias), or the alias's."""
        alias = packet.properties.topic_alias
        if alias is None:
            return packet.topic
        if alias > self._maximum:
            # MQTT-3.3.2-9: over the Topic Alias Maximum the server announced.
            raise MqttProtocolError(
                f"topic alias {alias} is over the maximum {self._maximum}",
                reason_code=ReasonCode.TOPIC_ALIAS_INVALID,
            )
        if packet.topic:
            self._topics[alias] = packet.topic
            return packet.topic
        topic = self._topics.get(alias)
        if topic is None:
            raise MqttProtocolError(
                f"topic alias {alias} was never set (3.3.4)", reason_code=PROTOCOL_ERROR
            )
        return topic


class OutboundAliases:
    """Topic aliases the hub sets up towards a client that allows them (3.3.2.3.4).

    The first ``maximum`` topics sent get an alias, sent once with the topic
    and then in its place; later topics go in full. Applied to each PUBLISH as
    it leaves for this connection, so a session's kept frames never hold
    another connection's aliases.
    """

    __slots__ = ("_aliases", "_maximum")

    def __init__(self, maximum: int) -> None:
        self._maximum = maximum
        self._aliases: dict[bytes, int] = {}

    def __bool__(self) -> bool:
        return self._maximum > 0

    def apply(self, frame: bytes, max_size: int | None = None) -> bytes:
        """The frame to send: with the topic's alias, or as it is.

        Setting an alias adds 3 bytes; over ``max_size`` (the client's Maximum
        Packet Size) the frame goes as it is and no alias is set up. An alias
        alone is longer than a topic of 1 or 2 bytes: over ``max_size`` too, the
        frame goes with its topic (always allowed, 3.3.2.3.4).
        """
        topic = publish_topic(frame)
        alias = self._aliases.get(topic)
        if alias is not None:
            aliased = with_topic_alias(frame, alias, keep_topic=False)
            return aliased if max_size is None or len(aliased) <= max_size else frame
        if len(self._aliases) < self._maximum:
            aliased = with_topic_alias(frame, len(self._aliases) + 1, keep_topic=True)
            if max_size is None or len(aliased) <= max_size:
                self._aliases[topic] = len(self._aliases) + 1
                return aliased
        return frame


def check_publish(packet: Publish, max_qos: int) -> None:
    """Raise MqttProtocolError for a client's PUBLISH the spec forbids (its reason code)."""
    props = packet.properties
    if props.subscription_identifiers:
        raise MqttProtocolError(
            "a client's PUBLISH carries a subscription identifier (3.3.4-6)",
            reason_code=PROTOCOL_ERROR,
        )
    if props.response_topic is not None:
        try:
            validate_topic_name(props.response_topic)
        except MqttProtocolError as exc:
            raise MqttProtocolError(
                f"response topic: {exc} (3.3.2-14)", reason_code=PROTOCOL_ERROR
            ) from None
    if packet.qos > max_qos:
        # MQTT-3.2.2-11: over the Maximum QoS announced in CONNACK.
        raise MqttProtocolError(
            f"QoS {packet.qos} is over the maximum {max_qos}",
            reason_code=ReasonCode.QOS_NOT_SUPPORTED,
        )


def payload_format_valid(packet: Publish) -> bool:
    """3.3.2.3.2: a payload announced as UTF-8 must be UTF-8 (the server may check)."""
    if packet.properties.payload_format_indicator != 1:
        return True
    try:
        packet.payload.decode()
    except UnicodeDecodeError:
        return False
    return True


def refusal_reason(exc: ChannelError) -> int:
    """The PUBACK/PUBREC/SUBACK reason code for a refusal of the hub's policy."""
    if isinstance(exc, PermissionDenied):
        return ReasonCode.NOT_AUTHORIZED
    if isinstance(exc, LimitExceeded | PayloadTooLarge):
        return ReasonCode.QUOTA_EXCEEDED
    return ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
