"""MQTT under namespace access rules, with paho-mqtt: SUBACK 0x80, refused publishes dropped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub import Hub
from protocols.mqtt.codec import SUBACK_FAILURE
from tests.conftest import HubFactory
from tests.protocols.identities import authz_hub, password
from tests.protocols.mqtt.conftest import PahoPeer, hub_address

CONFIG: dict[str, Any] = {
    "channels": {
        "namespaces": {
            "members": {
                "subscribe_access": {"authenticated": True},
                "publish_access": {"authenticated": True},
            },
            "staff": {
                "subscribe_access": {"claims": {"roles": "staff"}},
                "publish_access": {"users": ["ada"]},
            },
            "staff/lobby": {},
        }
    }
}

Login = Callable[..., Awaitable[PahoPeer]]


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await authz_hub(make_hub, CONFIG)


@pytest.fixture
def login(hub: Hub, paho_peer: Callable[..., PahoPeer]) -> Login:
    """``await login("ada")``: paho connected with that user's password (None: anonymous)."""

    async def connect(user: str | None, client_id: str | None = None) -> PahoPeer:
        peer = paho_peer(client_id or f"{user or 'anon'}-client")
        if user is not None:
            peer.client.username_pw_set(user, password(user))
        _, code = await peer.connect(*hub_address(hub))
        assert code == 0
        return peer

    return connect


async def test_suback_0x80_for_a_refused_filter(login: Login) -> None:
    """A filter subscribe_access refuses gets 0x80; the client's allowed filters are granted."""
    bob = await login("bob")
    assert await bob.subscribe("staff/news", 1) == [SUBACK_FAILURE]
    assert await bob.subscribe("members/chat", 1) == [1]
    ada = await login("ada")
    assert await ada.subscribe("staff/news", 1) == [1]


async def test_anonymous_refused_where_authentication_is_required(login: Login) -> None:
    """An anonymous MQTT client gets 0x80 on a namespace that requires a login."""
    anonymous = await login(None)
    assert await anonymous.subscribe("members/#", 0) == [SUBACK_FAILURE]
    assert await anonymous.subscribe("staff/lobby/#", 0) == [0]


@pytest.mark.parametrize(
    ("filter_", "granted"),
    [("#", False), ("+/news", False), ("staff/lobby/+", True), ("members/#", True)],
)
async def test_pattern_reach(login: Login, filter_: str, granted: bool) -> None:
    """A wildcard filter reaching a namespace closed to the user is refused with 0x80."""
    bob = await login("bob")
    assert await bob.subscribe(filter_, 0) == ([0] if granted else [SUBACK_FAILURE])


async def test_refused_publish_is_acknowledged_and_dropped(login: Login) -> None:
    """A refused QoS 1 PUBLISH gets its PUBACK, reaches nobody and leaves the retained message."""
    ada, cy = await login("ada"), await login("cy")
    await ada.publish("staff/status", b"open", qos=1, retain=True)
    assert await cy.subscribe("staff/status", 1) == [1]
    retained = await cy.message()
    assert (retained.payload, retained.retain) == (b"open", True)
    # cy is staff (may read) but not ada (may not write): PUBACK, then nothing.
    await cy.publish("staff/status", b"forged", qos=1, retain=True)
    assert await cy.nothing_for(0.3)
    # The retained message is still ada's: a new subscriber gets it.
    late = await login("ada", client_id="ada-late")
    assert await late.subscribe("staff/status", 1) == [1]
    assert (await late.message()).payload == b"open"
    # ada's own publications go through.
    await ada.publish("staff/status", b"closed", qos=1)
    assert (await cy.message()).payload == b"closed"


async def test_anonymous_publish_dropped(login: Login) -> None:
    """An anonymous publish to a namespace requiring a login is dropped; the connection stays up."""
    bob, anonymous = await login("bob"), await login(None)
    assert await bob.subscribe("members/chat", 0) == [0]
    await anonymous.publish("members/chat", b"spam", qos=1)
    assert await bob.nothing_for(0.3)
    await anonymous.publish("staff/lobby/hello", b"hi", qos=1)  # still connected, still allowed
    await bob.publish("members/chat", b"hello", qos=1)
    assert (await bob.message()).payload == b"hello"
