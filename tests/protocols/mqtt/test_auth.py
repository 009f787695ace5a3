"""MQTT logins against the hub's authentication, with paho-mqtt and a raw client.

paho reports MQTT 3.1.1 CONNACK codes as MQTT 5 reason codes: 4 is 134, 5 is 135.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub import CallContext, Hub, Identity
from hub.auth import Credentials
from hub.engine import Publication
from tests.auth_helpers import bearer, fast_hash, hs_auth, mint
from tests.conftest import HubFactory
from tests.protocols.mqtt.conftest import PahoPeer, RawFactory, hub_address

Peers = Callable[..., PahoPeer]
BAD_USERNAME_OR_PASSWORD = 134
NOT_AUTHORIZED = 135


def auth_config(allow_anonymous: bool = True, **mqtt: Any) -> dict[str, Any]:
    return {
        "auth": {
            "allow_anonymous": allow_anonymous,
            **hs_auth(),
            "basic": {"users": {"ada": fast_hash("lovelace")}},
        },
        "mqtt": mqtt,
    }


def record_publishers(hub: Hub) -> list[tuple[str, str]]:
    """(user, method) of every client publication, as the on_publish hook sees it."""
    seen: list[tuple[str, str]] = []

    @hub.on_publish("#")
    def record(ctx: CallContext, publication: Publication) -> None:
        assert ctx.identity is not None
        seen.append((ctx.identity.user_id, ctx.identity.method))

    return seen


async def login(paho_peer: Peers, hub: Hub, client_id: str, user: str, password: str) -> PahoPeer:
    peer = paho_peer(client_id)
    peer.client.username_pw_set(user, password)
    assert await peer.connect(*hub_address(hub)) == (False, 0)
    return peer


async def test_password_from_the_user_table(make_hub: HubFactory, paho_peer: Peers) -> None:
    """A username/password in [auth.basic] logs in with method "password"; a wrong one gets 4."""
    hub = await make_hub(auth_config())
    seen = record_publishers(hub)
    peer = await login(paho_peer, hub, "c1", "ada", "lovelace")
    await peer.publish("t", b"x", 1)
    assert seen == [("ada", "password")]
    wrong = paho_peer("c2")
    wrong.client.username_pw_set("ada", "babbage")
    assert await wrong.connect(*hub_address(hub)) == (False, BAD_USERNAME_OR_PASSWORD)


async def test_jwt_as_password(make_hub: HubFactory, paho_peer: Peers) -> None:
    """A JWT as the password logs in as the token's user (method "jwt"); a bad one gets 4."""
    hub = await make_hub(auth_config())
    seen = record_publishers(hub)
    peer = await login(paho_peer, hub, "c1", "any-name", mint("bea"))
    await peer.publish("t", b"x", 1)
    assert seen == [("bea", "jwt")]
    for token in (mint("bea", ttl=-30), mint("bea", key="another secret of 32 bytes or more!!")):
        bad = paho_peer("c2")
        bad.client.username_pw_set("bea", token)
        assert await bad.connect(*hub_address(hub)) == (False, BAD_USERNAME_OR_PASSWORD)


async def test_hook_comes_after_the_built_in_checks(make_hub: HubFactory, paho_peer: Peers) -> None:
    """The user table and JWTs are tried first; only what they refuse reaches the hook."""
    hub = await make_hub(auth_config())
    asked: list[str] = []

    @hub.on_authenticate
    def legacy(credentials: Credentials) -> Identity | None:
        asked.append(credentials.username)
        return Identity("old-" + credentials.username) if credentials.password == b"v1" else None

    seen = record_publishers(hub)
    for client_id, user, password in (("a", "ada", "lovelace"), ("b", "x", mint("bea"))):
        await login(paho_peer, hub, client_id, user, password)
    legacy_user = await login(paho_peer, hub, "c", "cy", "v1")
    # QoS 1: the PUBACK comes after the publish hooks ran.
    await legacy_user.publish("t", b"x", 1)
    assert asked == ["cy"]
    assert seen == [("old-cy", "hook")]


async def test_anonymous_follows_auth_allow_anonymous(
    make_hub: HubFactory, paho_peer: Peers
) -> None:
    """auth.allow_anonymous=false refuses a CONNECT without username with CONNACK 5."""
    hub = await make_hub(auth_config(allow_anonymous=False))
    anonymous = paho_peer("anon")
    assert await anonymous.connect(*hub_address(hub)) == (False, NOT_AUTHORIZED)


async def test_mqtt_allow_anonymous_overrides_auth(make_hub: HubFactory, paho_peer: Peers) -> None:
    """mqtt.allow_anonymous, when set, wins over auth.allow_anonymous for MQTT."""
    hub = await make_hub({"auth": {"allow_anonymous": False}, "mqtt": {"allow_anonymous": True}})
    anonymous = paho_peer("anon")
    assert await anonymous.connect(*hub_address(hub)) == (False, 0)


async def test_handshake_identity_without_username(make_hub: HubFactory, paho_peer: Peers) -> None:
    """A JWT at the WebSocket handshake identifies a CONNECT that carries no username."""
    hub = await make_hub(auth_config(allow_anonymous=False))
    seen = record_publishers(hub)
    header = paho_peer("hdr")
    header.client.ws_set_options(path="/mqtt", headers=bearer(mint("cy")))
    assert await header.connect(*hub_address(hub)) == (False, 0)
    await header.publish("t", b"1", 1)
    query = paho_peer("qry")
    query.client.ws_set_options(path=f"/mqtt?token={mint('dee')}")
    assert await query.connect(*hub_address(hub)) == (False, 0)
    await query.publish("t", b"2", 1)
    assert seen == [("cy", "jwt"), ("dee", "jwt")]


async def test_connection_closed_with_3000_at_expiry(
    make_hub: HubFactory, raw_mqtt: RawFactory
) -> None:
    """A login with a JWT password is closed with 3000 "token expired" at the token's exp."""
    hub = await make_hub(auth_config())
    client = await raw_mqtt(hub)
    connack = await client.connect("exp-1", username="ada", password=mint("ada", ttl=2).encode())
    assert connack.return_code == 0
    assert await client.closed(timeout=8) == (3000, "token expired")
