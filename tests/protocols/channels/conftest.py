"""A ``channels.v1`` test peer: a plain websockets client that sorts replies from notifications."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import Hub
from hub.handler import Identity, ProtocolSpec, Session
from hub.registry import ProtocolRegistry
from protocols.channels import ChannelsHandler
from tests.conftest import Connector

WIRE_NAME = "channels.v1"


class ChannelsPeer:
    """A websockets client speaking channels.v1; no wshub code on this side.

    A reader task files replies under their request id and notifications in a
    queue; ``log`` keeps every frame in arrival order for ordering checks.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.log: list[dict[str, Any]] = []
        self.unexpected: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                self.log.append(message)
                future = (
                    self._replies.pop(message.get("id"), None) if "method" not in message else None
                )
                if future is not None:
                    future.set_result(message)
                else:
                    self._notifications.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            for future in self._replies.values():
                future.set_exception(ConnectionError("connection closed before the reply"))
            self._replies.clear()

    # -- requests ---------------------------------------------------------------

    async def send(self, value: Any) -> None:
        await self.ws.send(json.dumps(value))

    def start(self, method: str, params: Any = None) -> asyncio.Future[dict[str, Any]]:
        """Send a request now; a future for its whole reply."""
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        sending = asyncio.ensure_future(self.send(message))
        sending.add_done_callback(lambda task: task.exception())
        return future

    async def request(
        self, method: str, params: Any = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """The whole reply (result or error) to one request."""
        async with asyncio.timeout(timeout):
            return await self.start(method, params)

    async def call(self, method: str, params: Any = None) -> Any:
        """The result of a request; fails the test on an error reply."""
        reply = await self.request(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """The error of a request; fails the test on a result."""
        reply = await self.request(method, params)
        assert "result" not in reply, reply
        return dict(reply["error"])

    async def subscribe(self, channel: str, **params: Any) -> dict[str, Any]:
        return dict(await self.call("subscribe", {"channel": channel, **params}))

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        return dict(await self.call("publish", {"channel": channel, "data": data}))

    # -- notifications -----------------------------------------------------------

    async def next_unsolicited(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next whole frame that answers none of our requests (a notification, say)."""
        async with asyncio.timeout(timeout):
            return await self._notifications.get()

    async def notification(self, method: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """The params of the next notification (asserting its method when given)."""
        message = await self.next_unsolicited(timeout)
        if method is not None:
            assert message.get("method") == method, message
        return dict(message.get("params", {}))

    async def messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The params of the next ``count`` notifications, all ``message``."""
        return [await self.notification("message", timeout) for _ in range(count)]

    async def quiet_for(self, seconds: float = 0.1) -> bool:
        """True when no notification arrives within ``seconds`` (one that does is kept)."""
        try:
            self.unexpected.append(await self.next_unsolicited(seconds))
        except TimeoutError:
            return True
        return False

    def pending(self) -> list[dict[str, Any]]:
        """Notifications received and not consumed yet, consuming them."""
        out = []
        while not self._notifications.empty():
            out.append(self._notifications.get_nowait())
        return out

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait for the server to close the connection; its close code and reason."""
        async with asyncio.timeout(timeout):
            await self.ws.wait_closed()
        received = self.ws.close_code, self.ws.close_reason
        return received[0], received[1] or ""

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


PeerFactory = Callable[..., Awaitable[ChannelsPeer]]


@pytest.fixture
async def channels(connect: Connector) -> AsyncIterator[PeerFactory]:
    """Connect a :class:`ChannelsPeer` to a hub over ``channels.v1``; closed after."""
    peers: list[ChannelsPeer] = []

    async def open_peer(hub: Hub, **kwargs: Any) -> ChannelsPeer:
        peer = ChannelsPeer(await connect(hub, WIRE_NAME, **kwargs))
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        peer._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await peer._reader


def identified_channels(session: Session, hub: Hub) -> ChannelsHandler:
    """channels.v1 where ``?user=<id>`` in the URL names the user (stands in for auth)."""
    request_path = getattr(session, "request_path", "/")
    users = parse_qs(urlsplit(request_path).query).get("user")
    if users:
        session.identity = Identity(user_id=users[0])  # type: ignore[misc]
    return ChannelsHandler(session, hub)


@pytest.fixture
def identified_registry() -> ProtocolRegistry:
    """A registry whose channels.v1 takes the user from the URL: tabs of one user."""
    return ProtocolRegistry([ProtocolSpec(WIRE_NAME, factory=identified_channels)])
