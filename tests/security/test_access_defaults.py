"""The README's hardening example (only ``subscribe_access``) closes every path into it.

Unset rules follow ``subscribe_access`` (docs/security.md, "Channels"): a
logged-in user the rule refuses can neither read the namespace's history or
presence, nor publish into it over any protocol, nor overwrite its retained
MQTT messages, nor plant a will there. One test per attack, real clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions

from hub import Hub
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import ChannelsPeer, PeerFactory
from tests.protocols.identities import as_user, authz_hub, password
from tests.protocols.mqtt.conftest import PahoPeer, hub_address
from tests.protocols.wamp.conftest import WampFactory, wait_for

PERMISSION_DENIED = -32011
# paho reports MQTT 3.1.1 CONNACK 5 as the MQTT 5 reason code 135.
NOT_AUTHORIZED = 135

# The README's example, with "staff" standing for its admin role: ada holds it, bob does not.
CONFIG: dict[str, Any] = {
    "channels": {
        "namespaces": {"private": {"subscribe_access": {"claims": {"roles": "staff"}}}},
    }
}


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await authz_hub(make_hub, CONFIG)


@pytest.fixture
def peer(hub: Hub, channels: PeerFactory) -> Callable[[str], Awaitable[ChannelsPeer]]:
    """``await peer("bob")``: a channels.v1 client logged in as that user."""

    async def open_peer(user: str) -> ChannelsPeer:
        return await channels(hub, path=as_user(user))

    return open_peer


Login = Callable[..., Awaitable[PahoPeer]]


@pytest.fixture
def mqtt_login(hub: Hub, paho_peer: Callable[..., PahoPeer]) -> Login:
    """``await mqtt_login("bob", will=...)``: paho-mqtt with that user's password."""

    async def connect(user: str, *, client_id: str = "", expect: int = 0, **will: Any) -> PahoPeer:
        client = paho_peer(client_id or f"{user}-{id(will)}")
        client.client.username_pw_set(user, password(user))
        if will:
            client.client.will_set(**will)
        _, code = await client.connect(*hub_address(hub))
        assert code == expect
        return client

    return connect


async def test_outsider_cannot_read_history(peer: Any) -> None:
    """history of a namespace closed by subscribe_access alone: -32011 for an outsider."""
    ada, bob = await peer("ada"), await peer("bob")
    await ada.publish("private/board", {"secret": 1})
    error = await bob.error("history", {"channel": "private/board"})
    assert error["code"] == PERMISSION_DENIED
    served = await ada.call("history", {"channel": "private/board"})
    assert [p["data"] for p in served["publications"]] == [{"secret": 1}]


async def test_outsider_cannot_read_presence(peer: Any) -> None:
    """presence and presence_stats (members' info) are refused to an outsider."""
    ada, bob = await peer("ada"), await peer("bob")
    await ada.subscribe("private/room", presence=True, info={"email": "ada@example.com"})
    for method in ("presence", "presence_stats"):
        error = await bob.error(method, {"channel": "private/room"})
        assert error["code"] == PERMISSION_DENIED
    members = (await ada.call("presence", {"channel": "private/room"}))["members"]
    assert members["ada"]["info"] == {"email": "ada@example.com"}


async def test_outsider_cannot_publish_over_channels(peer: Any) -> None:
    """A channels.v1 publish by an outsider: -32011, and insiders receive nothing."""
    ada, bob = await peer("ada"), await peer("bob")
    await ada.subscribe("private/board")
    error = await bob.error("publish", {"channel": "private/board", "data": "forged"})
    assert error["code"] == PERMISSION_DENIED
    assert await ada.quiet_for(0.2)


async def test_outsider_cannot_publish_over_wamp(hub: Hub, wamp: WampFactory) -> None:
    """An acknowledged WAMP PUBLISH by an outsider: wamp.error.not_authorized."""
    bob = await wamp(hub, authmethods=["ticket"], authid="bob", ticket=password("bob"))
    with pytest.raises(ApplicationError) as caught:
        await wait_for(
            bob.publish("private.board", "forged", options=PublishOptions(acknowledge=True))
        )
    assert caught.value.error == "wamp.error.not_authorized"


async def test_outsider_cannot_overwrite_a_retained_message(mqtt_login: Login) -> None:
    """An outsider's retained PUBLISH is dropped: the insider's retained message stays."""
    ada = await mqtt_login("ada")
    ada.client.publish("private/config", b"by-ada", qos=1, retain=True).wait_for_publish(5)
    bob = await mqtt_login("bob")
    bob.client.publish("private/config", b"by-bob", qos=1, retain=True).wait_for_publish(5)
    reader = await mqtt_login("ada", client_id="ada-reader")
    assert await reader.subscribe("private/config", 1) == [1]
    retained = await reader.message()
    assert (retained.payload, retained.retain) == (b"by-ada", True)
    assert await reader.nothing_for(0.2)


async def test_outsider_cannot_plant_a_will(mqtt_login: Login) -> None:
    """A CONNECT whose will the user may not publish is refused (CONNACK 5); no will appears."""
    await mqtt_login(
        "bob", expect=NOT_AUTHORIZED, topic="private/alert", payload=b"planted", qos=1, retain=True
    )
    reader = await mqtt_login("ada", client_id="ada-reader")
    assert await reader.subscribe("private/#", 1) == [1]
    assert await reader.nothing_for(0.3)


async def test_insider_will_is_still_published(mqtt_login: Login) -> None:
    """The same will from a user who may publish there is accepted and published on a drop."""
    reader = await mqtt_login("ada", client_id="ada-reader")
    assert await reader.subscribe("private/#", 1) == [1]
    cy = await mqtt_login("cy", topic="private/alert", payload=b"cy-lost", qos=1)
    await cy.vanish()
    will = await reader.message()
    assert (will.topic, will.payload) == ("private/alert", b"cy-lost")
