"""Heartbeat: WebSocket pings from the server drop dead peers and keep live ones."""

from __future__ import annotations

import asyncio

from hub import CallContext, Hub
from hub.registry import ProtocolRegistry
from protocols.jsonrpc import PROTOCOL as JSONRPC
from tests.hub._protocols import QUIET
from tests.hub._raw import OP_CLOSE, OP_PING, RawClient

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
