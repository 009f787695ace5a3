"""Seed corpora: valid (and a few nearly valid) messages for each fuzz target.

Written in the input layout each target expects (see its module docstring), so
the fuzzer starts from real protocol traffic instead of from nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def jsonrpc() -> list[bytes]:
    request = {"jsonrpc": "2.0", "id": 1, "method": "math.add", "params": [1, 2]}
    return [
        _json(request),
        _json({"jsonrpc": "2.0", "id": "a", "method": "echo", "params": {"text": "hé"}}),
        _json({"jsonrpc": "2.0", "method": "tick"}),
        _json({"jsonrpc": "2.0", "id": None, "method": "m"}),
        _json({"jsonrpc": "2.0", "id": 7, "result": {"ok": True}}),
        _json({"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "no", "data": 1}}),
        _json([request, {"jsonrpc": "2.0", "method": "n"}, 1]),
        _json({"jsonrpc": "1.0", "id": 1.5, "method": "m", "params": "x"}),
        b"[]",
        _json({"jsonrpc": "2.0", "id": 3, "result": 1, "error": {"code": 1, "message": "x"}}),
        b'{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2.5e10,-3,null,true,"\\u00e9"]}',
    ]


def channels() -> list[bytes]:
    from protocols.channels.codec import PARAMS_BY_METHOD

    methods = sorted(PARAMS_BY_METHOD)
    params: dict[str, list[dict[str, Any]]] = {
        "subscribe": [
            {"channel": "chat/room"},
            {"channel": "chat/+", "presence": False, "info": {"name": "Zoë"}},
            {"channel": "chat/room", "presence": True, "since": {"offset": 3, "epoch": "ab12"}},
        ],
        "unsubscribe": [{"channel": "chat/room"}],
        "publish": [{"channel": "chat/room", "data": {"text": "hi", "n": [1, 2.5]}}],
        "presence": [{"channel": "chat/room"}],
        "presence_stats": [{"channel": "chat/room"}],
        "history": [
            {"channel": "chat/room", "limit": 10},
            {"channel": "chat/room", "since": {"offset": 0, "epoch": "e"}, "limit": 0},
        ],
    }
    out = []
    for method, examples in params.items():
        for n, example in enumerate(examples):
            frame = _json({"jsonrpc": "2.0", "id": n, "method": method, "params": example})
            out.append(bytes([methods.index(method)]) + frame)
    out.append(b"\x00" + _json({"channel": 1, "presence": "yes", "since": {"offset": -1}}))
    # Payloads: the binary envelope's look-alikes; 0xff also checks presence frames.
    out += [b'{"$binary":"AAAA"}', b'{"$binary":"not base64"}', b"\xff\x00\x01binary"]
    return out


def mqtt() -> list[bytes]:
    from protocols.mqtt.codec import (
        Connack,
        Connect,
        Disconnect,
        Pingreq,
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
        encode,
    )
    from protocols.mqtt.packets import Packet

    packets: list[Packet] = [
        Connect(client_id="dev-1", keepalive=30),
        Connect(
            client_id="dev-2",
            clean_session=False,
            will=Will("status/dev-2", b"offline", 1, retain=True),
            username="alice",
            password=b"secret",
        ),
        Connect(protocol_name="MQIsdp", protocol_level=3, client_id="old"),
        Connack(True, 0),
        Publish("sensors/kitchen/temp", b'{"t":21.5}'),
        Publish("a/b", b"\x00\xff", 1, retain=True, packet_id=7),
        Publish("a/b", b"x", 2, dup=True, packet_id=8),
        Puback(7),
        Pubrec(8),
        Pubrel(8),
        Pubcomp(8),
        Subscribe(1, (("sensors/#", 1), ("+/b", 2), ("a", 0))),
        Suback(1, (0, 1, 0x80)),
        Unsubscribe(2, ("sensors/#", "+/b")),
        Unsuback(2),
        Pingreq(),
        Disconnect(),
    ]
    # Nearly valid: an empty client id on a persistent session, a CONNECT cut short.
    packets.append(Connect(client_id="", clean_session=False))
    frames = [encode(packet) for packet in packets]
    frames.append(b"\x10\x0a\x00\x04MQTT\x04\x02\x00")
    stream = b"".join(frames)
    return [b"\x00" + frame for frame in frames] + [b"\x00" + stream, b"\x03" + stream]


def mqtt5() -> list[bytes]:
    from protocols.mqtt.codec import (
        Auth,
        Connack,
        Connect,
        Disconnect,
        Pingreq,
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
        encode,
    )
    from protocols.mqtt.packets import Packet, Properties

    every = Properties(
        payload_format_indicator=1,
        message_expiry_interval=60,
        content_type="application/json",
        response_topic="replies/1",
        correlation_data=b"\x01\x02",
        subscription_identifiers=(1, 300),
        topic_alias=3,
        user_properties=(("k", "v"), ("k", "w")),
    )
    packets: list[Packet] = [
        Connect(
            protocol_level=5,
            client_id="dev-5",
            clean_session=False,
            will=Will("status/dev-5", b"gone", 1, True, Properties(will_delay_interval=5)),
            username="alice",
            password=b"secret",
            properties=Properties(
                session_expiry_interval=3600,
                receive_maximum=10,
                maximum_packet_size=4096,
                topic_alias_maximum=8,
                request_problem_information=1,
                authentication_method="SCRAM-SHA-1",
                authentication_data=b"x",
            ),
        ),
        Connack(
            True,
            0,
            Properties(
                assigned_client_identifier="id",
                server_keep_alive=30,
                maximum_qos=1,
                retain_available=1,
                shared_subscription_available=1,
                reason_string="ok",
            ),
        ),
        Publish("a/b", b'{"t":1}', 1, packet_id=7, properties=every),
        Publish("", b"x", 0, properties=Properties(topic_alias=3)),
        Puback(7),
        Puback(7, 0x10, Properties(reason_string="nobody")),
        Pubrec(8, 0x97),
        Pubrel(8, 0x92),
        Pubcomp(8),
        Subscribe(
            1, (("sensors/#", 0x2D), ("$share/g/a", 1)), Properties(subscription_identifiers=(5,))
        ),
        Suback(1, (1, 0x80, 0x9E)),
        Unsubscribe(2, ("sensors/#",)),
        Unsuback(2, (0, 0x11)),
        Pingreq(),
        Disconnect(0x8E, Properties(reason_string="taken over", session_expiry_interval=0)),
        Disconnect(4),
        Auth(0x18, Properties(authentication_method="m", authentication_data=b"d")),
    ]
    frames = [encode(packet, 5) for packet in packets]
    # Nearly valid: a duplicate property, a property list longer than its packet.
    frames += [bytes.fromhex("300a00017406230001230002"), bytes.fromhex("4005000100ff01")]
    stream = b"".join(frames)
    return [b"\x00" + frame for frame in frames] + [b"\x00" + stream, b"\x03" + stream]


def wamp() -> list[bytes]:
    from protocols.wamp import (
        CBOR,
        JSON,
        MSGPACK,
        Abort,
        Authenticate,
        Call,
        Error,
        Event,
        Goodbye,
        Hello,
        Invocation,
        MessageType,
        Publish,
        Register,
        Result,
        Subscribe,
        Welcome,
        Yield,
    )
    from protocols.wamp.messages import Message

    roles: dict[str, Any] = {
        "roles": {key: {} for key in ["publisher", "subscriber", "caller", "callee"]}
    }
    messages: list[Message] = [
        Hello("realm1", {**roles, "authmethods": ["ticket"], "authid": "alice"}),
        Welcome(12345, {"roles": {"broker": {}, "dealer": {}}}),
        Authenticate("secret-ticket", {}),
        Abort({"message": "no"}, "wamp.error.no_such_realm"),
        Goodbye({}, "wamp.close.close_realm"),
        Publish(1, {"acknowledge": True}, "com.example.topic", [1, "two", b"\x00\x01"]),
        Publish(2, {}, "com.example.topic", [], {"k": {"nested": [1.5, None, True]}}),
        Subscribe(3, {"match": "prefix"}, "com.example"),
        Event(5, 6, {"topic": "com.example.topic"}, ["x"]),
        Call(7, {"timeout": 1000}, "math.add", [1, 2]),
        Result(7, {}, [3]),
        Register(8, {}, "com.example.proc"),
        Invocation(9, 10, {}, [b"bytes"], {"a": 1}),
        Yield(9, {}, [None]),
        Error(MessageType.CALL, 7, {}, "wamp.error.invalid_argument", ["bad"]),
    ]
    out = []
    for selector, serializer in enumerate((JSON, MSGPACK, CBOR)):
        for message in messages:
            out.append(bytes([selector]) + serializer.encode_bytes(message))
    # A MessagePack extension, CBOR's self-describe prefix and a tag, a JSON root string.
    out.append(b"\x01\x95\x10\x01\x80\xa1t\x91\xd4\x05\x00")
    out.append(b"\x02\xd9\xd9\xf7\x85\x10\x01\xa0\x61t\x81\xc1\x1a\x00\x00\x00\x01")
    out.append(b'\x00"\\u0000AAAA"')
    return out


TARGETS: dict[str, Callable[[], list[bytes]]] = {
    "jsonrpc": jsonrpc,
    "channels": channels,
    "mqtt": mqtt,
    "mqtt5": mqtt5,
    "wamp": wamp,
}


def write_corpus(target: str, directory: Path) -> int:
    """Write the seeds of ``target`` into ``directory`` (kept alongside what the fuzzer adds)."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = TARGETS[target]()
    for n, seed in enumerate(seeds):
        (directory / f"seed-{n:03d}").write_bytes(seed)
    return len(seeds)
