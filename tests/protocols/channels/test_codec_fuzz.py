"""Property tests for the channels.v1 codec: params parse or refuse with -32602, frames decode."""

from __future__ import annotations

import os
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.engine import ClientInfo, Kind, Publication
from hub.payloads import to_json_value
from hub.rpc import INVALID_PARAMS, RpcError
from protocols.channels.codec import (
    PARAMS_BY_METHOD,
    HistoryParams,
    Params,
    PublishParams,
    Since,
    SubscribeParams,
    encode_publication,
    parse_params,
)
from protocols.jsonrpc import codec as jsonrpc
from protocols.jsonrpc.codec import JsonRpcDecodeError, Request

FUZZ = settings(
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("WSHUB_FUZZ_EXAMPLES", "200")),
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
SINCE_LIKE = st.fixed_dictionaries({}, optional={"offset": JSON, "epoch": JSON, "x": JSON}) | JSON
# Dicts built from the real member names with values of any type: valid, nearly, or not.
PARAMS_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from(["chat", "a/+/c", "#", ""]) | JSON,
        "presence": JSON,
        "info": JSON,
        "data": JSON,
        "limit": JSON,
        "since": SINCE_LIKE,
        "extra": JSON,
    },
)
METHODS = st.sampled_from(sorted(PARAMS_BY_METHOD))


def parse_or_refuse(method: str, params: Any) -> Params | None:
    """Parse; None if refused. Anything but RpcError -32602 with sendable data fails."""
    try:
        return parse_params(PARAMS_BY_METHOD[method], params)
    except RpcError as exc:
        refusal = exc
    # The refusal must be -32602 and fit in a reply: its detail is JSON.
    reply = jsonrpc.encode_error(1, refusal.code, refusal.message, refusal.data)
    assert orjson.loads(reply)["error"]["code"] == INVALID_PARAMS
    return None


@FUZZ
@given(METHODS, PARAMS_LIKE | JSON)
def test_params_parse_or_are_refused_with_invalid_params(method: str, params: Any) -> None:
    """Any decoded params give a model or RpcError -32602 whose detail can be sent."""
    parse_or_refuse(method, params)


def decode_frame(frame: str | bytes) -> None:
    """Envelope, then params of every built-in call; only the two codec errors may escape."""
    try:
        incoming = jsonrpc.decode(frame)
    except JsonRpcDecodeError:
        return
    for message in incoming.messages:
        if isinstance(message, Request) and message.method in PARAMS_BY_METHOD:
            parse_or_refuse(message.method, message.params)


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_frame_decodes_or_is_refused(frame: str | bytes) -> None:
    """A whole frame through envelope and params raises only the two codec errors."""
    decode_frame(frame)


@st.composite
def requests_of_channels(draw: st.DrawFn) -> bytes:
    """Frames shaped like channels.v1 calls, params valid or nearly."""
    method = draw(METHODS | st.text(max_size=6))
    params = draw(PARAMS_LIKE | JSON)
    request = {"jsonrpc": "2.0", "id": draw(st.integers(0, 99)), "method": method, "params": params}
    try:
        return orjson.dumps(draw(st.just(request) | st.lists(st.just(request), min_size=1)))
    except orjson.JSONEncodeError:
        return b"[]"  # an integer past 64 bits; refused whole, as a peer's would be


@FUZZ
@given(requests_of_channels())
def test_channels_like_frames_decode_or_are_refused(frame: bytes) -> None:
    """Frames built from real method and member names raise only the codec errors."""
    decode_frame(frame)


SINCE = st.builds(Since, offset=st.integers(0, 2**53), epoch=st.text(max_size=8))
VALID: dict[str, st.SearchStrategy[Params]] = {
    "subscribe": st.builds(
        SubscribeParams,
        channel=st.text(max_size=10),
        presence=st.booleans(),
        info=JSON,
        since=st.none() | SINCE,
    ),
    "publish": st.builds(PublishParams, channel=st.text(max_size=10), data=JSON),
    "history": st.builds(
        HistoryParams,
        channel=st.text(max_size=10),
        limit=st.none() | st.integers(0, 1000),
        since=st.none() | SINCE,
    ),
}


@FUZZ
@given(st.sampled_from(sorted(VALID)).flatmap(lambda m: st.tuples(st.just(m), VALID[m])))
def test_valid_params_round_trip_through_json(pair: tuple[str, Params]) -> None:
    """Params a client writes as JSON parse back to the same request."""
    _, params = pair
    try:
        wire = orjson.dumps(params.model_dump(mode="json"))
    except orjson.JSONEncodeError:
        return  # a lone surrogate: no client can put it on the wire
    assert parse_params(type(params), orjson.loads(wire)) == params


PUBLICATIONS = st.builds(
    Publication,
    channel=st.text(max_size=10),
    data=JSON | st.binary(max_size=20),
    offset=st.integers(0, 2**53),
    epoch=st.text(max_size=8),
    kind=st.sampled_from(list(Kind)),
    publisher=st.none()
    | st.builds(ClientInfo, client=st.text(max_size=5), user=st.text(max_size=5)),
)


@FUZZ
@given(PUBLICATIONS, st.none() | st.text(max_size=6))
def test_publication_frames_decode_as_notifications(
    publication: Publication, pattern: str | None
) -> None:
    """Every publication frame is a JSON-RPC notification carrying the data as JSON shows it."""
    subscription = publication.channel if pattern is None else pattern
    try:
        frame = encode_publication(publication, subscription)
    except jsonrpc.EncodeError:
        return  # lone surrogates in a server-side string: refused before sending
    [message] = jsonrpc.decode(frame).messages
    assert isinstance(message, Request)
    assert message.is_notification
    assert message.method == publication.kind.value
    assert isinstance(message.params, dict)
    if publication.kind is Kind.MESSAGE:
        assert message.params["data"] == to_json_value(publication.data)
        assert message.params["offset"] == publication.offset
        assert ("subscription" in message.params) == (subscription != publication.channel)
    else:
        assert message.params["member"] == orjson.loads(orjson.dumps(publication.data))
