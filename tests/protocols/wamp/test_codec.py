"""The WAMP codec and serializers: messages <-> frames, for json, msgpack and cbor."""

from __future__ import annotations

from typing import Any

import cbor2
import msgpack  # type: ignore[import-untyped]
import orjson
import pytest

from protocols.wamp import (
    CBOR,
    JSON,
    MAX_ID,
    MSGPACK,
    SUBPROTOCOLS,
    Abort,
    Authenticate,
    Call,
    Cancel,
    Challenge,
    Error,
    Event,
    Goodbye,
    Hello,
    Interrupt,
    Invocation,
    Message,
    MessageType,
    Publish,
    Published,
    Register,
    Registered,
    Result,
    Serializer,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    WampProtocolError,
    Welcome,
    Yield,
    message_from_list,
    message_to_list,
    serializer_for_subprotocol,
)

SERIALIZERS = [JSON, MSGPACK, CBOR]
BINARY = [MSGPACK, CBOR]

PAYLOAD_ARGS: list[Any] = [1, -2.5, "text", None, True, [1, [2]], {"nested": {"k": [1, 2]}}]
PAYLOAD_KWARGS: dict[str, Any] = {"a": 1, "b": ["x", {"y": None}], "c": False}

# One or more instances of every message type, with every payload shape.
MESSAGES: list[Message] = [
    Hello("realm1", {"roles": {"subscriber": {}, "publisher": {}}}),
    Welcome(MAX_ID, {"roles": {"broker": {}, "dealer": {}}}),
    Abort({"message": "no such realm"}, "wamp.error.no_such_realm"),
    Challenge("wampcra", {"challenge": "{...}", "salt": "s", "keylen": 32}),
    Authenticate("c2lnbmF0dXJl", {}),
    Goodbye({}, "wamp.close.close_realm"),
    Error(MessageType.CALL, 7, {}, "com.myapp.error1"),
    Error(MessageType.INVOCATION, 8, {}, "com.myapp.error1", ["reason"]),
    Error(MessageType.SUBSCRIBE, 9, {}, "wamp.error.not_authorized", [], PAYLOAD_KWARGS),
    Publish(1, {}, "com.myapp.topic1"),
    Publish(2, {"acknowledge": True}, "com.myapp.topic1", PAYLOAD_ARGS),
    Publish(3, {"exclude_me": False}, "com.myapp.topic1", PAYLOAD_ARGS, PAYLOAD_KWARGS),
    Published(1, 4429313566),
    Subscribe(4, {}, "com.myapp.topic1"),
    Subscribe(5, {"match": "wildcard"}, "com.myapp..userevent"),
    Subscribed(4, 5512315355),
    Unsubscribe(6, 5512315355),
    Unsubscribed(6),
    Event(5512315355, 4429313566, {}),
    Event(5512315355, 4429313566, {"topic": "com.myapp.topic1"}, PAYLOAD_ARGS),
    Event(1, 2, {}, [], PAYLOAD_KWARGS),
    Call(7, {}, "com.myapp.add2", [2, 3]),
    Call(8, {"receive_progress": True, "timeout": 1000}, "com.myapp.f", [], {"x": 1}),
    Call(9, {}, "com.myapp.ping"),
    Cancel(7, {"mode": "killnowait"}),
    Result(7, {}, [5]),
    Result(8, {"progress": True}),
    Result(8, {}, ["a"], {"b": 2}),
    Register(10, {}, "com.myapp.add2"),
    Register(11, {"match": "prefix", "invoke": "roundrobin"}, "com.myapp"),
    Registered(10, 2103333224),
    Unregister(12, 2103333224),
    Unregistered(12),
    Invocation(6131533, 2103333224, {}),
    Invocation(6131533, 2103333224, {"caller": 3335656}, [2, 3], {"c": 4}),
    Interrupt(6131533, {"mode": "kill"}),
    Yield(6131533, {}),
    Yield(6131533, {"progress": True}, [5]),
    Yield(6131533, {}, [5], {"d": None}),
]


def _id(message: Message) -> str:
    return MessageType(message.TYPE).name


def _frame(serializer: Serializer, items: Any) -> str | bytes:
    """Serialize arbitrary values with the underlying library, bypassing the codec."""
    if serializer is JSON:
        return orjson.dumps(items).decode()
    if serializer is MSGPACK:
        data: bytes = msgpack.packb(items)
        return data
    return cbor2.dumps(items)


# --- round trips -------------------------------------------------------------


def test_every_message_type_has_a_sample() -> None:
    """The round-trip samples cover all 24 message types."""
    assert {m.TYPE for m in MESSAGES} == {t.value for t in MessageType}


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@pytest.mark.parametrize("message", MESSAGES, ids=_id)
def test_round_trip(serializer: Serializer, message: Message) -> None:
    """decode(encode(message)) gives back an equal message."""
    assert serializer.decode(serializer.encode(message)) == message


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
def test_frame_type_matches_serializer(serializer: Serializer) -> None:
    """encode returns str for text serializers and bytes for binary ones."""
    frame = serializer.encode(Subscribed(1, 2))
    assert isinstance(frame, bytes if serializer.is_binary else str)


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@pytest.mark.parametrize("message", MESSAGES, ids=_id)
def test_encode_bytes_is_the_frame_as_bytes(serializer: Serializer, message: Message) -> None:
    """encode_bytes returns the same frame, UTF-8 encoded for text serializers."""
    frame = serializer.encode(message)
    expected = frame.encode() if isinstance(frame, str) else frame
    assert serializer.encode_bytes(message) == expected


@pytest.mark.parametrize("message", MESSAGES, ids=_id)
def test_list_round_trip(message: Message) -> None:
    """message_from_list(message_to_list(message)) gives back an equal message."""
    assert message_from_list(message_to_list(message)) == message


def test_wire_list_follows_spec_order() -> None:
    """message_to_list lays elements out in the spec's order."""
    assert message_to_list(Publish(1, {}, "t", [1], {"k": 2})) == [16, 1, {}, "t", [1], {"k": 2}]
    assert message_to_list(Abort({}, "wamp.error.x")) == [3, {}, "wamp.error.x"]
    assert message_to_list(Unsubscribed(6)) == [35, 6]
    assert message_to_list(Error(48, 7, {}, "e", ["a"])) == [8, 48, 7, {}, "e", ["a"]]


def test_absent_payload_is_omitted() -> None:
    """args and kwargs left as None are not sent."""
    assert message_to_list(Event(1, 2, {})) == [36, 1, 2, {}]
    assert message_to_list(Event(1, 2, {}, [3])) == [36, 1, 2, {}, [3]]


def test_kwargs_without_args_sends_empty_args() -> None:
    """kwargs without args puts an empty Arguments list before it, as the wire requires."""
    assert message_to_list(Result(1, {}, None, {"k": 1})) == [50, 1, {}, [], {"k": 1}]


def test_empty_payload_is_kept() -> None:
    """Empty args and kwargs given explicitly are sent as given, not dropped."""
    assert message_to_list(Yield(1, {}, [], {})) == [70, 1, {}, [], {}]
    assert JSON.decode(JSON.encode(Yield(1, {}, [], {}))) == Yield(1, {}, [], {})


def test_payload_is_passed_through_not_copied() -> None:
    """The wire list carries the very payload objects of the message."""
    args: list[Any] = [{"deep": [1, 2]}]
    kwargs: dict[str, Any] = {"k": [3]}
    items = message_to_list(Event(1, 2, {}, args, kwargs))
    assert items[4] is args
    assert items[5] is kwargs


def test_decoded_message_is_immutable() -> None:
    """Messages are frozen: fields cannot be reassigned."""
    message = JSON.decode('[32, 1, {}, "a.b"]')
    assert isinstance(message, Subscribe)
    with pytest.raises(AttributeError):
        message.request = 2  # type: ignore[misc]


# --- frames as real peers send them ------------------------------------------

# Autobahn|Python's HELLO with its default client roles (advanced features on).
AUTOBAHN_PYTHON_HELLO = (
    '[1,"realm1",{"roles":{'
    '"subscriber":{"features":{"publisher_identification":true,'
    '"pattern_based_subscription":true,"subscription_revocation":true,'
    '"payload_transparency":true,"payload_encryption_cryptobox":true}},'
    '"publisher":{"features":{"publisher_identification":true,'
    '"subscriber_blackwhite_listing":true,"publisher_exclusion":true,'
    '"payload_transparency":true,"payload_encryption_cryptobox":true}},'
    '"caller":{"features":{"caller_identification":true,"progressive_call_results":true,'
    '"payload_transparency":true,"payload_encryption_cryptobox":true,"call_canceling":true}},'
    '"callee":{"features":{"caller_identification":true,"pattern_based_registration":true,'
    '"shared_registration":true,"progressive_call_results":true,'
    '"registration_revocation":true,"payload_transparency":true,'
    '"payload_encryption_cryptobox":true,"call_canceling":true}}},'
    '"authmethods":["anonymous"],"authid":null,"authrole":null,"authextra":null,'
    '"resumable":false}]'
)

# Autobahn|JS's HELLO (its JSON has whitespace-free output and an "agent").
AUTOBAHN_JS_HELLO = (
    '[1,"realm1",{"roles":{"caller":{"features":{"caller_identification":true,'
    '"progressive_call_results":true,"call_canceling":true}},'
    '"callee":{"features":{"caller_identification":true,"pattern_based_registration":true,'
    '"shared_registration":true,"progressive_call_results":true,"registration_revocation":true,'
    '"call_canceling":true}},"publisher":{"features":{"publisher_identification":true,'
    '"subscriber_blackwhite_listing":true,"publisher_exclusion":true}},'
    '"subscriber":{"features":{"publisher_identification":true,'
    '"pattern_based_subscription":true,"subscription_revocation":true}}},'
    '"agent":"AutobahnJS-22.11.1"}]'
)


def test_autobahn_python_hello() -> None:
    """Autobahn|Python's HELLO decodes with its roles and advanced features intact."""
    hello = JSON.decode(AUTOBAHN_PYTHON_HELLO)
    assert isinstance(hello, Hello)
    assert hello.realm == "realm1"
    assert set(hello.details["roles"]) == {"subscriber", "publisher", "caller", "callee"}
    assert hello.details["roles"]["subscriber"]["features"]["pattern_based_subscription"] is True
    assert hello.details["authmethods"] == ["anonymous"]
    assert hello.details["authid"] is None


@pytest.mark.parametrize("serializer", BINARY, ids=lambda s: s.name)
def test_autobahn_python_hello_binary(serializer: Serializer) -> None:
    """The same HELLO sent over msgpack or cbor decodes to the same message."""
    items = orjson.loads(AUTOBAHN_PYTHON_HELLO)
    assert serializer.decode(_frame(serializer, items)) == JSON.decode(AUTOBAHN_PYTHON_HELLO)


def test_autobahn_js_hello() -> None:
    """Autobahn|JS's HELLO decodes, agent string included."""
    hello = JSON.decode(AUTOBAHN_JS_HELLO)
    assert isinstance(hello, Hello)
    assert hello.details["agent"] == "AutobahnJS-22.11.1"
    assert hello.details["roles"]["callee"]["features"]["call_canceling"] is True


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            '[16, 1, {"acknowledge": true, "exclude_me": false}, "com.myapp.hello", '
            '["Hello, world!"]]',
            Publish(
                1, {"acknowledge": True, "exclude_me": False}, "com.myapp.hello", ["Hello, world!"]
            ),
        ),
        (
            '[32, 912873614, {"match": "prefix"}, "com.myapp.topic.emergency"]',
            Subscribe(912873614, {"match": "prefix"}, "com.myapp.topic.emergency"),
        ),
        (
            '[48, 7814135, {"receive_progress": true}, "com.myapp.compute_revenue", '
            "[2010, 2011, 2012]]",
            Call(
                7814135, {"receive_progress": True}, "com.myapp.compute_revenue", [2010, 2011, 2012]
            ),
        ),
        (
            '[70, 6131533, {"progress": true}, ["Y2"]]',
            Yield(6131533, {"progress": True}, ["Y2"]),
        ),
        (
            '[8, 68, 6131533, {}, "com.myapp.error.object_write_protected", '
            '["Object is write protected."], {"severity": 3}]',
            Error(
                68,
                6131533,
                {},
                "com.myapp.error.object_write_protected",
                ["Object is write protected."],
                {"severity": 3},
            ),
        ),
        (
            '[6, {"message": "bye"}, "wamp.close.normal"]',
            Goodbye({"message": "bye"}, "wamp.close.normal"),
        ),
        ('[49, 7814135, {"mode": "killnowait"}]', Cancel(7814135, {"mode": "killnowait"})),
        (
            '[5, "gir1mSx+deCDUV7wRM5SGIn/+R/ClqLZuH4m7FJeBVI=", {}]',
            Authenticate("gir1mSx+deCDUV7wRM5SGIn/+R/ClqLZuH4m7FJeBVI=", {}),
        ),
    ],
)
def test_spec_and_autobahn_json_frames(frame: str, expected: Message) -> None:
    """JSON frames copied from the spec and Autobahn decode to the expected message."""
    assert JSON.decode(frame) == expected


def test_router_only_messages_still_decode() -> None:
    """WELCOME, EVENT and other router-to-client messages decode; policy is the router's."""
    assert JSON.decode('[2, 9129137332, {"roles": {"broker": {}}}]') == Welcome(
        9129137332, {"roles": {"broker": {}}}
    )
    assert JSON.decode('[36, 5512315355, 4429313566, {}, ["Hello, world!"]]') == Event(
        5512315355, 4429313566, {}, ["Hello, world!"]
    )


def test_msgpack_bytes_fixture() -> None:
    """A hand-encoded MessagePack SUBSCRIBE decodes."""
    assert MSGPACK.decode(bytes.fromhex("94200180a3612e62")) == Subscribe(1, {}, "a.b")


def test_cbor_bytes_fixture() -> None:
    """A hand-encoded CBOR SUBSCRIBE decodes."""
    assert CBOR.decode(bytes.fromhex("84182001a063612e62")) == Subscribe(1, {}, "a.b")


def test_cbor_self_describe_prefix_is_accepted() -> None:
    """A CBOR frame starting with the self-describe tag 55799 decodes as usual."""
    assert CBOR.decode(bytes.fromhex("d9d9f7") + bytes.fromhex("84182001a063612e62")) == Subscribe(
        1, {}, "a.b"
    )


def test_large_ids_survive_msgpack() -> None:
    """IDs up to 2^53 (uint64 in MessagePack) round-trip exactly."""
    frame = bytes.fromhex("9524cf00000001488f41dbcf000000010801f61e8091c40210e3")
    assert MSGPACK.decode(frame) == Event(5512315355, 4429313566, {}, [b"\x10\xe3"])


# --- binary payloads across serializers --------------------------------------


def test_json_encodes_bytes_with_nul_base64_convention() -> None:
    """bytes in a JSON frame become "\\u0000" + base64, per the WAMP spec."""
    frame = JSON.encode(Event(1, 2, {}, [bytes.fromhex("10e3ff9053075c526f5fc06d4fe37cdb")]))
    assert frame == '[36,1,2,{},["\\u0000EOP/kFMHXFJvX8BtT+N82w=="]]'


def test_json_decodes_nul_base64_strings_to_bytes() -> None:
    """A JSON string starting with NUL decodes to bytes, in args, kwargs and nested."""
    message = JSON.decode(
        '[16, 1, {}, "t", ["\\u0000AAECAw==", {"x": ["\\u0000/w=="]}], {"k": "\\u0000AA=="}]'
    )
    assert message == Publish(1, {}, "t", [b"\x00\x01\x02\x03", {"x": [b"\xff"]}], {"k": b"\x00"})


def test_json_keys_stay_strings() -> None:
    """Dict keys starting with NUL are left as strings: WAMP keys are always strings."""
    message = JSON.decode('[16, 1, {}, "t", [], {"\\u0000AA==": 1}]')
    assert isinstance(message, Publish)
    assert message.kwargs == {"\x00AA==": 1}


def test_json_escaped_backslash_is_not_binary() -> None:
    """An escaped backslash followed by u0000 is plain text, not a binary marker."""
    message = JSON.decode('[16, 1, {}, "t", ["\\\\u0000AA=="]]')
    assert isinstance(message, Publish)
    assert message.args == ["\\u0000AA=="]


def test_bytes_survive_msgpack_to_json_to_cbor() -> None:
    """A bytes argument published over msgpack reaches JSON and CBOR peers as bytes."""
    payload = bytes(range(256))
    publish = MSGPACK.decode(MSGPACK.encode(Publish(1, {}, "t", [payload], {"raw": payload})))
    assert isinstance(publish, Publish)
    event = Event(3, 4, {}, publish.args, publish.kwargs)
    for serializer in SERIALIZERS:
        received = serializer.decode(serializer.encode(event))
        assert received == Event(3, 4, {}, [payload], {"raw": payload})


def test_bytearray_encodes_as_binary() -> None:
    """bytearray and memoryview payloads encode like bytes in JSON."""
    frame = JSON.encode(Event(1, 2, {}, [bytearray(b"\x01"), memoryview(b"\x02")]))
    assert JSON.decode(frame) == Event(1, 2, {}, [b"\x01", b"\x02"])


def test_json_invalid_base64_is_a_protocol_error() -> None:
    """A NUL-prefixed JSON string that is not base64 is refused."""
    with pytest.raises(WampProtocolError, match="base64"):
        JSON.decode('[16, 1, {}, "t", ["\\u0000not base64!"]]')


@pytest.mark.parametrize(
    "message",
    [
        # Found by fuzzing: a CBOR AUTHENTICATE whose signature starts with NUL.
        CBOR.decode(bytes.fromhex("83056d000000000000001269636b6574a0")),
        Event(1, 2, {}, ["\x00AAEC"]),
        Event(1, 2, {}, [], {"k": ["\x00text"]}),
    ],
)
def test_text_starting_with_nul_is_refused_by_json(message: Message) -> None:
    """A text string starting with NUL would read back as bytes: JSON refuses to encode it."""
    with pytest.raises(WampProtocolError, match="NUL"):
        JSON.encode(message)
    for serializer in (MSGPACK, CBOR):  # binary serializers carry it as text
        assert serializer.decode(serializer.encode(message)) == message


def test_bytes_and_nul_keys_still_encode_to_json() -> None:
    """Bytes values and keys starting with NUL are not mistaken for NUL-prefixed text."""
    message = Event(1, 2, {}, [b"\x00\x01"], {"\x00key": b"\xff"})
    assert JSON.decode(JSON.encode(message)) == message


def test_cbor_tags_pass_through_to_cbor_peers() -> None:
    """CBOR tags are kept opaque and re-encoded unchanged for CBOR peers."""
    rational = cbor2.CBORTag(30, [1, 3])
    frame = cbor2.dumps([16, 1, {}, "t", [rational]])
    publish = CBOR.decode(frame)
    assert isinstance(publish, Publish)
    assert publish.args == [rational]
    assert CBOR.encode(publish) == frame


def test_msgpack_extensions_pass_through_to_msgpack_peers() -> None:
    """MessagePack extension values reach MessagePack peers unchanged and nobody else."""
    frame = msgpack.packb([16, 1, {}, "t", [msgpack.ExtType(5, b"\x01\x02")]])
    publish = MSGPACK.decode(frame)
    assert MSGPACK.encode(publish) == frame
    for other in (JSON, CBOR):
        with pytest.raises(WampProtocolError):
            other.encode(publish)


# --- encoding failures -------------------------------------------------------


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("serializer", "payload"),
    [
        (JSON, _deep(300)),
        (JSON, cbor2.CBORTag(30, [1, 3])),
        (JSON, {1: "non-string key"}),
        (JSON, 2**64),
        (MSGPACK, 2**64),
        (MSGPACK, cbor2.CBORTag(30, [1, 3])),
        (CBOR, object()),
    ],
    ids=[
        "json-too-deep",
        "json-tag",
        "json-int-key",
        "json-bigint",
        "msgpack-bigint",
        "msgpack-tag",
        "cbor-object",
    ],
)
def test_unencodable_payload_is_a_protocol_error(serializer: Serializer, payload: Any) -> None:
    """A payload the target serialization cannot carry raises WampProtocolError."""
    with pytest.raises(WampProtocolError):
        serializer.encode(Event(1, 2, {}, [payload]))


# --- malformed input ---------------------------------------------------------

ID_OUT_OF_RANGE = [0, -1, MAX_ID + 1, 2**64 - 1]
NOT_AN_ID = [1.0, True, "1", None, [1], {"1": 1}]

MALFORMED_LISTS: list[tuple[str, Any]] = [
    ("not a list", {"type": 1}),
    ("not a list (string)", "[1]"),
    ("not a list (int)", 1),
    ("empty list", []),
    ("tuple, not list", (32, 1, {}, "t")),
    ("huge type", [2**70, 1]),
    ("type not int", ["1", "realm1", {}]),
    ("type bool", [True, "realm1", {}]),
    ("type float", [1.0, "realm1", {}]),
    ("unknown type 7", [7, {}]),
    ("unknown type 0", [0]),
    ("extension type", [300, 1, {}]),
    ("negative type", [-1, 1]),
    ("type only", [1]),
    ("HELLO short", [1, "realm1"]),
    ("HELLO long", [1, "realm1", {}, []]),
    ("HELLO realm not str", [1, 5, {}]),
    ("HELLO details list", [1, "realm1", []]),
    ("HELLO details null", [1, "realm1", None]),
    ("WELCOME session str", [2, "1", {}]),
    ("ABORT swapped", [3, "wamp.error.x", {}]),
    ("CHALLENGE method not str", [4, 1, {}]),
    ("AUTHENTICATE extra not dict", [5, "sig", "extra"]),
    ("GOODBYE reason not str", [6, {}, None]),
    ("ERROR request type str", [8, "CALL", 1, {}, "e"]),
    ("ERROR request type negative", [8, -48, 1, {}, "e"]),
    ("ERROR too long", [8, 48, 1, {}, "e", [], {}, 1]),
    ("ERROR args dict", [8, 48, 1, {}, "e", {}]),
    ("PUBLISH uri not str", [16, 1, {}, 42]),
    ("PUBLISH options list", [16, 1, [], "t"]),
    ("PUBLISH args dict", [16, 1, {}, "t", {"a": 1}]),
    ("PUBLISH args null", [16, 1, {}, "t", None]),
    ("PUBLISH kwargs list", [16, 1, {}, "t", [], [1]]),
    ("PUBLISH kwargs null", [16, 1, {}, "t", [], None]),
    ("PUBLISH too long", [16, 1, {}, "t", [], {}, {}]),
    ("PUBLISHED missing id", [17, 1]),
    ("SUBSCRIBE with args", [32, 1, {}, "t", []]),
    ("SUBSCRIBED publication float", [33, 1, 2.0]),
    ("UNSUBSCRIBE subscription 0", [34, 1, 0]),
    ("UNSUBSCRIBED with details", [35, 1, {}]),
    ("EVENT details str", [36, 1, 2, "details"]),
    ("CALL procedure null", [48, 1, {}, None]),
    ("CANCEL options null", [49, 1, None]),
    ("RESULT missing details", [50, 1]),
    ("REGISTER missing uri", [64, 1, {}]),
    ("REGISTERED extra element", [65, 1, 2, 3]),
    ("UNREGISTER registration str", [66, 1, "2"]),
    ("UNREGISTERED request 0", [67, 0]),
    ("INVOCATION registration bool", [68, 1, True, {}]),
    ("INTERRUPT options list", [69, 1, []]),
    ("YIELD args str", [70, 1, {}, "result"]),
    *[(f"request id {bad!r}", [32, bad, {}, "t"]) for bad in ID_OUT_OF_RANGE + NOT_AN_ID],
]


@pytest.mark.parametrize(("case", "items"), MALFORMED_LISTS, ids=[c for c, _ in MALFORMED_LISTS])
def test_malformed_list_is_a_protocol_error(case: str, items: Any) -> None:
    """Each malformed message list raises WampProtocolError."""
    with pytest.raises(WampProtocolError):
        message_from_list(items)


# orjson cannot produce these: non-string keys, or values JSON does not have.
BINARY_ONLY_MALFORMED: list[tuple[str, Any]] = [
    ("options with int key", [32, 1, {1: "x"}, "t"]),
    ("kwargs with int key", [16, 1, {}, "t", [], {1: "x"}]),
    ("uri as bytes", [32, 1, {}, b"t"]),
    ("request id as bytes", [32, b"\x01", {}, "t"]),
]


# Cases every serializer can carry (a tuple is an array on the wire, a big int is not
# valid JSON or MessagePack).
FRAMEABLE = [
    (c, i) for c, i in MALFORMED_LISTS if not isinstance(i, str | tuple) and c != "huge type"
]


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("case", "items"),
    FRAMEABLE,
    ids=[c for c, _ in FRAMEABLE],
)
def test_malformed_frame_is_a_protocol_error(serializer: Serializer, case: str, items: Any) -> None:
    """Each malformed message, serialized as a frame, raises WampProtocolError on decode."""
    frame = _frame(serializer, items)
    with pytest.raises(WampProtocolError):
        serializer.decode(frame)


@pytest.mark.parametrize("serializer", BINARY, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("case", "items"), BINARY_ONLY_MALFORMED, ids=[c for c, _ in BINARY_ONLY_MALFORMED]
)
def test_malformed_binary_frame_is_a_protocol_error(
    serializer: Serializer, case: str, items: Any
) -> None:
    """Binary-only malformations (non-string keys, bytes for str or id) raise WampProtocolError."""
    with pytest.raises(WampProtocolError):
        serializer.decode(_frame(serializer, items))


@pytest.mark.parametrize(
    "frame",
    ["", "[", '[32, 1, {}, "t"', "not json", '[32, 1, {}, "t"] x', "[1e400]", "[NaN]"],
    ids=["empty", "open", "unterminated", "text", "trailing", "infinity", "nan"],
)
def test_invalid_json_is_a_protocol_error(frame: str) -> None:
    """Text that is not JSON raises WampProtocolError."""
    with pytest.raises(WampProtocolError, match="invalid JSON"):
        JSON.decode(frame)


def test_cbor_bignum_is_a_protocol_error() -> None:
    """A CBOR bignum message type or id (tag 2) is refused, not read as an int."""
    with pytest.raises(WampProtocolError):
        CBOR.decode(cbor2.dumps([2**70, 1]))
    with pytest.raises(WampProtocolError):
        CBOR.decode(cbor2.dumps([32, 2**70, {}, "t"]))


def test_json_big_integer_id_is_a_protocol_error() -> None:
    """An id beyond 64 bits (parsed by orjson as a float) is refused."""
    with pytest.raises(WampProtocolError):
        JSON.decode('[32, 18446744073709551616, {}, "t"]')


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        b"\x94\x20\x01",
        b"\x94\x20\x01\x80\xa3a.b\x00",
        b"\x91\xa2\xff\xfe",
        b"\xdd\xff\xff\xff\xff",
    ],
    ids=[
        "empty",
        "never-used-byte",
        "truncated",
        "trailing-data",
        "invalid-utf8",
        "huge-array-claim",
    ],
)
def test_invalid_msgpack_is_a_protocol_error(frame: bytes) -> None:
    """Bytes that are not one MessagePack value raise WampProtocolError."""
    with pytest.raises(WampProtocolError):
        MSGPACK.decode(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x84\x18\x20\x01",
        bytes.fromhex("84182001a063612e62") + b"\x00",
        b"\x81\x62\xff\xfe",
        b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x1c",
    ],
    ids=["empty", "truncated", "trailing-data", "invalid-utf8", "huge-array-claim", "reserved-ai"],
)
def test_invalid_cbor_is_a_protocol_error(frame: bytes) -> None:
    """Bytes that are not one CBOR value raise WampProtocolError."""
    with pytest.raises(WampProtocolError):
        CBOR.decode(frame)


@pytest.mark.parametrize(
    "frame",
    [
        cbor2.dumps([16, 1, {}, "t", [[1, 2], [1, 2]]], value_sharing=True),
        cbor2.dumps([16, 1, {}, "t", ["abcd", "abcd"]], string_referencing=True),
    ],
    ids=["value-sharing", "string-references"],
)
def test_cbor_amplifying_tags_are_refused(frame: bytes) -> None:
    """CBOR shared values and string references (which can amplify a frame) are refused."""
    with pytest.raises(WampProtocolError):
        CBOR.decode(frame)


@pytest.mark.parametrize("serializer", BINARY, ids=lambda s: s.name)
def test_text_frame_for_binary_serializer_is_a_protocol_error(serializer: Serializer) -> None:
    """msgpack and cbor refuse text frames."""
    with pytest.raises(WampProtocolError, match="binary frames"):
        serializer.decode('[32, 1, {}, "t"]')


def test_binary_frame_for_json_is_a_protocol_error() -> None:
    """json refuses binary frames, even if they hold JSON."""
    with pytest.raises(WampProtocolError, match="text frames"):
        JSON.decode(b'[32, 1, {}, "t"]')


def test_error_names_the_offending_field() -> None:
    """The error message says which element of which message is wrong."""
    with pytest.raises(WampProtocolError, match=r"PUBLISH\.request must be an id"):
        JSON.decode('[16, 0, {}, "t"]')
    with pytest.raises(WampProtocolError, match="SUBSCRIBE takes 4 elements, got 5"):
        JSON.decode('[32, 1, {}, "t", []]')


def test_id_bounds_are_inclusive() -> None:
    """1 and 2^53 are valid ids."""
    assert JSON.decode(f"[33, 1, {MAX_ID}]") == Subscribed(1, MAX_ID)


# --- subprotocols --------------------------------------------------------------


@pytest.mark.parametrize(
    ("subprotocol", "serializer", "binary"),
    [("wamp.2.json", JSON, False), ("wamp.2.msgpack", MSGPACK, True), ("wamp.2.cbor", CBOR, True)],
)
def test_serializer_for_subprotocol(subprotocol: str, serializer: Serializer, binary: bool) -> None:
    """Each WAMP subprotocol maps to its serializer and frame type."""
    assert serializer_for_subprotocol(subprotocol) is serializer
    assert serializer.subprotocol == subprotocol
    assert serializer.is_binary is binary
    assert subprotocol == f"wamp.2.{serializer.name}"


def test_unknown_subprotocol_raises_key_error() -> None:
    """A subprotocol that is not WAMP raises KeyError."""
    with pytest.raises(KeyError):
        serializer_for_subprotocol("wamp.2.ubjson")


def test_subprotocols_lists_all_serializers() -> None:
    """SUBPROTOCOLS names every supported serialization."""
    assert SUBPROTOCOLS == ("wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor")
