"""Fixtures every suite may use: hubs bound to 127.0.0.1 port 0, and clients.

Suites for later protocols (channels, mqtt, wamp, redis) add their own fixtures
in their own conftest files; keep this one about the hub and plain clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from hub import CallContext, Hub, HubConfig
from hub.registry import ProtocolRegistry

HubFactory = Callable[..., Awaitable[Hub]]
Connector = Callable[..., Awaitable[ClientConnection]]


@pytest.fixture
async def make_hub() -> AsyncIterator[HubFactory]:
    """Start hubs on port 0 with a given config (HubConfig or section dicts); stop them after."""
    hubs: list[Hub] = []

    async def factory(
        config: HubConfig | Mapping[str, Any] | None = None,
        *,
        registry: ProtocolRegistry | None = None,
    ) -> Hub:
        if isinstance(config, Mapping):
            config = HubConfig.model_validate(config)
        hub = Hub(config, registry=registry)
        await hub.start(port=0)
        hubs.append(hub)
        return hub

    yield factory
    for hub in reversed(hubs):
        await hub.stop()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    """A started hub with the default configuration, on an ephemeral port."""
    return await make_hub()


@pytest.fixture
async def connect() -> AsyncIterator[Connector]:
    """Open a websockets client to a hub, offering the given subprotocols; closed after.

    ``await connect(hub)`` offers nothing; ``await connect(hub, "jsonrpc")`` offers one
    name; ``path=`` picks the URL path; other keywords go to websockets' ``connect``.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def open_client(
            target: Hub | str, *subprotocols: str, path: str = "/", **kwargs: Any
        ) -> ClientConnection:
            url = target if isinstance(target, str) else target.url.rstrip("/") + path
            kwargs.setdefault("open_timeout", 5)
            kwargs.setdefault("close_timeout", 1)
            client = await ws_connect(
                url,
                subprotocols=[Subprotocol(name) for name in subprotocols] or None,
                **kwargs,
            )
            stack.push_async_callback(client.close)
            return client

        yield open_client


class JsonRpcPeer:
    """A plain websockets client with JSON-RPC helpers; no wshub code on this side."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, value: Any) -> None:
        await self.ws.send(json.dumps(value))

    async def recv(self, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            return json.loads(await self.ws.recv())

    async def silent_for(self, seconds: float) -> bool:
        """True when nothing arrives within ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                await self.ws.recv()
        except TimeoutError:
            return True
        return False

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send a request and return the whole reply object (result or error)."""
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        reply = await self.recv()
        assert reply["id"] == request_id, reply
        return dict(reply)

    async def call(self, method: str, params: Any = None) -> Any:
        """Send a request and return its result, failing the test on an error reply."""
        reply = await self.request(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send a request and return its error object, failing the test on a result."""
        reply = await self.request(method, params)
        assert "result" not in reply, reply
        return dict(reply["error"])


PeerFactory = Callable[..., Awaitable[JsonRpcPeer]]


@pytest.fixture
def jsonrpc(connect: Connector) -> PeerFactory:
    """Connect a :class:`JsonRpcPeer` to a hub, offering ``jsonrpc.2.0`` unless told otherwise."""

    async def open_peer(
        hub: Hub, *subprotocols: str, bare: bool = False, **kwargs: Any
    ) -> JsonRpcPeer:
        # bare=True offers no subprotocol at all, relying on the server's default.
        offered = () if bare else subprotocols or ("jsonrpc.2.0",)
        return JsonRpcPeer(await connect(hub, *offered, **kwargs))

    return open_peer


class DisconnectWatcher:
    """Lets a test await the server side of a session ending (via ``hub.on_disconnect``)."""

    def __init__(self, hub: Hub) -> None:
        self._ended: dict[str, asyncio.Event] = {}
        hub.on_disconnect(self._record)

    def _event(self, session_id: str) -> asyncio.Event:
        return self._ended.setdefault(session_id, asyncio.Event())

    def _record(self, ctx: CallContext) -> None:
        self._event(ctx.session_id).set()

    async def wait(self, session_id: str, timeout: float = 5.0) -> None:
        """Return once the hub has detached ``session_id``; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            await self._event(session_id).wait()


@pytest.fixture
def disconnects() -> Callable[[Hub], DisconnectWatcher]:
    """``watcher = disconnects(hub)``, then ``await watcher.wait(session_id)``."""
    return DisconnectWatcher
