"""The pure JSON-RPC 2.0 codec: decoding, classification, encoding, and fuzzing."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from protocols.jsonrpc import codec
from protocols.jsonrpc.codec import (
    NO_ID,
    EncodeError,
    ErrorObject,
    Incoming,
    Invalid,
    JsonRpcDecodeError,
    Request,
    Response,
)


def one(payload: Any) -> codec.Message:
    """Decode a single (non-batch) message given as a Python value."""
    incoming = codec.decode(json.dumps(payload))
    assert not incoming.is_batch
    assert len(incoming.messages) == 1
    return incoming.messages[0]


def invalid(reply_id: Any = None) -> Any:
    """Matches an Invalid Request with the given reply id, whatever the reason."""

    class _Match:
        def __eq__(self, other: object) -> bool:
            return (
                isinstance(other, Invalid)
                and other.id == reply_id
                and (other.error.code, other.error.message) == (-32600, "Invalid Request")
                and isinstance(other.error.data, str)
            )

    return _Match()


# -- requests and notifications -----------------------------------------------


@pytest.mark.parametrize("request_id", [1, 0, -7, "abc", "", 1.5, None])
def test_request_ids_are_kept(request_id: Any) -> None:
    """Strings, numbers and null are valid ids, and come back unchanged."""
    message = one({"jsonrpc": "2.0", "id": request_id, "method": "m", "params": [1]})
    assert message == Request("m", [1], request_id)
    assert isinstance(message, Request)
    assert not message.is_notification


def test_notification_has_no_id() -> None:
    """A request without ``id`` is a notification; ``id: null`` is not."""
    message = one({"jsonrpc": "2.0", "method": "tick"})
    assert isinstance(message, Request)
    assert message.id is NO_ID
    assert message.is_notification
    assert message.params is None


@pytest.mark.parametrize("params", [[], [1, "a"], {}, {"a": [1]}])
def test_params_array_or_object(params: Any) -> None:
    """``params`` may be an array or an object."""
    assert one({"jsonrpc": "2.0", "id": 1, "method": "m", "params": params}) == Request(
        "m", params, 1
    )


def test_bytes_payload_is_decoded() -> None:
    """A UTF-8 bytes payload decodes like text."""
    incoming = codec.decode(b'{"jsonrpc":"2.0","id":"\xc3\xa9","method":"m"}')
    assert incoming.messages == [Request("m", None, "é")]


# -- whole-message errors -----------------------------------------------------


@pytest.mark.parametrize("payload", ["", "{", "not json", '{"a":1,}', b"\xff\xfe", "[" * 2000])
def test_parse_error(payload: str | bytes) -> None:
    """Anything that is not JSON raises JsonRpcDecodeError -32700 for a reply with id null."""
    with pytest.raises(JsonRpcDecodeError) as info:
        codec.decode(payload)
    assert (info.value.code, info.value.message) == (-32700, "Parse error")


def test_empty_batch_is_one_invalid_request() -> None:
    """An empty array is a single -32600 error, not an empty batch reply."""
    with pytest.raises(JsonRpcDecodeError) as info:
        codec.decode("[]")
    assert info.value.code == -32600
    assert info.value.data == "empty batch"


# -- invalid requests ---------------------------------------------------------


@pytest.mark.parametrize("payload", [1, "text", None, True, [1]])
def test_non_objects_are_invalid(payload: Any) -> None:
    """A message that is not an object is -32600 with id null."""
    incoming = codec.decode(json.dumps(payload))
    assert incoming.messages[0] == invalid(None)


@pytest.mark.parametrize("version", [None, "1.0", 2.0, "2", "2.0 "])
def test_jsonrpc_member_must_be_exactly_2_0(version: Any) -> None:
    """A missing or wrong ``jsonrpc`` member is -32600, answered with the request's id."""
    payload: dict[str, Any] = {"id": 5, "method": "m"}
    if version is not None:
        payload["jsonrpc"] = version
    assert one(payload) == invalid(5)


@pytest.mark.parametrize("bad_id", [True, False, [1], {"a": 1}])
def test_bad_id_type(bad_id: Any) -> None:
    """An id that is not a string, number or null is -32600 answered with id null."""
    assert one({"jsonrpc": "2.0", "id": bad_id, "method": "m"}) == invalid(None)


@pytest.mark.parametrize("params", ["a", 1, None, True])
def test_params_must_be_array_or_object(params: Any) -> None:
    """Scalar or null ``params`` is -32600 with the request id."""
    assert one({"jsonrpc": "2.0", "id": 3, "method": "m", "params": params}) == invalid(3)


@pytest.mark.parametrize("method", [1, None, ["m"], {"m": 1}])
def test_method_must_be_a_string(method: Any) -> None:
    """A non-string ``method`` is -32600."""
    assert one({"jsonrpc": "2.0", "id": "x", "method": method}) == invalid("x")


def test_neither_method_nor_result() -> None:
    """An object with neither ``method`` nor ``result``/``error`` is -32600."""
    assert one({"jsonrpc": "2.0", "id": 9}) == invalid(9)


# -- responses (to calls the server made) -------------------------------------


def test_result_response() -> None:
    """A result object is a Response carrying the result."""
    assert one({"jsonrpc": "2.0", "id": 4, "result": {"ok": True}}) == Response(4, {"ok": True})
    assert one({"jsonrpc": "2.0", "id": 4, "result": None}) == Response(4, None)


def test_error_response() -> None:
    """An error object is a Response carrying code, message and data."""
    message = one({"jsonrpc": "2.0", "id": 4, "error": {"code": -1, "message": "no", "data": [1]}})
    assert message == Response(4, error=ErrorObject(-1, "no", [1]))


@pytest.mark.parametrize(
    "error",
    [
        "boom",
        {"code": "1", "message": "x"},
        {"code": True, "message": "x"},
        {"code": 1.5, "message": "x"},
        {"code": 1},
        {"message": "x"},
    ],
)
def test_malformed_error_response(error: Any) -> None:
    """An error member without integer code and string message is -32600."""
    assert one({"jsonrpc": "2.0", "id": 4, "error": error}) == invalid(4)


def test_result_and_error_together() -> None:
    """A response with both ``result`` and ``error`` is -32600."""
    payload = {"jsonrpc": "2.0", "id": 4, "result": 1, "error": {"code": 1, "message": "x"}}
    assert one(payload) == invalid(4)


# -- batches ------------------------------------------------------------------


def test_batch_keeps_every_element_in_order() -> None:
    """Each batch element is classified on its own; a bad one does not hide the others."""
    incoming = codec.decode(
        json.dumps(
            [
                {"jsonrpc": "2.0", "id": 1, "method": "a"},
                {"jsonrpc": "2.0", "method": "b", "params": {"x": 1}},
                1,
                {"jsonrpc": "2.0", "id": 2, "result": "r"},
                {"jsonrpc": "1.0", "id": 3, "method": "c"},
            ]
        )
    )
    assert incoming.is_batch
    assert incoming.messages == [
        Request("a", None, 1),
        Request("b", {"x": 1}),
        invalid(None),
        Response(2, "r"),
        invalid(3),
    ]


def test_single_element_batch_is_still_a_batch() -> None:
    """``[request]`` is a batch (answered with an array), not a single request."""
    assert codec.decode('[{"jsonrpc":"2.0","id":1,"method":"a"}]') == Incoming(
        [Request("a", None, 1)], is_batch=True
    )


def notifications(count: int) -> list[str]:
    return [json.dumps({"jsonrpc": "2.0", "method": "n", "params": [i]}) for i in range(count)]


def test_a_batch_over_the_cap_is_refused_from_its_first_elements() -> None:
    """Refusing a large batch reads the cap's worth of it: what follows is never parsed.

    Garbage after element 101 would be a parse error if the whole text were
    parsed; refused by its count instead, it shows the parser stopped at the cap.
    """
    text = "[" + ",".join(notifications(101)) + ", " + "{nonsense " * 20_000 + "]"
    with pytest.raises(JsonRpcDecodeError) as refused:
        codec.decode(text, max_batch=100)
    assert refused.value.code == codec.INVALID_REQUEST
    assert "over the limit of 100" in refused.value.data


@pytest.mark.parametrize("count", [99, 100])
def test_a_large_batch_within_the_cap_is_decoded(count: int) -> None:
    """At the cap, padded past the scan's threshold: every element is there."""
    text = " [ " + " , ".join(notifications(count)) + " ] " + " " * codec.SCAN_FROM
    incoming = codec.decode(text, max_batch=100)
    assert incoming.is_batch
    assert [m.params for m in incoming.messages] == [[i] for i in range(count)]  # type: ignore[union-attr]


def test_a_malformed_large_batch_is_a_parse_error() -> None:
    """The scan only refuses what it read; a batch broken within the cap is reported as before."""
    text = "[" + ",".join(notifications(50)) + ", {oops" + " " * codec.SCAN_FROM + "]"
    with pytest.raises(JsonRpcDecodeError) as refused:
        codec.decode(text, max_batch=100)
    assert refused.value.code == codec.PARSE_ERROR


# -- encoding -----------------------------------------------------------------


def test_encode_result_and_error() -> None:
    """Results and errors are JSON-RPC 2.0 objects; ``data`` is left out when None."""
    assert orjson.loads(codec.encode_result(1, [1, 2])) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": [1, 2],
    }
    assert orjson.loads(codec.encode_result("a", None)) == {
        "jsonrpc": "2.0",
        "id": "a",
        "result": None,
    }
    assert orjson.loads(codec.encode_error(None, -32700, "Parse error")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }
    assert orjson.loads(codec.encode_error(2, 1, "m", {"d": 1}))["error"]["data"] == {"d": 1}


def test_encode_request_and_notification() -> None:
    """Outgoing requests carry an id; notifications do not; absent params are left out."""
    assert orjson.loads(codec.encode_request(7, "client.echo", ["x"])) == {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "client.echo",
        "params": ["x"],
    }
    assert orjson.loads(codec.encode_notification("tick")) == {"jsonrpc": "2.0", "method": "tick"}


def test_encode_batch() -> None:
    """Encoded replies are joined into one JSON array."""
    batch = codec.encode_batch([codec.encode_result(1, "a"), codec.encode_result(2, "b")])
    assert [reply["id"] for reply in orjson.loads(batch)] == [1, 2]


def test_encode_pydantic_models_and_sets() -> None:
    """Pydantic models are dumped in JSON mode; sets become arrays."""

    class Item(BaseModel):
        name: str
        tags: set[str]

    encoded = orjson.loads(codec.encode_result(1, {"item": Item(name="a", tags={"t"}), "s": {3}}))
    assert encoded["result"] == {"item": {"name": "a", "tags": ["t"]}, "s": [3]}


def test_encode_unserializable_raises_encode_error() -> None:
    """A value that is not JSON raises EncodeError (a TypeError), not orjson's own type."""
    with pytest.raises(EncodeError, match="not JSON serializable"):
        codec.encode_result(1, object())
    assert issubclass(EncodeError, TypeError)


# -- properties ---------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
# Objects that look like JSON-RPC, valid or nearly, to reach every branch.
member_values = {
    "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | json_scalars,
    "id": json_values,
    "method": st.sampled_from(["m", "math.add"]) | json_values,
    "params": json_values,
    "result": json_values,
    "error": st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values})
    | json_values,
}
rpc_like = st.fixed_dictionaries({}, optional=member_values)
messages = rpc_like | json_values | st.lists(rpc_like | json_values, max_size=5)


def decodes_or_refuses(payload: str | bytes) -> None:
    try:
        incoming = codec.decode(payload)
    except JsonRpcDecodeError as exc:
        refused_with = exc.code
    else:
        refused_with = None
    if refused_with is not None:
        assert refused_with in (-32700, -32600)
        return
    assert incoming.messages
    for message in incoming.messages:
        assert isinstance(message, Request | Response | Invalid)
        if isinstance(message, Invalid):
            # Every invalid message can be answered.
            codec.encode_error(
                message.id, message.error.code, message.error.message, message.error.data
            )


@settings(database=None, deadline=None, max_examples=300)
@given(st.text())
def test_decode_arbitrary_text_only_raises_decode_error(text: str) -> None:
    """Decoding any text returns messages or raises JsonRpcDecodeError, nothing else."""
    decodes_or_refuses(text)


@settings(database=None, deadline=None, max_examples=300)
@given(st.binary())
def test_decode_arbitrary_bytes_only_raises_decode_error(data: bytes) -> None:
    """Decoding any bytes returns messages or raises JsonRpcDecodeError, nothing else."""
    decodes_or_refuses(data)


@settings(database=None, deadline=None, max_examples=200)
@given(messages)
def test_decode_json_rpc_like_values_only_raises_decode_error(value: Any) -> None:
    """Decoding any JSON value shaped like JSON-RPC never raises but JsonRpcDecodeError."""
    decodes_or_refuses(orjson.dumps(value))


request_ids = st.none() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
params = (
    st.none()
    | st.lists(json_values, max_size=3)
    | st.dictionaries(st.text(max_size=5), json_values, max_size=3)
)


@settings(database=None, deadline=None, max_examples=100)
@given(request_ids, st.sampled_from(["a", "math.add", "x/y"]), params)
def test_encoded_requests_decode_to_themselves(request_id: Any, method: str, params: Any) -> None:
    """What ``encode_request`` writes, ``decode`` reads back as the same request."""
    try:
        encoded = codec.encode_request(request_id, method, params)
    except EncodeError:
        return  # lone surrogates cannot be written as UTF-8 JSON
    assert codec.decode(encoded).messages == [Request(method, params, request_id)]


@settings(database=None, deadline=None, max_examples=300)
@given(rpc_like | json_values, st.sampled_from([2, 3, 64]))
def test_plain_call_agrees_with_classify(value: Any, max_depth: int) -> None:
    """Whatever ``plain_call`` reads as a call, ``classify`` reads as the same request."""
    try:
        payload = orjson.dumps(value).decode()
    except TypeError:
        return  # integers past 64 bits
    parsed = codec.parse(payload)
    call = codec.plain_call(payload, parsed, max_depth)
    if call is None:
        return
    call_id, method, params = call
    incoming = codec.classify(payload, parsed, max_depth=max_depth)
    assert incoming == Incoming([Request(method, params, call_id)], is_batch=False)


@pytest.mark.parametrize(
    "payload",
    [
        '{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}',
        '{"jsonrpc":"2.0","id":"a","method":"m","params":{"x":1}}',
        '{"jsonrpc":"2.0","method":"m"}',
    ],
)
def test_plain_call_reads_the_common_calls(payload: str) -> None:
    value = codec.parse(payload)
    call = codec.plain_call(payload, value, 64)
    assert call is not None
    (message,) = codec.classify(payload, value).messages
    assert isinstance(message, Request)
    assert call == (message.id, message.method, message.params)


@pytest.mark.parametrize(
    "payload",
    [
        '{"jsonrpc":"2.0","id":null,"method":"m"}',
        '{"jsonrpc":"2.0","id":1.5,"method":"m"}',
        '{"jsonrpc":"2.0","id":true,"method":"m"}',
        '{"jsonrpc":"2.0","id":1,"method":"m","params":null}',
        '{"jsonrpc":"2.0","id":1,"method":"m","params":[[[[1]]]]}',
        '{"jsonrpc":"1.0","id":1,"method":"m"}',
        '[{"jsonrpc":"2.0","id":1,"method":"m"}]',
    ],
)
def test_plain_call_leaves_the_rest_to_classify(payload: str) -> None:
    """Null and float ids, null params, deep nesting, wrong versions, batches."""
    assert codec.plain_call(payload, codec.parse(payload), 3) is None


def nested_list(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("max_depth", [3, 64])
def test_a_deep_batch_refuses_only_its_deep_elements(max_depth: int) -> None:
    """The batch array is a level of its own: an element at the limit passes, one past it not."""
    # A request object is one level and its params another.
    at_limit = {"jsonrpc": "2.0", "id": 1, "method": "m", "params": nested_list(max_depth - 1)}
    past_it = {"jsonrpc": "2.0", "id": 2, "method": "m", "params": nested_list(max_depth)}
    payload = json.dumps([at_limit, past_it])
    incoming = codec.classify(payload, codec.parse(payload), max_depth=max_depth)
    first, second = incoming.messages
    assert first == Request("m", nested_list(max_depth - 1), 1)
    assert isinstance(second, codec.Invalid)
    assert second.id == 2
    assert f"nested deeper than {max_depth} levels" in str(second)
    single = json.dumps(past_it)
    (alone,) = codec.classify(single, codec.parse(single), max_depth=max_depth).messages
    assert isinstance(alone, codec.Invalid)
    assert alone.id == 2
    single = json.dumps(at_limit)
    assert codec.classify(single, codec.parse(single), max_depth=max_depth).messages == [first]
