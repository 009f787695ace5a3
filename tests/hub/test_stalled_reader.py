"""A peer that stops reading with data still pending is dropped by heartbeat and by stop()."""

from __future__ import annotations

import asyncio
import json

from hub import CallContext, Hub
from tests.hub._raw import RawClient

STALLED_BYTES = 128 * 1024  # well above websockets' default 32 KiB write limit
INTERVAL = TIMEOUT = CLOSE_TIMEOUT = 0.2


async def stalled_hub_and_client(make_hub) -> tuple[Hub, RawClient, str]:
    """A hub with a 1 MiB outbound limit and a raw client that stopped reading with 128+ KiB
    waiting in the server's buffer (below the limit, so it is not a slow consumer)."""
    hub: Hub = await make_hub(
        {
            "limits": {"max_outbound_bytes": 1024 * 1024},
            "websocket": {
                "ping_interval": INTERVAL,
                "ping_timeout": TIMEOUT,
                "close_timeout": CLOSE_TIMEOUT,
            },
        }
    )

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    raw = await RawClient.connect(hub, "jsonrpc.2.0", recv_buffer=4096)
    await raw.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "whoami"}))
    frame = await raw.recv_frame()
    assert frame is not None
    session_id = json.loads(frame.payload)["result"]
    session = hub.session(session_id)
    async with asyncio.timeout(5):
        while session.outbound_buffer_size() < STALLED_BYTES:  # type: ignore[attr-defined]
            hub.notify(session_id, "fill", ["x" * 8192])
            await asyncio.sleep(0)
    assert session_id in hub.session_ids
    return hub, raw, session_id


async def test_heartbeat_drops_a_stalled_reader(make_hub, disconnects) -> None:
    """Pings still time out for a peer whose unread data sits in the server's buffer."""
    hub, raw, session_id = await stalled_hub_and_client(make_hub)
    watcher = disconnects(hub)
    try:
        await watcher.wait(session_id, timeout=INTERVAL + TIMEOUT + CLOSE_TIMEOUT + 2)
    finally:
        raw.close()
    assert session_id not in hub.session_ids


async def test_stop_does_not_hang_on_a_stalled_reader(make_hub) -> None:
    """``hub.stop()`` returns within about close_timeout even when a peer stopped reading."""
    hub, raw, _ = await stalled_hub_and_client(make_hub)
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT + 2):
            await hub.stop()
    finally:
        raw.close()
    assert hub.session_ids == []
