"""MQTT client-id takeover across users: refused with CONNACK 2, the victim keeps everything.

MQTT-3.1.4-2 has the server close a connection whose client id a new CONNECT
uses. Between users that would let anyone kick a device (its will suppressed),
wipe its session (clean_session 1) or take its queued messages (clean_session
0). Only the session's own user, or one ``mqtt.takeover_access`` admits, may
take it over; others get 0x02 "identifier rejected" (paho: reason code 133).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub import Hub
from tests.conftest import HubFactory
from tests.multinode.redis_server import shared_redis_server
from tests.protocols.identities import authz_hub, password
from tests.protocols.mqtt.conftest import PahoPeer, hub_address

IDENTIFIER_REJECTED = 133  # CONNACK 0x02, as paho reports it

Login = Callable[..., Awaitable[PahoPeer]]


def login_to(paho_peer: Callable[..., PahoPeer]) -> Login:
    async def connect(
        hub: Hub,
        user: str | None,
        client_id: str,
        *,
        expect: int = 0,
        clean_session: bool = True,
        will: dict[str, Any] | None = None,
    ) -> PahoPeer:
        peer = paho_peer(client_id, clean_session=clean_session)
        if user is not None:
            peer.client.username_pw_set(user, password(user))
        if will is not None:
            peer.client.will_set(**will)
        _, code = await peer.connect(*hub_address(hub))
        assert code == expect
        return peer

    return connect


@pytest.fixture
def login(paho_peer: Callable[..., PahoPeer]) -> Login:
    """``await login(hub, "bob", "dev-1", expect=133)``: paho-mqtt as that user."""
    return login_to(paho_peer)


async def gone(peer: PahoPeer) -> None:
    async with asyncio.timeout(5):
        await peer.disconnected.wait()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await authz_hub(make_hub, {})


async def test_connected_victim_keeps_its_connection_and_will(hub: Hub, login: Login) -> None:
    """bob CONNECTs with ada's live client id: CONNACK 2; ada stays, and her will still fires."""
    watcher = await login(hub, "cy", "watcher")
    assert await watcher.subscribe("wills/#", 1) == [1]
    will = {"topic": "wills/dev-1", "payload": b"ada lost", "qos": 1}
    ada = await login(hub, "ada", "dev-1", will=will)
    assert await ada.subscribe("cmd/dev-1", 1) == [1]
    await login(hub, "bob", "dev-1", expect=IDENTIFIER_REJECTED)
    await login(hub, None, "dev-1", expect=IDENTIFIER_REJECTED)
    assert not ada.disconnected.is_set()
    await hub.publish("cmd/dev-1", "still here")
    assert (await ada.message()).payload == b'"still here"'
    await ada.vanish()
    received = await watcher.message()
    assert (received.topic, received.payload) == ("wills/dev-1", b"ada lost")


@pytest.mark.parametrize("clean_session", [True, False])
async def test_offline_session_is_neither_wiped_nor_taken(
    hub: Hub, login: Login, clean_session: bool
) -> None:
    """bob cannot resume (or wipe) ada's kept session: her queued messages wait for her."""
    ada = await login(hub, "ada", "dev-2", clean_session=False)
    assert await ada.subscribe("cmd/dev-2", 1) == [1]
    await ada.disconnect()
    await hub.publish("cmd/dev-2", "queued")
    thief = await login(
        hub, "bob", "dev-2", clean_session=clean_session, expect=IDENTIFIER_REJECTED
    )
    assert await thief.nothing_for(0.2)
    back = await login(hub, "ada", "dev-2", clean_session=False)
    assert back.connack.result() == (True, 0)
    assert (await back.message()).payload == b'"queued"'


async def test_same_user_still_takes_over(hub: Hub, login: Login) -> None:
    """MQTT-3.1.4-2 holds for the session's own user: the new connection wins, the old closes."""
    first = await login(hub, "ada", "dev-3")
    await login(hub, "ada", "dev-3")
    await gone(first)


async def test_takeover_access_admits_configured_users(make_hub: HubFactory, login: Login) -> None:
    """mqtt.takeover_access lets an operator's user take any session over."""
    hub = await authz_hub(make_hub, {"mqtt": {"takeover_access": {"users": ["cy"]}}})
    ada = await login(hub, "ada", "dev-4")
    await login(hub, "bob", "dev-4", expect=IDENTIFIER_REJECTED)
    await login(hub, "cy", "dev-4")
    await gone(ada)


@pytest.mark.service
async def test_refused_across_nodes_of_a_redis_cluster(make_hub: HubFactory, login: Login) -> None:
    """On the Redis engine, a session held on node A is refused to another user on node B."""
    engine = {
        "backend": "redis",
        "url": shared_redis_server().url,
        "prefix": f"t{secrets.token_hex(4)}:",
    }
    node_a = await authz_hub(make_hub, {"engine": engine})
    node_b = await authz_hub(make_hub, {"engine": engine})
    ada = await login(node_a, "ada", "dev-5", clean_session=False)
    assert await ada.subscribe("cmd/dev-5", 1) == [1]
    await login(node_b, "bob", "dev-5", expect=IDENTIFIER_REJECTED)
    assert not ada.disconnected.is_set()
    await ada.disconnect()
    await login(node_b, "bob", "dev-5", clean_session=False, expect=IDENTIFIER_REJECTED)
    await node_a.publish("cmd/dev-5", "for ada")
    back = await login(node_b, "ada", "dev-5", clean_session=False)
    assert (await back.message()).payload == b'"for ada"'
