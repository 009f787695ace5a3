"""WAMP meets the other protocols: topics are channels, procedures are hub methods."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from hub import Hub
from tests.conftest import HubFactory, JsonRpcPeer, PeerFactory
from tests.protocols.mqtt.conftest import PahoPeer, hub_address, paho_peer  # noqa: F401
from tests.protocols.wamp.conftest import ALL_SERIALIZERS, WampFactory, wait_for

ACK = PublishOptions(acknowledge=True)


async def channels_subscriber(jsonrpc: PeerFactory, hub: Hub, channel: str) -> JsonRpcPeer:
    peer = await jsonrpc(hub, "channels.v1")
    await peer.call("subscribe", {"channel": channel})
    return peer


async def message(peer: JsonRpcPeer) -> dict[str, Any]:
    note = await peer.recv()
    assert note["method"] == "message", note
    params: dict[str, Any] = note["params"]
    return params


class Events:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[tuple[Any, ...], dict[str, Any]]] = asyncio.Queue()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.queue.put_nowait((args, kwargs))

    async def next(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return await wait_for(self.queue.get())


# --- pub/sub ------------------------------------------------------------------------------


@ALL_SERIALIZERS
async def test_wamp_publish_reaches_channels_subscriber(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory, serializer: str
) -> None:
    """sensors.kitchen.temp reaches channels.v1 on sensors/kitchen/temp; one arg is the data."""
    peer = await channels_subscriber(jsonrpc, hub, "sensors/kitchen/temp")
    session = await wamp(hub, serializer)
    await session.publish("sensors.kitchen.temp", {"celsius": 21.5}, options=ACK)
    got = await message(peer)
    assert got["channel"] == "sensors/kitchen/temp"
    assert got["data"] == {"celsius": 21.5}


async def test_wamp_payload_mapping_for_channels(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """No payload is null; several args or kwargs are {"args", "kwargs"}; bytes are enveloped."""
    peer = await channels_subscriber(jsonrpc, hub, "map/#")
    session = await wamp(hub, "msgpack")
    await session.publish("map.none", options=ACK)
    await session.publish("map.many", 1, 2, options=ACK)
    await session.publish("map.kw", 1, unit="C", options=ACK)
    await session.publish("map.bytes", b"\x00\x01", options=ACK)
    await session.publish("map.nested", {"blob": b"\x02"}, options=ACK)
    got = [(m["channel"], m["data"]) for m in [await message(peer) for _ in range(5)]]
    assert got == [
        ("map/none", None),
        ("map/many", {"args": [1, 2], "kwargs": {}}),
        ("map/kw", {"args": [1], "kwargs": {"unit": "C"}}),
        ("map/bytes", {"$binary": base64.b64encode(b"\x00\x01").decode()}),
        ("map/nested", {"blob": {"$binary": base64.b64encode(b"\x02").decode()}}),
    ]


async def test_channels_publish_reaches_wamp_as_one_arg(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """A channels.v1 publication arrives at WAMP subscribers as args=[data]."""
    session = await wamp(hub, "cbor")
    events = Events()
    await session.subscribe(events, "chat.room1")
    peer = await jsonrpc(hub, "channels.v1")
    await peer.call("publish", {"channel": "chat/room1", "data": {"text": "hi"}})
    await peer.call("publish", {"channel": "chat/room1", "data": None})
    assert await events.next() == (({"text": "hi"},), {})
    assert await events.next() == ((None,), {})


async def test_channels_pattern_meets_wamp_wildcard(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """A WAMP wildcard subscription receives channels publications on matching channels."""
    session = await wamp(hub)
    topics: asyncio.Queue[str] = asyncio.Queue()
    await session.subscribe(
        lambda *args, details: topics.put_nowait(details.topic),
        "sensors..temp",
        options=SubscribeOptions(match="wildcard", details_arg="details"),
    )
    peer = await jsonrpc(hub, "channels.v1")
    await peer.call("publish", {"channel": "sensors/hall/temp", "data": 19})
    await peer.call("publish", {"channel": "sensors/hall/humidity", "data": 50})
    await peer.call("publish", {"channel": "sensors/v1.0/temp", "data": 0})  # no WAMP spelling
    await peer.call("publish", {"channel": "sensors/attic/temp", "data": 12})
    assert await wait_for(topics.get()) == "sensors.hall.temp"
    assert await wait_for(topics.get()) == "sensors.attic.temp"


async def test_on_publish_hook_transforms_wamp_payload(hub: Hub, wamp: WampFactory) -> None:
    """A hook that returns new data: WAMP subscribers get the new data as the one arg."""

    @hub.on_publish("moderated/#")
    def censor(ctx: Any, publication: Any) -> Any:
        return "***" if publication.data == "bad word" else None

    subscriber = await wamp(hub)
    events = Events()
    await subscriber.subscribe(events, "moderated.chat")
    publisher = await wamp(hub, "msgpack")
    await publisher.publish("moderated.chat", "bad word", options=ACK)
    await publisher.publish("moderated.chat", "fine", extra=1, options=ACK)
    assert await events.next() == (("***",), {})
    assert await events.next() == (("fine",), {"extra": 1})


async def test_namespace_permissions_apply_to_wamp(make_hub: HubFactory, wamp: WampFactory) -> None:
    """A namespace closed to clients refuses WAMP publishes and subscribes: not_authorized."""
    hub = await make_hub(
        {"channels": {"namespaces": {"admin": {"allow_publish": False, "allow_subscribe": False}}}}
    )
    session = await wamp(hub)
    with pytest.raises(ApplicationError) as raised:
        await session.publish("admin.cmd", 1, options=ACK)
    assert raised.value.error == "wamp.error.not_authorized"
    with pytest.raises(ApplicationError) as raised:
        await session.subscribe(lambda *a: None, "admin.cmd")
    assert raised.value.error == "wamp.error.not_authorized"
    with pytest.raises(ApplicationError) as raised:
        await session.subscribe(lambda *a: None, "", options=SubscribeOptions(match="prefix"))
    assert raised.value.error == "wamp.error.not_authorized"


async def test_payload_limit_applies_to_wamp(make_hub: HubFactory, wamp: WampFactory) -> None:
    """channels max_payload_bytes: wamp.error.payload_size_exceeded (Autobahn's own exception)."""
    from autobahn.exception import PayloadExceededError

    hub = await make_hub({"channels": {"default": {"max_payload_bytes": 100}}})
    session = await wamp(hub)
    with pytest.raises(PayloadExceededError, match="payload over 100 bytes"):
        await session.publish("com.big", "x" * 200, options=ACK)


async def test_mqtt_and_wamp_meet(
    hub: Hub,
    wamp: WampFactory,
    paho_peer: Callable[..., PahoPeer],  # noqa: F811
) -> None:
    """MQTT JSON reaches WAMP as a value, raw bytes as bytes; WAMP reaches MQTT as JSON."""
    session = await wamp(hub, "msgpack")
    events = Events()
    await session.subscribe(events, "devices", options=SubscribeOptions(match="prefix"))
    device = paho_peer("device")
    await device.connect(*hub_address(hub))
    assert await device.subscribe("devices/+/cmd", 1) == [1]
    await device.publish("devices/d1/temp", b'{"celsius": 20}', 1)
    await device.publish("devices/d1/raw", b"\xff\x00", 1)
    assert await events.next() == (({"celsius": 20},), {})
    assert await events.next() == ((b"\xff\x00",), {})

    await session.publish("devices.d1.cmd", {"on": True}, options=ACK)
    received = await device.message()
    assert received.topic == "devices/d1/cmd"
    assert received.payload == b'{"on":true}'


# --- RPC --------------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", ["jsonrpc.2.0", "channels.v1"])
async def test_jsonrpc_client_calls_wamp_callee(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory, subprotocol: str
) -> None:
    """JSON-RPC and channels.v1 clients call a procedure a WAMP callee registered."""
    from autobahn.wamp.types import CallResult

    callee = await wamp(hub, "msgpack")
    await callee.register(lambda a, b: a + b, "com.calc.add")
    await callee.register(lambda **kw: sorted(kw), "com.calc.keys")
    await callee.register(lambda: CallResult(1, 2, unit="m"), "com.calc.many")
    await callee.register(lambda: b"\x00raw", "com.calc.bytes")
    peer = await jsonrpc(hub, subprotocol)
    assert await peer.call("com.calc.add", [2, 3]) == 5
    assert await peer.call("com.calc.keys", {"b": 1, "a": 2}) == ["a", "b"]
    assert await peer.call("com.calc.many") == {"args": [1, 2], "kwargs": {"unit": "m"}}
    assert await peer.call("com.calc.bytes") == {"$binary": base64.b64encode(b"\x00raw").decode()}


async def test_jsonrpc_sees_wamp_callee_errors(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """A callee's ERROR: code -32030 with the URI, args and kwargs in data."""

    def fail() -> None:
        raise ApplicationError("com.calc.error.overflow", "too big", limit=10)

    def invalid() -> None:
        raise ApplicationError("wamp.error.invalid_argument", "need a number")

    def coded() -> None:
        raise ApplicationError("wshub.error.4002", "quota exceeded")

    callee = await wamp(hub)
    await callee.register(fail, "com.calc.fail")
    await callee.register(invalid, "com.calc.invalid")
    await callee.register(coded, "com.calc.coded")
    peer = await jsonrpc(hub)
    error = await peer.error("com.calc.fail")
    assert error == {
        "code": -32030,
        "message": "too big",
        "data": {"error": "com.calc.error.overflow", "args": ["too big"], "kwargs": {"limit": 10}},
    }
    assert (await peer.error("com.calc.invalid"))["code"] == -32602
    coded_error = await peer.error("com.calc.coded")
    assert (coded_error["code"], coded_error["message"]) == (4002, "quota exceeded")


async def test_procedure_leaves_with_its_callee(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """Unregistering or leaving removes the method: JSON-RPC gets Method not found."""
    callee = await wamp(hub)
    registration = await callee.register(lambda: 1, "com.temp")
    await callee.register(lambda: 2, "com.temp2")
    peer = await jsonrpc(hub)
    assert await peer.call("com.temp") == 1
    await registration.unregister()
    assert (await peer.error("com.temp"))["code"] == -32601
    callee.leave()
    await wait_for(callee.left)
    assert (await peer.error("com.temp2"))["code"] == -32601


async def test_jsonrpc_caller_leaving_interrupts_callee(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """A JSON-RPC caller that disconnects mid-call: the WAMP callee is interrupted."""
    callee = await wamp(hub)
    started, interrupted = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise

    await callee.register(slow, "com.slow")
    peer = await jsonrpc(hub)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "com.slow"})
    await wait_for(started.wait())
    await peer.ws.close()
    await wait_for(interrupted.wait())


async def test_jsonrpc_call_times_out(
    make_hub: HubFactory, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """rpc.call_timeout bounds a JSON-RPC call to a WAMP callee: error wamp.error.timeout."""
    hub = await make_hub({"rpc": {"call_timeout": 0.2}})
    callee = await wamp(hub)

    async def slow() -> None:
        await asyncio.sleep(30)

    await callee.register(slow, "com.slow")
    peer = await jsonrpc(hub)
    error = await peer.error("com.slow")
    assert error["code"] == -32030
    assert error["data"]["error"] == "wamp.error.timeout"


async def test_wamp_names_the_table_reserves_stay_wamp_only(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """A WAMP procedure named like a channels built-in works over WAMP only."""
    callee = await wamp(hub)
    await callee.register(lambda: "wamp", "publish")
    caller = await wamp(hub)
    assert await caller.call("publish") == "wamp"
    peer = await jsonrpc(hub)
    assert (await peer.error("publish"))["code"] == -32601


async def test_prefixed_realm_is_isolated(
    make_hub: HubFactory, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """A realm with a channel_prefix maps topics under it and keeps its procedures private."""
    hub = await make_hub({"wamp": {"realms": ["realm1", {"name": "iot", "channel_prefix": "iot"}]}})
    iot = await wamp(hub, realm="iot")
    main = await wamp(hub)
    events = Events()
    await main.subscribe(events, "temp")
    peer = await channels_subscriber(jsonrpc, hub, "iot/temp")
    await iot.publish("temp", 1, options=ACK)
    assert (await message(peer))["data"] == 1
    await main.publish("temp", 2, options=PublishOptions(acknowledge=True, exclude_me=False))
    assert await events.next() == ((2,), {})  # realm1's own, not iot's

    await iot.register(lambda: "iot", "com.private")
    with pytest.raises(ApplicationError):
        await main.call("com.private")
    assert (await (await jsonrpc(hub)).error("com.private"))["code"] == -32601
    await main.register(lambda: "main", "com.private")  # the name is free in realm1
