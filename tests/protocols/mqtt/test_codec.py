"""MQTT 3.1.1 codec: known byte vectors, round trips, streaming and every malformed case."""

from __future__ import annotations

import pytest

from protocols.mqtt.codec import (
    MAX_PACKET_SIZE,
    MAX_REMAINING_LENGTH,
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
    decode_remaining_length,
    encode,
    encode_remaining_length,
    with_packet_id,
)


def h(text: str) -> bytes:
    """Bytes from spaced hex, with 'quoted' runs as ASCII, for readable vectors."""
    out = bytearray()
    for token in text.split():
        if token.startswith("'"):
            out += token.strip("'").encode()
        else:
            out += bytes.fromhex(token)
    return bytes(out)


# --- remaining length ---------------------------------------------------------

REMAINING_LENGTHS = [
    (0, "00"),
    (127, "7f"),
    (128, "80 01"),
    (16_383, "ff 7f"),
    (16_384, "80 80 01"),
    (2_097_151, "ff ff 7f"),
    (2_097_152, "80 80 80 01"),
    (268_435_455, "ff ff ff 7f"),
]


@pytest.mark.parametrize(("value", "encoded"), REMAINING_LENGTHS)
def test_remaining_length_encoding_matches_spec_table(value: int, encoded: str) -> None:
    """Remaining lengths at each byte-count boundary encode as in spec table 2.4."""
    assert encode_remaining_length(value) == h(encoded)


@pytest.mark.parametrize(("value", "encoded"), REMAINING_LENGTHS)
def test_remaining_length_decoding_matches_spec_table(value: int, encoded: str) -> None:
    """Remaining lengths at each byte-count boundary decode from the spec bytes."""
    data = h("30 " + encoded)
    assert decode_remaining_length(data) == (value, len(data))


@pytest.mark.parametrize("value", [-1, MAX_REMAINING_LENGTH + 1])
def test_remaining_length_out_of_range_is_not_encoded(value: int) -> None:
    """Lengths outside 0..268435455 raise ValueError when encoding."""
    with pytest.raises(ValueError, match="out of range"):
        encode_remaining_length(value)


def test_remaining_length_incomplete_returns_none() -> None:
    """A remaining length cut after a continuation byte asks for more data."""
    assert decode_remaining_length(h("30 ff ff ff")) is None
    assert decode_remaining_length(h("30")) is None


def test_remaining_length_of_five_bytes_is_refused_at_the_fourth() -> None:
    """A fourth length byte with the continuation bit raises without waiting for a fifth."""
    with pytest.raises(MqttProtocolError, match="longer than 4 bytes"):
        decode_remaining_length(h("30 ff ff ff ff"))


@pytest.mark.parametrize(("value", "encoded"), REMAINING_LENGTHS[1:-1])
def test_publish_of_boundary_length_round_trips(value: int, encoded: str) -> None:
    """PUBLISH packets whose remaining length sits on each boundary encode and decode."""
    packet = Publish("t", b"\xa5" * (value - 3))
    data = encode(packet)
    assert data[1 : 1 + len(h(encoded))] == h(encoded)
    assert PacketReader(MAX_REMAINING_LENGTH).feed(data) == [packet]


def test_largest_remaining_length_header_is_accepted_under_the_largest_limit() -> None:
    """A PUBLISH of remaining length 268435455 (268435460 bytes in all) is accepted and
    held while its body is awaited."""
    reader = PacketReader(MAX_PACKET_SIZE)
    assert reader.feed(h("30 ff ff ff 7f 00 01 't'")) == []
    assert reader.buffered == 8


# --- known vectors ------------------------------------------------------------

VECTORS: list[tuple[str, str, Packet]] = [
    (
        "connect-full",
        "10 1f  00 04 'MQTT' 04 ee 00 3c  00 03 'abc'  00 03 'w/t'  00 03 'bye'"
        "  00 01 'u'  00 01 'p'",
        Connect(
            keepalive=60,
            client_id="abc",
            will=Will("w/t", b"bye", 1, True),
            username="u",
            password=b"p",
        ),
    ),
    (
        "connect-minimal",
        "10 0c  00 04 'MQTT' 04 02 00 00  00 00",
        Connect(keepalive=0),
    ),
    (
        "connect-mqisdp",
        "10 10  00 06 'MQIsdp' 03 00 00 3c  00 02 'id'",
        Connect(
            protocol_name="MQIsdp",
            protocol_level=3,
            clean_session=False,
            client_id="id",
        ),
    ),
    (
        "connect-username-only",
        "10 13  00 04 'MQTT' 04 82 00 0a  00 02 'me'  00 03 'bob'",
        Connect(keepalive=10, client_id="me", username="bob"),
    ),
    ("connack", "20 02 01 00", Connack(session_present=True, return_code=0)),
    ("connack-refused", "20 02 00 05", Connack(False, 5)),
    ("publish-qos0-retain", "31 05 00 01 't' 'hi'", Publish("t", b"hi", retain=True)),
    ("publish-qos1", "32 09 00 03 'a/b' 00 0a 'hi'", Publish("a/b", b"hi", 1, packet_id=10)),
    (
        "publish-qos2-dup",
        "3c 07 00 03 'a/b' ff ff",
        Publish("a/b", b"", 2, dup=True, packet_id=0xFFFF),
    ),
    (
        "publish-utf8-topic",
        "30 07 00 05 c3 bc e2 82 ac",
        Publish("\u00fc\u20ac"),
    ),
    ("puback", "40 02 00 01", Puback(1)),
    ("pubrec", "50 02 12 34", Pubrec(0x1234)),
    ("pubrel", "62 02 00 02", Pubrel(2)),
    ("pubcomp", "70 02 00 03", Pubcomp(3)),
    (
        "subscribe",
        "82 0c 00 01  00 03 'a/b' 01  00 01 '#' 02",
        Subscribe(1, (("a/b", 1), ("#", 2))),
    ),
    ("suback", "90 05 00 01 00 02 80", Suback(1, (0, 2, 0x80))),
    ("unsubscribe", "a2 0c 00 02  00 03 'a/b'  00 03 '+/c'", Unsubscribe(2, ("a/b", "+/c"))),
    ("unsuback", "b0 02 00 02", Unsuback(2)),
    ("pingreq", "c0 00", Pingreq()),
    ("pingresp", "d0 00", Pingresp()),
    ("disconnect", "e0 00", Disconnect()),
]


@pytest.mark.parametrize(
    ("data", "packet"), [(v[1], v[2]) for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_known_vector_decodes(data: str, packet: Packet) -> None:
    """Hand-written spec bytes decode to the expected packet."""
    assert decode(h(data)) == packet


@pytest.mark.parametrize(
    ("data", "packet"), [(v[1], v[2]) for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_known_vector_encodes(data: str, packet: Packet) -> None:
    """Packets encode to exactly the hand-written spec bytes."""
    assert encode(packet) == h(data)


# --- round trips and streams --------------------------------------------------

SAMPLES: list[Packet] = [
    Connect(client_id="c1"),
    Connect(
        protocol_name="MQIsdp",
        protocol_level=3,
        clean_session=False,
        keepalive=0xFFFF,
        client_id="x" * 23,
        will=Will("last/will", b"\x00\xff", 2, False),
        username="",
        password=b"",
    ),
    Connect(will=Will("w", b"", 0, True), username="\u00e9", password=b"s3cret"),
    Connack(),
    Connack(False, 2),
    Publish("a/b/c", b"payload"),
    Publish("a", b"\x00" * 300, 1, retain=True, packet_id=1),
    Publish("$SYS/x", b"", 2, dup=True, packet_id=65535),
    Puback(7),
    Pubrec(8),
    Pubrel(9),
    Pubcomp(10),
    Subscribe(11, (("a/+/c", 0), ("#", 1), ("$SYS/#", 2))),
    Suback(11, (0, 1, 2, 0x80)),
    Unsubscribe(12, ("a/+/c",)),
    Unsuback(12),
    Pingreq(),
    Pingresp(),
    Disconnect(),
]
STREAM = b"".join(encode(packet) for packet in SAMPLES)


@pytest.mark.parametrize("packet", SAMPLES, ids=lambda p: type(p).__name__)
def test_every_packet_type_round_trips(packet: Packet) -> None:
    """decode(encode(p)) gives back an equal packet for every packet type."""
    assert decode(encode(packet)) == packet


def test_many_packets_in_one_chunk() -> None:
    """One chunk holding many packets yields them all, in order."""
    reader = PacketReader()
    assert reader.feed(STREAM) == SAMPLES
    assert reader.buffered == 0


def test_stream_split_at_every_byte_boundary() -> None:
    """Cutting the stream into two chunks anywhere yields the same packets."""
    for cut in range(len(STREAM) + 1):
        reader = PacketReader()
        assert reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:]) == SAMPLES, cut


def test_stream_split_at_every_pair_of_boundaries() -> None:
    """Cutting a short stream into three chunks anywhere yields the same packets."""
    packets: list[Packet] = [
        Publish("a/b", b"xy", 1, packet_id=3),
        Pingreq(),
        Subscribe(4, (("t", 0),)),
    ]
    stream = b"".join(encode(packet) for packet in packets)
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            reader = PacketReader()
            got = reader.feed(stream[:first])
            got += reader.feed(stream[first:second])
            got += reader.feed(stream[second:])
            assert got == packets, (first, second)


def test_stream_fed_byte_by_byte() -> None:
    """Feeding one byte at a time yields each packet once its last byte arrives."""
    reader = PacketReader()
    got: list[Packet] = []
    for index in range(len(STREAM)):
        got += reader.feed(STREAM[index : index + 1])
    assert got == SAMPLES


def test_incomplete_tail_is_buffered() -> None:
    """Bytes of an unfinished packet are held back and counted by buffered."""
    reader = PacketReader()
    data = encode(Publish("t", b"abc"))
    assert reader.feed(encode(Pingreq()) + data[:4]) == [Pingreq()]
    assert reader.buffered == 4
    assert reader.feed(data[4:]) == [Publish("t", b"abc")]
    assert reader.buffered == 0


def test_missing_counts_what_a_large_packet_still_lacks() -> None:
    """Once a packet's fixed header is in, ``missing`` says how many bytes it still
    lacks (the MQTT handler feeds them at once, not a KiB at a time)."""
    reader = PacketReader()
    data = encode(Publish("t/a", b"x" * 60_000))
    assert reader.missing == 0
    assert reader.feed(data[:2]) == []  # the remaining length is not whole yet
    assert reader.missing == 0
    assert reader.feed(data[2:1024]) == []
    assert reader.missing == len(data) - 1024
    assert reader.feed(data[1024:2048]) == []  # buffered, not parsed again
    assert reader.missing == len(data) - 2048
    assert reader.feed(data[2048:] + encode(Pingreq())) == [
        Publish("t/a", b"x" * 60_000),
        Pingreq(),
    ]
    assert reader.missing == 0
    assert reader.buffered == 0


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_reader_accepts_any_bytes_like(kind: type) -> None:
    """feed() takes bytes, bytearray or memoryview chunks."""
    reader = PacketReader()
    assert reader.feed(kind(STREAM[:10])) + reader.feed(kind(STREAM[10:])) == SAMPLES


def test_empty_chunk_yields_nothing() -> None:
    """Feeding an empty chunk returns no packets and keeps the reader usable."""
    reader = PacketReader()
    assert reader.feed(b"") == []
    assert reader.feed(encode(Pingreq())) == [Pingreq()]


def test_decoded_payload_does_not_alias_the_input() -> None:
    """A decoded payload is an independent bytes object, unaffected by later input changes."""
    data = bytearray(encode(Publish("t", b"abc")))
    packet = PacketReader().feed(data)[0]
    data[-1] = 0
    assert packet == Publish("t", b"abc")


# --- limits -------------------------------------------------------------------


def test_packet_over_the_limit_is_refused_from_its_header() -> None:
    """A packet over max_packet_size raises as soon as its fixed header arrives."""
    reader = PacketReader(max_packet_size=10)
    with pytest.raises(MqttProtocolError, match="exceeds the limit"):
        reader.feed(h("30 0b"))


def test_packet_over_the_limit_is_refused_when_buffered() -> None:
    """The limit also applies when the header completes in a later chunk."""
    reader = PacketReader(max_packet_size=200)
    assert reader.feed(h("30 c9")) == []
    with pytest.raises(MqttProtocolError, match="exceeds the limit"):
        reader.feed(h("01"))


def test_packet_at_the_limit_is_accepted() -> None:
    """A packet whose whole size (fixed header included) equals max_packet_size decodes."""
    packet = Publish("t", b"x" * 7)
    assert len(encode(packet)) == 12
    assert PacketReader(max_packet_size=12).feed(encode(packet)) == [packet]


def test_the_fixed_header_counts_toward_the_limit() -> None:
    """5.0 3.1.2.11.4: the whole packet counts; a remaining length of 10 (12 bytes in
    all) is over a limit of 11, and the error names the whole size."""
    with pytest.raises(MqttProtocolError, match="packet of 12 bytes exceeds the limit 11"):
        PacketReader(max_packet_size=11).feed(encode(Publish("t", b"x" * 7)))


def test_a_long_remaining_length_counts_its_four_bytes() -> None:
    """A remaining length written in 4 bytes: 5 header bytes count toward the limit."""
    header = b"\x30" + encode_remaining_length(1 << 21)
    assert len(header) == 5
    with pytest.raises(MqttProtocolError, match=f"packet of {(1 << 21) + 5} bytes"):
        PacketReader(max_packet_size=(1 << 21) + 4).feed(header)
    assert PacketReader(max_packet_size=(1 << 21) + 5).feed(header) == []


def test_default_limit_is_one_mebibyte() -> None:
    """The default reader refuses packets over 1 MiB, header included."""
    with pytest.raises(MqttProtocolError, match="exceeds the limit"):
        PacketReader().feed(b"\x30" + encode_remaining_length((1 << 20) - 3))
    assert PacketReader().feed(b"\x30" + encode_remaining_length((1 << 20) - 4)) == []


@pytest.mark.parametrize("limit", [-1, MAX_PACKET_SIZE + 1])
def test_limit_out_of_range_is_refused(limit: int) -> None:
    """max_packet_size outside 0..268435460 (the largest whole packet) raises ValueError."""
    with pytest.raises(ValueError, match="max_packet_size"):
        PacketReader(limit)


def test_reader_stays_failed_after_an_error() -> None:
    """After a protocol error every later feed raises, even with valid data."""
    reader = PacketReader()
    with pytest.raises(MqttProtocolError):
        reader.feed(h("00 00"))
    with pytest.raises(MqttProtocolError, match="failed earlier"):
        reader.feed(encode(Pingreq()))


def test_failed_reader_keeps_the_connack_code() -> None:
    """A spent reader repeats the CONNACK code of the error that spent it."""
    reader = PacketReader()
    with pytest.raises(MqttProtocolError):
        reader.feed(h("10 0c 00 04 'MQTT' 06 02 00 00 00 00"))
    with pytest.raises(MqttProtocolError) as info:
        reader.feed(b"")
    assert info.value.connack_code == 0x01


# --- malformed input ----------------------------------------------------------

# Header-only cases: the first bytes alone prove the packet malformed.
MALFORMED_HEADERS = [
    ("reserved-type-0", "00", "reserved packet type"),
    ("reserved-type-15", "f0", "reserved packet type"),
    ("connect-flags", "11", "reserved header flags"),
    ("connack-flags", "28", "reserved header flags"),
    ("puback-flags", "42", "reserved header flags"),
    ("pubrec-flags", "51", "reserved header flags"),
    ("pubrel-flags-0", "60", "reserved header flags"),
    ("pubrel-flags-3", "63", "reserved header flags"),
    ("pubcomp-flags", "72", "reserved header flags"),
    ("subscribe-flags-0", "80", "reserved header flags"),
    ("subscribe-flags-a", "8a", "reserved header flags"),
    ("suback-flags", "92", "reserved header flags"),
    ("unsubscribe-flags-0", "a0", "reserved header flags"),
    ("unsubscribe-flags-3", "a3", "reserved header flags"),
    ("unsuback-flags", "b1", "reserved header flags"),
    ("pingreq-flags", "c1", "reserved header flags"),
    ("pingresp-flags", "d8", "reserved header flags"),
    ("disconnect-flags", "e2", "reserved header flags"),
    ("publish-qos3", "36", "QoS 3"),
    ("publish-qos3-retain", "37", "QoS 3"),
    ("publish-dup-qos0", "38", "DUP"),
    ("length-5-bytes", "30 80 80 80 80", "longer than 4 bytes"),
    ("connack-too-long", "20 03", "invalid for CONNACK"),
    ("connack-too-short", "20 01", "invalid for CONNACK"),
    ("puback-too-long", "40 03", "invalid for PUBACK"),
    ("pubrel-too-short", "62 01", "invalid for PUBREL"),
    ("unsuback-too-long", "b0 04", "invalid for UNSUBACK"),
    ("pingreq-with-body", "c0 01", "invalid for PINGREQ"),
    ("pingresp-with-body", "d0 01", "invalid for PINGRESP"),
    ("disconnect-with-body", "e0 01", "invalid for DISCONNECT"),
    ("connect-too-short", "10 0b", "invalid for CONNECT"),
    ("subscribe-no-filters", "82 02", "invalid for SUBSCRIBE"),
    ("unsubscribe-no-filters", "a2 02", "invalid for UNSUBSCRIBE"),
    ("suback-no-codes", "90 02", "invalid for SUBACK"),
    ("publish-qos0-too-short", "30 01", "invalid for PUBLISH"),
    ("publish-qos1-no-packet-id", "32 03", "invalid for PUBLISH"),
]


@pytest.mark.parametrize(
    ("data", "match"),
    [(v[1], v[2]) for v in MALFORMED_HEADERS],
    ids=[v[0] for v in MALFORMED_HEADERS],
)
def test_malformed_fixed_header_raises_before_the_body(data: str, match: str) -> None:
    """A fixed header that breaks the spec raises before any body byte arrives."""
    with pytest.raises(MqttProtocolError, match=match) as info:
        PacketReader().feed(h(data))
    assert info.value.connack_code is None


# Whole-packet cases: (id, bytes, message fragment, expected connack_code).
MALFORMED_PACKETS: list[tuple[str, str, str, int | None]] = [
    # CONNECT
    ("connect-unknown-name", "10 0c 00 04 'MQTX' 04 02 00 00 00 00", "protocol name", None),
    ("connect-mqtt-level-3", "10 0c 00 04 'MQTT' 03 02 00 00 00 00", "level 3", 0x01),
    ("connect-mqtt-level-6", "10 0d 00 04 'MQTT' 06 02 00 00 00 00 00", "level 6", 0x01),
    ("connect-mqisdp-level-4", "10 0e 00 06 'MQIsdp' 04 02 00 00 00 00", "level 4", 0x01),
    ("connect-reserved-flag", "10 0c 00 04 'MQTT' 04 03 00 00 00 00", "reserved flag", None),
    ("connect-will-qos-no-will", "10 0c 00 04 'MQTT' 04 0a 00 00 00 00", "without the will", None),
    (
        "connect-will-retain-no-will",
        "10 0c 00 04 'MQTT' 04 22 00 00 00 00",
        "without the will",
        None,
    ),
    ("connect-will-qos3", "10 0c 00 04 'MQTT' 04 1e 00 00 00 00", "will QoS 3", None),
    (
        "connect-password-no-user",
        "10 0f 00 04 'MQTT' 04 42 00 00 00 00 00 01 'p'",
        "password",
        None,
    ),
    ("connect-empty-id-persistent", "10 0c 00 04 'MQTT' 04 00 00 00 00 00", "client id", 0x02),
    ("connect-empty-id-mqisdp", "10 0e 00 06 'MQIsdp' 03 02 00 00 00 00", "client id", 0x02),
    ("connect-trailing-byte", "10 0d 00 04 'MQTT' 04 02 00 00 00 00 ff", "past its contents", None),
    ("connect-id-truncated", "10 0d 00 04 'MQTT' 04 02 00 00 00 02 'a'", "client id", None),
    ("connect-name-truncated", "10 0c 00 0a 'MQTT' 04 02 00 00 00 00", "protocol name", None),
    ("connect-missing-will", "10 0c 00 04 'MQTT' 04 06 00 00 00 00", "will topic", None),
    ("connect-missing-username", "10 0c 00 04 'MQTT' 04 82 00 00 00 00", "username", None),
    (
        "connect-missing-password",
        "10 0f 00 04 'MQTT' 04 c2 00 00 00 00 00 01 'u'",
        "password",
        None,
    ),
    (
        "connect-will-topic-wildcard",
        "10 11 00 04 'MQTT' 04 06 00 00 00 00 00 01 '#' 00 00",
        "wildcard",
        None,
    ),
    ("connect-id-bad-utf8", "10 0d 00 04 'MQTT' 04 02 00 00 00 01 ff", "UTF-8", None),
    ("connect-id-overlong-nul", "10 0e 00 04 'MQTT' 04 02 00 00 00 02 c0 80", "UTF-8", None),
    ("connect-id-surrogate", "10 0f 00 04 'MQTT' 04 02 00 00 00 03 ed a0 80", "UTF-8", None),
    ("connect-id-nul", "10 0d 00 04 'MQTT' 04 02 00 00 00 01 00", "U\\+0000", None),
    (
        "connect-username-nul",
        "10 10 00 04 'MQTT' 04 82 00 00 00 01 'a' 00 01 00",
        "U\\+0000",
        None,
    ),
    # CONNACK
    ("connack-reserved-flags", "20 02 02 00", "reserved flags", None),
    ("connack-reserved-code", "20 02 00 06", "return code 6", None),
    ("connack-session-on-refusal", "20 02 01 02", "session present", None),
    # PUBLISH
    ("publish-packet-id-0", "32 05 00 01 't' 00 00", "packet id 0", None),
    ("publish-empty-topic", "30 02 00 00", "empty", None),
    ("publish-topic-plus", "30 05 00 03 'a/+'", "wildcard", None),
    ("publish-topic-hash", "30 03 00 01 '#'", "wildcard", None),
    ("publish-topic-nul", "30 03 00 01 00", "U\\+0000", None),
    ("publish-topic-bad-utf8", "30 04 00 02 e2 82", "UTF-8", None),
    ("publish-topic-overruns", "30 03 00 05 't'", "topic name", None),
    # acknowledgements with packet id 0
    ("puback-id-0", "40 02 00 00", "packet id 0", None),
    ("pubrec-id-0", "50 02 00 00", "packet id 0", None),
    ("pubrel-id-0", "62 02 00 00", "packet id 0", None),
    ("pubcomp-id-0", "70 02 00 00", "packet id 0", None),
    ("unsuback-id-0", "b0 02 00 00", "packet id 0", None),
    # SUBSCRIBE
    ("subscribe-id-0", "82 06 00 00 00 01 't' 00", "packet id 0", None),
    ("subscribe-qos3", "82 06 00 01 00 01 't' 03", "QoS 3", None),
    ("subscribe-reserved-bits", "82 06 00 01 00 01 't' 04", "reserved bits", None),
    ("subscribe-reserved-high-bit", "82 06 00 01 00 01 't' 81", "reserved bits", None),
    ("subscribe-missing-qos", "82 05 00 01 00 01 't'", "requested QoS", None),
    ("subscribe-second-missing-qos", "82 09 00 01 00 01 't' 00 00 01 'u'", "requested QoS", None),
    ("subscribe-empty-filter", "82 05 00 01 00 00 00", "empty", None),
    ("subscribe-hash-not-last", "82 0a 00 01 00 05 'a/#/b' 00", "must be last", None),
    ("subscribe-partial-plus", "82 07 00 01 00 02 'a+' 00", "whole level", None),
    ("subscribe-filter-overruns", "82 06 00 01 00 09 't' 00", "topic filter", None),
    ("subscribe-filter-bad-utf8", "82 06 00 01 00 01 80 00", "UTF-8", None),
    # SUBACK
    ("suback-id-0", "90 03 00 00 00", "packet id 0", None),
    ("suback-reserved-code", "90 03 00 01 03", "return code", None),
    ("suback-reserved-code-81", "90 03 00 01 81", "return code", None),
    # UNSUBSCRIBE
    ("unsubscribe-id-0", "a2 05 00 00 00 01 't'", "packet id 0", None),
    ("unsubscribe-empty-filter", "a2 04 00 01 00 00", "empty", None),
    ("unsubscribe-bad-filter", "a2 06 00 01 00 02 '#a'", "whole level", None),
    ("unsubscribe-filter-overruns", "a2 05 00 01 00 02 't'", "topic filter", None),
]


@pytest.mark.parametrize(
    ("data", "match", "connack_code"),
    [v[1:] for v in MALFORMED_PACKETS],
    ids=[v[0] for v in MALFORMED_PACKETS],
)
def test_malformed_packet_raises_protocol_error(
    data: str, match: str, connack_code: int | None
) -> None:
    """Each spec violation raises MqttProtocolError with the right CONNACK code."""
    with pytest.raises(MqttProtocolError, match=match) as info:
        PacketReader().feed(h(data))
    assert info.value.connack_code == connack_code


def test_malformed_packet_after_valid_ones_raises() -> None:
    """A malformed packet raises even when valid packets precede it in the chunk."""
    with pytest.raises(MqttProtocolError):
        PacketReader().feed(encode(Pingreq()) + h("40 02 00 00"))


def test_connect_level_is_checked_before_the_rest() -> None:
    """A CONNECT of an unknown level (here 6, with 5.0 properties) gets CONNACK 0x01."""
    future = h("10 10 00 04 'MQTT' 06 02 00 3c 03 21 00 0a 00 01 'a'")
    with pytest.raises(MqttProtocolError) as info:
        decode(future)
    assert info.value.connack_code == 0x01


def test_empty_client_id_with_clean_session_is_accepted() -> None:
    """MQTT 3.1.1 lets a clean-session client send an empty client id."""
    assert decode(h("10 0c 00 04 'MQTT' 04 02 00 00 00 00")) == Connect(keepalive=0)


def test_decode_refuses_an_incomplete_packet() -> None:
    """decode() raises when its input ends inside a packet."""
    with pytest.raises(MqttProtocolError, match="one whole packet"):
        decode(h("40 02 00"))


def test_decode_refuses_more_than_one_packet() -> None:
    """decode() raises when its input holds more than one packet."""
    with pytest.raises(MqttProtocolError, match="one whole packet"):
        decode(h("c0 00 c0 00"))


# --- encoding errors ----------------------------------------------------------

UNENCODABLE: list[tuple[str, object]] = [
    ("publish-qos3", Publish("t", qos=3, packet_id=1)),
    ("publish-qos1-no-id", Publish("t", qos=1)),
    ("publish-id-0", Publish("t", qos=1, packet_id=0)),
    ("publish-id-too-big", Publish("t", qos=2, packet_id=0x10000)),
    ("publish-qos0-with-id", Publish("t", packet_id=1)),
    ("publish-dup-qos0", Publish("t", dup=True)),
    ("publish-topic-too-long", Publish("t" * 0x10000)),
    ("puback-id-0", Puback(0)),
    ("pubrel-negative-id", Pubrel(-1)),
    ("subscribe-empty", Subscribe(1, ())),
    ("subscribe-qos3", Subscribe(1, (("t", 3),))),
    ("suback-empty", Suback(1, ())),
    ("suback-bad-code", Suback(1, (3,))),
    ("unsubscribe-empty", Unsubscribe(1, ())),
    ("connect-keepalive", Connect(keepalive=0x10000)),
    ("connect-level", Connect(protocol_level=256)),
    ("connect-will-qos", Connect(will=Will("w", qos=3))),
    ("connect-password-too-long", Connect(username="u", password=b"p" * 0x10000)),
    ("connack-code", Connack(return_code=256)),
]


@pytest.mark.parametrize("packet", [v[1] for v in UNENCODABLE], ids=[v[0] for v in UNENCODABLE])
def test_out_of_range_fields_are_not_encoded(packet: Packet) -> None:
    """encode() raises ValueError for numeric fields the wire cannot carry."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        encode(packet)


def test_encode_refuses_non_packets() -> None:
    """encode() raises TypeError for an object that is not an MQTT packet."""
    with pytest.raises(TypeError, match="not an MQTT packet"):
        encode("PINGREQ")  # type: ignore[arg-type]


def test_encoded_publish_is_bytes() -> None:
    """encode() returns immutable bytes, ready for a WebSocket binary frame."""
    assert type(encode(Publish("t", b"x"))) is bytes


# --- patching a PUBLISH for another subscriber ------------------------------------


@pytest.mark.parametrize("size", [0, 5, 200, 20_000], ids=["empty", "small", "2-byte", "3-byte"])
@pytest.mark.parametrize("qos", [1, 2])
def test_with_packet_id_changes_only_the_id_and_dup(size: int, qos: int) -> None:
    """with_packet_id gives the same PUBLISH with another id (and DUP), whatever the length."""
    template = encode(Publish("a/ü/b", b"x" * size, qos, retain=True, packet_id=1))
    patched = with_packet_id(template, 0xBEEF)
    assert decode(patched) == Publish("a/ü/b", b"x" * size, qos, retain=True, packet_id=0xBEEF)
    again = with_packet_id(patched, 7, dup=True)
    assert decode(again) == Publish("a/ü/b", b"x" * size, qos, True, dup=True, packet_id=7)
    assert decode(with_packet_id(again, 7)) == decode(with_packet_id(template, 7))


def test_with_packet_id_refuses_what_is_not_a_qos_1_or_2_publish() -> None:
    """A QoS 0 PUBLISH has no id to patch; other packets neither; ids must be 1..65535."""
    with pytest.raises(ValueError, match="QoS 1 or 2"):
        with_packet_id(encode(Publish("t", b"x")), 1)
    with pytest.raises(ValueError, match="QoS 1 or 2"):
        with_packet_id(encode(Puback(1)), 1)
    with pytest.raises(ValueError, match="packet id"):
        with_packet_id(encode(Publish("t", b"x", 1, packet_id=1)), 0)
