"""MQTT under namespace access rules, with paho-mqtt: SUBACK 0x80, refused publishes dropped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub import Hub, HubConfig
from protocols.mqtt.codec import SUBACK_FAILURE, Connack, Publish, Pubrec, Pubrel
from tests.conftest import HubFactory
from tests.protocols.identities import authz_hub, check_password, password
from tests.protocols.mqtt.conftest import PahoPeer, PairFactory, hub_address

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
    },
    # Anyone may take over anyone's session here, so that the tests below can
    # check what a resumed session keeps (tests/security: the default refuses).
    "mqtt": {"takeover_access": {}},
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


async def test_resumed_session_keeps_only_what_the_new_user_may_hold(
    hub: Hub, login: Login, paho_peer: Callable[..., PahoPeer]
) -> None:
    """A persistent session resumed by another user loses the filters that user may not hold."""
    owner = paho_peer("shared-id", clean_session=False)
    owner.client.username_pw_set("ada", password("ada"))
    assert (await owner.connect(*hub_address(hub)))[1] == 0
    assert await owner.subscribe("staff/news", 1) == [1]
    assert await owner.subscribe("members/chat", 1) == [1]
    await owner.disconnect()
    # Queued for the offline session: one message each.
    ada = await login("ada", client_id="ada-publisher")
    await ada.publish("staff/news", b"secret", qos=1)
    await ada.publish("members/chat", b"hello", qos=1)
    # bob CONNECTs with the same client id and gets the session back...
    thief = paho_peer("shared-id", clean_session=False)
    thief.client.username_pw_set("bob", password("bob"))
    present, code = await thief.connect(*hub_address(hub))
    assert (present, code) == (True, 0)
    # ...with what bob may read, and nothing of staff/.
    received = await thief.message()
    assert (received.topic, received.payload) == ("members/chat", b"hello")
    await ada.publish("staff/news", b"more", qos=1)
    await ada.publish("members/chat", b"again", qos=1)
    received = await thief.message()
    assert (received.topic, received.payload) == ("members/chat", b"again")
    assert await thief.nothing_for(0.3)


async def test_resumed_session_drops_unacknowledged_messages_of_dropped_filters(
    pair: PairFactory,
) -> None:
    """Unacknowledged PUBLISHes of a refused filter are not resent to the new user; PUBRELs are."""
    hub = Hub(HubConfig.model_validate(CONFIG))
    hub.on_authenticate(check_password)
    owner = await pair(hub)
    await owner.connect(client_id="dev", clean_session=False, username="ada", password=b"pw-ada")
    assert await owner.subscribe(("staff/news", 2), ("members/chat", 1)) == (2, 1)
    await hub.channels.publish("staff/news", b"secret", extras={"mqtt": {"qos": 1}})
    await hub.channels.publish("members/chat", b"hello", extras={"mqtt": {"qos": 1}})
    await hub.channels.publish("staff/news", b"received", extras={"mqtt": {"qos": 2}})
    secret, hello, received = [p for p in owner.received() if isinstance(p, Publish)]
    assert secret.payload == b"secret"
    assert received.packet_id is not None
    await owner.send(Pubrec(received.packet_id))
    assert owner.received() == [Pubrel(received.packet_id)]
    await owner.drop()

    thief = await pair(hub)
    connack = await thief.connect(
        client_id="dev", clean_session=False, username="bob", password=b"pw-bob"
    )
    assert connack == Connack(True, 0)
    assert thief.received() == [
        Publish("members/chat", b"hello", 1, dup=True, packet_id=hello.packet_id),
        Pubrel(received.packet_id),
    ]
