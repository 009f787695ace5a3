"""A node killed while holding MQTT clients leaves no client id locked (issue 13).

Each connected client id has its user on record in Redis, so that only that
user may take the session over. A node that dies (SIGKILL) cannot remove the
records of its clean sessions: they used to lock those client ids to their
users for good. Once the node's heartbeat has lapsed, a CONNECT that the
record would refuse finds the holder gone and frees the id; a persistent
session stays its user's, and starts the expiry its node never started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.auth.passwords import hash_password
from tests.multinode.conftest import HubProcess
from tests.multinode.redis_server import RedisServer
from tests.protocols.mqtt.conftest import PahoPeer

pytestmark = pytest.mark.service

IDENTIFIER_REJECTED = 133  # CONNACK 0x02, as paho reports it
# Past a killed node's heartbeat (the alive key's lifetime).
HEARTBEAT_LAPSE = 3.5

Paho = Callable[..., PahoPeer]


async def two_nodes(tmp_path: Path, redis_server: RedisServer) -> list[HubProcess]:
    nodes = [HubProcess(tmp_path, f"node{n}", redis_server.url) for n in (1, 2)]
    users = "".join(f'{user} = "{hash_password("pw-" + user)}"\n' for user in ("ada", "bob"))
    for node in nodes:
        with node.config.open("a") as config:
            config.write("[auth.basic.users]\n" + users)
    await asyncio.gather(*(node.start() for node in nodes))
    return nodes


async def login(
    paho_peer: Paho, node: HubProcess, user: str, client_id: str, *, clean: bool = True
) -> tuple[bool, int]:
    peer = paho_peer(client_id, clean_session=clean)
    peer.client.username_pw_set(user, f"pw-{user}")
    return await peer.connect("127.0.0.1", node.port)


async def test_a_clean_session_on_a_killed_node_frees_its_client_id(
    tmp_path: Path, redis_server: RedisServer, paho_peer: Paho
) -> None:
    """ada's clean session dies with node A; bob may then use the id on B, and it is his."""
    a, b = await two_nodes(tmp_path, redis_server)
    try:
        assert await login(paho_peer, a, "ada", "pump") == (False, 0)
        # While A lives, the id is ada's.
        assert (await login(paho_peer, b, "bob", "pump"))[1] == IDENTIFIER_REJECTED
        a.kill()
        await asyncio.sleep(HEARTBEAT_LAPSE)
        assert await login(paho_peer, b, "bob", "pump") == (False, 0)
        # The record is bob's now: the takeover rule still holds, for him.
        assert (await login(paho_peer, b, "ada", "pump"))[1] == IDENTIFIER_REJECTED
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_a_persistent_session_on_a_killed_node_stays_its_users_and_expires(
    tmp_path: Path, redis_server: RedisServer, paho_peer: Paho
) -> None:
    """ada's stored session outlives node A: bob is still refused, and its keys now expire."""
    a, b = await two_nodes(tmp_path, redis_server)
    try:
        assert await login(paho_peer, a, "ada", "meter", clean=False) == (False, 0)
        a.kill()
        await asyncio.sleep(HEARTBEAT_LAPSE)
        client = redis_server.client()
        try:
            keys = await client.keys("*mqtt:{meter}*")
            assert keys
            assert {await client.pttl(key) for key in keys} == {-1}  # A died before offline
            assert (await login(paho_peer, b, "bob", "meter"))[1] == IDENTIFIER_REJECTED
            lifetimes = [await client.pttl(key) for key in await client.keys("*mqtt:{meter}*")]
        finally:
            await client.aclose()
        assert lifetimes
        assert all(0 < ms <= 86_400_000 for ms in lifetimes), lifetimes
        # Still ada's: she resumes it on B.
        assert await login(paho_peer, b, "ada", "meter", clean=False) == (True, 0)
    finally:
        await asyncio.gather(a.stop(), b.stop())
