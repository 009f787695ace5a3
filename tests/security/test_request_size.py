"""A channels.v1 message larger than any request is refused as it inflates, unparsed.

bench/hostile.py's store-growth attack sent a 900 KB presence ``info`` on each
new connection: the hub inflated and parsed the whole message (a 1 to 8 ms
step) before the info cap (channels.max_presence_info_bytes) refused it.
channels.v1 now has its own inbound bound, 128 KiB (Centrifugo's client
limit is 64 KB; the largest request is a publish of max_payload_bytes, 64 KiB,
in its envelope): larger closes 1009 while inflating, before any parse. A
namespace admitting larger payloads raises it to twice its max_payload_bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hub import Hub
from tests.conftest import Connector, HubFactory

KIB = 1024
INFO = {"bio": "x" * 900_000}


def request(request_id: int, method: str, params: Any = None) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def sample(hub: Hub, name: str, **labels: str) -> float:
    return hub.metrics.registry.get_sample_value(name, labels or None) or 0.0


async def recv_json(ws: Any) -> Any:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


async def test_a_900_kb_presence_info_closes_1009_unparsed(hub: Hub, connect: Connector) -> None:
    """Default hub: the 900 KB subscribe never reaches the handler; nobody joined."""
    ws = await connect(hub, "channels.v1")
    await ws.send(request(1, "subscribe", {"channel": "room", "presence": True, "info": INFO}))
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 1009
    received = "wshub_messages_received_total"
    assert sample(hub, received, subprotocol="channels.v1") == 0
    watcher = await connect(hub, "channels.v1")
    await watcher.send(request(2, "presence_stats", {"channel": "room"}))
    assert (await recv_json(watcher))["result"] == {"clients": 0, "users": 0}


async def test_the_largest_payload_still_publishes(hub: Hub, connect: Connector) -> None:
    """A publish of channels.default.max_payload_bytes (64 KiB) fits the bound."""
    ws = await connect(hub, "channels.v1")
    data = "y" * (64 * KIB - 2)  # its JSON: 64 KiB with the quotes
    await ws.send(request(1, "publish", {"channel": "big", "data": data}))
    assert "result" in await recv_json(ws)


async def test_naming_channels_v1_lifts_the_bound(make_hub: HubFactory, connect: Connector) -> None:
    """limits.max_message_size.channels.v1 replaces it: the info is parsed and capped (-32015)."""
    hub = await make_hub({"limits": {"max_message_size": {"channels.v1": 1024 * KIB}}})
    ws = await connect(hub, "channels.v1")
    await ws.send(request(1, "subscribe", {"channel": "room", "presence": True, "info": INFO}))
    assert (await recv_json(ws))["error"]["code"] == -32015


async def test_a_smaller_websocket_limit_still_bounds_channels_v1(
    make_hub: HubFactory, connect: Connector
) -> None:
    """websocket.max_message_size below 128 KiB applies to channels.v1 as before."""
    hub = await make_hub({"websocket": {"max_message_size": 4 * KIB}})
    ws = await connect(hub, "channels.v1")
    await ws.send(request(1, "publish", {"channel": "c", "data": "z" * (8 * KIB)}))
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 1009


async def test_a_namespace_allowing_larger_payloads_raises_the_bound(
    make_hub: HubFactory, connect: Connector
) -> None:
    """A namespace's 512 KiB max_payload_bytes is publishable: the bound follows it (twice)."""
    hub = await make_hub(
        {
            "websocket": {"max_message_size": 4096 * KIB},
            "channels": {"namespaces": {"files": {"max_payload_bytes": 512 * KIB}}},
        }
    )
    ws = await connect(hub, "channels.v1")
    data = "f" * (500 * KIB)
    await ws.send(request(1, "publish", {"channel": "files/upload", "data": data}))
    assert "result" in await recv_json(ws)
    # Still bounded: twice the largest payload (1 MiB), not websocket.max_message_size.
    await ws.send(request(2, "publish", {"channel": "files/upload", "data": "g" * (1100 * KIB)}))
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 1009
