"""Property tests: valid messages round-trip, and hostile input only ever raises
WampProtocolError."""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.wamp import (
    CBOR,
    JSON,
    MAX_ID,
    MSGPACK,
    Message,
    MessageType,
    Serializer,
    WampProtocolError,
    message_to_list,
)

SERIALIZERS = [JSON, MSGPACK, CBOR]
FUZZ = settings(database=None, deadline=None, max_examples=200)

# A string starting with NUL is, by the WAMP JSON convention, binary: keep such strings
# out of round-trip data (test_codec covers the convention itself).
TEXT = st.text(max_size=12).filter(lambda s: not s.startswith("\0"))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what every serializer carries
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.binary(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
DICTS = st.dictionaries(TEXT, VALUES, max_size=4)
IDS = st.integers(1, MAX_ID)

# Strategies by dataclass field name: every message field name has one meaning.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["request", "session", "subscription", "publication", "registration"], IDS),
    "request_type": st.sampled_from(list(MessageType)) | st.integers(0, MAX_ID),
    **dict.fromkeys(["details", "options", "extra"], DICTS),
    **dict.fromkeys(["realm", "reason", "topic", "procedure", "error"], TEXT),
    **dict.fromkeys(["auth_method", "signature"], TEXT),
    "args": st.none() | st.lists(VALUES, max_size=4),
    "kwargs": st.none() | DICTS,
}
MESSAGE_CLASSES: list[type[Message]] = list(typing.get_args(Message))


def _messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    fields = {f.name: FIELDS[f.name] for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


MESSAGES = st.sampled_from(MESSAGE_CLASSES).flatmap(_messages_of)


def _as_received(message: Message) -> Message:
    """The message a peer reads back: kwargs without args arrive with args == []."""
    if getattr(message, "kwargs", None) is not None and getattr(message, "args", 0) is None:
        received: Message = dataclasses.replace(cast(Any, message), args=[])
        return received
    return message


def _frame(serializer: Serializer, items: Any) -> str | bytes:
    """Serialize arbitrary values, bypassing the message codec's checks."""
    return serializer.dumps(items)


def _decode_or_reject(serializer: Serializer, frame: str | bytes) -> Message | None:
    """Decode a frame; None if refused. Any exception but WampProtocolError fails the test."""
    try:
        message = serializer.decode(frame)
    except WampProtocolError:
        return None
    # Whatever decodes must encode again, or be refused as unencodable.
    with contextlib.suppress(WampProtocolError):
        serializer.encode(message)
    return message


# --- valid messages ----------------------------------------------------------


@FUZZ
@given(MESSAGES)
def test_any_message_round_trips(message: Message) -> None:
    """Every valid message survives encode/decode with every serializer."""
    for serializer in SERIALIZERS:
        assert serializer.decode(serializer.encode(message)) == _as_received(message)


@FUZZ
@given(MESSAGES, st.permutations(SERIALIZERS))
def test_any_message_survives_routing_across_serializers(
    message: Message, route: list[Serializer]
) -> None:
    """A message relayed json -> msgpack -> cbor (any order) arrives unchanged, bytes included."""
    relayed = message
    for serializer in route:
        relayed = serializer.decode(serializer.encode(relayed))
    assert relayed == _as_received(message)


# --- hostile input -----------------------------------------------------------


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_msgpack(frame: bytes) -> None:
    """Arbitrary bytes given to msgpack decode to a message or raise WampProtocolError."""
    _decode_or_reject(MSGPACK, frame)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_cbor(frame: bytes) -> None:
    """Arbitrary bytes given to cbor decode to a message or raise WampProtocolError."""
    _decode_or_reject(CBOR, frame)


@FUZZ
@given(st.text(max_size=200))
def test_random_text_json(frame: str) -> None:
    """Arbitrary text given to json decodes to a message or raises WampProtocolError."""
    _decode_or_reject(JSON, frame)


@FUZZ
@given(st.binary(max_size=50) | st.text(max_size=50))
def test_wrong_frame_type_or_garbage(frame: str | bytes) -> None:
    """Any frame of either type given to any serializer is a message or WampProtocolError."""
    for serializer in SERIALIZERS:
        _decode_or_reject(serializer, frame)


@FUZZ
@given(
    st.sampled_from(SERIALIZERS),
    st.sampled_from([t.value for t in MessageType]) | VALUES,
    st.lists(VALUES, max_size=8),
)
def test_random_lists(serializer: Serializer, head: Any, tail: list[Any]) -> None:
    """Lists of random values, often with a real type code, decode or raise WampProtocolError."""
    _decode_or_reject(serializer, _frame(serializer, [head, *tail]))


@FUZZ
@given(st.sampled_from(SERIALIZERS), VALUES)
def test_random_values(serializer: Serializer, value: Any) -> None:
    """Any single value (not only lists) decodes or raises WampProtocolError."""
    _decode_or_reject(serializer, _frame(serializer, value))


MUTATIONS = st.sampled_from(["replace", "delete", "insert", "truncate", "wrap"])


@FUZZ
@given(st.sampled_from(SERIALIZERS), MESSAGES, MUTATIONS, st.integers(0, 8), VALUES)
def test_mutated_messages(
    serializer: Serializer, message: Message, mutation: str, index: int, value: Any
) -> None:
    """A valid message with an element replaced, dropped, added or cut decodes or is refused."""
    items = message_to_list(message)
    index %= len(items)
    if mutation == "replace":
        items[index] = value
    elif mutation == "delete":
        del items[index]
    elif mutation == "insert":
        items.insert(index, value)
    elif mutation == "truncate":
        items = items[:index]
    else:
        items[index] = [items[index]]
    _decode_or_reject(serializer, _frame(serializer, items))


@FUZZ
@given(st.sampled_from(SERIALIZERS), MESSAGES, st.data())
def test_corrupted_frames(serializer: Serializer, message: Message, data: st.DataObject) -> None:
    """A valid frame with bytes or characters spliced in or cut out decodes or is refused."""
    frame = serializer.encode(message)
    position = data.draw(st.integers(0, len(frame)))
    if isinstance(frame, str):
        piece = data.draw(st.text(max_size=3))
        cut = data.draw(st.integers(0, 3))
        corrupted: str | bytes = frame[:position] + piece + frame[position + cut :]
    else:
        chunk = data.draw(st.binary(max_size=3))
        cut = data.draw(st.integers(0, 3))
        corrupted = frame[:position] + chunk + frame[position + cut :]
    _decode_or_reject(serializer, corrupted)
