"""Baseline servers: the limit of the stack, on the same websockets library.

``echo``: sends every message back (the RPC round-trip baseline).
``broadcast``: a connection on ``/pub`` publishes; each message is
``websockets.broadcast`` to every ``/sub`` connection, then acknowledged.
``idle``: accepts connections and does nothing (the memory baseline).

Run: python -m bench.servers KIND PORT [--no-compression]
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


async def echo(connection: ServerConnection) -> None:
    # Load generators may drop their connections without a closing handshake.
    with contextlib.suppress(ConnectionClosed):
        async for message in connection:
            await connection.send(message)


def make_broadcast() -> object:
    subscribers: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else "/"
        if path.startswith("/sub"):
            subscribers.add(connection)
            try:
                await connection.wait_closed()
            finally:
                subscribers.discard(connection)
            return
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                broadcast(subscribers, message)
                await connection.send("ack")

    return handler


async def idle(connection: ServerConnection) -> None:
    await connection.wait_closed()


async def main(kind: str, port: int, compression: bool) -> None:
    handler = {"echo": echo, "broadcast": make_broadcast(), "idle": idle}[kind]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with serve(
        handler,  # type: ignore[arg-type]
        "127.0.0.1",
        port,
        compression="deflate" if compression else None,
        max_size=2**20,
    ):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), "--no-compression" not in sys.argv))
