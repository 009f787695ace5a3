"""channels.v1 sessions and their identity: hooks, presence, expiry with 3000, refresh."""

from __future__ import annotations

import asyncio

from hub import CallContext
from tests.auth_helpers import bearer, hs_auth, mint
from tests.conftest import HubFactory
from tests.protocols.channels.conftest import PeerFactory


async def test_hooks_and_presence_see_the_handshake_user(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """on_subscribe hooks get the JWT identity and presence lists the session under its user."""
    hub = await make_hub({"auth": hs_auth()})
    seen: list[str | None] = []

    @hub.on_subscribe("rooms/#")
    def record(ctx: CallContext, channel: str) -> None:
        seen.append(ctx.identity.user_id if ctx.identity else None)

    peer = await channels(hub, additional_headers=bearer(mint("ada")))
    await peer.subscribe("rooms/1", presence=True)
    assert seen == ["ada"]
    members = (await peer.call("presence", {"channel": "rooms/1"}))["members"]
    assert list(members) == ["ada"]


async def test_session_closed_with_3000_when_the_token_expires(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """A channels.v1 session whose token expires is closed with 3000 "token expired"."""
    hub = await make_hub({"auth": hs_auth()})
    peer = await channels(hub, path=f"/?token={mint('ada', ttl=2)}")
    await peer.subscribe("news")
    assert await peer.closed(timeout=8) == (3000, "token expired")


async def test_refresh_extends_the_session(make_hub: HubFactory, channels: PeerFactory) -> None:
    """The built-in refresh with a new token for the same user keeps the session open."""
    hub = await make_hub({"auth": hs_auth()})
    peer = await channels(hub, path=f"/?token={mint('ada', ttl=2)}")
    result = await peer.call("refresh", {"token": mint("ada", ttl=60)})
    assert result["user"] == "ada"
    await asyncio.sleep(3)
    # Past the first token's exp, the session still answers.
    assert (await peer.subscribe("news"))["channel"] == "news"
    assert (await peer.publish("news", 1))["offset"] == 1


async def test_refresh_for_another_user_is_refused(
    make_hub: HubFactory, channels: PeerFactory
) -> None:
    """refresh with a token naming someone else: -32020, the session still expires on time."""
    hub = await make_hub({"auth": hs_auth()})
    peer = await channels(hub, path=f"/?token={mint('ada', ttl=2)}")
    error = await peer.error("refresh", {"token": mint("mallory", ttl=60)})
    assert error["code"] == -32020
    assert (await peer.closed(timeout=8))[0] == 3000
