"""WAMP under the hub's access rules, with Autobahn: every refusal is wamp.error.not_authorized.

The last test puts one rule before channels.v1, MQTT and WAMP clients of the
same users and checks all three protocols reach the same decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from hub import Hub
from protocols.mqtt.codec import SUBACK_FAILURE
from tests.conftest import HubFactory, PeerFactory
from tests.protocols.identities import as_user, authz_hub, password
from tests.protocols.mqtt.conftest import PahoPeer, hub_address, paho_peer  # noqa: F401
from tests.protocols.wamp.conftest import Client, WampFactory, wait_for

NOT_AUTHORIZED = "wamp.error.not_authorized"
ACK = PublishOptions(acknowledge=True)

STAFF = {"claims": {"roles": "staff"}}
CONFIG: dict[str, Any] = {
    "channels": {
        "namespaces": {
            "members": {
                "subscribe_access": {"authenticated": True},
                "publish_access": {"authenticated": True},
            },
            "staff": {"subscribe_access": STAFF, "publish_access": {"users": ["ada"]}},
            "staff/lobby": {},
        }
    },
    "rpc": {
        "permissions": {
            "admin.*": {"users": ["ada"]},
            "svc.*": STAFF,
            "wamp.session.*": {"authenticated": True},
        },
        "register_access": STAFF,
    },
}


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    hub = await authz_hub(make_hub, CONFIG)

    @hub.rpc("admin.reset")
    def reset() -> str:
        return "reset"

    return hub


@pytest.fixture
def login(hub: Hub, wamp: WampFactory) -> Callable[..., Any]:
    """``await login("ada")``: Autobahn joined with that user's ticket (None: anonymous)."""

    async def join(user: str | None) -> Client:
        if user is None:
            return await wamp(hub)
        return await wamp(hub, authmethods=["ticket"], authid=user, ticket=password(user))

    return join


async def refused(awaitable: Any) -> str:
    """The ERROR URI of a request the router refuses."""
    with pytest.raises(ApplicationError) as caught:
        await wait_for(awaitable)
    return str(caught.value.error)


async def test_subscribe_refused(login: Callable[..., Any]) -> None:
    """SUBSCRIBE to a topic whose namespace refuses the user: ERROR not_authorized."""
    bob, ada = await login("bob"), await login("ada")
    assert await refused(bob.subscribe(lambda *a: None, "staff.news")) == NOT_AUTHORIZED
    assert await wait_for(ada.subscribe(lambda *a: None, "staff.news"))


@pytest.mark.parametrize(
    ("topic", "match", "allowed"),
    [
        ("staff", "prefix", False),
        (".news", "wildcard", False),  # +/news reaches staff/news
        ("staff.lobby", "prefix", True),
        ("members", "prefix", True),
    ],
)
async def test_pattern_reach(
    login: Callable[..., Any], topic: str, match: str, allowed: bool
) -> None:
    """A prefix or wildcard subscription reaching a closed namespace is refused."""
    bob = await login("bob")
    subscribing = bob.subscribe(lambda *a: None, topic, options=SubscribeOptions(match=match))
    if allowed:
        assert await wait_for(subscribing)
    else:
        assert await refused(subscribing) == NOT_AUTHORIZED


async def test_publish_refused_and_not_delivered(login: Callable[..., Any]) -> None:
    """An acknowledged PUBLISH the rules refuse: ERROR not_authorized, and no EVENT anywhere."""
    ada, cy = await login("ada"), await login("cy")
    events: asyncio.Queue[Any] = asyncio.Queue()
    await wait_for(cy.subscribe(events.put_nowait, "staff.news"))
    assert await refused(cy.publish("staff.news", "forged", options=ACK)) == NOT_AUTHORIZED
    await wait_for(ada.publish("staff.news", "real", options=ACK))
    assert await wait_for(events.get()) == "real"
    assert events.empty()


async def test_anonymous_publish_refused(login: Callable[..., Any]) -> None:
    """An anonymous session may not publish where a login is required."""
    anonymous = await login(None)
    assert await refused(anonymous.publish("members.chat", 1, options=ACK)) == NOT_AUTHORIZED


async def test_call_to_hub_method_refused(login: Callable[..., Any]) -> None:
    """CALL of a hub method the permissions refuse: not_authorized, existing or not."""
    bob, ada = await login("bob"), await login("ada")
    assert await refused(bob.call("admin.reset")) == NOT_AUTHORIZED
    assert await refused(bob.call("admin.missing")) == NOT_AUTHORIZED
    assert await wait_for(ada.call("admin.reset")) == "reset"
    assert await refused(ada.call("admin.missing")) == "wamp.error.no_such_procedure"


async def test_session_meta_api_follows_permissions(login: Callable[..., Any]) -> None:
    """wamp.session.* meta procedures obey [rpc.permissions] like any procedure."""
    anonymous, bob = await login(None), await login("bob")
    assert await refused(anonymous.call("wamp.session.count")) == NOT_AUTHORIZED
    assert await wait_for(bob.call("wamp.session.count")) >= 2


async def test_register_and_callee_calls(
    login: Callable[..., Any], hub: Hub, jsonrpc: PeerFactory
) -> None:
    """REGISTER follows register_access; calls to the callee follow the permissions everywhere."""
    bob, cy, ada = await login("bob"), await login("cy"), await login("ada")

    def work(n: int) -> int:
        return n * 2

    assert await refused(bob.register(work, "svc.work")) == NOT_AUTHORIZED
    await wait_for(cy.register(work, "svc.work"))
    # WAMP callers.
    assert await refused(bob.call("svc.work", 2)) == NOT_AUTHORIZED
    assert await wait_for(ada.call("svc.work", 2)) == 4
    # JSON-RPC callers of the WAMP procedure (the cross-protocol path).
    bob_rpc = await jsonrpc(hub, path=as_user("bob"))
    error = await bob_rpc.error("svc.work", [3])
    assert (error["code"], error["data"]["method"]) == (-32011, "svc.work")
    ada_rpc = await jsonrpc(hub, "channels.v1", path=as_user("ada"))
    assert await ada_rpc.call("svc.work", [3]) == 6


CROSS_CHANNELS = ("staff/news", "staff/lobby/x", "members/chat", "open/x")


def expected(channel: str, user: str | None) -> tuple[bool, bool]:
    """(may subscribe, may publish) by CONFIG's namespaces."""
    if channel == "staff/news":
        return user in ("ada", "cy"), user == "ada"
    if channel == "members/chat":
        return user is not None, user is not None
    return True, True


async def test_one_rule_one_decision_on_every_protocol(
    hub: Hub,
    jsonrpc: PeerFactory,
    login: Callable[..., Any],
    paho_peer: Callable[..., PahoPeer],  # noqa: F811
) -> None:
    """The same users get the same subscribe and publish decisions on channels.v1, MQTT and WAMP."""
    refusals: set[str] = set()
    decisions: dict[str, dict[tuple[str, str | None], list[bool]]] = {
        "channels.v1": {},
        "mqtt": {},
        "wamp": {},
    }
    for index, user in enumerate(("ada", "bob", "cy", None)):
        # Subscriptions first, publications second: a subscribed client then
        # has no replies to tell from notifications.
        channels = await jsonrpc(hub, "channels.v1", path=as_user(user))
        mqtt = paho_peer(f"cross-{index}")
        if user is not None:
            mqtt.client.username_pw_set(user, password(user))
        assert (await mqtt.connect(*hub_address(hub)))[1] == 0
        wamp = await login(user)
        for channel in CROSS_CHANNELS:
            reply = await channels.request("subscribe", {"channel": channel})
            granted = await mqtt.subscribe(channel, 1) != [SUBACK_FAILURE]
            wamp_allowed = await _wamp_allows(
                wamp.subscribe(lambda *a: None, _topic(channel)), refusals
            )
            decisions["channels.v1"][(channel, user)] = ["result" in reply]
            decisions["mqtt"][(channel, user)] = [granted]
            decisions["wamp"][(channel, user)] = [wamp_allowed]
        publisher = await jsonrpc(hub, "channels.v1", path=as_user(user))
        for channel in CROSS_CHANNELS:
            reply = await publisher.request("publish", {"channel": channel, "data": "x"})
            landed = await _mqtt_publish_lands(hub, mqtt, channel)
            wamp_allowed = await _wamp_allows(
                wamp.publish(_topic(channel), "x", options=ACK), refusals
            )
            decisions["channels.v1"][(channel, user)].append("result" in reply)
            decisions["mqtt"][(channel, user)].append(landed)
            decisions["wamp"][(channel, user)].append(wamp_allowed)
        await mqtt.close()
    for (channel, user), decided in decisions["channels.v1"].items():
        assert tuple(decided) == expected(channel, user), (channel, user)
    assert decisions["mqtt"] == decisions["channels.v1"]
    assert decisions["wamp"] == decisions["channels.v1"]
    assert refusals == {NOT_AUTHORIZED}


def _topic(channel: str) -> str:
    return channel.replace("/", ".")


async def _wamp_allows(request: Any, refusals: set[str]) -> bool:
    """True if the router accepted the request; else False, its ERROR URI added to ``refusals``."""
    try:
        await wait_for(request)
    except ApplicationError as exc:
        refusals.add(str(exc.error))
        return False
    return True


async def _mqtt_publish_lands(hub: Hub, mqtt: PahoPeer, channel: str) -> bool:
    """Whether an MQTT client's PUBLISH (always PUBACKed) reached the channel's history."""
    before = (await hub.history(channel)).position.offset
    await mqtt.publish(channel, b"x", qos=1)
    return (await hub.history(channel)).position.offset > before
