"""Property tests for the MQTT codec: round trips, chunking, and hostile bytes."""

from __future__ import annotations

import os
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mqtt.codec import (
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
)

# 200 examples keep the MQTT suite under a minute; WSHUB_FUZZ_EXAMPLES=5000 digs deeper.
FUZZ = settings(
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("WSHUB_FUZZ_EXAMPLES", "200")),
)

# --- strategies for valid packets ---------------------------------------------

_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
_TEXT = st.text(_CHARS, max_size=12)
_LEVEL = st.text(st.characters(codec="utf-8", exclude_characters="\x00/+#"), max_size=6)
_TOPIC = st.lists(_LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
_FILTER = (
    st.tuples(st.lists(st.one_of(_LEVEL, st.just("+")), min_size=1, max_size=4), st.booleans())
    .map(lambda pair: "/".join([*pair[0], "#"] if pair[1] else pair[0]))
    .filter(bool)
)
_PID = st.integers(1, 0xFFFF)
_QOS = st.integers(0, 2)
_BLOB = st.binary(max_size=40)


@st.composite
def _connects(draw: st.DrawFn) -> Connect:
    name, level = draw(st.sampled_from([("MQTT", 4), ("MQIsdp", 3)]))
    clean = draw(st.booleans())
    # An empty client id is only valid for a 3.1.1 clean session.
    min_id = 0 if clean and level == 4 else 1
    username = draw(st.none() | _TEXT)
    return Connect(
        protocol_name=name,
        protocol_level=level,
        clean_session=clean,
        keepalive=draw(st.integers(0, 0xFFFF)),
        client_id=draw(st.text(_CHARS, min_size=min_id, max_size=23)),
        will=draw(st.none() | st.builds(Will, _TOPIC, _BLOB, _QOS, st.booleans())),
        username=username,
        password=None if username is None else draw(st.none() | _BLOB),
    )


@st.composite
def _publishes(draw: st.DrawFn) -> Publish:
    qos = draw(_QOS)
    return Publish(
        draw(_TOPIC),
        draw(_BLOB),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(_PID) if qos else None,
    )


_CONNACKS = st.one_of(
    st.builds(Connack, st.booleans(), st.just(0)),
    st.builds(Connack, st.just(False), st.integers(1, 5)),
)

PACKETS: st.SearchStrategy[Packet] = st.one_of(
    _connects(),
    _CONNACKS,
    _publishes(),
    st.builds(Puback, _PID),
    st.builds(Pubrec, _PID),
    st.builds(Pubrel, _PID),
    st.builds(Pubcomp, _PID),
    st.builds(
        Subscribe,
        _PID,
        st.lists(st.tuples(_FILTER, _QOS), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(
        Suback, _PID, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4).map(tuple)
    ),
    st.builds(Unsubscribe, _PID, st.lists(_FILTER, min_size=1, max_size=4).map(tuple)),
    st.builds(Unsuback, _PID),
    st.just(Pingreq()),
    st.just(Pingresp()),
    st.just(Disconnect()),
)


# --- helpers ------------------------------------------------------------------


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given positions (taken modulo its length + 1)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[start:end] for start, end in pairwise(bounds)]


def _feed_all(reader: PacketReader, chunks: list[bytes]) -> list[Packet] | None:
    """Feed every chunk; return the packets, or None if a protocol error was raised."""
    packets: list[Packet] = []
    try:
        for chunk in chunks:
            packets += reader.feed(chunk)
    except MqttProtocolError:
        return None
    return packets


_CUTS = st.lists(st.integers(0, 10_000), max_size=8)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A stream of valid packets with a few random byte edits."""
    data = bytearray(b"".join(encode(p) for p in draw(st.lists(PACKETS, min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


# --- properties ---------------------------------------------------------------


@FUZZ
@given(packet=PACKETS)
def test_valid_packets_round_trip(packet: Packet) -> None:
    """Any valid packet decodes back to itself after encoding."""
    assert decode(encode(packet)) == packet


@FUZZ
@given(packets=st.lists(PACKETS, max_size=6), cuts=_CUTS)
def test_valid_streams_decode_however_they_are_cut(packets: list[Packet], cuts: list[int]) -> None:
    """A stream of valid packets cut into random chunks yields the same packets."""
    stream = b"".join(encode(packet) for packet in packets)
    reader = PacketReader()
    assert _feed_all(reader, _chunks(stream, cuts)) == packets
    assert reader.buffered == 0


@FUZZ
@given(data=st.binary(max_size=200), cuts=_CUTS)
def test_random_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    """Random bytes either decode or raise MqttProtocolError, never another exception."""
    _feed_all(PacketReader(max_packet_size=150), _chunks(data, cuts))


@FUZZ
@given(data=_mutated(), cuts=_CUTS)
def test_mutated_packets_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    """Edited valid streams either decode or raise MqttProtocolError, never another exception."""
    _feed_all(PacketReader(), _chunks(data, cuts))


@FUZZ
@given(data=st.one_of(_mutated(), st.binary(max_size=100)), cuts=_CUTS)
def test_chunking_never_changes_the_outcome(data: bytes, cuts: list[int]) -> None:
    """Whole or chunked, the same bytes give the same packets or both raise."""
    whole = _feed_all(PacketReader(), [data])
    chunked = _feed_all(PacketReader(), _chunks(data, cuts))
    assert (whole is None) == (chunked is None)
    if whole is not None:
        assert whole == chunked


@FUZZ
@given(data=_mutated())
def test_anything_decoded_reencodes_to_the_same_packet(data: bytes) -> None:
    """Every packet the decoder accepts is valid for the encoder and round-trips again."""
    packets = _feed_all(PacketReader(), [data])
    for packet in packets or []:
        assert decode(encode(packet)) == packet
