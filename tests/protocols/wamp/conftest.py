"""WAMP test peers: Autobahn|Python on the test's loop, and a raw websockets client.

- ``wamp(hub, "msgpack", ...)`` joins an Autobahn|Python ApplicationSession
  (asyncio) and returns it once WELCOME arrived; ``wamp_refused`` returns the
  ABORT's details for a join the router refuses.
- ``raw_wamp(hub, "json")`` is a plain websockets client that sends any list (or
  any frame) and decodes what the router answers with the same serializer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import cbor2
import msgpack  # type: ignore[import-untyped]
import pytest
import txaio
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import Hub
from tests.conftest import Connector

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402  (after txaio's choice)
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import auth  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from autobahn.wamp.types import CloseDetails, ComponentConfig, SessionDetails  # noqa: E402

# The serializers every Autobahn flow runs over.
SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
ALL_SERIALIZERS = pytest.mark.parametrize("serializer", list(SERIALIZERS))


class Client(ApplicationSession):  # type: ignore[misc]
    """An Autobahn session that reports its join, leave and disconnect as futures."""

    def __init__(
        self,
        config: ComponentConfig,
        *,
        authmethods: list[str] | None,
        authid: str | None,
        ticket: str | None,
        secret: str | None,
    ) -> None:
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future[SessionDetails] = loop.create_future()
        self.left: asyncio.Future[CloseDetails] = loop.create_future()
        self.disconnected: asyncio.Future[None] = loop.create_future()
        self.challenges: list[Any] = []
        self._authmethods = authmethods
        self._authid = authid
        self._ticket = ticket
        self._secret = secret

    def onConnect(self) -> None:
        self.join(self.config.realm, authmethods=self._authmethods, authid=self._authid)

    def onChallenge(self, challenge: Any) -> str:
        self.challenges.append(challenge)
        if challenge.method == "ticket":
            assert self._ticket is not None
            return self._ticket
        assert self._secret is not None
        key = self._secret.encode()
        if "salt" in challenge.extra:
            key = auth.derive_key(
                self._secret,
                challenge.extra["salt"],
                challenge.extra["iterations"],
                challenge.extra["keylen"],
            )
        signature: bytes = auth.compute_wcs(key, challenge.extra["challenge"].encode())
        return signature.decode()

    def onJoin(self, details: SessionDetails) -> None:
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details: CloseDetails) -> None:
        if not self.left.done():
            self.left.set_result(details)
        self.disconnect()

    def onDisconnect(self) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)


WampFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def wamp_session() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Connect Autobahn sessions (joined or not); each leaves and disconnects after the test."""
    transports: list[tuple[Client, asyncio.BaseTransport]] = []
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop

    async def open_session(
        hub: Hub,
        serializer: str = "json",
        *,
        realm: str = "realm1",
        authmethods: list[str] | None = None,
        authid: str | None = None,
        ticket: str | None = None,
        secret: str | None = None,
    ) -> Client:
        session = Client(
            ComponentConfig(realm),
            authmethods=authmethods,
            authid=authid,
            ticket=ticket,
            secret=secret,
        )
        factory = WampWebSocketClientFactory(
            lambda: session, url=hub.url, serializers=[SERIALIZERS[serializer]()]
        )
        transport, _ = await loop.create_connection(factory, "127.0.0.1", hub.port)
        transports.append((session, transport))
        async with asyncio.timeout(5):
            await asyncio.wait({session.joined, session.left}, return_when="FIRST_COMPLETED")
        return session

    yield open_session
    for session, transport in transports:
        if session.is_attached():
            session.leave()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await session.disconnected
        transport.close()
    # Let the transports' close callbacks run on this loop.
    await asyncio.sleep(0)


@pytest.fixture
def wamp(wamp_session: Callable[..., Awaitable[Client]]) -> WampFactory:
    """``await wamp(hub, "msgpack")``: an Autobahn session that joined realm1."""

    async def open_joined(hub: Hub, serializer: str = "json", **options: Any) -> Client:
        session = await wamp_session(hub, serializer, **options)
        if not session.joined.done():
            raise AssertionError(f"join refused: {session.left.result()}")
        return session

    return open_joined


@pytest.fixture
def wamp_refused(wamp_session: Callable[..., Awaitable[Client]]) -> Callable[..., Awaitable[Any]]:
    """``await wamp_refused(hub, ...)``: the CloseDetails of a join the router refused."""

    async def refused(hub: Hub, serializer: str = "json", **options: Any) -> CloseDetails:
        session = await wamp_session(hub, serializer, **options)
        assert not session.joined.done(), "the join was accepted"
        return session.left.result()

    return refused


async def wait_for(future: Awaitable[Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        return await future


# --- a raw client ------------------------------------------------------------------------

CLIENT_ROLES = {
    "caller": {"features": {"progressive_call_results": True, "call_canceling": True}},
    "callee": {"features": {"progressive_call_results": True, "call_canceling": True}},
    "publisher": {"features": {}},
    "subscriber": {"features": {}},
}


class RawWamp:
    """A websockets client speaking WAMP lists, with nothing of wshub on this side."""

    def __init__(self, ws: ClientConnection, serializer: str) -> None:
        self.ws = ws
        self.serializer = serializer
        self.ids = itertools.count(1)
        self.session_id = 0

    def encode(self, message: Any) -> str | bytes:
        if self.serializer == "json":
            return json.dumps(message)
        if self.serializer == "msgpack":
            data: bytes = msgpack.packb(message, use_bin_type=True)
            return data
        return cbor2.dumps(message)

    def decode(self, frame: str | bytes) -> Any:
        if self.serializer == "json":
            assert isinstance(frame, str), "wamp.2.json frames are text"
            return json.loads(frame)
        assert isinstance(frame, bytes), f"wamp.2.{self.serializer} frames are binary"
        if self.serializer == "msgpack":
            return msgpack.unpackb(frame, raw=False)
        return cbor2.loads(frame)

    async def send(self, message: Any) -> None:
        await self.ws.send(self.encode(message))

    async def send_frame(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            message = self.decode(await self.ws.recv())
        assert isinstance(message, list), message
        return message

    async def silent_for(self, seconds: float) -> bool:
        """True when nothing arrives within ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                await self.ws.recv()
        except TimeoutError:
            return True
        return False

    async def hello(self, realm: str = "realm1", **details: Any) -> list[Any]:
        """HELLO; the answer (WELCOME, CHALLENGE or ABORT)."""
        details.setdefault("roles", CLIENT_ROLES)
        await self.send([1, realm, details])
        answer = await self.recv()
        if answer[0] == 2:
            self.session_id = answer[1]
        return answer

    async def request(self, message: list[Any]) -> list[Any]:
        """Send a message and return the next one received."""
        await self.send(message)
        return await self.recv()

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the router to close the transport; the close code."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.ws.recv()
        await self.ws.wait_closed()
        received = self.ws.protocol.close_rcvd
        return received.code if received is not None else None


RawFactory = Callable[..., Awaitable[RawWamp]]


@pytest.fixture
def raw_wamp(connect: Connector) -> RawFactory:
    """``await raw_wamp(hub, "msgpack", join=True)``: a RawWamp, joined to realm1 if asked."""

    async def open_raw(hub: Hub, serializer: str = "json", *, join: bool = False) -> RawWamp:
        ws = await connect(hub, f"wamp.2.{serializer}")
        assert ws.subprotocol == f"wamp.2.{serializer}"
        raw = RawWamp(ws, serializer)
        if join:
            welcome = await raw.hello()
            assert welcome[0] == 2, welcome
        return raw

    return open_raw
