"""HTTP Basic, the on_handshake hook and allow_anonymous at the WebSocket handshake."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from hub import CallContext, ConfigError, Hub, HubConfig, Identity
from hub.auth import AuthenticationFailed, HandshakeRequest
from hub.auth.command import hash_password_main
from hub.cli import main
from hub.config import parse_config
from hub.errors import PermissionDenied
from tests.auth_helpers import basic, bearer, fast_hash, hs_auth, mint, refused
from tests.conftest import Connector, HubFactory, PeerFactory
from tests.hub.test_auth_jwt import serve_whoami

USERS = {"ann": fast_hash("correct horse"), "bob": fast_hash("battery staple")}


async def basic_hub(make_hub: HubFactory, **basic_options: Any) -> Hub:
    hub = await make_hub({"auth": {"basic": {"users": USERS, **basic_options}}})
    serve_whoami(hub)
    return hub


# -- HTTP Basic ------------------------------------------------------------------


async def test_basic_credentials_identify_the_session(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """Authorization: Basic with a user's password: the identity is that user, method basic."""
    hub = await basic_hub(make_hub)
    peer = await jsonrpc(hub, additional_headers={"Authorization": basic("ann", "correct horse")})
    who = await peer.call("whoami")
    assert (who["user"], who["method"], who["expires_at"]) == ("ann", "basic", None)


@pytest.mark.parametrize(
    "authorization",
    [
        basic("ann", "battery staple"),
        basic("nobody", "correct horse"),
        "Basic !!!not-base64!!!",
        "Basic " + "YW5u",  # "ann" without a colon
    ],
    ids=["wrong-password", "unknown-user", "not-base64", "no-colon"],
)
async def test_bad_basic_credentials_get_401(make_hub: HubFactory, authorization: str) -> None:
    """Wrong or malformed Basic credentials: 401 with a Basic challenge naming the realm."""
    hub = await basic_hub(make_hub, realm="office")
    refusal = await refused(hub, headers={"Authorization": authorization})
    assert refusal.response.status_code == 401
    assert refusal.response.headers["WWW-Authenticate"] == 'Basic realm="office", charset="UTF-8"'
    assert hub.metrics.auth_failures.labels("basic").value == 1


async def test_users_file_and_reload(
    make_hub: HubFactory, jsonrpc: PeerFactory, tmp_path: Path
) -> None:
    """The users file is read at start and on reload; a broken file keeps the old table."""
    users_file = tmp_path / "users"
    users_file.write_text(f"# staff\n\ncid:{fast_hash('one')}\n")
    hub = await basic_hub(make_hub, users_file=str(users_file))
    cid = await jsonrpc(hub, additional_headers={"Authorization": basic("cid", "one")})
    assert (await cid.call("whoami"))["user"] == "cid"
    dan = {"Authorization": basic("dan", "two")}
    assert (await refused(hub, headers=dan)).response.status_code == 401

    users_file.write_text(f"cid:{fast_hash('one')}\ndan:{fast_hash('two')}\n")
    assert hub.reload() == []
    assert (await (await jsonrpc(hub, additional_headers=dan)).call("whoami"))["user"] == "dan"

    users_file.write_text("dan:plain-text-password\n")
    [problem] = hub.reload()
    assert "not an argon2 hash" in problem
    assert (await (await jsonrpc(hub, additional_headers=dan)).call("whoami"))["user"] == "dan"


def test_user_in_file_and_config_is_refused(tmp_path: Path) -> None:
    """A user both inline and in the users file is ambiguous: the hub does not start."""
    users_file = tmp_path / "users"
    users_file.write_text(f"ann:{fast_hash('x')}\n")
    config = {"auth": {"basic": {"users": USERS, "users_file": str(users_file)}}}
    with pytest.raises(ValueError, match=r"also in auth\.basic\.users"):
        Hub(HubConfig.model_validate(config))


def test_plain_password_in_config_is_refused() -> None:
    """auth.basic.users holds hashes: a plain password fails at load, naming the user only."""
    with pytest.raises(ConfigError, match="password of 'ann' is not an argon2 hash") as refused:
        parse_config({"auth": {"basic": {"users": {"ann": "hunter2"}}}})
    # The message goes to logs and terminals: it must not repeat the password.
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ConfigError) as bad_type:
        parse_config({"auth": {"jwt": {"secret": "s3cret-value", "leeway": "soon"}}})
    assert "s3cret-value" not in str(bad_type.value)


async def test_hash_password_command(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """`wshub hash-password` reads stdin and prints an argon2id hash the hub accepts."""
    out = io.StringIO()
    assert hash_password_main([], stdin=io.StringIO("s3cret pass\n"), stdout=out) == 0
    hashed = out.getvalue().strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "s3cret pass")
    hub = await make_hub({"auth": {"basic": {"users": {"eve": hashed}}}})
    serve_whoami(hub)
    peer = await jsonrpc(hub, additional_headers={"Authorization": basic("eve", "s3cret pass")})
    assert (await peer.call("whoami"))["user"] == "eve"
    assert hash_password_main([], stdin=io.StringIO("\n"), stdout=io.StringIO()) == 1


def test_wshub_hash_password_subcommand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`wshub hash-password` is reached through the wshub command and prints only the hash."""
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert PasswordHasher().verify(printed, "from stdin")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer " + mint("ann"), basic("ann", "x"), "Digest username=ann"],
    ids=["bearer", "basic", "digest"],
)
async def test_credentials_nothing_can_check_are_refused(hub: Hub, authorization: str) -> None:
    """A default hub that cannot check presented credentials refuses them (401), not anonymous."""
    refusal = await refused(hub, headers={"Authorization": authorization})
    assert refusal.response.status_code == 401
    assert b"cannot be checked" in refusal.response.body
    # One label for all of them: clients must not mint metric labels.
    assert list(hub.metrics.auth_failures.children) == ["unchecked"]


# -- the on_handshake hook ----------------------------------------------------------


async def test_hook_sees_the_request_and_enriches_the_identity(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """The hook gets path, query, headers, cookies, origin, address and the JWT identity."""
    hub = await make_hub(
        {"auth": hs_auth(), "server": {"allowed_origins": ["https://app.example"]}}
    )
    serve_whoami(hub)
    seen: list[HandshakeRequest] = []

    @hub.on_handshake
    def enrich(request: HandshakeRequest) -> Identity | None:
        seen.append(request)
        assert request.identity is not None
        claims = {**request.identity.claims, "tenant": request.query["tenant"]}
        return Identity(request.identity.user_id, claims, method="jwt+tenant")

    headers = {**bearer(mint("fay")), "Cookie": "a=1; b=2", "Origin": "https://app.example"}
    peer = await jsonrpc(hub, path="/ws?tenant=acme&x=1", additional_headers=headers)
    who = await peer.call("whoami")
    assert (who["user"], who["method"], who["claims"]["tenant"]) == ("fay", "jwt+tenant", "acme")
    [request] = seen
    assert request.path == "/ws"
    assert dict(request.query) == {"tenant": "acme", "x": "1"}
    assert dict(request.cookies) == {"a": "1", "b": "2"}
    assert request.origin == "https://app.example"
    assert request.headers["authorization"].startswith("Bearer ")
    assert request.remote_address.startswith("127.0.0.1:")
    with pytest.raises(TypeError):
        request.query["tenant"] = "other"  # type: ignore[index]


async def test_async_hook_with_a_session_cookie(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """An async hook may identify a session cookie; its identity's method defaults to "hook"."""
    hub = await make_hub()
    serve_whoami(hub)
    sessions = {"s-123": "gus"}

    @hub.on_handshake
    async def from_cookie(request: HandshakeRequest) -> Identity | None:
        await asyncio.sleep(0)
        user = sessions.get(request.cookies.get("sid", ""))
        return Identity(user) if user else None

    peer = await jsonrpc(hub, additional_headers={"Cookie": "sid=s-123"})
    who = await peer.call("whoami")
    assert (who["user"], who["method"]) == ("gus", "hook")
    anonymous = await jsonrpc(hub)
    assert await anonymous.call("whoami") is None


async def test_hook_judges_credentials_no_built_in_checks(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """An opaque bearer token (OAuth2 introspection) reaches the hook, which decides."""
    hub = await make_hub()
    serve_whoami(hub)

    @hub.on_handshake
    def introspect(request: HandshakeRequest) -> Identity | None:
        if request.headers.get("authorization") == "Bearer opaque-good":
            return Identity("hal", {"scope": "read"})
        raise AuthenticationFailed("token not active")

    peer = await jsonrpc(hub, additional_headers={"Authorization": "Bearer opaque-good"})
    assert (await peer.call("whoami"))["user"] == "hal"
    refusal = await refused(hub, headers={"Authorization": "Bearer opaque-bad"})
    assert refusal.response.status_code == 401
    assert b"token not active" in refusal.response.body


async def test_hook_refusals(make_hub: HubFactory, connect: Connector) -> None:
    """AuthenticationFailed answers 401, PermissionDenied 403, a crash 500; others still connect."""
    hub = await make_hub()

    @hub.on_handshake
    def gate(request: HandshakeRequest) -> Identity | None:
        who = request.query.get("who")
        if who == "stranger":
            raise AuthenticationFailed("who are you?")
        if who == "banned":
            raise PermissionDenied("banned from this hub")
        if who == "bug":
            raise RuntimeError("hook bug")
        return None

    unauthorized = await refused(hub, path="/?who=stranger")
    assert unauthorized.response.status_code == 401
    forbidden = await refused(hub, path="/?who=banned")
    assert forbidden.response.status_code == 403
    assert b"banned from this hub" in forbidden.response.body
    crashed = await refused(hub, path="/?who=bug")
    assert crashed.response.status_code == 500
    assert b"hook bug" not in crashed.response.body
    assert (await connect(hub, "jsonrpc.2.0", path="/?who=friend")).subprotocol == "jsonrpc.2.0"
    assert hub.metrics.handshakes_refused.labels("auth").value == 3


async def test_hook_has_the_last_word(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """A hook returning None makes even a JWT-identified session anonymous."""
    hub = await make_hub({"auth": hs_auth()})
    serve_whoami(hub)
    hub.on_handshake(lambda request: None)
    peer = await jsonrpc(hub, additional_headers=bearer(mint("ida")))
    assert await peer.call("whoami") is None


def test_one_handshake_hook_per_hub() -> None:
    """A second on_handshake hook is refused rather than silently ordered."""
    hub = Hub()
    hub.on_handshake(lambda request: None)
    with pytest.raises(ValueError, match="already registered"):
        hub.on_handshake(lambda request: None)


# -- allow_anonymous and the connection hooks ---------------------------------------------


@pytest.mark.parametrize("subprotocol", ["jsonrpc.2.0", "channels.v1"])
async def test_anonymous_refused_for_protocols_without_login(
    make_hub: HubFactory, jsonrpc: PeerFactory, subprotocol: str
) -> None:
    """auth.allow_anonymous=false: jsonrpc/channels without credentials get 401 + challenges."""
    hub = await make_hub(
        {"auth": {"allow_anonymous": False, **hs_auth(), "basic": {"users": USERS}}}
    )
    serve_whoami(hub)
    refusal = await refused(hub, subprotocol=subprotocol)
    assert refusal.response.status_code == 401
    assert refusal.response.headers.get_all("WWW-Authenticate") == [
        'Bearer realm="wshub"',
        'Basic realm="wshub", charset="UTF-8"',
    ]
    assert hub.metrics.auth_failures.labels("anonymous").value == 1
    peer = await jsonrpc(hub, subprotocol, additional_headers=bearer(mint("jo")))
    assert (await peer.call("whoami"))["user"] == "jo"


@pytest.mark.parametrize("subprotocol", ["mqtt", "wamp.2.json"])
async def test_anonymous_handshake_accepted_for_protocols_that_log_in(
    make_hub: HubFactory, connect: Connector, subprotocol: str
) -> None:
    """MQTT and WAMP log in after the handshake: it is accepted without credentials."""
    hub = await make_hub({"auth": {"allow_anonymous": False}})
    ws = await connect(hub, subprotocol)
    assert ws.subprotocol == subprotocol


async def test_connect_and_disconnect_hooks_see_the_handshake_identity(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """on_connect and on_disconnect get the identity the handshake established."""
    hub = await make_hub({"auth": hs_auth()})
    seen: list[tuple[str, str | None]] = []
    done = asyncio.Event()

    @hub.on_connect
    def connected(ctx: CallContext) -> None:
        seen.append(("connect", ctx.identity.user_id if ctx.identity else None))

    @hub.on_disconnect
    def disconnected(ctx: CallContext) -> None:
        seen.append(("disconnect", ctx.identity.user_id if ctx.identity else None))
        done.set()

    peer = await jsonrpc(hub, additional_headers=bearer(mint("kai")))
    await peer.ws.close()
    async with asyncio.timeout(5):
        await done.wait()
    assert seen == [("connect", "kai"), ("disconnect", "kai")]
