"""The server API on two hub processes sharing one private Redis."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from protocols.mqtt.codec import Connack, Connect, Disconnect
from protocols.mqtt.packets import Properties
from protocols.mqtt.reasons import ReasonCode
from tests.api.backend import Backend
from tests.api.conftest import KEY, call, result
from tests.auth_helpers import SECRET, mint
from tests.multinode.conftest import HubProcess
from tests.multinode.redis_server import RedisServer
from tests.multinode.redis_server import redis_server as redis_server
from tests.protocols.channels.conftest import ChannelsPeer
from tests.protocols.mqtt.test_server_disconnects import RawWs, _first
from tests.protocols.wamp.conftest import RawWamp

pytestmark = pytest.mark.service


class ApiNode(HubProcess):
    """A hub process on Redis with the server API on a port of its own."""

    def __init__(self, directory: Path, name: str, redis_url: str, extra: str = "") -> None:
        super().__init__(directory, name, redis_url)
        self.api = ""
        # Port 0: the API binds a free port itself and logs it (no free_port race).
        with self.config.open("a") as config:
            config.write(f'[api]\nkeys = ["{KEY}"]\nport = 0\n{extra}')

    async def start(self, timeout: float = 15.0) -> None:
        await super().start(timeout)
        found = re.search(r"server API listening on (http://\S+)/api/", self.log())
        assert found is not None, self.log()
        self.api = found.group(1)


@pytest.fixture
async def nodes(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[list[ApiNode]]:
    """Two API nodes on the test's Redis."""
    started = [ApiNode(tmp_path, f"node{n}", redis_server.url) for n in (1, 2)]
    await asyncio.gather(*(node.start() for node in started))
    yield started
    await asyncio.gather(*(node.stop() for node in started))


PeerFactory = Callable[..., Awaitable[ChannelsPeer]]


@pytest.fixture
async def peer() -> AsyncIterator[PeerFactory]:
    """``await peer(node, path)``: a channels.v1 client of one node; closed after."""
    peers: list[ChannelsPeer] = []

    async def open_peer(node: HubProcess, path: str = "") -> ChannelsPeer:
        ws = await connect(
            node.url + path, subprotocols=[Subprotocol("channels.v1")], open_timeout=5
        )
        client = ChannelsPeer(ws)
        peers.append(client)
        return client

    yield open_peer
    for client in peers:
        await client.close()


async def test_publish_on_one_node_reaches_the_other(
    nodes: list[ApiNode], peer: PeerFactory
) -> None:
    """A publish through node 1's API reaches a subscriber of node 2, offsets shared."""
    one, two = nodes
    subscriber = await peer(two)
    await subscriber.subscribe("news")
    first = await result(one.api, "publish", {"channel": "news", "data": "a"})
    second = await result(two.api, "publish", {"channel": "news", "data": "b"})
    assert second["offset"] == first["offset"] + 1
    assert second["epoch"] == first["epoch"]
    assert [m["data"] for m in await subscriber.messages(2)] == ["a", "b"]


async def test_presence_across_nodes(nodes: list[ApiNode], peer: PeerFactory) -> None:
    """presence through either node's API lists members connected to both."""
    one, two = nodes
    for node in nodes:
        client = await peer(node)
        await client.subscribe("room", presence=True)
    for node in (one, two):
        stats = await result(node.api, "presence_stats", {"channel": "room"})
        assert stats == {"clients": 2, "users": 2}
        members = await result(node.api, "presence", {"channel": "room"})
        assert len(members["members"]) == 2


async def test_user_commands_reach_every_node(nodes: list[ApiNode], peer: PeerFactory) -> None:
    """subscribe and disconnect sent to node 1 reach the user's connection on node 2."""
    one, two = nodes
    client = await peer(two)
    # Anonymous sessions are their own user: the session id, learned from presence.
    await client.subscribe("who", presence=True)
    members = await result(one.api, "presence", {"channel": "who"})
    (user,) = members["members"]
    assert (await client.notification("join"))["member"]["user"] == user
    await result(one.api, "subscribe", {"user": user, "channel": "direct"})
    assert (await client.notification("subscribed"))["channel"] == "direct"
    await result(one.api, "publish", {"channel": "direct", "data": 1})
    assert (await client.messages(1))[0]["data"] == 1
    await result(one.api, "disconnect", {"user": user, "code": 4001, "reason": "bye"})
    assert await client.closed() == (4001, "bye")


async def test_info_and_channels_over_both_nodes(nodes: list[ApiNode], peer: PeerFactory) -> None:
    """info lists both nodes; channels sums subscribers of both."""
    one, two = nodes
    for node in nodes:
        client = await peer(node)
        await client.subscribe("shared")
    info = await result(one.api, "info")
    assert len(info["nodes"]) == 2
    assert info["partial"] is False
    assert sorted(n["connections"] for n in info["nodes"]) == [1, 1]
    listed = await result(two.api, "channels", {"pattern": "shared"})
    assert listed["channels"] == {"shared": {"subscribers": 2}}


async def test_redis_down_503(nodes: list[ApiNode], redis_server: RedisServer) -> None:
    """With Redis stopped, publish answers 503 with the unavailable code."""
    one, _ = nodes
    await redis_server.stop()
    status, body = await call(one.api, "publish", {"channel": "x", "data": 1})
    assert status == 503, body
    assert body["error"]["code"] == -32017
    assert json.dumps(body)


async def test_webhooks_once_across_nodes(
    tmp_path: Path, redis_server: RedisServer, backend: Backend, peer: PeerFactory
) -> None:
    """Two nodes send each join/leave/publish webhook once, not once per node."""
    extra = (
        f'[webhooks]\nurls = ["{backend.url("hooks")}"]\nsecret = "s3cret-for-tests"\n'
        'events = ["join", "leave", "publish", "channel_occupied", "channel_vacated"]\n'
    )
    nodes = [ApiNode(tmp_path, f"hook{n}", redis_server.url, extra) for n in (1, 2)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        one, two = nodes
        first = await peer(one)
        second = await peer(two)
        await first.subscribe("room", presence=True)
        await second.subscribe("room", presence=True)
        await second.publish("room", "hi")
        await second.call("unsubscribe", {"channel": "room"})
        await first.call("unsubscribe", {"channel": "room"})
        await backend.wait_for(7)
        await asyncio.sleep(0.5)  # a duplicate from the other node would be in by now
        events = [event["event"] for event in backend.events]
        assert events.count("join") == 2
        assert events.count("leave") == 2
        assert events.count("publish") == 1
        assert events.count("channel_occupied") == 1
        assert events.count("channel_vacated") == 1
        assert len({event["id"] for event in backend.events}) == len(backend.events)
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


async def test_history_remove_on_redis(nodes: list[ApiNode]) -> None:
    """history_remove through one node empties the history both read; the offset stays."""
    one, two = nodes
    for n in range(3):
        await result(one.api, "publish", {"channel": "log", "data": n})
    await result(two.api, "history_remove", {"channel": "log"})
    after = await result(one.api, "history", {"channel": "log"})
    assert after["publications"] == []
    assert after["offset"] == 3
    assert (await result(two.api, "publish", {"channel": "log", "data": 9}))["offset"] == 4
    kept = await result(one.api, "history", {"channel": "log"})
    assert [p["data"] for p in kept["publications"]] == [9]


async def test_idempotency_key_holds_across_nodes(nodes: list[ApiNode]) -> None:
    """A key posted to node 1 then node 2 publishes once; both answers carry one offset."""
    one, two = nodes
    params = {"channel": "orders", "data": {"id": 17}, "idempotency_key": "order-17"}
    first = await result(one.api, "publish", params)
    again = await result(two.api, "publish", {**params, "data": {"id": 18}})
    assert again == first
    kept = await result(two.api, "history", {"channel": "orders"})
    assert [p["data"] for p in kept["publications"]] == [{"id": 17}]
    other = await result(two.api, "publish", {**params, "idempotency_key": "order-18"})
    assert other["offset"] == first["offset"] + 1


async def test_idempotency_key_racing_on_two_nodes(nodes: list[ApiNode]) -> None:
    """The same key sent to both nodes at once publishes once; both get the same answer."""
    params = {"channel": "race", "data": 1, "idempotency_key": "k"}
    answers = await asyncio.gather(*(result(node.api, "publish", params) for node in nodes))
    assert answers[0] == answers[1]
    kept = await result(nodes[0].api, "history", {"channel": "race"})
    assert len(kept["publications"]) == 1


async def test_revoke_reaches_other_and_later_nodes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A revoke on node 1 closes and refuses the token on node 2 and on a node started after."""
    auth = f'\n[auth.jwt]\nsecret = "{SECRET}"\n'
    one, two, later = (ApiNode(tmp_path, f"jwt{n}", redis_server.url, auth) for n in (1, 2, 3))
    issued = int(time.time()) - 10
    old = mint("ada", iat=issued)

    async def open_as(node: ApiNode, token: str) -> ChannelsPeer:
        url = f"{node.url}?token={token}"
        ws = await connect(url, subprotocols=[Subprotocol("channels.v1")], open_timeout=5)
        return ChannelsPeer(ws)

    try:
        await asyncio.gather(one.start(), two.start())
        ada = await open_as(two, old)
        await result(one.api, "revoke", {"user": "ada", "before": issued + 5})
        assert await ada.closed() == (3003, "token revoked")
        await later.start()
        for node in (two, later):
            with pytest.raises(InvalidStatus) as refused:
                await open_as(node, old)
            assert refused.value.response.status_code == 401
            assert b"token revoked" in refused.value.response.body
        fresh = await open_as(later, mint("ada", iat=issued + 6))
        assert await fresh.call("presence_stats", {"channel": "x"}) == {"clients": 0, "users": 0}
        await fresh.close()
    finally:
        await asyncio.gather(*(node.stop() for node in (one, two, later)))


async def test_revoke_says_goodbye_on_another_node(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A revoke on node 1 reaches ada's sessions on node 2 in their protocol's terms: MQTT
    5.0 reads DISCONNECT 0x87 "token revoked", WAMP GOODBYE wamp.close.killed, each
    before the close 3003."""
    auth = f'\n[auth.jwt]\nsecret = "{SECRET}"\n'
    one, two = (ApiNode(tmp_path, f"rev{n}", redis_server.url, auth) for n in (1, 2))
    token = mint("ada")  # no iat: older than any revocation
    try:
        await asyncio.gather(one.start(), two.start())
        mqtt = RawWs(await connect(two.url, subprotocols=[Subprotocol("mqtt")], open_timeout=5))
        await mqtt.send(
            Connect(protocol_level=5, client_id="dev", username="ada", password=token.encode())
        )
        connack = await _first(mqtt)
        assert isinstance(connack, Connack)
        assert connack.return_code == 0
        ws = await connect(
            f"{two.url}?token={token}", subprotocols=[Subprotocol("wamp.2.json")], open_timeout=5
        )
        wamp = RawWamp(ws, "json")
        assert (await wamp.hello())[0] == 2
        await result(one.api, "revoke", {"user": "ada"})
        revoked = Disconnect(ReasonCode.NOT_AUTHORIZED, Properties(reason_string="token revoked"))
        assert await mqtt.until_closed() == ([revoked], 3003)
        assert await wamp.recv() == [6, {"message": "token revoked"}, "wamp.close.killed"]
        assert await wamp.closed() == 3003
    finally:
        await asyncio.gather(one.stop(), two.stop())
