"""A close requested while a large message goes out in fragments keeps its code.

On a compressed connection a message of 256 KiB or more leaves in 64 KiB
fragments, one per loop iteration (hub/session.py). websockets fails a
connection closed in the middle of such a message with 1011; the hub sends
the requested Close frame between two fragments instead (RFC 6455, 5.4: a
control frame may come between the fragments of a message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import Hub
from hub.session import OVERSIZE_REASON, SLOW_CONSUMER_REASON
from tests.conftest import Connector

MIB = 1024 * 1024
# Fits the default outbound budget (4 MiB): ~48 fragments.
LARGE = "x" * (3 * MIB)


class FirstFragment(logging.Handler):
    """Set once the client has read the first, unfinished frame of a message."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if line.startswith("< TEXT") and "[FIN]" not in line:
            self.seen.set()


async def client_with_frames(
    hub: Hub, connect: Connector
) -> tuple[ClientConnection, FirstFragment]:
    first = FirstFragment()
    logger = logging.getLogger("tests.hub.close_while_fragmenting")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers[:] = [first]
    ws = await connect(hub, "jsonrpc.2.0", compression="deflate", logger=logger, max_size=None)
    assert ws.protocol.extensions, "permessage-deflate was not negotiated"
    return ws, first


async def closed_code(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the hub closes; the code and reason it sent."""
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


Act = Callable[[Hub, str], Awaitable[None]]


async def handler_close(hub: Hub, session_id: str) -> None:
    await hub.session(session_id).close(4001, "closed by the test")


async def slow_consumer(hub: Hub, session_id: str) -> None:
    # 3 MiB in flight and 1.5 MiB more: over the 4 MiB budget, not alone.
    hub.notify(session_id, "more", "y" * (3 * MIB // 2))


async def oversize(hub: Hub, session_id: str) -> None:
    hub.notify(session_id, "huge", "z" * (5 * MIB))


async def shutdown(hub: Hub, session_id: str) -> None:
    await hub.stop()


@pytest.mark.parametrize(
    ("act", "code", "reason"),
    [
        (handler_close, 4001, "closed by the test"),
        (slow_consumer, 1008, SLOW_CONSUMER_REASON),
        (oversize, 1009, OVERSIZE_REASON),
        (shutdown, 1001, "server shutting down"),
    ],
    ids=["handler", "slow-consumer", "oversize", "shutdown"],
)
async def test_the_requested_close_code_survives_a_fragmented_send(
    hub: Hub, connect: Connector, act: Act, code: int, reason: str
) -> None:
    """Closed after the first fragment of a 3 MiB notification: the client gets the code asked."""
    ws, first = await client_with_frames(hub, connect)
    (session_id,) = hub.session_ids
    hub.notify(session_id, "large", LARGE)
    async with asyncio.timeout(10):
        await first.seen.wait()
    await act(hub, session_id)
    assert await closed_code(ws) == (code, reason)
