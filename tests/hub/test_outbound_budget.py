"""limits.max_outbound_bytes against message sizes: clear errors, never a false "slow consumer"."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import Hub
from hub.registry import ProtocolRegistry
from protocols.jsonrpc import PROTOCOL as JSONRPC
from tests.hub._protocols import ECHO
from tests.wshub_process import wshub_command

MIB = 1024 * 1024


async def exchange(ws: ClientConnection, method: str, params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    async with asyncio.timeout(10):
        while True:
            reply: dict[str, Any] = json.loads(await ws.recv())
            if reply.get("id") == 1:
                return reply


async def drain(ws: ClientConnection) -> None:
    """Read until the connection closes (ConnectionClosed)."""
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


async def test_an_rpc_result_over_the_budget_is_an_error_not_a_close(make_hub, connect) -> None:
    """A 5 MiB echo with a 4 MiB budget: the error "reply too large", and the client stays open."""
    hub: Hub = await make_hub({"websocket": {"max_message_size": 8 * MIB}})

    @hub.rpc("echo")
    async def echo(text: str) -> str:
        return text

    ws = await connect(hub, "jsonrpc.2.0", max_size=None)
    big = base64.b64encode(os.urandom(5 * MIB * 3 // 4)).decode()  # incompressible
    reply = await exchange(ws, "echo", [big])
    assert reply["error"]["code"] == -32016
    assert reply["error"]["data"]["limit"] == "limits.max_outbound_bytes"
    second = await exchange(ws, "echo", ["small"])
    assert second.get("result") == "small", second
    assert hub.metrics.slow_consumers_closed.value == 0


async def test_a_publication_over_the_budget_closes_1009_naming_it(
    make_hub, connect, caplog: pytest.LogCaptureFixture
) -> None:
    """A publication that cannot fit an empty outbound buffer closes 1009 naming the setting."""
    hub: Hub = await make_hub(
        {
            "limits": {"max_outbound_bytes": 64 * 1024},
            "channels": {"default": {"max_payload_bytes": 256 * 1024}},
        }
    )
    subscriber = await connect(hub, "channels.v1")
    assert "result" in await exchange(subscriber, "subscribe", {"channel": "big"})
    publisher = await connect(hub, "channels.v1")
    with caplog.at_level(logging.WARNING, logger="hub.session"):
        reply = await exchange(publisher, "publish", {"channel": "big", "data": "x" * 100_000})
        assert "result" in reply
        with pytest.raises(ConnectionClosed):
            await drain(subscriber)
    assert subscriber.close_code == 1009
    assert subscriber.close_reason == (
        "message larger than the outbound budget (limits.max_outbound_bytes)"
    )
    assert hub.metrics.slow_consumers_closed.value == 0
    assert any(
        "exceeds limits.max_outbound_bytes (65536)" in r.getMessage() for r in caplog.records
    )


async def test_non_ascii_text_counts_its_utf8_bytes_against_the_budget(make_hub, connect) -> None:
    """A plug-in's str of 30,000 euro signs is 90,000 bytes: over a 64 KiB budget, not 30,000."""
    hub: Hub = await make_hub(
        {
            "server": {"subprotocols": ["jsonrpc.2.0", "echo.v1"]},
            "limits": {"max_outbound_bytes": 64 * 1024},
        },
        registry=ProtocolRegistry([JSONRPC, ECHO]),
    )
    # Compressed, the frame would fit the buffer: only the count before sending refuses it.
    ws = await connect(hub, "echo.v1", compression="deflate")
    await ws.send("\u20ac" * 30_000)
    with pytest.raises(ConnectionClosed):
        await drain(ws)
    assert ws.close_code == 1009
    assert ws.close_reason == "message larger than the outbound budget (limits.max_outbound_bytes)"


async def test_start_warns_when_sizes_exceed_the_budget(
    make_hub, caplog: pytest.LogCaptureFixture
) -> None:
    """A hub whose size limits exceed its outbound budget logs why, naming each key."""
    with caplog.at_level(logging.WARNING, logger="hub.server"):
        await make_hub(
            {
                "websocket": {"max_message_size": 8 * MIB},
                "limits": {"max_message_size": {"mqtt": 5 * MIB}},
                "channels": {"namespaces": {"files": {"max_payload_bytes": 6 * MIB}}},
            }
        )
    messages = [r.getMessage() for r in caplog.records]
    for start in (
        "websocket.max_message_size (8388608) is larger",
        "limits.max_message_size.mqtt (5242880) is larger",
        "channels.namespaces.files.max_payload_bytes (6291456) is larger",
    ):
        assert any(m.startswith(start) for m in messages), start


async def test_check_warns_when_sizes_exceed_the_budget(tmp_path: Path) -> None:
    """``wshub --check`` prints the warning with the budget to set, and still exits 0."""
    config = tmp_path / "hub.toml"
    config.write_text("[websocket]\nmax_message_size = 8388608\n")
    code, out, err = await wshub_command("--config", str(config), "--check")
    assert code == 0
    assert "configuration OK" in out
    assert f"wshub: {config}: warning: websocket.max_message_size (8388608) is larger" in err
    assert "set limits.max_outbound_bytes to at least 8388608" in err
    config.write_text("[websocket]\nmax_message_size = 4194304\n")
    code, _, err = await wshub_command("--config", str(config), "--check")
    assert (code, err) == (0, "")
