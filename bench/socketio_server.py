"""python-socketio, the Python peer a user would otherwise pick, as its docs set it up
for asyncio: ``socketio.AsyncServer`` on aiohttp.

Events: ``sub`` joins the room every publication goes to; ``pub`` emits its data
to the room and acknowledges once ``emit`` returned; ``echo`` acknowledges with
its argument (an acknowledged emit is Socket.IO's RPC). Clients connect with the
WebSocket transport only (no long-polling first), as the hub's clients do.

Run: python -m bench.socketio_server PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import socketio
from aiohttp import web

ROOM = "bench"


def make_app() -> web.Application:
    # Compression off on both sides, as for the hub and the other baselines.
    sio = socketio.AsyncServer(
        async_mode="aiohttp", http_compression=False, max_http_buffer_size=2**20
    )
    app = web.Application()
    sio.attach(app)

    @sio.on("sub")  # type: ignore[misc]
    async def sub(sid: str) -> str:
        await sio.enter_room(sid, ROOM)
        return "ok"

    @sio.on("pub")  # type: ignore[misc]
    async def pub(sid: str, data: Any) -> str:
        await sio.emit("m", data, room=ROOM)
        return "ack"

    @sio.on("echo")  # type: ignore[misc]
    async def echo(sid: str, value: Any) -> Any:
        return value

    return app


async def main(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
