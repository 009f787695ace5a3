"""channels.v1 under namespace access rules: subscribe, publish, presence, history."""

from __future__ import annotations

from typing import Any

import pytest

from hub import Hub
from tests.auth_helpers import bearer, hs_auth, mint
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import ChannelsPeer, PeerFactory
from tests.protocols.identities import as_user, authz_hub

PERMISSION_DENIED = -32011

STAFF_ONLY = {"claims": {"roles": "staff"}}
CONFIG: dict[str, Any] = {
    "channels": {
        "namespaces": {
            # Members: any logged-in user reads and writes.
            "members": {
                "subscribe_access": {"authenticated": True},
                "publish_access": {"authenticated": True},
            },
            # Staff: staff read, see presence and history; only ada writes.
            "staff": {
                "subscribe_access": STAFF_ONLY,
                "publish_access": {"users": ["ada"]},
                "presence_access": STAFF_ONLY,
                "history_access": STAFF_ONLY,
            },
            # Nested under staff, open to everyone.
            "staff/lobby": {},
            # Anyone subscribes; only pro plans read presence and history.
            "feed": {
                "presence_access": {"claims": {"plan": ["pro", "enterprise"]}},
                "history_access": {"claims": {"plan": ["pro", "enterprise"]}},
            },
        }
    }
}


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await authz_hub(make_hub, CONFIG)


@pytest.fixture
def peer(hub: Hub, channels: PeerFactory) -> Any:
    """``await peer("ada")``: a channels.v1 client logged in as that user (None: anonymous)."""

    async def open_peer(user: str | None) -> ChannelsPeer:
        return await channels(hub, path=as_user(user))

    return open_peer


async def test_authenticated_rule_refuses_anonymous_subscribe(peer: Any) -> None:
    """subscribe_access authenticated: anonymous gets -32011, a logged-in user subscribes."""
    anonymous, bob = await peer(None), await peer("bob")
    error = await anonymous.error("subscribe", {"channel": "members/chat"})
    assert error["code"] == PERMISSION_DENIED
    assert "members/chat" in error["message"]
    assert (await bob.subscribe("members/chat"))["channel"] == "members/chat"


async def test_claims_rule_on_subscribe(peer: Any) -> None:
    """subscribe_access by claim: a list claim holding "staff" or a scalar "staff" passes."""
    ada, bob, cy = await peer("ada"), await peer("bob"), await peer("cy")
    await ada.subscribe("staff/news")
    await cy.subscribe("staff/news")
    error = await bob.error("subscribe", {"channel": "staff/news"})
    assert error["code"] == PERMISSION_DENIED


async def test_denied_publish_reaches_nobody(peer: Any) -> None:
    """publish_access users: another staff member gets -32011 and subscribers see nothing."""
    ada, cy = await peer("ada"), await peer("cy")
    await cy.subscribe("staff/news")
    error = await cy.error("publish", {"channel": "staff/news", "data": "forged"})
    assert error["code"] == PERMISSION_DENIED
    assert await cy.quiet_for(0.2)
    await ada.publish("staff/news", "real")
    (message,) = await cy.messages(1)
    assert message["data"] == "real"


async def test_anonymous_publish_refused_where_authentication_is_required(peer: Any) -> None:
    """publish_access authenticated: an anonymous publish is refused, a user's goes through."""
    anonymous, bob = await peer(None), await peer("bob")
    await bob.subscribe("members/chat")
    error = await anonymous.error("publish", {"channel": "members/chat", "data": 1})
    assert error["code"] == PERMISSION_DENIED
    await bob.publish("members/chat", 2)
    assert [m["data"] for m in await bob.messages(1)] == [2]


async def test_presence_access(peer: Any) -> None:
    """presence and presence_stats follow presence_access; joining follows subscribe_access."""
    ada, bob = await peer("ada"), await peer("bob")
    # bob may subscribe to feed, and so appear in its presence set...
    await bob.subscribe("feed/sports", presence=True)
    # ...but may not read it; ada (plan pro) may.
    for method in ("presence", "presence_stats"):
        error = await bob.error(method, {"channel": "feed/sports"})
        assert error["code"] == PERMISSION_DENIED
    members = (await ada.call("presence", {"channel": "feed/sports"}))["members"]
    assert list(members) == ["bob"]
    assert await ada.call("presence_stats", {"channel": "feed/sports"}) == {
        "clients": 1,
        "users": 1,
    }


async def test_history_access(peer: Any) -> None:
    """history follows history_access: refused for bob, served to ada."""
    ada, bob = await peer("ada"), await peer("bob")
    await bob.publish("feed/sports", {"goal": 1})
    error = await bob.error("history", {"channel": "feed/sports"})
    assert error["code"] == PERMISSION_DENIED
    result = await ada.call("history", {"channel": "feed/sports"})
    assert [p["data"] for p in result["publications"]] == [{"goal": 1}]


async def test_recovery_without_history_access_reports_a_gap(peer: Any) -> None:
    """Resubscribing with since: without history_access the client gets recovered false, no data."""
    ada, bob = await peer("ada"), await peer("bob")
    first = await bob.subscribe("feed/news")
    since = {"offset": first["offset"], "epoch": first["epoch"]}
    await ada.publish("feed/news", "missed")
    await bob.call("unsubscribe", {"channel": "feed/news"})
    refused = await bob.subscribe("feed/news", since=since)
    assert refused["recovered"] is False
    assert refused["publications"] == []
    served = await ada.subscribe("feed/news", since=since)
    assert served["recovered"] is True
    assert [p["data"] for p in served["publications"]] == ["missed"]


@pytest.mark.parametrize(
    ("user", "pattern", "allowed"),
    [
        ("bob", "#", False),  # reaches staff/...
        ("bob", "+/news", False),  # staff/news
        ("bob", "feed/#", True),
        ("bob", "staff/lobby/#", True),  # the open namespace nested in staff
        ("bob", "members/#", True),
        (None, "members/#", False),  # its own namespace refuses anonymous
        (None, "feed/+", True),
        ("ada", "#", True),
        ("cy", "#", True),
    ],
)
async def test_pattern_reach(peer: Any, user: str | None, pattern: str, allowed: bool) -> None:
    """A pattern subscription may not reach a namespace whose subscribe_access refuses the user."""
    client = await peer(user)
    reply = await client.request("subscribe", {"channel": pattern})
    if allowed:
        assert "result" in reply, reply
    else:
        assert reply["error"]["code"] == PERMISSION_DENIED, reply


async def test_pattern_subscriber_receives_what_it_may(peer: Any) -> None:
    """An admitted pattern delivers the namespaces it reaches; the refused one gets nothing in."""
    ada, bob = await peer("ada"), await peer("bob")
    await bob.subscribe("feed/#")
    await ada.publish("staff/news", "staff only")
    await ada.publish("feed/sports", "public")
    (message,) = await bob.messages(1)
    assert message["data"] == "public"
    assert await bob.quiet_for(0.2)


async def test_jwt_claims_from_the_handshake_decide(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """Handshake JWT claims (nested, Keycloak-style) decide; after a refresh, the new ones do."""
    hub = await make_hub(
        {
            "auth": hs_auth(),
            "channels": {
                "namespaces": {
                    "ops": {"subscribe_access": {"claims": {"realm_access.roles": "ops"}}}
                }
            },
        }
    )
    ops_token = mint("ada", realm_access={"roles": ["ops", "dev"]})
    ada = await channels(hub, additional_headers=bearer(ops_token))
    await ada.subscribe("ops/alerts")
    dev = await channels(
        hub, additional_headers=bearer(mint("bob", realm_access={"roles": ["dev"]}))
    )
    assert (await dev.error("subscribe", {"channel": "ops/alerts"}))["code"] == PERMISSION_DENIED
    # ada's refreshed token no longer holds "ops": new subscriptions are refused.
    await ada.call("refresh", {"token": mint("ada", realm_access={"roles": ["dev"]})})
    assert (await ada.error("subscribe", {"channel": "ops/other"}))["code"] == PERMISSION_DENIED
