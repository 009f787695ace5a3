"""Frames bound for one connection in one loop iteration leave in one write (hub.session)."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from types import SimpleNamespace

from hub import CallContext, Hub
from tests.hub._raw import OP_TEXT, RawClient
from tests.wshub_process import running_wshub

BURST_MODULE = """
from hub import CallContext, rpc


@rpc("burst")
async def burst(ctx: CallContext, n: int) -> int:
    for i in range(n):
        ctx.notify("tick", {"i": i})
    return n
"""


def frames_in(chunk: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every whole unmasked frame at the start of ``chunk``."""
    frames = []
    while len(chunk) >= 2:
        opcode, length = chunk[0] & 0x0F, chunk[1] & 0x7F
        start = 2
        if length == 126:
            (length,) = struct.unpack("!H", chunk[2:4])
            start = 4
        elif length == 127:
            (length,) = struct.unpack("!Q", chunk[2:10])
            start = 10
        if len(chunk) < start + length:
            break
        frames.append((opcode, chunk[start : start + length]))
        chunk = chunk[start + length :]
    return frames


async def test_a_burst_to_one_connection_arrives_in_one_segment(tmp_path: Path) -> None:
    """Twenty notifications and the reply sent in one step reach a separate process in one read."""
    (tmp_path / "burstmethods.py").write_text(BURST_MODULE)
    config = tmp_path / "hub.toml"
    config.write_text(f'[rpc]\npaths = ["{tmp_path}"]\nmodules = ["burstmethods"]\n')
    async with running_wshub("--config", str(config), cwd=tmp_path) as wshub:
        port = int(wshub.url.rsplit(":", 1)[1].strip("/"))
        client = await RawClient.connect(SimpleNamespace(port=port))  # type: ignore[arg-type]
        try:
            request = {"jsonrpc": "2.0", "id": 1, "method": "burst", "params": [20]}
            await client.send(json.dumps(request), OP_TEXT)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(5):
                # The hub runs in another process: without coalescing, this first
                # read may wake after the first of 21 writes.
                chunk = client._buffer + await loop.sock_recv(client.sock, 1 << 16)
            frames = frames_in(chunk)
            assert [opcode for opcode, _ in frames] == [OP_TEXT] * 21
            ticks = [json.loads(payload) for _, payload in frames[:20]]
            assert [tick["params"]["i"] for tick in ticks] == list(range(20))
            assert json.loads(frames[20][1]) == {"jsonrpc": "2.0", "id": 1, "result": 20}
        finally:
            client.close()


async def test_frames_sent_before_a_close_arrive_before_the_close_frame(hub: Hub, jsonrpc) -> None:
    """A method that notifies and then closes its session: the notification is not lost."""

    @hub.rpc("bye")
    async def bye(ctx: CallContext) -> None:
        ctx.notify("last", {"words": "goodbye"})
        await hub.session(ctx.session_id).close(4000, "done")

    peer = await jsonrpc(hub)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "bye"})
    assert await peer.recv() == {"jsonrpc": "2.0", "method": "last", "params": {"words": "goodbye"}}
    await peer.ws.wait_closed()
    assert peer.ws.close_code == 4000


async def test_a_burst_over_the_flush_size_is_delivered_whole_and_in_order(
    hub: Hub, jsonrpc
) -> None:
    """A burst of several times the coalescing size (64 KiB) arrives complete, in order."""

    @hub.rpc("big_burst")
    async def big_burst(ctx: CallContext) -> int:
        for i in range(40):
            ctx.notify("chunk", {"i": i, "pad": "x" * 10_000})
        return 40

    peer = await jsonrpc(hub)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "big_burst"})
    got = [await peer.recv() for _ in range(41)]
    assert [m["params"]["i"] for m in got[:40]] == list(range(40))
    assert got[40] == {"jsonrpc": "2.0", "id": 1, "result": 40}
