"""Ticket and WAMP-CRA authentication, with Autobahn|Python as the client."""

from __future__ import annotations

import json
from typing import Any

from autobahn.wamp import auth
from autobahn.wamp.types import PublishOptions

from hub import CallContext, Hub, Identity
from hub.auth import AuthenticationFailed, Credentials
from hub.config import WampCraUser
from hub.engine import Publication
from hub.errors import PermissionDenied
from protocols.wamp import wamp_router
from tests.conftest import HubFactory
from tests.protocols.wamp.conftest import RawFactory, WampFactory

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
    """An authid with no secret anywhere: ABORT wamp.error.not_authorized."""
    hub = await make_hub(CRA_CONFIG)
    details = await wamp_refused(hub, authmethods=["wampcra"], authid="mallory", secret="x")
    assert details.reason == "wamp.error.not_authorized"


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
