"""MQTT 5.0 codec: properties, reason codes, every packet's byte form, every malformed case.

Clause numbers are those of the MQTT Version 5.0 OASIS Standard.
"""

from __future__ import annotations

import pytest

from protocols.mqtt.codec import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    MqttProtocolError,
    Packet,
    PacketReader,
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
    decode,
    encode,
    with_packet_id,
)
from protocols.mqtt.packets import (
    NO_PROPERTIES,
    Properties,
    SubscriptionOptions,
)
from protocols.mqtt.properties import (
    SPECS,
    Kind,
    Where,
    decode_properties,
    encode_properties,
)
from protocols.mqtt.reasons import (
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    SUBACK_REASONS,
    ReasonCode,
    reason_name,
)

from .test_codec import h

MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR


def props(data: str, where: Where) -> Properties:
    """Decode a whole property list given in spaced hex."""
    body = memoryview(h(data))
    value, end = decode_properties(body, 0, where)
    assert end == len(body)
    return value


# --- properties: the table of 2.2.2.2 -------------------------------------------

# (identifier, field, kind) for all 27 properties of 2.2.2.2.
SPEC_TABLE = [
    (0x01, "payload_format_indicator", Kind.FLAG),
    (0x02, "message_expiry_interval", Kind.U32),
    (0x03, "content_type", Kind.STRING),
    (0x08, "response_topic", Kind.STRING),
    (0x09, "correlation_data", Kind.BINARY),
    (0x0B, "subscription_identifiers", Kind.VARINT),
    (0x11, "session_expiry_interval", Kind.U32),
    (0x12, "assigned_client_identifier", Kind.STRING),
    (0x13, "server_keep_alive", Kind.U16),
    (0x15, "authentication_method", Kind.STRING),
    (0x16, "authentication_data", Kind.BINARY),
    (0x17, "request_problem_information", Kind.FLAG),
    (0x18, "will_delay_interval", Kind.U32),
    (0x19, "request_response_information", Kind.FLAG),
    (0x1A, "response_information", Kind.STRING),
    (0x1C, "server_reference", Kind.STRING),
    (0x1F, "reason_string", Kind.STRING),
    (0x21, "receive_maximum", Kind.U16),
    (0x22, "topic_alias_maximum", Kind.U16),
    (0x23, "topic_alias", Kind.U16),
    (0x24, "maximum_qos", Kind.FLAG),
    (0x25, "retain_available", Kind.FLAG),
    (0x26, "user_properties", Kind.PAIR),
    (0x27, "maximum_packet_size", Kind.U32),
    (0x28, "wildcard_subscription_available", Kind.FLAG),
    (0x29, "subscription_identifier_available", Kind.FLAG),
    (0x2A, "shared_subscription_available", Kind.FLAG),
]


def test_property_table_matches_the_spec() -> None:
    """2.2.2.2: every identifier of the spec, with its data type, in identifier order."""
    assert [(s.identifier, s.field, s.kind) for s in SPECS] == SPEC_TABLE


# One encoded example per property, in a place it is allowed.
PROPERTY_VECTORS: list[tuple[str, Where, str, Properties]] = [
    ("payload-format", Where.PUBLISH, "02 01 01", Properties(payload_format_indicator=1)),
    (
        "message-expiry",
        Where.PUBLISH,
        "05 02 00 00 01 00",
        Properties(message_expiry_interval=256),
    ),
    ("content-type", Where.WILL, "07 03 00 04 'text'", Properties(content_type="text")),
    ("response-topic", Where.PUBLISH, "06 08 00 03 'r/1'", Properties(response_topic="r/1")),
    ("correlation", Where.PUBLISH, "05 09 00 02 00 ff", Properties(correlation_data=b"\x00\xff")),
    ("sub-id-1-byte", Where.SUBSCRIBE, "02 0b 7f", Properties(subscription_identifiers=(127,))),
    (
        "sub-id-4-bytes",
        Where.SUBSCRIBE,
        "05 0b ff ff ff 7f",
        Properties(subscription_identifiers=(268_435_455,)),
    ),
    (
        "sub-ids-repeat-in-publish",
        Where.PUBLISH,
        "05 0b 01 0b 80 01",
        Properties(subscription_identifiers=(1, 128)),
    ),
    (
        "session-expiry",
        Where.DISCONNECT,
        "05 11 ff ff ff ff",
        Properties(session_expiry_interval=0xFFFF_FFFF),
    ),
    (
        "assigned-id",
        Where.CONNACK,
        "05 12 00 02 'id'",
        Properties(assigned_client_identifier="id"),
    ),
    ("server-keep-alive", Where.CONNACK, "03 13 00 1e", Properties(server_keep_alive=30)),
    ("auth-method", Where.AUTH, "08 15 00 05 'SCRAM'", Properties(authentication_method="SCRAM")),
    ("auth-data", Where.CONNECT, "04 16 00 01 07", Properties(authentication_data=b"\x07")),
    ("problem-info", Where.CONNECT, "02 17 00", Properties(request_problem_information=0)),
    ("will-delay", Where.WILL, "05 18 00 00 00 0a", Properties(will_delay_interval=10)),
    ("response-info-req", Where.CONNECT, "02 19 01", Properties(request_response_information=1)),
    ("response-info", Where.CONNACK, "04 1a 00 01 'r'", Properties(response_information="r")),
    ("server-reference", Where.DISCONNECT, "04 1c 00 01 's'", Properties(server_reference="s")),
    ("reason-string", Where.PUBACK, "05 1f 00 02 'no'", Properties(reason_string="no")),
    ("receive-maximum", Where.CONNECT, "03 21 00 0a", Properties(receive_maximum=10)),
    ("alias-maximum", Where.CONNACK, "03 22 00 05", Properties(topic_alias_maximum=5)),
    ("topic-alias", Where.PUBLISH, "03 23 00 01", Properties(topic_alias=1)),
    ("maximum-qos", Where.CONNACK, "02 24 01", Properties(maximum_qos=1)),
    ("retain-available", Where.CONNACK, "02 25 00", Properties(retain_available=0)),
    (
        "user-properties-repeat-and-keep-order",
        Where.SUBACK,
        "0e 26 00 01 'k' 00 01 'b' 26 00 01 'k' 00 01 'a'",
        Properties(user_properties=(("k", "b"), ("k", "a"))),
    ),
    (
        "maximum-packet-size",
        Where.CONNECT,
        "05 27 00 00 10 00",
        Properties(maximum_packet_size=4096),
    ),
    (
        "wildcard-available",
        Where.CONNACK,
        "02 28 01",
        Properties(wildcard_subscription_available=1),
    ),
    ("subid-available", Where.CONNACK, "02 29 00", Properties(subscription_identifier_available=0)),
    ("shared-available", Where.CONNACK, "02 2a 01", Properties(shared_subscription_available=1)),
]


@pytest.mark.parametrize(
    ("where", "data", "expected"),
    [case[1:] for case in PROPERTY_VECTORS],
    ids=[case[0] for case in PROPERTY_VECTORS],
)
def test_property_vectors_decode_and_encode(where: Where, data: str, expected: Properties) -> None:
    """2.2.2.2 and 1.5: each property's identifier and data type, both ways."""
    assert props(data, where) == expected
    assert encode_properties(expected, where) == h(data)


def test_every_property_has_a_vector() -> None:
    """The vectors above cover all 27 identifiers of 2.2.2.2."""
    covered = {h(data)[1] for _, _, data, _ in PROPERTY_VECTORS}
    assert covered == {spec.identifier for spec in SPECS}


def test_empty_property_list_is_one_zero_byte() -> None:
    """2.2.2.1: no properties is a Property Length of 0."""
    assert encode_properties(NO_PROPERTIES, Where.PUBLISH) == b"\x00"
    assert props("00", Where.PUBLISH) is NO_PROPERTIES
    assert not NO_PROPERTIES
    assert Properties(topic_alias=1)


def test_properties_repr_shows_only_what_is_present() -> None:
    """A Properties repr names the properties set, not all 27."""
    assert repr(Properties(topic_alias=3)) == "Properties(topic_alias=3)"


# (id, where, property list hex, message fragment, reason code)
BAD_PROPERTIES: list[tuple[str, Where, str, str, int]] = [
    ("unknown-identifier", Where.PUBLISH, "02 04 00", "unknown property", MALFORMED),
    ("identifier-0", Where.PUBLISH, "02 00 00", "unknown property", MALFORMED),
    # 2.2.2.2: an identifier valid elsewhere is malformed in the wrong packet.
    ("topic-alias-in-connect", Where.CONNECT, "03 23 00 01", "not allowed in CONNECT", MALFORMED),
    ("will-delay-in-publish", Where.PUBLISH, "05 18 00 00 00 01", "not allowed", MALFORMED),
    ("session-expiry-in-will", Where.WILL, "05 11 00 00 00 01", "not allowed", MALFORMED),
    ("reason-string-in-publish", Where.PUBLISH, "04 1f 00 01 'x'", "not allowed", MALFORMED),
    ("sub-id-in-connack", Where.CONNACK, "02 0b 01", "not allowed", MALFORMED),
    ("length-overruns-packet", Where.PUBLISH, "05 01 01", "runs past", MALFORMED),
    ("length-varint-cut", Where.PUBLISH, "80", "property length", MALFORMED),
    ("u16-cut", Where.CONNECT, "02 21 00", "ends inside", MALFORMED),
    ("u32-cut", Where.PUBLISH, "04 02 00 00 01", "ends inside", MALFORMED),
    ("byte-missing", Where.PUBLISH, "01 01", "ends inside", MALFORMED),
    ("string-cut", Where.PUBLISH, "04 03 00 05 'a'", "content_type", MALFORMED),
    ("string-bad-utf8", Where.PUBLISH, "04 03 00 01 ff", "UTF-8", MALFORMED),
    ("string-nul", Where.PUBLISH, "04 03 00 01 00", r"U\+0000", MALFORMED),
    ("pair-value-missing", Where.PUBLISH, "04 26 00 01 'k'", "user property value", MALFORMED),
    ("varint-cut", Where.SUBSCRIBE, "02 0b 80", "subscription_identifiers", MALFORMED),
    ("varint-5-bytes", Where.SUBSCRIBE, "06 0b 80 80 80 80 01", "longer than 4", MALFORMED),
    # 2.2.2.2: "It is a Protocol Error to include ... more than once".
    ("duplicate-expiry", Where.PUBLISH, "0a 02 00 00 00 01 02 00 00 00 02", "twice", PROTOCOL),
    ("duplicate-alias", Where.PUBLISH, "06 23 00 01 23 00 02", "twice", PROTOCOL),
    ("duplicate-receive-max", Where.CONNECT, "06 21 00 01 21 00 02", "twice", PROTOCOL),
    # 3.1.2.11.3, 3.1.2.11.4, 3.3.2.3.4, 3.8.2.1.2: zero values that are Protocol Errors.
    ("receive-maximum-0", Where.CONNECT, "03 21 00 00", "receive_maximum is 0", PROTOCOL),
    ("max-packet-size-0", Where.CONNACK, "05 27 00 00 00 00", "maximum_packet_size", PROTOCOL),
    ("topic-alias-0", Where.PUBLISH, "03 23 00 00", "topic_alias is 0", PROTOCOL),
    ("sub-id-0", Where.SUBSCRIBE, "02 0b 00", "subscription_identifiers is 0", PROTOCOL),
    # 3.1.2.11.7, 3.1.2.11.6, 3.2.2.3.4...: byte flags other than 0 and 1.
    ("problem-info-2", Where.CONNECT, "02 17 02", "not 0 or 1", PROTOCOL),
    ("response-info-req-2", Where.CONNECT, "02 19 02", "not 0 or 1", PROTOCOL),
    ("maximum-qos-2", Where.CONNACK, "02 24 02", "not 0 or 1", PROTOCOL),
    ("retain-available-2", Where.CONNACK, "02 25 02", "not 0 or 1", PROTOCOL),
    ("payload-format-2", Where.PUBLISH, "02 01 02", "not 0 or 1", PROTOCOL),
]


@pytest.mark.parametrize(
    ("where", "data", "match", "reason"),
    [case[1:] for case in BAD_PROPERTIES],
    ids=[case[0] for case in BAD_PROPERTIES],
)
def test_bad_property_lists_raise_with_the_spec_reason_code(
    where: Where, data: str, match: str, reason: int
) -> None:
    """Malformed property lists raise 0x81, the spec's Protocol Errors raise 0x82."""
    with pytest.raises(MqttProtocolError, match=match) as info:
        decode_properties(memoryview(h(data)), 0, where)
    assert info.value.reason_code == reason


@pytest.mark.parametrize(
    ("properties", "where", "match"),
    [
        (Properties(topic_alias=0), Where.PUBLISH, "topic_alias"),
        (Properties(topic_alias=0x10000), Where.PUBLISH, "topic_alias"),
        (Properties(message_expiry_interval=-1), Where.PUBLISH, "message_expiry"),
        (Properties(message_expiry_interval=1 << 32), Where.PUBLISH, "message_expiry"),
        (Properties(payload_format_indicator=2), Where.PUBLISH, "payload_format"),
        (Properties(subscription_identifiers=(1 << 28,)), Where.PUBLISH, "subscription"),
        (Properties(subscription_identifiers=(1, 2)), Where.SUBSCRIBE, "one subscription"),
        (Properties(receive_maximum=0), Where.CONNECT, "receive_maximum"),
        (Properties(topic_alias=1), Where.CONNECT, "not allowed in CONNECT"),
        (Properties(reason_string="x" * 0x10000), Where.PUBACK, "reason_string"),
    ],
)
def test_encoder_refuses_values_the_peer_would_refuse(
    properties: Properties, where: Where, match: str
) -> None:
    """The encoder raises ValueError rather than write what the spec forbids."""
    with pytest.raises(ValueError, match=match):
        encode_properties(properties, where)


# --- reason codes (2.4) ------------------------------------------------------------


def test_reason_code_table() -> None:
    """2.4: 43 reason codes, the failures at 0x80 and above."""
    assert len(ReasonCode) == 43
    assert ReasonCode.PACKET_TOO_LARGE == 0x95
    assert reason_name(0x8E) == "SESSION_TAKEN_OVER"
    assert reason_name(0x03) == "0x03"


def test_reason_codes_per_packet() -> None:
    """3.2.2.2, 3.9.3, 3.14.2.1: which codes which packet may carry."""
    assert ReasonCode.UNSUPPORTED_PROTOCOL_VERSION in CONNACK_REASONS
    assert ReasonCode.SESSION_TAKEN_OVER not in CONNACK_REASONS
    assert ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED in SUBACK_REASONS
    assert ReasonCode.SESSION_TAKEN_OVER in DISCONNECT_REASONS
    assert ReasonCode.PACKET_IDENTIFIER_IN_USE not in DISCONNECT_REASONS
    assert ReasonCode.PACKET_IDENTIFIER_NOT_FOUND not in DISCONNECT_REASONS
    assert ReasonCode.MAXIMUM_CONNECT_TIME in DISCONNECT_REASONS


# --- known byte vectors, both ways ------------------------------------------------

VECTORS: list[tuple[str, str, Packet]] = [
    (
        # 3.1.2: name, level 5, clean start, keepalive 60, properties, client id
        "connect-minimal",
        "10 0d 00 04 'MQTT' 05 02 00 3c 00 00 00",
        Connect(protocol_level=5),
    ),
    (
        "connect-properties-will-user-password",
        "10 27 00 04 'MQTT' 05 ec 00 0a 05 11 00 00 00 3c 00 01 'c'"
        " 05 18 00 00 00 05 00 01 'w' 00 02 'by' 00 01 'u' 00 02 'pw'",
        Connect(
            protocol_level=5,
            clean_session=False,
            keepalive=10,
            client_id="c",
            will=Will("w", b"by", 1, True, Properties(will_delay_interval=5)),
            username="u",
            password=b"pw",
            properties=Properties(session_expiry_interval=60),
        ),
    ),
    (
        # 3.1.2.9: 5.0 allows a password without a user name
        "connect-password-without-username",
        "10 11 00 04 'MQTT' 05 42 00 00 00 00 00 00 02 'pw'",
        Connect(protocol_level=5, password=b"pw", keepalive=0),
    ),
    (
        # 3.1.3.1: 5.0 allows an empty client id with Clean Start 0
        "connect-empty-id-not-clean",
        "10 0d 00 04 'MQTT' 05 00 00 00 00 00 00",
        Connect(protocol_level=5, clean_session=False, keepalive=0),
    ),
    ("connack-success", "20 03 00 00 00", Connack()),
    (
        "connack-present-with-properties",
        "20 08 01 00 05 12 00 02 'id'",
        Connack(True, 0, Properties(assigned_client_identifier="id")),
    ),
    ("connack-refused", "20 03 00 87 00", Connack(False, ReasonCode.NOT_AUTHORIZED)),
    ("publish-qos0", "30 07 00 03 'a/b' 00 'x'", Publish("a/b", b"x")),
    (
        "publish-qos1-properties",
        "32 0b 00 01 't' 00 07 05 02 00 00 00 0a",
        Publish("t", b"", 1, packet_id=7, properties=Properties(message_expiry_interval=10)),
    ),
    (
        # 3.3.2.3.4: an empty topic name with a topic alias
        "publish-alias-only",
        "30 06 00 00 03 23 00 02",
        Publish("", properties=Properties(topic_alias=2)),
    ),
    # 3.4.2.1: the short form, then reason code alone, then with properties
    ("puback-short", "40 02 00 07", Puback(7)),
    ("puback-reason", "40 03 00 07 10", Puback(7, ReasonCode.NO_MATCHING_SUBSCRIBERS)),
    (
        "puback-reason-properties",
        "40 08 00 07 87 04 1f 00 01 'x'",
        Puback(7, ReasonCode.NOT_AUTHORIZED, Properties(reason_string="x")),
    ),
    ("pubrec-reason", "50 03 00 07 97", Pubrec(7, ReasonCode.QUOTA_EXCEEDED)),
    ("pubrel-short", "62 02 00 07", Pubrel(7)),
    ("pubrel-not-found", "62 03 00 07 92", Pubrel(7, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)),
    ("pubcomp-short", "70 02 00 07", Pubcomp(7)),
    (
        # 3.8.3.1: options byte qos 1, no local, retain as published, retain handling 2
        "subscribe-options",
        "82 09 00 01 02 0b 05 00 01 'a' 2d",
        Subscribe(1, (("a", 0x2D),), Properties(subscription_identifiers=(5,))),
    ),
    ("suback", "90 06 00 01 00 01 80 9e", Suback(1, (1, 0x80, 0x9E))),
    ("unsubscribe", "a2 06 00 02 00 00 01 'a'", Unsubscribe(2, ("a",))),
    ("unsuback", "b0 05 00 02 00 00 11", Unsuback(2, (0, 0x11))),
    ("pingreq", "c0 00", Pingreq()),
    ("pingresp", "d0 00", Pingresp()),
    # 3.14.2.1: the body may be empty (normal disconnection) or the code alone
    ("disconnect-empty", "e0 00", Disconnect()),
    ("disconnect-with-will", "e0 01 04", Disconnect(ReasonCode.DISCONNECT_WITH_WILL)),
    (
        "disconnect-server-properties",
        "e0 07 8e 05 1f 00 02 'to'",
        Disconnect(ReasonCode.SESSION_TAKEN_OVER, Properties(reason_string="to")),
    ),
    ("auth-empty", "f0 00", Auth()),
    (
        "auth-continue",
        "f0 08 18 06 15 00 03 'xyz'",
        Auth(ReasonCode.CONTINUE_AUTHENTICATION, Properties(authentication_method="xyz")),
    ),
]


@pytest.mark.parametrize(
    ("data", "packet"), [case[1:] for case in VECTORS], ids=[case[0] for case in VECTORS]
)
def test_vectors_decode(data: str, packet: Packet) -> None:
    """Each 5.0 vector decodes to its packet."""
    assert decode(h(data), 5) == packet


@pytest.mark.parametrize(
    ("data", "packet"), [case[1:] for case in VECTORS], ids=[case[0] for case in VECTORS]
)
def test_vectors_encode(data: str, packet: Packet) -> None:
    """Each 5.0 packet encodes to its vector, in the shortest form the spec allows."""
    assert encode(packet, 5) == h(data)


def test_reason_code_zero_with_properties_is_kept_long() -> None:
    """3.4.2.1: success with properties needs the reason code and the property length."""
    packet = Puback(3, 0, Properties(user_properties=(("a", "b"),)))
    assert encode(packet, 5) == h("40 0b 00 03 00 07 26 00 01 'a' 00 01 'b'")
    assert decode(encode(packet, 5), 5) == packet


def test_subscription_options_read_and_write_the_byte() -> None:
    """3.8.3.1: QoS in bits 0-1, No Local bit 2, Retain As Published bit 3, Retain Handling 4-5."""
    options = SubscriptionOptions.from_byte(0x2D)
    assert options == SubscriptionOptions(1, True, True, 2)
    assert options.to_byte() == 0x2D
    assert SubscriptionOptions.from_byte(2) == SubscriptionOptions(qos=2)


# --- the reader switches to 5.0 on a 5.0 CONNECT ----------------------------------


def test_reader_switches_to_version_5_on_a_5_connect() -> None:
    """3.1.2.2: the CONNECT's protocol level decides how the rest of the stream reads."""
    reader = PacketReader()
    assert reader.version == 4
    stream = encode(Connect(protocol_level=5, client_id="a"), 5) + h("40 03 00 01 10")
    assert reader.feed(stream) == [
        Connect(protocol_level=5, client_id="a"),
        Puback(1, ReasonCode.NO_MATCHING_SUBSCRIBERS),
    ]
    assert reader.version == 5


def test_3_1_1_reader_refuses_5_0_only_forms() -> None:
    """A 3.1.1 stream has no AUTH (type 15) and no long PUBACK."""
    with pytest.raises(MqttProtocolError, match="reserved packet type 15"):
        PacketReader().feed(h("f0 00"))
    with pytest.raises(MqttProtocolError, match="invalid for PUBACK"):
        PacketReader().feed(h("40 03 00 01 10"))


def test_error_in_a_5_connect_has_the_reader_in_version_5() -> None:
    """A broken 5.0 CONNECT raises with the reader at 5, so the CONNACK is 5.0 too."""
    reader = PacketReader()
    with pytest.raises(MqttProtocolError) as info:
        reader.feed(h("10 10 00 04 'MQTT' 05 02 00 3c 03 21 00 00 00 00"))
    assert reader.version == 5
    assert info.value.reason_code == PROTOCOL


def test_second_5_connect_decodes_so_the_handler_can_refuse_it() -> None:
    """3.1.0-2: a second CONNECT is the handler's Protocol Error; the codec reads it."""
    reader = PacketReader(version=5)
    packet = Connect(protocol_level=5)
    assert reader.feed(encode(packet) * 2) == [packet, packet]


def test_3_1_1_connect_on_a_5_stream_is_a_protocol_error() -> None:
    """After 5.0 a CONNECT of another level is a Protocol Error."""
    with pytest.raises(MqttProtocolError, match="another protocol version") as info:
        PacketReader(version=5).feed(encode(Connect(client_id="abc")))
    assert info.value.reason_code == PROTOCOL


def test_oversized_packet_is_reason_0x95() -> None:
    """3.1.2.11.4 / 4.13: a packet over the limit is Packet Too Large."""
    with pytest.raises(MqttProtocolError, match="exceeds the limit") as info:
        PacketReader(max_packet_size=10, version=5).feed(h("30 0b"))
    assert info.value.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_spent_reader_repeats_the_reason_code() -> None:
    """After an error, every feed raises with the first error's reason code."""
    reader = PacketReader(version=5)
    with pytest.raises(MqttProtocolError):
        reader.feed(h("40 03 00 01 92"))
    with pytest.raises(MqttProtocolError) as info:
        reader.feed(b"")
    assert info.value.reason_code == PROTOCOL


def test_with_packet_id_patches_a_5_publish() -> None:
    """The fan-out shortcut works on 5.0 PUBLISH too: the id sits before the properties."""
    packet = Publish("a", b"p", 1, packet_id=1, properties=Properties(content_type="c"))
    patched = with_packet_id(encode(packet, 5), 9, dup=True)
    assert decode(patched, 5) == Publish(
        "a", b"p", 1, dup=True, packet_id=9, properties=Properties(content_type="c")
    )


# --- malformed and forbidden packets ---------------------------------------------

# (id, bytes, message fragment, reason code)
MALFORMED_PACKETS: list[tuple[str, str, str, int]] = [
    # CONNECT (3.1.2)
    ("connect-reserved-flag", "10 0d 00 04 'MQTT' 05 03 00 00 00 00 00", "reserved", MALFORMED),
    ("connect-will-qos-3", "10 0d 00 04 'MQTT' 05 1e 00 00 00 00 00", "QoS 3", MALFORMED),
    ("connect-will-qos-no-will", "10 0d 00 04 'MQTT' 05 0a 00 00 00 00 00", "will", MALFORMED),
    ("connect-cut-in-id", "10 0d 00 04 'MQTT' 05 02 00 00 00 00 01", "client id", MALFORMED),
    ("connect-trailing", "10 0e 00 04 'MQTT' 05 02 00 00 00 00 00 00", "past", MALFORMED),
    (
        "connect-will-cut",
        "10 11 00 04 'MQTT' 05 06 00 00 00 00 00 00 00 01 'w'",
        "will payload",
        MALFORMED,
    ),
    (
        "connect-will-topic-wildcard",
        "10 14 00 04 'MQTT' 05 06 00 00 00 00 00 00 00 02 'a#' 00 00",
        "wildcard",
        MALFORMED,
    ),
    (
        "connect-username-flag-without-field",
        "10 0d 00 04 'MQTT' 05 82 00 00 00 00 00",
        "username",
        MALFORMED,
    ),
    (
        # 3.1.2.11.10: Authentication Data without Authentication Method
        "connect-auth-data-without-method",
        "10 11 00 04 'MQTT' 05 02 00 00 04 16 00 01 00 00 00",
        "without a method",
        PROTOCOL,
    ),
    ("connect-bad-property", "10 0f 00 04 'MQTT' 05 02 00 00 02 23 00 00 00", "not", MALFORMED),
    # CONNACK (3.2.2)
    ("connack-reserved-flags", "20 03 02 00 00", "reserved", MALFORMED),
    ("connack-reason-not-allowed", "20 03 00 8e 00", "not allowed in CONNACK", PROTOCOL),
    ("connack-present-refused", "20 03 01 80 00", "session present", PROTOCOL),
    ("connack-too-short", "20 02 00 00", "invalid for CONNACK", MALFORMED),
    ("connack-trailing", "20 04 00 00 00 00", "past", MALFORMED),
    # PUBLISH (3.3)
    ("publish-qos3", "36 05 00 01 't' 00 01", "QoS 3", MALFORMED),
    ("publish-dup-qos0", "38 04 00 01 't' 00", "DUP", MALFORMED),
    ("publish-no-properties", "30 03 00 01 't'", "property length", MALFORMED),
    ("publish-id-0", "32 06 00 01 't' 00 00 00", "packet id 0", MALFORMED),
    ("publish-wildcard", "30 06 00 03 'a/+' 00", "wildcard", MALFORMED),
    ("publish-empty-topic-no-alias", "30 03 00 00 00", "topic alias", PROTOCOL),
    ("publish-will-property", "30 09 00 01 't' 05 18 00 00 00 01", "not allowed", MALFORMED),
    # acknowledgements (3.4-3.7)
    ("puback-reason-not-allowed", "40 03 00 01 92", "not allowed in PUBACK", PROTOCOL),
    ("pubrec-reason-not-allowed", "50 03 00 01 8e", "not allowed in PUBREC", PROTOCOL),
    ("pubrel-reason-not-allowed", "62 03 00 01 87", "not allowed in PUBREL", PROTOCOL),
    ("pubcomp-reason-not-allowed", "70 03 00 01 10", "not allowed in PUBCOMP", PROTOCOL),
    ("pubrel-flags", "60 02 00 01", "reserved header flags", MALFORMED),
    ("puback-id-0", "40 02 00 00", "packet id 0", MALFORMED),
    ("puback-properties-overrun", "40 05 00 01 00 05 01", "runs past", MALFORMED),
    ("puback-trailing", "40 05 00 01 00 00 00", "past its contents", MALFORMED),
    ("puback-too-short", "40 01 00", "invalid for PUBACK", MALFORMED),
    # SUBSCRIBE (3.8)
    ("subscribe-flags", "80 06 00 01 00 00 01 't' 00", "reserved header flags", MALFORMED),
    ("subscribe-no-filters", "82 03 00 01 00", "without topic filters", PROTOCOL),
    ("subscribe-no-options", "82 06 00 01 00 00 01 't'", "options", MALFORMED),
    ("subscribe-reserved-bits", "82 07 00 01 00 00 01 't' 40", "reserved bits", MALFORMED),
    ("subscribe-qos-3", "82 07 00 01 00 00 01 't' 03", "QoS 3", PROTOCOL),
    ("subscribe-retain-handling-3", "82 07 00 01 00 00 01 't' 30", "retain handling", PROTOCOL),
    (
        "subscribe-shared-no-local",
        "82 10 00 01 00 00 0a '$share/g/t' 04",
        "no local on a shared",
        PROTOCOL,
    ),
    ("subscribe-two-sub-ids", "82 0b 00 01 04 0b 01 0b 02 00 01 't' 00", "twice", PROTOCOL),
    ("subscribe-sub-id-0", "82 09 00 01 02 0b 00 00 01 't' 00", "is 0", PROTOCOL),
    ("subscribe-bad-filter", "82 09 00 01 00 00 03 'a#b' 00", "wildcard", MALFORMED),
    # SUBACK (3.9)
    ("suback-no-codes", "90 03 00 01 00", "invalid for SUBACK", MALFORMED),
    ("suback-props-eat-codes", "90 05 00 01 03 1f 00", "runs past", MALFORMED),
    ("suback-reason-not-allowed", "90 04 00 01 00 8e", "not allowed in SUBACK", PROTOCOL),
    # UNSUBSCRIBE / UNSUBACK (3.10, 3.11)
    ("unsubscribe-no-filters", "a2 03 00 01 00", "without topic filters", PROTOCOL),
    ("unsubscribe-flags", "a0 06 00 01 00 00 01 't'", "reserved header flags", MALFORMED),
    ("unsuback-reason-not-allowed", "b0 04 00 01 00 10", "not allowed in UNSUBACK", PROTOCOL),
    ("unsuback-props-eat-codes", "b0 05 00 01 03 11 00", "runs past", MALFORMED),
    # DISCONNECT (3.14) and AUTH (3.15)
    ("disconnect-reason-not-allowed", "e0 01 91", "not allowed in DISCONNECT", PROTOCOL),
    ("disconnect-flags", "e2 00", "reserved header flags", MALFORMED),
    ("disconnect-trailing", "e0 03 00 00 00", "past its contents", MALFORMED),
    ("disconnect-publish-property", "e0 04 00 02 01 01", "not allowed", MALFORMED),
    ("auth-reason-not-allowed", "f0 01 87", "not allowed in AUTH", PROTOCOL),
    ("auth-flags", "f1 00", "reserved header flags", MALFORMED),
    ("pingreq-body", "c0 01 00", "invalid for PINGREQ", MALFORMED),
    ("reserved-type-0", "00 00", "reserved packet type 0", MALFORMED),
]


@pytest.mark.parametrize(
    ("data", "match", "reason"),
    [case[1:] for case in MALFORMED_PACKETS],
    ids=[case[0] for case in MALFORMED_PACKETS],
)
def test_malformed_packets_raise_with_the_reason_code(data: str, match: str, reason: int) -> None:
    """4.13: each malformed or forbidden packet raises with 0x81 or 0x82."""
    reader = PacketReader(version=5)
    with pytest.raises(MqttProtocolError, match=match) as info:
        reader.feed(h(data))
    assert info.value.reason_code == reason


# --- the encoder refuses what the spec forbids ------------------------------------


@pytest.mark.parametrize(
    ("packet", "match"),
    [
        (Connack(False, 0x8E), "CONNACK reason"),
        (Connack(True, 0x80), "session present"),
        (Puback(1, 0x92), "PUBACK reason"),
        (Pubrel(1, 0x10), "PUBREL reason"),
        (Suback(1, ()), "at least one"),
        (Suback(1, (0x11,)), "SUBACK reason"),
        (Unsuback(1), "one reason code per filter"),
        (Unsuback(1, (0x10,)), "UNSUBACK reason"),
        (Disconnect(0x91), "DISCONNECT reason"),
        (Auth(0x87), "AUTH reason"),
        (Subscribe(1, (("a", 0x03),)), "options"),
        (Subscribe(1, (("a", 0x30),)), "options"),
        (Subscribe(1, (("a", 0x40),)), "options"),
        (Subscribe(1, ()), "at least one"),
        (Unsubscribe(1, ()), "at least one"),
        (Publish("a", qos=1), "packet id"),
        (Publish("a", dup=True), "DUP"),
        (Publish("a", packet_id=1), "no packet id"),
        (Publish("a", properties=Properties(will_delay_interval=1)), "not allowed in PUBLISH"),
    ],
)
def test_encoder_refuses_forbidden_packets(packet: Packet, match: str) -> None:
    """encode(..., 5) raises ValueError instead of writing a packet the peer must refuse."""
    with pytest.raises(ValueError, match=match):
        encode(packet, 5)


def test_auth_has_no_3_1_1_form() -> None:
    """AUTH exists only in 5.0 (3.15)."""
    with pytest.raises(TypeError, match="not an MQTT packet"):
        encode(Auth())
