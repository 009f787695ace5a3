"""JSON-RPC sessions and their identity: CallContext, expiry with 3000, rpc.refresh."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from hub import CallContext, Hub
from tests.auth_helpers import bearer, hs_auth, mint
from tests.conftest import HubFactory, JsonRpcPeer, PeerFactory
from tests.hub.test_auth_jwt import serve_whoami

UNAUTHORIZED = -32020


async def token_hub(make_hub: HubFactory, **jwt: Any) -> Hub:
    hub = await make_hub({"auth": hs_auth(**jwt)})
    serve_whoami(hub)
    return hub


async def close_of(ws: ClientConnection, timeout: float = 8.0) -> tuple[int | None, str]:
    """Wait for the hub to close the connection; (code, reason) it sent."""
    async with asyncio.timeout(timeout):
        await ws.wait_closed()
    received = ws.protocol.close_rcvd
    return (received.code, received.reason) if received is not None else (None, "")


async def test_methods_see_the_handshake_identity(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """A JSON-RPC method's CallContext carries the handshake identity."""
    hub = await token_hub(make_hub)
    peer = await jsonrpc(hub, additional_headers=bearer(mint("ada", team="red")))
    who = await peer.call("whoami")
    assert (who["user"], who["claims"]["team"]) == ("ada", "red")


async def test_session_closed_with_3000_when_the_token_expires(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """At exp the hub closes the session with 3000 "token expired"."""
    hub = await token_hub(make_hub)
    peer = await jsonrpc(hub, additional_headers=bearer(mint("ada", ttl=2)))
    assert (await peer.call("whoami"))["user"] == "ada"
    started = time.monotonic()
    assert await close_of(peer.ws) == (3000, "token expired")
    assert time.monotonic() - started < 4


async def test_refresh_extends_the_session(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """rpc.refresh with a fresh token for the same user keeps the session past the old exp."""
    hub = await token_hub(make_hub)
    peer = await jsonrpc(hub, additional_headers=bearer(mint("ada", ttl=2)))
    fresh = mint("ada", ttl=60, scope="more")
    result = await peer.call("rpc.refresh", {"token": fresh})
    assert result["user"] == "ada"
    assert result["expires_at"] > time.time() + 50
    await asyncio.sleep(3)
    who = await peer.call("whoami")
    assert who["claims"]["scope"] == "more"
    assert who["expires_at"] == result["expires_at"]


@pytest.mark.parametrize(
    ("params", "code", "detail"),
    # Tokens are minted when the test runs, not at collection: a long run
    # would otherwise see them expired.
    [
        (lambda: {"token": mint("bob")}, UNAUTHORIZED, "another user"),
        (lambda: {"token": mint("ada", ttl=-10)}, UNAUTHORIZED, "token expired"),
        (lambda: {"token": "garbage"}, UNAUTHORIZED, "malformed"),
        (lambda: {"jwt": mint("ada")}, -32602, "token"),
        (lambda: [1], -32602, "token"),
    ],
    ids=["other-user", "expired", "garbage", "wrong-key", "not-a-string"],
)
async def test_refused_refresh_keeps_the_old_expiry(
    make_hub: HubFactory, jsonrpc: PeerFactory, params: Any, code: int, detail: str
) -> None:
    """A bad refresh is a JSON-RPC error; the session lives on until its own exp, then 3000."""
    hub = await token_hub(make_hub)
    peer = await jsonrpc(hub, additional_headers=bearer(mint("ada", ttl=2)))
    error = await peer.error("rpc.refresh", params())
    assert error["code"] == code
    assert detail in str(error.get("data"))
    assert (await peer.call("whoami"))["user"] == "ada"
    assert (await close_of(peer.ws))[0] == 3000


async def test_anonymous_session_cannot_refresh(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """An anonymous session has no user to refresh: -32020, and it stays anonymous."""
    hub = await token_hub(make_hub)
    peer = await jsonrpc(hub)
    error = await peer.error("rpc.refresh", {"token": mint("ada")})
    assert error["code"] == UNAUTHORIZED
    assert await peer.call("whoami") is None


async def test_refresh_without_jwt_config(hub: Hub, jsonrpc: PeerFactory) -> None:
    """A hub without [auth.jwt] answers rpc.refresh with -32020, not a crash."""
    peer: JsonRpcPeer = await jsonrpc(hub)
    error = await peer.error("rpc.refresh", {"token": mint("ada")})
    assert error["code"] == UNAUTHORIZED
    assert "auth.jwt" in error["data"]


def test_refresh_names_are_not_for_user_methods() -> None:
    """rpc.refresh and refresh belong to the hub: registering either is refused."""
    hub = Hub()

    def refresh(ctx: CallContext) -> None: ...

    for name in ("refresh", "rpc.refresh"):
        with pytest.raises(ValueError, match="reserved"):
            hub.rpc(name)(refresh)
