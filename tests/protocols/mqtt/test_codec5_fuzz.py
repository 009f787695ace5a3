"""Property tests for the MQTT 5.0 codec: properties and packets round-trip, hostile bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocols.mqtt.codec import (
    Auth,
    Connack,
    Connect,
    Disconnect,
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
from protocols.mqtt.packets import Properties
from protocols.mqtt.properties import SPECS, Kind, Where, decode_properties, encode_properties
from protocols.mqtt.reasons import (
    AUTH_REASONS,
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    PUBREL_REASONS,
    SUBACK_REASONS,
    UNSUBACK_REASONS,
)

from .test_codec_fuzz import (
    _BLOB,
    _CHARS,
    _CUTS,
    _FILTER,
    _PID,
    _QOS,
    _TOPIC,
    FUZZ,
    _chunks,
    _feed_all,
)

_TEXT = st.text(_CHARS, max_size=8)
_VALUES: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.BYTE: st.integers(0, 0xFF),
    Kind.FLAG: st.integers(0, 1),
    Kind.U16: st.integers(1, 0xFFFF),
    Kind.U32: st.integers(1, 0xFFFF_FFFF),
    Kind.VARINT: st.integers(1, 268_435_455),
    Kind.STRING: _TEXT,
    Kind.PAIR: st.tuples(_TEXT, _TEXT),
    Kind.BINARY: _BLOB,
}


@st.composite
def properties(draw: st.DrawFn, where: Where) -> Properties:
    """Any property list valid in ``where``."""
    values: dict[str, Any] = {}
    for spec in SPECS:
        if where not in spec.where or not draw(st.booleans()):
            continue
        value = _VALUES[spec.kind]
        if spec.repeats:
            values[spec.field] = tuple(draw(st.lists(value, min_size=1, max_size=3)))
        elif spec.kind is Kind.VARINT:
            most = 3 if where is Where.PUBLISH else 1
            values[spec.field] = tuple(draw(st.lists(value, min_size=1, max_size=most)))
        else:
            values[spec.field] = draw(value)
    return Properties(**values)


def _reasons(allowed: frozenset[int]) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(allowed))


@st.composite
def _connects(draw: st.DrawFn) -> Connect:
    props = draw(properties(Where.CONNECT))
    if props.authentication_data is not None and props.authentication_method is None:
        props = Properties(authentication_method="m", authentication_data=props.authentication_data)
    return Connect(
        protocol_level=5,
        clean_session=draw(st.booleans()),
        keepalive=draw(st.integers(0, 0xFFFF)),
        client_id=draw(_TEXT),
        will=draw(
            st.none() | st.builds(Will, _TOPIC, _BLOB, _QOS, st.booleans(), properties(Where.WILL))
        ),
        username=draw(st.none() | _TEXT),
        password=draw(st.none() | _BLOB),
        properties=props,
    )


@st.composite
def _publishes(draw: st.DrawFn) -> Publish:
    qos = draw(_QOS)
    props = draw(properties(Where.PUBLISH))
    topic = draw(_TOPIC) if props.topic_alias is None else draw(st.just("") | _TOPIC)
    return Publish(
        topic,
        draw(_BLOB),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(_PID) if qos else None,
        props,
    )


@st.composite
def _connacks(draw: st.DrawFn) -> Connack:
    code = draw(_reasons(CONNACK_REASONS))
    present = draw(st.booleans()) if not code else False
    return Connack(present, code, draw(properties(Where.CONNACK)))


# Subscription options without reserved bits, QoS 3 or retain handling 3.
_OPTIONS = st.builds(
    lambda qos, nl, rap, rh: qos | nl << 2 | rap << 3 | rh << 4,
    _QOS,
    st.integers(0, 1),
    st.integers(0, 1),
    st.integers(0, 2),
)


def _ack(cls: Any, allowed: frozenset[int]) -> st.SearchStrategy[Packet]:
    return st.builds(cls, _PID, _reasons(allowed), properties(Where.PUBACK))


def _codes(allowed: frozenset[int]) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(_reasons(allowed), min_size=1, max_size=4).map(tuple)


PACKETS5: st.SearchStrategy[Packet] = st.one_of(
    _connects(),
    _connacks(),
    _publishes(),
    _ack(Puback, PUBACK_REASONS),
    _ack(Pubrec, PUBACK_REASONS),
    _ack(Pubrel, PUBREL_REASONS),
    _ack(Pubcomp, PUBREL_REASONS),
    st.builds(
        Subscribe,
        _PID,
        st.lists(st.tuples(_FILTER, _OPTIONS), min_size=1, max_size=4).map(tuple),
        properties(Where.SUBSCRIBE),
    ),
    st.builds(Suback, _PID, _codes(SUBACK_REASONS), properties(Where.SUBACK)),
    st.builds(
        Unsubscribe,
        _PID,
        st.lists(_FILTER, min_size=1, max_size=4).map(tuple),
        properties(Where.UNSUBSCRIBE),
    ),
    st.builds(Unsuback, _PID, _codes(UNSUBACK_REASONS), properties(Where.UNSUBACK)),
    st.just(Pingreq()),
    st.just(Pingresp()),
    st.builds(Disconnect, _reasons(DISCONNECT_REASONS), properties(Where.DISCONNECT)),
    st.builds(Auth, _reasons(AUTH_REASONS), properties(Where.AUTH)),
)


@st.composite
def _mutated5(draw: st.DrawFn) -> bytes:
    """A 5.0 stream of valid packets with a few random byte edits."""
    packets = draw(st.lists(PACKETS5, min_size=1, max_size=3))
    data = bytearray(b"".join(encode(packet, 5) for packet in packets))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


@FUZZ
@given(where=st.sampled_from(list(Where)), data=st.data())
def test_property_lists_round_trip(where: Where, data: st.DataObject) -> None:
    """2.2.2: any property list valid in a packet decodes back to itself."""
    value = data.draw(properties(where))
    encoded = memoryview(encode_properties(value, where))
    assert decode_properties(encoded, 0, where) == (value, len(encoded))


@FUZZ
@given(packet=PACKETS5)
def test_valid_5_packets_round_trip(packet: Packet) -> None:
    """Any valid 5.0 packet decodes back to itself after encoding."""
    assert decode(encode(packet, 5), 5) == packet


@FUZZ
@given(packets=st.lists(PACKETS5, max_size=6), cuts=_CUTS)
def test_5_streams_decode_however_they_are_cut(packets: list[Packet], cuts: list[int]) -> None:
    """A 5.0 stream cut into random chunks yields the same packets."""
    stream = b"".join(encode(packet, 5) for packet in packets)
    assert _feed_all(PacketReader(version=5), _chunks(stream, cuts)) == packets


@FUZZ
@given(data=st.one_of(_mutated5(), st.binary(max_size=200)), cuts=_CUTS)
def test_hostile_5_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    """Edited or random 5.0 bytes decode or raise MqttProtocolError; cutting changes nothing."""
    whole = _feed_all(PacketReader(version=5), [data])
    chunked = _feed_all(PacketReader(version=5), _chunks(data, cuts))
    assert whole == chunked
    for packet in whole or []:
        assert decode(encode(packet, 5), 5) == packet
