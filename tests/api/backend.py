"""A small real backend (aiohttp) for the proxy and webhook tests; no wshub code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

Decide = Callable[[dict[str, Any]], Any]


class Backend:
    """Records every event POSTed to it and answers with what ``decide`` returns.

    ``decide(event)`` returns the JSON answer (a dict) or a number of seconds
    to stall (a float) before answering ``{"result": {}}``.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrived = asyncio.Condition()
        self.decide: Decide = lambda event: {"result": {}}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        event = json.loads(raw)
        self.headers.append(dict(request.headers))
        async with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()
        answer = self.decide(event)
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            answer = {"result": {}}
        if isinstance(answer, int):
            return web.Response(status=answer, text="backend error")
        return web.json_response(answer)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """At least ``count`` events, waiting for them."""
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.events) >= count)
        return list(self.events)
