"""Bounded outbound buffers: a client that stops reading is closed, the others carry on."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from hub import CallContext, Hub, SessionNotFound
from tests.hub._raw import RawClient

LIMIT = 64 * 1024
CHUNK = "x" * (16 * 1024)
# Far more than the kernel's socket buffers can absorb once the peer stops reading.
MAX_MESSAGES = 8000


def slow_consumers_closed(hub: Hub) -> float:
    return hub.metrics.registry.get_sample_value("wshub_slow_consumers_closed_total") or 0.0


@pytest.fixture
async def hub(make_hub) -> Hub:
    """A hub allowing 64 KiB of unsent data per connection."""
    hub: Hub = await make_hub(
        {"limits": {"max_outbound_bytes": LIMIT}, "websocket": {"close_timeout": 0.2}}
    )

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    return hub


@pytest.fixture
def ended(hub: Hub, disconnects) -> Any:
    """Awaits the end of a session on the server side."""
    return disconnects(hub)


async def raw_session(hub: Hub) -> tuple[RawClient, str]:
    """A raw client that asks its session id, then never reads again."""
    raw = await RawClient.connect(hub, "jsonrpc.2.0", recv_buffer=4096)
    await raw.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "whoami"}))
    frame = await raw.recv_frame()
    assert frame is not None
    return raw, json.loads(frame.payload)["result"]


async def test_slow_consumer_is_closed_without_hurting_others(
    hub: Hub, ended, jsonrpc, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that stops reading is closed once 64 KiB back up; a reading one is unaffected."""
    good = await jsonrpc(hub)
    good_id = await good.call("whoami")
    raw, slow_id = await raw_session(hub)
    ticks = []
    try:
        with caplog.at_level(logging.WARNING, logger="hub.session"):
            for i in range(MAX_MESSAGES):
                hub.notify(slow_id, "flood", [i, CHUNK])
                if i % 100 == 0:
                    hub.notify(good_id, "tick", [i])
                    ticks.append(i)
                if slow_consumers_closed(hub):
                    break
                # Let the loop write to the socket, as real traffic would.
                await asyncio.sleep(0)
            else:
                pytest.fail("the slow consumer was never closed")
        await ended.wait(slow_id)
    finally:
        raw.close()
    with pytest.raises(SessionNotFound):
        hub.notify(slow_id, "flood", [])
    assert slow_consumers_closed(hub) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(slow_id in message and "slow consumer" in message for message in warnings)
    # The reader got every notification meant for it, in order, and is still served.
    assert [(await good.recv())["params"][0] for _ in ticks] == ticks
    assert await good.call("whoami") == good_id
    assert good_id in hub.session_ids


async def test_notify_from_a_sync_method_is_thread_safe(
    hub: Hub, ended, caplog: pytest.LogCaptureFixture
) -> None:
    """``ctx.notify`` from a sync method (worker thread) is safe and still closes a slow peer."""
    chunk = CHUNK

    @hub.rpc("flood_me")
    def flood_me(ctx: CallContext, n: int) -> int:
        for sent in range(n):
            try:
                ctx.notify("flood", [sent, chunk])
            except SessionNotFound:
                return sent
        return n

    raw, slow_id = await raw_session(hub)
    try:
        with caplog.at_level(logging.WARNING):
            await raw.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 2, "method": "flood_me", "params": [MAX_MESSAGES]}
                )
            )
            await ended.wait(slow_id)
    finally:
        raw.close()
    assert slow_consumers_closed(hub) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_burst_stops_buffering_once_closing(hub: Hub, ended) -> None:
    """Sends in one synchronous burst stop buffering as soon as the limit is crossed."""
    buffered: list[int] = []

    @hub.rpc("burst")
    async def burst(ctx: CallContext, n: int) -> None:
        session = ctx.hub.session(ctx.session_id)
        for i in range(n):
            ctx.notify("flood", [i, CHUNK])
        buffered.append(session.outbound_buffer_size())  # type: ignore[attr-defined]

    raw, slow_id = await raw_session(hub)
    try:
        await raw.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "burst", "params": [500]}))
        await ended.wait(slow_id)
    finally:
        raw.close()
    assert slow_consumers_closed(hub) == 1
    assert buffered[0] <= LIMIT + 2 * len(CHUNK)
