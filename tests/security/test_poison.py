"""JSON depth is bounded at ingress for every protocol; no "poison" publication.

Issue 13: ``data`` nested 252 levels deep passed the size check, then broke the
JSON encoder (254 levels) in every reply that wrapped it: history answered
-32603 for 300 s, a recovering subscribe answered -32603 and stayed half-open,
a WAMP msgpack payload 300 deep closed its sender with 1011, an MQTT JSON
payload 1,000 deep never reached channels.v1 subscribers.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import cbor2
import msgpack  # type: ignore[import-untyped]
import pytest

from hub import Hub
from hub.engine import Publication
from protocols.mqtt.codec import Connack, Connect, PacketReader, Publish, encode
from tests.conftest import Connector


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def request(request_id: int, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


async def recv_json(ws: Any) -> Any:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


@pytest.mark.parametrize("protocol", ["channels.v1", "jsonrpc.2.0"])
async def test_a_json_rpc_message_too_deep_gets_invalid_request(
    hub: Hub, connect: Connector, protocol: str
) -> None:
    """Params 252 deep (limit 64): -32600 with the request's id naming the limit."""
    ws = await connect(hub, protocol)
    await ws.send(json.dumps(request(7, "publish", {"channel": "p", "data": nested(252)})))
    reply = await recv_json(ws)
    assert reply["id"] == 7
    assert reply["error"]["code"] == -32600
    assert "nested deeper than 64 levels" in reply["error"]["data"]


async def test_a_deep_publication_never_poisons_history(hub: Hub, connect: Connector) -> None:
    """Refused at ingress (and from hub.publish): history and recovery keep answering."""
    ws = await connect(hub, "channels.v1")
    await ws.send(json.dumps(request(1, "publish", {"channel": "p", "data": nested(60)})))
    epoch = (await recv_json(ws))["result"]["epoch"]
    with pytest.raises(Exception, match="nested deeper than 64"):
        await hub.publish("p", nested(200))
    await ws.send(json.dumps(request(2, "history", {"channel": "p"})))
    assert len((await recv_json(ws))["result"]["publications"]) == 1
    since = {"offset": 0, "epoch": epoch}
    await ws.send(json.dumps(request(3, "subscribe", {"channel": "p", "since": since})))
    result = (await recv_json(ws))["result"]
    assert result["recovered"] is True
    assert len(result["publications"]) == 1


async def test_a_subscribe_whose_reply_cannot_be_encoded_is_rolled_back(
    hub: Hub, connect: Connector
) -> None:
    """A poison already in history: -32603, then no half-open subscription left behind."""
    ws = await connect(hub, "channels.v1")
    await ws.send(json.dumps(request(1, "publish", {"channel": "r", "data": 1})))
    epoch = (await recv_json(ws))["result"]["epoch"]
    # Below every policy check, as a backend bug or an old state file could:
    # 252 levels pass the encoder alone, not inside a reply.
    poison = Publication("r", nested(252))
    await hub.engine.publish(poison, history_size=10, history_ttl=60)
    since = {"offset": 0, "epoch": epoch}
    await ws.send(json.dumps(request(2, "subscribe", {"channel": "r", "since": since})))
    assert (await recv_json(ws))["error"]["code"] == -32603
    # A history reply that would carry it is refused alike, never sent too deep.
    await ws.send(json.dumps(request(5, "history", {"channel": "r"})))
    assert (await recv_json(ws))["error"]["code"] == -32603
    # Not subscribed: unsubscribing is refused, a later message is not delivered...
    await ws.send(json.dumps(request(3, "unsubscribe", {"channel": "r"})))
    assert (await recv_json(ws))["error"]["code"] == -32012
    await hub.publish("r", 2)
    # ...and a plain subscribe is not "already subscribed".
    await ws.send(json.dumps(request(4, "subscribe", {"channel": "r"})))
    reply = await recv_json(ws)
    assert reply["id"] == 4
    assert "result" in reply


async def wamp_session(connect: Connector, hub: Hub, wire: str) -> Any:
    ws = await connect(hub, wire)
    hello = [1, "realm1", {"roles": {"publisher": {}, "subscriber": {}}}]
    await ws.send(pack(wire, hello))
    async with asyncio.timeout(10):
        welcome = unpack(wire, await ws.recv())
    assert welcome[0] == 2
    return ws


def pack(wire: str, message: list[Any]) -> str | bytes:
    if wire == "wamp.2.msgpack":
        return bytes(msgpack.packb(message, use_bin_type=True))
    if wire == "wamp.2.cbor":
        return cbor2.dumps(message)
    return json.dumps(message)


def unpack(wire: str, frame: str | bytes) -> Any:
    if wire == "wamp.2.msgpack":
        return msgpack.unpackb(frame)
    if wire == "wamp.2.cbor":
        return cbor2.loads(frame)
    return json.loads(frame)


@pytest.mark.parametrize("wire", ["wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor"])
async def test_a_wamp_payload_too_deep_is_a_protocol_violation(
    hub: Hub, connect: Connector, wire: str
) -> None:
    """PUBLISH args 300 deep: ABORT wamp.error.protocol_violation and 1002, never 1011."""
    ws = await wamp_session(connect, hub, wire)
    await ws.send(pack(wire, [16, 1, {"acknowledge": True}, "deep", [nested(300)]]))
    async with asyncio.timeout(10):
        abort = unpack(wire, await ws.recv())
    assert abort[0] == 3
    assert abort[2] == "wamp.error.protocol_violation"
    assert "nested deeper than 64 levels" in abort[1]["message"]
    await ws.wait_closed()
    assert ws.close_code == 1002


async def test_an_mqtt_json_payload_too_deep_reaches_channels_as_bytes(
    hub: Hub, connect: Connector
) -> None:
    """JSON 1,000 deep from MQTT: channels.v1 gets the {"$binary"} envelope of its bytes."""
    subscriber = await connect(hub, "channels.v1")
    await subscriber.send(json.dumps(request(1, "subscribe", {"channel": "dev/deep"})))
    assert "result" in await recv_json(subscriber)
    device = await connect(hub, "mqtt")
    await device.send(encode(Connect(client_id="deep", keepalive=60)))
    assert isinstance(PacketReader().feed(await device.recv())[0], Connack)  # type: ignore[arg-type]
    payload = b"[" * 999 + b"1" + b"]" * 999
    await device.send(encode(Publish(topic="dev/deep", payload=payload)))
    message = await recv_json(subscriber)
    assert message["method"] == "message"
    assert base64.b64decode(message["params"]["data"]["$binary"]) == payload
