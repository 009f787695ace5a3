"""Ticket and WAMP-CRA authentication, with Autobahn|Python as the client."""

from __future__ import annotations

import json
from typing import Any

from autobahn.wamp import auth
from autobahn.wamp.types import PublishOptions

from hub import CallContext, Hub, Identity
from hub.auth import AuthenticationFailed, Credentials
from hub.engine import Publication
from hub.errors import PermissionDenied
from protocols.wamp import wamp_router
from protocols.wamp.config import WampCraUser
from tests.auth_helpers import bearer, fast_hash, hs_auth, mint
from tests.conftest import Connector, HubFactory
from tests.protocols.wamp.conftest import RawFactory, RawWamp, WampFactory, wait_for

SALT = "salt123"
DERIVED = auth.derive_key("hunter2", SALT, 100, 32).decode()
CRA_CONFIG = {
    "wamp": {
        "wampcra_users": {
            "alice": {"secret": "alice-secret", "role": "admin"},
            "bob": {"secret": DERIVED, "salt": SALT, "iterations": 100, "keylen": 32},
        }
    }
}


def check_ticket(credentials: Credentials) -> Identity:
    if credentials.password == b"open sesame":
        return Identity(credentials.username, {"authrole": "operator"})
    if credentials.username == "banned":
        raise PermissionDenied("banned user")
    raise AuthenticationFailed("bad ticket")


async def ticket_hub(make_hub: HubFactory, **wamp: Any) -> Hub:
    hub = await make_hub({"wamp": wamp} if wamp else None)
    hub.on_authenticate(check_ticket)
    return hub


async def test_ticket_login(make_hub: HubFactory, wamp: WampFactory) -> None:
    """A good ticket: WELCOME with the hook's user and role, authmethod ticket."""
    hub = await ticket_hub(make_hub)
    session = await wamp(hub, authmethods=["ticket"], authid="carol", ticket="open sesame")
    details = session.joined.result()
    assert details.authid == "carol"
    assert details.authrole == "operator"
    assert details.authmethod == "ticket"
    assert [c.method for c in session.challenges] == ["ticket"]


async def test_bad_ticket(make_hub: HubFactory, wamp_refused: Any) -> None:
    """A bad ticket: ABORT wamp.error.authentication_failed."""
    hub = await ticket_hub(make_hub)
    details = await wamp_refused(hub, authmethods=["ticket"], authid="carol", ticket="wrong")
    assert details.reason == "wamp.error.authentication_failed"


async def test_ticket_user_not_allowed(make_hub: HubFactory, wamp_refused: Any) -> None:
    """A hook raising PermissionDenied: ABORT wamp.error.not_authorized."""
    hub = await ticket_hub(make_hub)
    details = await wamp_refused(hub, authmethods=["ticket"], authid="banned", ticket="x")
    assert details.reason == "wamp.error.not_authorized"


async def test_ticket_without_hook(hub: Hub, wamp_refused: Any) -> None:
    """Nothing can check a ticket: the method is not offered, ABORT no_auth_method."""
    details = await wamp_refused(hub, authmethods=["ticket"], authid="carol", ticket="x")
    assert details.reason == "wamp.error.no_auth_method"


async def test_anonymous_can_be_disabled(make_hub: HubFactory, wamp_refused: Any) -> None:
    """auth_methods without anonymous: a client without credentials is refused."""
    hub = await ticket_hub(make_hub, auth_methods=["ticket"])
    details = await wamp_refused(hub)
    assert details.reason == "wamp.error.no_auth_method"


async def test_methods_tried_in_client_order(make_hub: HubFactory, wamp: WampFactory) -> None:
    """The client's first acceptable method wins; unknown methods are skipped."""
    hub = await ticket_hub(make_hub)
    session = await wamp(
        hub, authmethods=["cryptosign", "ticket", "anonymous"], authid="dan", ticket="open sesame"
    )
    assert session.joined.result().authmethod == "ticket"


async def test_wampcra_login(make_hub: HubFactory, wamp: WampFactory) -> None:
    """WAMP-CRA with a configured secret: the challenge is signed, the role is the user's."""
    hub = await make_hub(CRA_CONFIG)
    session = await wamp(
        hub, "msgpack", authmethods=["wampcra"], authid="alice", secret="alice-secret"
    )
    details = session.joined.result()
    assert (details.authid, details.authrole, details.authmethod) == ("alice", "admin", "wampcra")
    [challenge] = session.challenges
    signed = json.loads(challenge.extra["challenge"])
    assert signed["authid"] == "alice"
    assert signed["session"] == details.session
    assert signed["authmethod"] == "wampcra"


async def test_wampcra_salted(make_hub: HubFactory, wamp: WampFactory) -> None:
    """A salted user: the CHALLENGE carries salt, iterations and keylen; the password works."""
    hub = await make_hub(CRA_CONFIG)
    session = await wamp(hub, authmethods=["wampcra"], authid="bob", secret="hunter2")
    [challenge] = session.challenges
    assert challenge.extra["salt"] == SALT
    assert challenge.extra["iterations"] == 100
    assert session.joined.result().authid == "bob"


async def test_wampcra_bad_secret(make_hub: HubFactory, wamp_refused: Any) -> None:
    """A wrong secret: ABORT wamp.error.authentication_failed."""
    hub = await make_hub(CRA_CONFIG)
    details = await wamp_refused(hub, authmethods=["wampcra"], authid="alice", secret="guess")
    assert details.reason == "wamp.error.authentication_failed"


async def test_wampcra_unknown_user(make_hub: HubFactory, wamp_refused: Any) -> None:
    """An authid with no secret anywhere: a challenge like a user's, then authentication_failed.

    Refusing at HELLO would tell which authids exist (tests/security).
    """
    hub = await make_hub(CRA_CONFIG)
    details = await wamp_refused(hub, authmethods=["wampcra"], authid="mallory", secret="x")
    assert details.reason == "wamp.error.authentication_failed"


async def test_wampcra_lookup_hook(hub: Hub, wamp: WampFactory) -> None:
    """A lookup registered with wamp_router(hub).on_wampcra supplies secrets."""

    @wamp_router(hub).on_wampcra
    async def lookup(authid: str, realm: str) -> WampCraUser | None:
        assert realm == "realm1"
        return WampCraUser(secret=f"{authid}-pw", role="dynamic") if authid == "erin" else None

    session = await wamp(hub, "cbor", authmethods=["wampcra"], authid="erin", secret="erin-pw")
    assert session.joined.result().authrole == "dynamic"


async def test_authenticate_timeout(make_hub: HubFactory, raw_wamp: RawFactory) -> None:
    """A CHALLENGE left unanswered: the transport closes after hello_timeout."""
    hub = await make_hub({**CRA_CONFIG, "wamp": {**CRA_CONFIG["wamp"], "hello_timeout": 0.2}})
    raw = await raw_wamp(hub)
    challenge = await raw.hello(authmethods=["wampcra"], authid="alice")
    assert challenge[:2] == [4, "wampcra"]
    assert await raw.closed() == 1008


async def test_identity_reaches_channel_hooks(make_hub: HubFactory, wamp: WampFactory) -> None:
    """The authenticated user is the session's identity: hooks and hub methods see it."""
    hub = await ticket_hub(make_hub)
    seen: list[str | None] = []

    @hub.on_publish("#")
    def who(ctx: CallContext, publication: Publication) -> None:
        seen.append(ctx.identity.user_id if ctx.identity else None)

    @hub.rpc("whoami")
    def whoami(ctx: CallContext) -> str | None:
        return ctx.identity.user_id if ctx.identity else None

    session = await wamp(hub, authmethods=["ticket"], authid="frank", ticket="open sesame")
    await session.publish("com.audited", 1, options=PublishOptions(acknowledge=True))
    assert seen == ["frank"]
    assert await session.call("whoami") == "frank"
    anonymous = await wamp(hub)
    assert await anonymous.call("whoami") is None


# -- the hub's authentication: user table, JWT tickets, handshake identity, expiry -----


def hub_auth(allow_anonymous: bool = True) -> dict[str, Any]:
    return {
        "auth": {
            "allow_anonymous": allow_anonymous,
            **hs_auth(),
            "basic": {"users": {"ada": fast_hash("lovelace")}},
        }
    }


def serve_whoami(hub: Hub) -> None:
    @hub.rpc("whoami")
    def whoami(ctx: CallContext) -> list[str] | None:
        return [ctx.identity.user_id, ctx.identity.method] if ctx.identity else None


async def test_ticket_checked_against_the_user_table(
    make_hub: HubFactory, wamp: WampFactory, wamp_refused: Any
) -> None:
    """A ticket is a password of [auth.basic]: WELCOME authmethod ticket, identity "password"."""
    hub = await make_hub(hub_auth())
    serve_whoami(hub)
    session = await wamp(hub, authmethods=["ticket"], authid="ada", ticket="lovelace")
    details = session.joined.result()
    assert (details.authid, details.authrole, details.authmethod) == ("ada", "user", "ticket")
    assert await session.call("whoami") == ["ada", "password"]
    refused = await wamp_refused(hub, authmethods=["ticket"], authid="ada", ticket="babbage")
    assert refused.reason == "wamp.error.authentication_failed"


async def test_jwt_ticket(make_hub: HubFactory, wamp: WampFactory, wamp_refused: Any) -> None:
    """A JWT as the ticket joins as the token's user, its role claim as authrole."""
    hub = await make_hub(hub_auth())
    serve_whoami(hub)
    token = mint("bea", role="editor")
    session = await wamp(hub, "msgpack", authmethods=["ticket"], authid="bea", ticket=token)
    details = session.joined.result()
    assert (details.authid, details.authrole, details.authmethod) == ("bea", "editor", "ticket")
    assert await session.call("whoami") == ["bea", "jwt"]
    expired = mint("bea", ttl=-60)
    refused = await wamp_refused(hub, authmethods=["ticket"], authid="bea", ticket=expired)
    assert refused.reason == "wamp.error.authentication_failed"


async def test_handshake_identity_joins_an_anonymous_hello(
    make_hub: HubFactory, connect: Connector
) -> None:
    """HELLO without credentials after a JWT handshake: WELCOME as that user, authmethod jwt."""
    hub = await make_hub({**hub_auth(allow_anonymous=False), "wamp": {"auth_methods": ["ticket"]}})
    raw = RawWamp(await connect(hub, "wamp.2.json", additional_headers=bearer(mint("cy"))), "json")
    welcome = await raw.hello()
    assert welcome[0] == 2, welcome
    details = welcome[2]
    assert (details["authid"], details["authmethod"], details["authprovider"]) == (
        "cy",
        "jwt",
        "handshake",
    )


async def test_anonymous_follows_auth_allow_anonymous(
    make_hub: HubFactory, wamp_refused: Any
) -> None:
    """auth.allow_anonymous=false: an anonymous HELLO gets ABORT wamp.error.no_auth_method."""
    hub = await make_hub(hub_auth(allow_anonymous=False))
    details = await wamp_refused(hub)
    assert details.reason == "wamp.error.no_auth_method"


async def test_goodbye_returns_to_the_handshake_identity(
    make_hub: HubFactory, connect: Connector
) -> None:
    """After GOODBYE ends a ticket login, a new anonymous HELLO joins as the handshake user."""
    hub = await make_hub(hub_auth())
    raw = RawWamp(await connect(hub, "wamp.2.json", additional_headers=bearer(mint("cy"))), "json")
    challenge = await raw.hello(authmethods=["ticket"], authid="ada")
    assert challenge[:2] == [4, "ticket"]
    welcome = await raw.request([5, "lovelace", {}])
    assert welcome[0] == 2
    assert welcome[2]["authid"] == "ada"
    assert (await raw.request([6, {}, "wamp.close.close_realm"]))[0] == 6
    again = await raw.hello()
    assert (again[0], again[2]["authid"]) == (2, "cy")


async def test_expiry_says_goodbye_then_closes_with_3000(
    make_hub: HubFactory, connect: Connector
) -> None:
    """At the token's exp: GOODBYE wshub.close.token_expired, then close code 3000."""
    hub = await make_hub(hub_auth())
    token = mint("dee", ttl=2)
    raw = RawWamp(await connect(hub, "wamp.2.json", additional_headers=bearer(token)), "json")
    assert (await raw.hello())[0] == 2
    goodbye = await raw.recv(timeout=8)
    assert goodbye == [6, {"message": "token expired"}, "wshub.close.token_expired"]
    assert await raw.closed() == 3000


async def test_jwt_ticket_session_expires(make_hub: HubFactory, wamp: WampFactory) -> None:
    """A session joined with a JWT ticket leaves at exp, told why by the GOODBYE reason."""
    hub = await make_hub(hub_auth())
    session = await wamp(hub, authmethods=["ticket"], authid="eve", ticket=mint("eve", ttl=2))
    left = await wait_for(session.left, timeout=8)
    assert left.reason == "wshub.close.token_expired"
