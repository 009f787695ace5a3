"""Malformed and out-of-order messages: each gets the spec's answer, nobody else is hurt.

A protocol violation is answered with ABORT wamp.error.protocol_violation and the
transport closes (1002); the violator's subscriptions and registrations are gone,
and the router keeps serving a session that was there all along.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from hub import Hub
from tests.protocols.wamp.conftest import RawFactory, RawWamp

VIOLATION = "wamp.error.protocol_violation"


async def assert_violation(raw: RawWamp) -> str:
    """The router answered ABORT protocol_violation and closed with 1002; its message."""
    abort = await raw.recv()
    assert abort[0] == 3, abort
    assert abort[2] == VIOLATION
    assert await raw.closed() == 1002
    message: str = abort[1]["message"]
    return message


async def assert_router_serves(hub: Hub, raw_wamp: RawFactory, bystander: RawWamp) -> None:
    """A session joined before the violation and a new one still work."""
    echo = await bystander.request([16, 900, {"acknowledge": True}, "still.alive", [1]])
    assert echo[:2] == [17, 900]
    newcomer = await raw_wamp(hub, join=True)
    reply = await newcomer.request([48, 1, {}, "wamp.session.count", []])
    assert reply[0] == 50


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ([32, 1, {}, "com.topic"], "SUBSCRIBE before HELLO"),
        ([6, {}, "wamp.close.normal"], "GOODBYE before HELLO"),
        ([5, "signature", {}], "AUTHENTICATE before HELLO"),
        ([2, 1, {}], "WELCOME is a router-to-client message"),
    ],
)
async def test_message_before_hello(
    hub: Hub, raw_wamp: RawFactory, first: list[Any], expected: str
) -> None:
    """Anything but HELLO (or ABORT) first is a protocol violation."""
    bystander = await raw_wamp(hub, join=True)
    raw = await raw_wamp(hub)
    await raw.send(first)
    assert await assert_violation(raw) == expected
    await assert_router_serves(hub, raw_wamp, bystander)


async def test_second_hello(hub: Hub, raw_wamp: RawFactory) -> None:
    """HELLO in an established session is a protocol violation."""
    bystander = await raw_wamp(hub, join=True)
    raw = await raw_wamp(hub, join=True)
    await raw.send([1, "realm1", {"roles": {"caller": {}}}])
    assert await assert_violation(raw) == "a second HELLO"
    await assert_router_serves(hub, raw_wamp, bystander)


async def test_hello_without_roles(hub: Hub, raw_wamp: RawFactory) -> None:
    """HELLO.Details.roles is mandatory."""
    raw = await raw_wamp(hub)
    await raw.send([1, "realm1", {}])
    assert "roles" in await assert_violation(raw)


@pytest.mark.parametrize(
    "message",
    [
        [99, 1, {}],  # unknown type
        [36, 1, 2, {}],  # EVENT: router-to-client
        [50, 1, {}],  # RESULT: router-to-client
        [68, 1, 2, {}],  # INVOCATION: router-to-client
        [16, 0, {}, "com.topic"],  # request id 0
        [16, 1, {}, "com.topic", {"not": "a list"}],  # args not a list
        [32, 1, "options", "com.topic"],  # options not a dict
        [48, 1, {}],  # CALL too short
        [8, 48, 1, {}, "com.error"],  # ERROR for a CALL, from a client
        [],  # empty list
        {"not": "a list"},
        "a string",
    ],
)
async def test_malformed_messages(hub: Hub, raw_wamp: RawFactory, message: Any) -> None:
    """Messages that are not valid WAMP (for a client to send) abort that session only."""
    bystander = await raw_wamp(hub, join=True)
    raw = await raw_wamp(hub, join=True)
    await raw.send(message)
    await assert_violation(raw)
    await assert_router_serves(hub, raw_wamp, bystander)


async def test_undecodable_json(hub: Hub, raw_wamp: RawFactory) -> None:
    """A text frame that is not JSON is a protocol violation."""
    bystander = await raw_wamp(hub, join=True)
    raw = await raw_wamp(hub, join=True)
    await raw.send_frame('[16, 1, {}, "com.topic"')
    assert "invalid JSON" in await assert_violation(raw)
    await assert_router_serves(hub, raw_wamp, bystander)


async def test_undecodable_msgpack(hub: Hub, raw_wamp: RawFactory) -> None:
    """A binary frame that is not MessagePack is a protocol violation."""
    raw = await raw_wamp(hub, "msgpack", join=True)
    await raw.send_frame(b"\xc1\xc1\xc1")
    assert "MessagePack" in await assert_violation(raw)


@pytest.mark.parametrize(("serializer", "frame"), [("json", b"[1]"), ("msgpack", "[1]")])
async def test_wrong_frame_type(
    hub: Hub, raw_wamp: RawFactory, serializer: str, frame: str | bytes
) -> None:
    """Binary frames on wamp.2.json, or text frames on wamp.2.msgpack, are violations."""
    bystander = await raw_wamp(hub, "cbor", join=True)
    raw = await raw_wamp(hub, serializer, join=True)
    await raw.send_frame(frame)
    message = await assert_violation(raw)
    assert "frame" in message
    await assert_router_serves(hub, raw_wamp, bystander)


async def test_json_text_on_msgpack_session_before_hello(hub: Hub, raw_wamp: RawFactory) -> None:
    """A JSON HELLO sent over wamp.2.msgpack (a text frame) is refused at once."""
    raw = await raw_wamp(hub, "msgpack")
    await raw.send_frame('[1, "realm1", {"roles": {"caller": {}}}]')
    await assert_violation(raw)


async def test_violation_drops_subscriptions_and_registrations(
    hub: Hub, raw_wamp: RawFactory
) -> None:
    """After a violation, the session's registrations and subscriptions are gone."""
    bad = await raw_wamp(hub, join=True)
    assert (await bad.request([64, 1, {}, "com.bad.proc"]))[0] == 65
    assert (await bad.request([32, 2, {}, "com.bad.topic"]))[0] == 33
    await bad.send([99])
    await assert_violation(bad)

    other = await raw_wamp(hub, join=True)
    error = await other.request([48, 1, {}, "com.bad.proc", []])
    assert error[4] == "wamp.error.no_such_procedure"
    # Nobody is subscribed any more: a publish returns PUBLISHED and reaches no one.
    assert (await other.request([16, 2, {"acknowledge": True}, "com.bad.topic", [1]]))[0] == 17
    # The name is free again.
    assert (await other.request([64, 3, {}, "com.bad.proc"]))[0] == 65


async def test_callee_violation_cancels_pending_call(hub: Hub, raw_wamp: RawFactory) -> None:
    """A callee aborted mid-call: the caller gets ERROR wamp.error.canceled."""
    callee = await raw_wamp(hub, join=True)
    assert (await callee.request([64, 1, {}, "com.slow"]))[0] == 65
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 7, {}, "com.slow", [1]])
    invocation = await callee.recv()
    assert invocation[0] == 68
    await callee.send_frame(b"\x00binary on json")
    await assert_violation(callee)
    error = await caller.recv()
    assert error[:3] == [8, 48, 7]
    assert error[4] == "wamp.error.canceled"


async def test_late_yield_for_unknown_invocation_is_ignored(hub: Hub, raw_wamp: RawFactory) -> None:
    """YIELD or ERROR for an invocation that is not pending is dropped, not a violation."""
    raw = await raw_wamp(hub, join=True)
    await raw.send([70, 12345, {}, [1]])
    await raw.send([8, 68, 12345, {}, "com.error"])
    assert (await raw.request([16, 1, {"acknowledge": True}, "com.ok"]))[0] == 17


async def test_binary_payloads_survive_msgpack(hub: Hub, raw_wamp: RawFactory) -> None:
    """MessagePack bin values are relayed as bytes (not a violation, not text)."""
    subscriber = await raw_wamp(hub, "msgpack", join=True)
    subscribed = await subscriber.request([32, 1, {}, "com.bin"])
    publisher = await raw_wamp(hub, "msgpack", join=True)
    await publisher.send([16, 1, {}, "com.bin", [b"\x00\xff"], {"k": b"\x01"}])
    event = await subscriber.recv()
    assert event[0] == 36
    assert event[1] == subscribed[2]
    assert event[4:] == [[b"\x00\xff"], {"k": b"\x01"}]
    assert msgpack.packb(event[4][0], use_bin_type=True)[0] == 0xC4  # bin 8, not str
