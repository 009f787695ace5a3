"""examples/hub.toml and examples/rpc_methods.py work as the README documents them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub import Hub, load_config
from tests.conftest import PeerFactory

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
async def example_hub() -> AsyncIterator[Hub]:
    """The hub `wshub --config examples/hub.toml` builds, on a free port."""
    hub = Hub(load_config(EXAMPLES / "hub.toml"))
    hub.load_configured_modules()
    await hub.start(port=0)
    yield hub
    await hub.stop()


async def test_example_methods_are_served(example_hub: Hub, jsonrpc: PeerFactory) -> None:
    """math.add, the pydantic math.midpoint and math.divide's RpcError reach a JSON-RPC client."""
    peer = await jsonrpc(example_hub)
    assert await peer.call("math.add", [2, 3]) == 5
    assert await peer.call("math.midpoint", {"p": {"x": 0, "y": 0}, "q": {"x": 2, "y": 4}}) == {
        "x": 1.0,
        "y": 2.0,
    }
    error = await peer.error("math.divide", {"a": 1, "b": 0})
    assert error == {"code": 1001, "message": "division by zero", "data": {"a": 1.0}}


async def test_whoami_notifies_the_caller(example_hub: Hub, jsonrpc: PeerFactory) -> None:
    """session.whoami pushes a greeting notification before its result."""
    peer = await jsonrpc(example_hub)
    await peer.send({"jsonrpc": "2.0", "id": 7, "method": "session.whoami"})
    greeting = await peer.recv()
    assert greeting == {
        "jsonrpc": "2.0",
        "method": "greeting",
        "params": {"text": "hello from the hub"},
    }
    reply = await peer.recv()
    assert reply["result"]["subprotocol"] == "jsonrpc.2.0"
    assert reply["result"]["session"] in example_hub.session_ids


async def test_chat_hook_and_namespaces(example_hub: Hub, jsonrpc: PeerFactory) -> None:
    """The example's chat hook trims text and refuses other shapes; clock is server-only."""
    listener = await jsonrpc(example_hub, "channels.v1")
    await listener.call("subscribe", {"channel": "chat/lobby"})
    peer = await jsonrpc(example_hub, "channels.v1")
    await peer.call("publish", {"channel": "chat/lobby", "data": {"text": "  hi  "}})
    message = await listener.recv()
    assert message["method"] == "message"
    assert message["params"]["data"] == {"text": "hi"}
    assert message["params"]["info"]["client"] in example_hub.session_ids
    refused = await peer.error("publish", {"channel": "chat/lobby", "data": "not an object"})
    assert refused["code"] == -32011
    refused = await peer.error("publish", {"channel": "clock", "data": 1})
    assert refused["code"] == -32011


async def test_clock_now_publishes(example_hub: Hub, jsonrpc: PeerFactory) -> None:
    """clock.now returns the time and publishes it on the clock channel."""
    peer = await jsonrpc(example_hub, "channels.v1")
    await peer.call("subscribe", {"channel": "clock"})
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "clock.now"})
    first, second = await peer.recv(), await peer.recv()
    by_kind = {("result" in m): m for m in (first, second)}
    assert by_kind[False]["params"]["data"]["now"] == by_kind[True]["result"]
