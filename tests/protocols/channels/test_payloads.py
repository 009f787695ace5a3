"""hub.payloads: how bytes meet JSON protocols, and back, without losing anything."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.payloads import BINARY_KEY, deeper_than, to_bytes, to_json_value

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8).filter(lambda k: k != BINARY_KEY), children, max_size=4
        )
    ),
    max_leaves=12,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"t": 21.5}', {"t": 21.5}),
        (b"[1,2,3]", [1, 2, 3]),
        (b'"text"', "text"),
        (b"42", 42),
        (b"null", None),
        (b"true", True),
        (b' {"a" : [ ] } ', {"a": []}),
        ('{"name": "Zo\u00eb"}'.encode(), {"name": "Zo\u00eb"}),
    ],
)
def test_bytes_holding_json_decode_to_the_value(raw: bytes, value: Any) -> None:
    """Bytes that are a JSON document reach JSON clients as that value."""
    assert to_json_value(raw) == value
    assert to_json_value(bytearray(raw)) == value
    assert to_json_value(memoryview(raw)) == value


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\x01\xff", b"hello", b"{not json", b"\xc3\x28", b"1 2", b"NaN", b"1E400"],
)
def test_other_bytes_become_the_binary_envelope(raw: bytes) -> None:
    """Bytes that are not JSON reach JSON clients as {"$binary": base64}."""
    assert to_json_value(raw) == {BINARY_KEY: base64.b64encode(raw).decode("ascii")}
    assert to_bytes(to_json_value(raw)) == raw


def test_json_values_pass_through() -> None:
    """A JSON value (not bytes) is shown unchanged to JSON clients."""
    value = {"a": [1, 2.5, None, "x"]}
    assert to_json_value(value) is value


def test_to_bytes_encodes_json_compactly() -> None:
    """Byte protocols carry a JSON value as its compact UTF-8 JSON encoding."""
    assert to_bytes({"a": [1, "\u00e9"]}) == '{"a":[1,"\u00e9"]}'.encode()
    assert to_bytes(None) == b"null"
    assert to_bytes("text") == b'"text"'


def test_envelope_unwraps_to_its_bytes() -> None:
    """The binary envelope published by a JSON client reaches byte protocols as its bytes."""
    assert to_bytes({BINARY_KEY: "AP8="}) == b"\x00\xff"


def test_malformed_envelope_is_plain_json() -> None:
    """A $binary object that is not base64, or has other keys, is ordinary JSON."""
    assert to_bytes({BINARY_KEY: "not base64!"}) == b'{"$binary":"not base64!"}'
    assert to_bytes({BINARY_KEY: "AP8=", "x": 1}) == b'{"$binary":"AP8=","x":1}'
    assert to_bytes({BINARY_KEY: 5}) == b'{"$binary":5}'


@pytest.mark.parametrize("raw", [b'{"$binary": "AAAA"}', b'{"$binary":"not base64"}'])
def test_json_bytes_that_look_like_an_envelope_survive(raw: bytes) -> None:
    """Bytes holding the JSON text of an envelope are wrapped, so they come back unchanged."""
    assert to_json_value(raw) == {BINARY_KEY: base64.b64encode(raw).decode("ascii")}
    assert to_bytes(to_json_value(raw)) == raw


@given(st.binary(max_size=256))
@settings(max_examples=300)
def test_round_trip_of_random_bytes(raw: bytes) -> None:
    """to_bytes(to_json_value(b)) == b for bytes that are not JSON; JSON keeps its value."""
    shown = to_json_value(raw)
    back = to_bytes(shown)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        assert back == raw
    else:
        # JSON bytes are shown as their value: formatting (spaces, 1e5) is not kept.
        assert orjson.loads(back) == value


@given(json_values)
@settings(max_examples=100)
def test_round_trip_of_canonical_json(value: Any) -> None:
    """Compact JSON bytes survive bytes -> JSON value -> bytes exactly."""
    raw = orjson.dumps(value)
    assert to_bytes(to_json_value(raw)) == raw
    assert to_json_value(to_bytes(value)) == value


def nesting(value: Any) -> int:
    """Levels of arrays and objects in ``value``, counted the obvious recursive way."""
    if isinstance(value, dict):
        return 1 + max((nesting(child) for child in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((nesting(child) for child in value), default=0)
    return 0


deep_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=40,
)


@settings(database=None, deadline=None, max_examples=300)
@given(deep_values, st.integers(min_value=0, max_value=8))
def test_deeper_than_agrees_with_the_recursive_depth(value: Any, limit: int) -> None:
    assert deeper_than(value, limit) == (nesting(value) > limit)


def test_deeper_than_walks_a_hostile_chain_without_recursion() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    assert deeper_than(value, 64)
    assert not deeper_than([[{"a": [1]}]] * 1000, 4)
    assert deeper_than([[{"a": [1]}]] * 1000, 3)
