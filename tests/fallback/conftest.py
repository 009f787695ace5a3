"""Hubs with the HTTP fallback on, and a fallback client written from the docs
(aiohttp: an SSE reader and POSTs), not the hub's own code."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from hub import Hub
from tests.conftest import HubFactory

FallbackHubFactory = Callable[..., Awaitable[Hub]]


def fallback_config(**sections: Any) -> dict[str, Any]:
    """Sections of a hub whose fallback listens on a free port."""
    fallback = {"enabled": True, "port": 0, **sections.pop("fallback", {})}
    return {"fallback": fallback, **sections}


@pytest.fixture
def fallback_hub(make_hub: HubFactory) -> FallbackHubFactory:
    """``await fallback_hub(**sections)``: a started hub with the fallback on."""

    async def factory(**sections: Any) -> Hub:
        return await make_hub(fallback_config(**sections))

    return factory


def fallback_url(hub: Hub) -> str:
    assert hub.fallback is not None, "the hub's fallback is off"
    return hub.fallback.url


@dataclass
class Event:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Parses text/event-stream as the HTML standard says (the fields the hub writes)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self, timeout: float = 5.0) -> Event:
        event, event_id = "message", None
        data: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        return Event(event, "\n".join(data), event_id)
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    event_id = value


class FallbackPeer:
    """A channels.v1 client over SSE + POST."""

    def __init__(self, http: aiohttp.ClientSession, base: str, stream: SseReader) -> None:
        self.http = http
        self.base = base
        self.stream = stream
        self.token = ""
        self.hello: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []

    async def open(self) -> None:
        first = await self.stream.next()
        assert first.event == "session", first
        self.hello = first.json()
        self.token = self.hello["session"]

    async def post(self, *messages: Any, base: str | None = None) -> int:
        body = "\n".join(m if isinstance(m, str) else json.dumps(m) for m in messages)
        url = f"{base or self.base}/session/send"
        async with self.http.post(url, params={"session": self.token}, data=body) as response:
            return response.status

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        event = await self.stream.next(timeout)
        assert event.event == "message", event
        message: dict[str, Any] = event.json()
        return message

    async def request(
        self, method: str, params: Any = None, *, base: str | None = None
    ) -> dict[str, Any]:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        assert await self.post(message, base=base) == 202
        while True:
            reply = await self.recv()
            if reply.get("id") == request_id:
                return reply
            self.notifications.append(reply)

    async def call(self, method: str, params: Any = None, *, base: str | None = None) -> Any:
        reply = await self.request(method, params, base=base)
        assert "result" in reply, reply
        return reply["result"]

    async def notification(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.pop(0)
        return await self.recv(timeout)


PeerOpener = Callable[..., Awaitable[FallbackPeer]]


@pytest.fixture
async def fallback_peer() -> AsyncIterator[PeerOpener]:
    """``await fallback_peer(base_url, **request options)``: an open SSE + POST session."""
    http = aiohttp.ClientSession()
    responses: list[aiohttp.ClientResponse] = []

    async def open_peer(base: str, **options: Any) -> FallbackPeer:
        response = await http.get(f"{base}/session", **options)
        assert response.status == 200, (response.status, await response.text())
        responses.append(response)
        peer = FallbackPeer(http, base, SseReader(response))
        await peer.open()
        return peer

    yield open_peer
    for response in responses:
        response.close()
    await http.close()
