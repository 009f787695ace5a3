"""A subscriber that stops reading is closed; others get everything, publishers are not slowed."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from hub import Hub
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import PeerFactory

PUBLICATIONS = 400
PAYLOAD = 20_000  # characters of data per publication: 8 MB in all


class StalledClient:
    """A raw TCP socket that speaks just enough WebSocket to subscribe, then never reads."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, hub: Hub) -> StalledClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive window, so the server's side fills up soon.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", hub.port))
        protocol = ClientProtocol(parse_uri(hub.url), subprotocols=[Subprotocol("channels.v1")])
        protocol.send_request(protocol.connect())
        client = cls(sock, protocol)
        await client._flush()
        while protocol.state is State.CONNECTING:
            await client._receive()
        assert protocol.state is State.OPEN, protocol.handshake_exc
        return client

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for data in self.protocol.data_to_send():
            if data:
                await loop.sock_sendall(self.sock, data)

    async def _receive(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self.frames.extend(e for e in self.protocol.events_received() if isinstance(e, Frame))

    async def request(self, request_id: int, method: str, params: Any) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.protocol.send_text(json.dumps(message).encode())
        await self._flush()
        async with asyncio.timeout(5):
            while True:
                for frame in self.frames:
                    if frame.opcode is Opcode.TEXT:
                        reply = json.loads(frame.data)
                        if reply.get("id") == request_id:
                            return dict(reply)
                await self._receive()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def stalled() -> AsyncIterator[list[StalledClient]]:
    clients: list[StalledClient] = []
    yield clients
    for client in clients:
        client.close()


async def test_slow_subscriber_is_closed_others_get_everything(
    make_hub: HubFactory, channels: PeerFactory, stalled: list[StalledClient]
) -> None:
    """A stalled reader is dropped (its leave is announced) while a reader gets all, in order."""
    hub = await make_hub(
        {
            "limits": {"max_outbound_bytes": 64 * 1024},
            "websocket": {"compression": False, "close_timeout": 0.5},
        }
    )
    reader, writer = await channels(hub), await channels(hub)
    await reader.subscribe("firehose")
    slow = await StalledClient.connect(hub)
    stalled.append(slow)
    reply = await slow.request(1, "subscribe", {"channel": "firehose", "presence": True})
    assert reply["result"]["channel"] == "firehose"
    joined = await reader.notification("join")
    slow_user = joined["member"]["user"]
    assert len(hub.session_ids) == 3

    payload = os.urandom(PAYLOAD // 2).hex()
    offsets = []
    for n in range(PUBLICATIONS):
        result = await writer.publish("firehose", {"n": n, "blob": payload})
        offsets.append(result["offset"])
    assert offsets == list(range(1, PUBLICATIONS + 1))

    received: list[int] = []
    left: list[str] = []
    async with asyncio.timeout(10):
        while len(received) < PUBLICATIONS or not left:
            params = await reader.notification()
            if "data" in params:
                assert params["data"]["blob"] == payload
                received.append(params["data"]["n"])
            else:
                left.append(params["member"]["user"])
    assert received == list(range(PUBLICATIONS))
    assert left == [slow_user]
    assert len(hub.session_ids) == 2
    assert await reader.call("presence_stats", {"channel": "firehose"}) == {
        "clients": 0,
        "users": 0,
    }
