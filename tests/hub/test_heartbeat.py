"""Heartbeat: WebSocket pings from the server drop dead peers and keep live ones."""

from __future__ import annotations

import asyncio
import itertools
import json

from hub import CallContext, Hub
from hub.registry import ProtocolRegistry
from protocols.jsonrpc import PROTOCOL as JSONRPC
from tests.hub._protocols import QUIET
from tests.hub._raw import OP_CLOSE, OP_PING, OP_PONG, RawClient

INTERVAL = TIMEOUT = CLOSE_TIMEOUT = 0.2


async def test_unanswered_pings_close_the_connection(make_hub, jsonrpc) -> None:
    """A peer that never answers pings is closed after about interval + timeout; others stay."""
    hub: Hub = await make_hub(
        {
            "websocket": {
                "ping_interval": INTERVAL,
                "ping_timeout": TIMEOUT,
                "close_timeout": CLOSE_TIMEOUT,
            }
        },
        registry=ProtocolRegistry([JSONRPC, QUIET]),
    )

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    live = await jsonrpc(hub)
    live_id = await live.call("whoami")
    quiet = await RawClient.connect(hub, "quiet.v1")
    quiet_id = (await quiet.recv_frame()).payload.decode().removeprefix("session ")  # type: ignore[union-attr]
    dead = await RawClient.connect(hub, "jsonrpc.2.0")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        frames = await dead.frames_until_eof(timeout=5)
    finally:
        dead.close()
    elapsed = loop.time() - started
    assert frames[0].opcode == OP_PING
    assert frames[-1].opcode == OP_CLOSE
    assert frames[-1].close_code == 1011
    assert b"keepalive ping timeout" in frames[-1].payload
    assert elapsed < INTERVAL + TIMEOUT + CLOSE_TIMEOUT + 1.0
    # The websockets client answered every ping meanwhile and is still served.
    assert await live.call("whoami") == live_id
    assert live_id in hub.session_ids
    # A protocol that opts out of WebSocket pings was never pinged, and stays.
    try:
        assert quiet.pending_bytes() == 0
        assert quiet_id in hub.session_ids
    finally:
        quiet.close()


async def test_answered_pings_keep_coming_with_no_task_between_them(make_hub) -> None:
    """A peer answering pings is pinged every interval and stays; between a pong
    and the next ping the server holds a timer only, no keepalive task (its
    coroutine, future and timer were ~0.9 KiB per idle connection)."""
    interval = 0.15
    hub: Hub = await make_hub(
        {"websocket": {"ping_interval": interval, "ping_timeout": 1.0}},
        registry=ProtocolRegistry([JSONRPC]),
    )

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    peer = await RawClient.connect(hub, "jsonrpc.2.0")
    try:
        await peer.send('{"jsonrpc": "2.0", "method": "whoami", "id": 1}')
        reply = await peer.recv_frame()
        assert reply is not None
        session_id = json.loads(reply.payload)["result"]
        connection = hub.session(session_id)._connection  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        pinged_at = []
        async with asyncio.timeout(5):
            while len(pinged_at) < 4:
                frame = await peer.recv_frame()
                assert frame is not None
                assert frame.opcode == OP_PING
                pinged_at.append(loop.time())
                # The ping is out: a task waits for its pong.
                assert connection.keepalive_task is not None
                await peer.send(frame.payload, opcode=OP_PONG)
                await asyncio.sleep(interval / 3)
                assert connection.keepalive_task is None
                assert connection._next_ping is not None
        gaps = [b - a for a, b in itertools.pairwise(pinged_at)]
        assert min(gaps) > interval * 0.7, gaps
        assert session_id in hub.session_ids
    finally:
        peer.close()
