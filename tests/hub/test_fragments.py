"""websockets' cap of 4,096 frames per message, and its WEBSOCKETS_MAX_FRAGMENTS override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hub import Hub
from tests.wshub_process import running_wshub

DEFAULT_MAX_FRAGMENTS = 4096


def request_in_fragments(fragments: int) -> list[str]:
    """One JSON-RPC request (rpc.discover) that websockets sends in ``fragments`` frames.

    websockets sends each chunk of an iterable as a frame, then an empty final
    frame: ``fragments - 1`` chunks.
    """
    head = '{"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"'
    # Whitespace is valid JSON between tokens: one blank per padding frame.
    return [head, *[" "] * (fragments - 3), "}"]


async def answered(ws: ClientConnection, fragments: int) -> bool:
    await ws.send(request_in_fragments(fragments))
    try:
        reply = json.loads(await ws.recv())
    except ConnectionClosed:
        return False
    assert reply["id"] == 1
    return True


async def test_default_cap_is_4096_frames(hub: Hub, connect) -> None:
    """A message of 4,096 frames is read; one of 4,097 closes the connection 1009."""
    ws = await connect(hub, compression=None)
    assert await answered(ws, DEFAULT_MAX_FRAGMENTS)
    assert not await answered(ws, DEFAULT_MAX_FRAGMENTS + 1)
    assert ws.close_code == 1009
    assert ws.close_reason == "too many fragments"


async def test_environment_variable_raises_the_cap(tmp_path: Path) -> None:
    """``WEBSOCKETS_MAX_FRAGMENTS=8192 wshub`` reads a message of 5,000 frames."""
    async with running_wshub(cwd=tmp_path, env={"WEBSOCKETS_MAX_FRAGMENTS": "8192"}) as hub:
        async with connect(hub.url, compression=None) as ws:
            assert await answered(ws, 5000)
        async with connect(hub.url, compression=None) as ws:
            assert not await answered(ws, 8193)
            assert ws.close_code == 1009


@pytest.mark.parametrize("fragments", [2, 100])
async def test_fragmented_messages_are_ordinary_messages(hub: Hub, connect, fragments: int) -> None:
    """A fragmented request under the cap is answered like any other."""
    ws = await connect(hub)
    assert await answered(ws, fragments)
