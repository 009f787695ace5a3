"""Work is counted in protocol units, not WebSocket frames (issue 13).

A batch element and an MQTT packet each take a rate token and (JSON-RPC) a
concurrency slot of their own, and a batch has a size cap: packing work into
one frame buys an attacker nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hub import Hub
from protocols.mqtt.codec import Connack, Connect, PacketReader, Pingreq, encode
from tests.conftest import Connector, HubFactory

SLOW = 0.001  # tokens per second: none come back during a test


def request(request_id: int, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


async def recv_json(ws: Any) -> Any:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


async def read_until_closed(ws: Any) -> None:
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


async def test_a_batch_over_the_cap_is_refused_whole(hub: Hub, connect: Connector) -> None:
    """101 requests in one batch (limit 100): one -32600 naming the limit, nothing run."""
    ws = await connect(hub, "channels.v1")
    batch = [request(i, "publish", {"channel": "cap", "data": i}) for i in range(101)]
    await ws.send(json.dumps(batch))
    reply = await recv_json(ws)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert "over the limit of 100" in reply["error"]["data"]
    # Nothing was published, and the connection still serves.
    await ws.send(json.dumps(request(1, "history", {"channel": "cap"})))
    assert (await recv_json(ws))["result"]["publications"] == []


async def test_batch_elements_take_a_rate_token_each(
    make_hub: HubFactory, connect: Connector
) -> None:
    """A batch of 8 with 5 tokens: 5 answered, 3 RATE_LIMITED (-32029), in one array."""
    hub = await make_hub({"limits": {"message_rate": SLOW, "message_burst": 5}})
    ws = await connect(hub, "jsonrpc.2.0")
    await ws.send(json.dumps([request(i, "rpc.discover") for i in range(8)]))
    replies = await recv_json(ws)
    assert isinstance(replies, list)
    assert len(replies) == 8
    codes = sorted(r["error"]["code"] for r in replies if "error" in r)
    assert codes == [-32029] * 3
    assert sum("result" in r for r in replies) == 5


async def test_over_the_rate_an_escaped_id_is_still_answered(
    make_hub: HubFactory, connect: Connector
) -> None:
    """Over the rate, text without an "id" key is dropped unread; an escaped "id" is not.

    The refusal path skips parsing messages that cannot hold a request, and a
    key spelled with a JSON escape (``"\\u0069d"``) must not slip through it.
    """
    hub = await make_hub({"limits": {"message_rate": SLOW, "message_burst": 3}})
    ws = await connect(hub, "jsonrpc.2.0")
    for i in range(3):
        await ws.send(json.dumps(request(i, "rpc.discover")))
        assert "result" in await recv_json(ws)
    await ws.send('{"jsonrpc": "2.0", "method": "rpc.discover"}')  # dropped, no reply
    await ws.send('{"jsonrpc": "2.0", "\\u0069d": 7, "method": "rpc.discover"}')
    reply = await recv_json(ws)
    assert (reply["id"], reply["error"]["code"]) == (7, -32029)


async def test_a_batch_flood_is_closed_like_a_message_flood(
    make_hub: HubFactory, connect: Connector
) -> None:
    """Elements refused more than a burst's worth close the connection with 1008."""
    hub = await make_hub({"limits": {"message_rate": SLOW, "message_burst": 10}})
    ws = await connect(hub, "jsonrpc.2.0")
    await ws.send(json.dumps([request(i, "rpc.discover") for i in range(30)]))
    with pytest.raises(ConnectionClosed):
        await read_until_closed(ws)
    assert (ws.close_code, ws.close_reason) == (1008, "message rate exceeded")


async def test_batch_elements_take_a_concurrency_slot_each(
    make_hub: HubFactory, connect: Connector
) -> None:
    """With max_concurrent_requests 2, a batch of 10 slow calls never runs more than 2."""
    hub = await make_hub({"limits": {"max_concurrent_requests": 2}})
    running = 0
    peak = 0

    @hub.rpc("slow")
    async def slow() -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return 1

    ws = await connect(hub, "jsonrpc.2.0")
    await ws.send(json.dumps([request(i, "slow") for i in range(10)]))
    replies = await recv_json(ws)
    assert [r["result"] for r in replies] == [1] * 10
    assert peak == 2


async def test_mqtt_packets_packed_in_one_message_take_a_token_each(
    make_hub: HubFactory, connect: Connector
) -> None:
    """1,000 PINGREQ in one WebSocket message, burst 50: closed 1008 after about 100 answers."""
    hub = await make_hub({"limits": {"message_rate": SLOW, "message_burst": 50}})
    ws = await connect(hub, "mqtt")
    await ws.send(encode(Connect(client_id="packed", keepalive=60)))
    reader = PacketReader()
    assert isinstance(reader.feed(await ws.recv())[0], Connack)  # type: ignore[arg-type]
    await ws.send(encode(Pingreq()) * 1000)
    answered: list[int] = []

    async def count_answers() -> None:
        async with asyncio.timeout(10):
            while True:
                answered.append(len(reader.feed(await ws.recv())))  # type: ignore[arg-type]

    with pytest.raises(ConnectionClosed):
        await count_answers()
    assert (ws.close_code, ws.close_reason) == (1008, "message rate exceeded")
    # The CONNECT took a token: 49 tokens, then refusals (PINGREQ still answered)
    # until more than a burst of them: never the 1,000 the frame asked for.
    assert sum(answered) <= 2 * 50 + 1


async def test_reconnecting_after_a_flood_close_buys_no_new_burst(
    make_hub: HubFactory, connect: Connector
) -> None:
    """After a flood close, the address reconnects with an empty bucket: closed at one refusal."""
    hub = await make_hub({"limits": {"message_rate": SLOW, "message_burst": 10}})
    flooder = await connect(hub, "jsonrpc.2.0")
    await flooder.send(json.dumps([request(i, "rpc.discover") for i in range(30)]))
    with pytest.raises(ConnectionClosed):
        await read_until_closed(flooder)
    again = await connect(hub, "jsonrpc.2.0")
    await again.send(json.dumps(request(1, "rpc.discover")))
    with pytest.raises(ConnectionClosed):
        await read_until_closed(again)
    assert (again.close_code, again.close_reason) == (1008, "message rate exceeded")


async def test_large_replies_cost_rate_tokens(make_hub: HubFactory, connect: Connector) -> None:
    """A 64 KiB reply costs 64 tokens: with a burst of 100, the third big call is refused."""
    hub = await make_hub({"limits": {"message_rate": SLOW, "message_burst": 100}})

    @hub.rpc("big")
    async def big() -> str:
        return "x" * 64 * 1024

    ws = await connect(hub, "jsonrpc.2.0")
    await ws.send(json.dumps(request(1, "big")))
    assert "result" in await recv_json(ws)
    await ws.send(json.dumps(request(2, "big")))
    assert "result" in await recv_json(ws)  # 35 tokens left: the bucket goes into debt
    await ws.send(json.dumps(request(3, "big")))
    assert (await recv_json(ws))["error"]["code"] == -32029


async def test_a_batch_of_costly_elements_lets_other_connections_in(
    hub: Hub, connect: Connector
) -> None:
    """Elements that each hold the loop 3 ms: another client's call runs between them.

    A batch yields once its elements have run 1 ms since the last yield (on
    Python 3.11, after each element), not every 16 elements: 12 such elements
    used to run in one loop iteration, 36 ms before anyone else was read.
    """
    order: list[str] = []

    @hub.rpc("spin")
    async def spin() -> int:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.003:
            pass  # CPU work that never awaits
        order.append("spin")
        return 1

    @hub.rpc("mark")
    async def mark() -> int:
        order.append("mark")
        return 1

    batcher = await connect(hub, "jsonrpc.2.0")
    other = await connect(hub, "jsonrpc.2.0")
    await batcher.send(json.dumps([request(i, "spin") for i in range(12)]))
    await asyncio.sleep(0.005)  # the batch is running
    await other.send(json.dumps(request(1, "mark")))
    assert (await recv_json(other))["result"] == 1
    assert [r["result"] for r in await recv_json(batcher)] == [1] * 12
    assert "spin" in order[order.index("mark") + 1 :], order


async def test_refused_batches_count_each_element(make_hub: HubFactory, connect: Connector) -> None:
    """Over the rate, a batch of 100 requests counts 100 refusals, not 1: a client
    sending refused batches is closed after a burst's worth of elements.

    The hostile bench's history batches kept their connection in debt (large
    replies cost tokens) and sent refused batches back to back, each decoded and
    answered with 100 errors (~3 ms); at one refusal per batch, the close came
    only after 2,000 of them.
    """
    hub = await make_hub(
        {"limits": {"message_rate": SLOW, "message_burst": 200, "opening_burst": 200}}
    )
    ws = await connect(hub, "channels.v1")
    batch = json.dumps([request(i, "presence_stats", {"channel": "c"}) for i in range(100)])
    answered = 0
    with contextlib.suppress(ConnectionClosed):
        for _ in range(50):
            await ws.send(batch)
            await recv_json(ws)
            answered += 1
    assert (ws.close_code, ws.close_reason) == (1008, "message rate exceeded")
    # Two batches take the 200 tokens, two more are refused (200 refusals),
    # the fifth closes; before, 200 refused batches would have been answered.
    assert 2 <= answered <= 4, answered
