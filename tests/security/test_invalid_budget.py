"""A connection sending invalid JSON-RPC in a row is closed (limits.invalid_message_*).

Issue 13's poison attack sent ~950 requests a second nested past the depth
limit, each answered -32600 and each costing the hub about what a valid one
does. Every invalid message still gets its error; the one past the budget
(10 by default, refilled at 1 a second) is followed by a close 1008.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hub import Hub
from protocols.jsonrpc.handler import INVALID_CLOSE_REASON
from tests.conftest import Connector, HubFactory


def deep_publish(request_id: int) -> str:
    data: Any = 1
    for _ in range(100):
        data = [data]
    params = {"channel": "p", "data": data}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "publish", "params": params})


def call(request_id: int) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "rpc.discover"})


async def recv_json(ws: Any) -> Any:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


async def read_all(ws: Any) -> None:
    while True:
        await ws.recv()


async def closed_with(ws: Any) -> tuple[int, str]:
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionClosed) as closed:
            await read_all(ws)
    received = closed.value.rcvd
    assert received is not None
    return received.code, received.reason


async def test_the_invalid_message_past_the_budget_gets_its_error_then_a_close(
    hub: Hub, connect: Connector
) -> None:
    ws = await connect(hub, "channels.v1")
    for request_id in range(10):
        await ws.send(deep_publish(request_id))
        reply = await recv_json(ws)
        assert (reply["id"], reply["error"]["code"]) == (request_id, -32600)
    # Ten within the budget: the connection still serves.
    await ws.send(call(100))
    assert "result" in await recv_json(ws)
    # Each kind counts: text that is not JSON, a binary frame.
    await ws.send("{not json")
    reply = await recv_json(ws)
    assert (reply["id"], reply["error"]["code"]) == (None, -32700)
    assert await closed_with(ws) == (1008, INVALID_CLOSE_REASON)


async def test_binary_frames_and_parse_errors_count(hub: Hub, connect: Connector) -> None:
    ws = await connect(hub, "jsonrpc")
    for _ in range(5):
        await ws.send(b"\x00binary")
        assert (await recv_json(ws))["error"]["code"] == -32600
        await ws.send("[1,")
        assert (await recv_json(ws))["error"]["code"] == -32700
    await ws.send("[]")
    assert (await recv_json(ws))["error"]["code"] == -32600
    assert await closed_with(ws) == (1008, INVALID_CLOSE_REASON)


async def test_each_invalid_batch_element_counts(hub: Hub, connect: Connector) -> None:
    ws = await connect(hub, "channels.v1")
    batch = [json.loads(call(0))] + [{"jsonrpc": "2.0", "id": i} for i in range(1, 12)]
    await ws.send(json.dumps(batch))
    replies = await recv_json(ws)
    assert "result" in replies[0]
    assert [reply["error"]["code"] for reply in replies[1:]] == [-32600] * 11
    assert await closed_with(ws) == (1008, INVALID_CLOSE_REASON)


async def test_the_budget_refills(make_hub: HubFactory, connect: Connector) -> None:
    hub = await make_hub({"limits": {"invalid_message_burst": 2, "invalid_message_rate": 20.0}})
    ws = await connect(hub, "channels.v1")
    for _ in range(4):
        for request_id in range(2):
            await ws.send(deep_publish(request_id))
            assert (await recv_json(ws))["error"]["code"] == -32600
        await asyncio.sleep(0.15)  # 3 tokens' worth: the bucket is full again
    await ws.send(call(1))
    assert "result" in await recv_json(ws)


async def test_a_zero_burst_turns_the_budget_off(make_hub: HubFactory, connect: Connector) -> None:
    hub = await make_hub({"limits": {"invalid_message_burst": 0}})
    ws = await connect(hub, "channels.v1")
    for request_id in range(40):
        await ws.send(deep_publish(request_id))
        assert (await recv_json(ws))["error"]["code"] == -32600
    await ws.send(call(1))
    assert "result" in await recv_json(ws)
