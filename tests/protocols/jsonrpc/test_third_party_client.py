"""A generic JSON-RPC 2.0 WebSocket client (jsonrpc-websocket, on aiohttp) talks to the hub.

Nothing from wshub runs on the client side: this is what any JSON-RPC user would do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonrpc_base import ProtocolError
from jsonrpc_websocket import Server

from hub import CallContext, Hub, RpcError


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[Server]:
    """A jsonrpc-websocket client connected to a hub serving ``math.add`` and ``math.div``."""

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    @hub.rpc("math.div")
    def div(a: float, b: float) -> float:
        if b == 0:
            raise RpcError(4000, "division by zero", {"a": a})
        return a / b

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    server = Server(hub.url, timeout=5)
    reader = await server.ws_connect()
    yield server
    await server.close()
    await reader


async def test_call_by_position_and_by_name(client: Server) -> None:
    """Positional and keyword calls map to JSON-RPC params arrays and objects."""
    assert await client.math.add(2, 3) == 5
    assert await client.math.add(a=40, b=2) == 42
    assert await client.math.div(1, 4) == 0.25


async def test_errors_reach_the_client(client: Server) -> None:
    """Application errors and param errors arrive as the client library's ProtocolError."""
    with pytest.raises(ProtocolError) as info:
        await client.math.div(1, 0)
    code, message, response = info.value.args
    assert (code, message) == (4000, "division by zero")
    assert response["error"]["data"] == {"a": 1.0}
    with pytest.raises(ProtocolError) as info:
        await client.math.add("one", 2)
    assert info.value.args[0] == -32602
    with pytest.raises(ProtocolError) as info:
        await client.math.mul(1, 2)
    assert info.value.args[0] == -32601


async def test_server_calls_and_notifies_the_client(hub: Hub, client: Server) -> None:
    """The library's own request handlers answer ``hub.call`` and receive ``hub.notify``."""
    notified: asyncio.Queue[Any] = asyncio.Queue()

    def on_news(headline: str) -> None:
        notified.put_nowait(headline)

    client.news = on_news
    client.client.shout = lambda text: text.upper()
    session_id = await client.whoami()
    hub.notify(session_id, "news", ["hello"])
    async with asyncio.timeout(5):
        assert await notified.get() == "hello"
    assert await hub.call(session_id, "client.shout", ["quiet"], timeout=5) == "QUIET"
