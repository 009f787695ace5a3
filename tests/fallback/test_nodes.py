"""The fallback on two hub processes sharing one private Redis: no sticky sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fallback.conftest import PeerOpener, SseReader
from tests.multinode.conftest import HubProcess
from tests.multinode.redis_server import RedisServer
from tests.ports import free_port

pytestmark = pytest.mark.service


class FallbackNode(HubProcess):
    """A hub process on Redis with the fallback on a port of its own."""

    def __init__(self, directory: Path, name: str, redis_url: str) -> None:
        super().__init__(directory, name, redis_url)
        self.fallback_port = free_port()
        with self.config.open("a") as config:
            config.write(f"[fallback]\nenabled = true\nport = {self.fallback_port}\n")

    def pick_ports(self) -> None:
        super().pick_ports()
        old = f"port = {self.fallback_port}\n"
        self.fallback_port = free_port()
        text = self.config.read_text()
        self.config.write_text(text.replace(old, f"port = {self.fallback_port}\n"))

    @property
    def fallback(self) -> str:
        return f"http://127.0.0.1:{self.fallback_port}"


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[FallbackNode]]:
    """Two fallback nodes on a private redis-server."""
    redis = RedisServer(tmp_path)
    await redis.start()
    started = [FallbackNode(tmp_path, f"node{n}", redis.url) for n in (1, 2)]
    try:
        await asyncio.gather(*(node.start() for node in started))
        yield started
    finally:
        await asyncio.gather(*(node.stop() for node in started))
        await redis.stop()


async def test_a_post_to_another_node_reaches_the_session(
    nodes: list[FallbackNode], fallback_peer: PeerOpener
) -> None:
    """Requests POSTed to node 2 reach a session streaming from node 1, and it answers there."""
    node1, node2 = nodes
    peer = await fallback_peer(node1.fallback)
    subscribed = await peer.call(
        "subscribe", {"channel": "room", "presence": True}, base=node2.fallback
    )
    assert subscribed["channel"] == "room"
    await peer.call("publish", {"channel": "room", "data": "via node 2"}, base=node2.fallback)
    message = await peer.notification()
    if message["method"] == "join":  # its own presence, first
        message = await peer.notification()
    assert message["method"] == "message"
    assert message["params"]["data"] == "via node 2"
    # A session that ended is unknown to every node.
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{node2.fallback}/session/close", params={"session": peer.token}
        ) as response:
            assert response.status == 202
        assert (await peer.stream.next()).event == "close"
        await asyncio.sleep(0.2)
        async with http.post(
            f"{node2.fallback}/session/send", params={"session": peer.token}, data="{}"
        ) as response:
            assert response.status == 404


async def test_stream_from_one_node_while_posting_to_the_other(
    nodes: list[FallbackNode], fallback_peer: PeerOpener
) -> None:
    """An SSE stream on node 2 gets what a fallback session publishes through node 1."""
    node1, node2 = nodes
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node2.fallback}/events", params={"channel": "feed"}) as response,
    ):
        stream = SseReader(response)
        assert (await stream.next()).event == "subscribed"
        peer = await fallback_peer(node1.fallback)
        await peer.call("publish", {"channel": "feed", "data": {"n": 7}})
        event = await stream.next()
        assert event.json()["data"] == {"n": 7}
