"""Pure pieces of the router: payload mapping, registration precedence, error mapping."""

from __future__ import annotations

import base64
from typing import Any

import cbor2
import pytest

from hub.rpc import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, RpcMethod
from protocols.wamp.payload import from_data, to_data
from protocols.wamp.registrations import (
    Registration,
    RegistrationTable,
    wildcard_matches,
    wildcard_rank,
)
from protocols.wamp.rpcmap import CALLEE_ERROR, callee_error, hub_params, rpc_error


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("args", "kwargs", "data"),
    [
        (None, None, None),
        ([], {}, None),
        ([1], None, 1),
        ([{"a": [1]}], {}, {"a": [1]}),
        ([None], None, None),
        ([b"\x00"], None, b"\x00"),
        ([1, 2], None, {"args": [1, 2], "kwargs": {}}),
        (None, {"k": 1}, {"args": [], "kwargs": {"k": 1}}),
        ([1], {"k": 1}, {"args": [1], "kwargs": {"k": 1}}),
        ([{"blob": b"\x01"}], None, {"blob": {"$binary": b64(b"\x01")}}),
        ([1, b"\x02"], None, {"args": [1, {"$binary": b64(b"\x02")}], "kwargs": {}}),
        ([2**70], None, repr(2**70)),
        ([[cbor2.CBORTag(99, "x")]], None, [repr(cbor2.CBORTag(99, "x"))]),
    ],
)
def test_to_data(args: Any, kwargs: Any, data: Any) -> None:
    """WAMP payloads map to one JSON-safe value (top-level bytes stay bytes)."""
    assert to_data(args, kwargs) == data


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ({"a": 1}, {"a": 1}),
        (None, None),
        (b'{"celsius": 20}', {"celsius": 20}),
        (b"\xff\x00", b"\xff\x00"),
        (b"plain text", b"plain text"),
        ({"$binary": b64(b"\x00\x01")}, b"\x00\x01"),
        ({"$binary": "not base64!"}, {"$binary": "not base64!"}),
        (b'{"$binary": "AA=="}', b'{"$binary": "AA=="}'),
    ],
)
def test_from_data(data: Any, value: Any) -> None:
    """Engine data is the one WAMP arg: JSON bytes decoded, other bytes kept, envelopes opened."""
    assert from_data(data) == value


def registration(procedure: str, match: str) -> Registration:
    return Registration(procedure, match, callee=object())  # type: ignore[arg-type]


def test_wildcard_rank_and_match() -> None:
    """Wildcard rank is the runs of fixed components; matching is per whole component."""
    assert wildcard_rank("a1.b2..d4.e5") == (2, 2)
    assert wildcard_rank("a1.b2.c3..e5") == (3, 1)
    assert wildcard_rank(".b") == (0, 1)
    assert wildcard_matches("com..x", "com.a.x")
    assert not wildcard_matches("com..x", "com.a.b.x")
    assert not wildcard_matches("com..x", "com.a.y")


def test_route_precedence() -> None:
    """exact > longest prefix (plain string prefix) > best wildcard; None when nothing matches."""
    table = RegistrationTable()
    entries = {
        name: registration(uri, match)
        for name, uri, match in [
            ("exact", "a.b.c", "exact"),
            ("short", "a", "prefix"),
            ("long", "a.b", "prefix"),
            ("wild", "x..z", "wildcard"),
            ("wilder", "x...", "wildcard"),
        ]
    }
    for entry in entries.values():
        table.add(entry)
    assert table.route("a.b.c") is entries["exact"]
    assert table.route("a.b.d") is entries["long"]
    assert table.route("a.bc") is entries["long"]  # a string prefix, as the spec says
    assert table.route("ax") is entries["short"]
    assert table.route("x.y.z") is entries["wild"]
    assert table.route("q") is None
    with pytest.raises(KeyError):
        table.add(registration("a.b", "prefix"))
    table.remove(entries["long"])
    assert table.route("a.b.d") is entries["short"]
    assert table.get(entries["long"].id) is None


def test_rpc_errors_map_to_uris_and_back() -> None:
    """RpcError codes become wshub.error.<code>, and such URIs come back as the same code."""
    error = rpc_error(RpcError(4001, "nope", {"x": 1}))
    assert error.uri == "wshub.error.4001"
    assert error.payload_args == ["nope"]
    assert error.payload_kwargs == {"code": 4001, "data": {"x": 1}}
    assert (
        rpc_error(RpcError(INVALID_PARAMS, "Invalid params")).uri == "wamp.error.invalid_argument"
    )
    back = callee_error(error.uri, error.payload_args, error.payload_kwargs)
    assert (back.code, back.message, back.data) == (4001, "nope", {"x": 1})
    assert callee_error("wshub.error.-32000", ["server"], None).code == -32000
    assert callee_error("wamp.error.no_such_procedure", None, None).code == METHOD_NOT_FOUND
    other = callee_error("com.app.error", [1], {"k": 2})
    assert other.code == CALLEE_ERROR
    assert other.data == {"error": "com.app.error", "args": [1], "kwargs": {"k": 2}}


def test_hub_params_merge_positional_and_named() -> None:
    """args fill parameters in order, kwargs the rest; a clash or too many args is refused."""

    def add(a: int, b: int = 0, c: int = 0) -> int:
        return a + b + c

    method = RpcMethod("add", add)
    assert hub_params(method, [1, 2], None) == [1, 2]
    assert hub_params(method, None, {"a": 1}) == {"a": 1}
    assert hub_params(method, [1], {"c": 3}) == {"a": 1, "c": 3}
    with pytest.raises(RpcError):
        hub_params(method, [1], {"a": 2})
    with pytest.raises(RpcError):
        hub_params(method, [1, 2, 3, 4], {"c": 1})
