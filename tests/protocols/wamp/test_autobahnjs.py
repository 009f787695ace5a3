"""AutobahnJS in node against the hub (node/script.mjs, installed by scripts/bootstrap)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hub import Hub
from tests.conftest import JsonRpcPeer, PeerFactory
from tests.protocols.wamp.conftest import WampFactory

NODE_PROJECT = Path(__file__).parent / "node"


def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None or not (NODE_PROJECT / "node_modules" / "autobahn").is_dir():
        # Not a skip: AutobahnJS must be tested for real.
        raise RuntimeError("node or AutobahnJS missing: run scripts/bootstrap")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.lstrip("v").split(".")[0])
    # AutobahnJS uses the global WebSocket, built into node from 22 on.
    return [node, "--experimental-websocket"] if major < 22 else [node]


async def run_script(url: str, serializer: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *node_command(),
        "--no-warnings",
        "script.mjs",
        url,
        serializer,
        cwd=NODE_PROJECT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
async def test_autobahnjs_pubsub_and_rpc(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory, serializer: str
) -> None:
    """AutobahnJS: publish/subscribe, hub and WAMP procedures, errors, progress, cross-language."""

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    python = await wamp(hub, "cbor")
    await python.register(lambda name: f"hello {name} from Python", "py.greet")
    watcher: JsonRpcPeer = await jsonrpc(hub, "channels.v1")
    await watcher.call("subscribe", {"channel": f"js/{serializer}/done"})

    result = await run_script(hub.url, serializer)

    assert 1 <= result["session"] <= 2**53
    assert result["published"] is True
    assert result["event"] == {"args": [1, "two"], "kwargs": {"three": 3}}
    assert result["add"] == [5, 10]
    assert result["echo"] == {"args": [1, [2]], "kwargs": {"k": "v"}}
    assert result["missing"] == "wamp.error.no_such_procedure"
    assert result["invalid"] == "wamp.error.invalid_argument"
    assert result["progress"] == [1, 2, 3]
    assert result["final"] == "done"
    assert result["greet"] == f"hello {serializer} from Python"
    note = await watcher.recv()
    assert note["params"]["channel"] == f"js/{serializer}/done"
    assert note["params"]["data"] == {"ok": True}
