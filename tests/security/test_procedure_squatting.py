"""Procedure squatting: registering a name a permission rule guards needs that rule.

A callee receives its callers' arguments. With ``[rpc.permissions."admin.*"]``
and the default ``rpc.register_access`` (everyone), anyone could register
``admin.x`` (or a pattern reaching it) and collect what admins send there. Now
a REGISTER needs every rule guarding a name it could receive; hub methods
cannot be shadowed by any registration. Autobahn|Python callees.
"""

from __future__ import annotations

from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from hub import Hub
from tests.conftest import HubFactory, PeerFactory
from tests.protocols.identities import as_user, authz_hub, password
from tests.protocols.wamp.conftest import Client, WampFactory, wait_for

NOT_AUTHORIZED = "wamp.error.not_authorized"
CONFIG = {"rpc": {"permissions": {"admin.*": {"users": ["ada"]}}}}


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    hub = await authz_hub(make_hub, CONFIG)

    @hub.rpc("admin.reset")
    def reset(confirm: str = "") -> str:
        return f"reset by the hub {confirm}".strip()

    return hub


async def join(hub: Hub, wamp: WampFactory, user: str) -> Client:
    return await wamp(hub, authmethods=["ticket"], authid=user, ticket=password(user))


def squat(*args: Any, **kwargs: Any) -> str:
    return "squatted"


@pytest.mark.parametrize(
    ("procedure", "match"),
    [
        ("admin.x", "exact"),
        ("admin", "exact"),
        ("admin", "prefix"),
        ("adm", "prefix"),
        ("admin..x", "wildcard"),
        (".x", "wildcard"),
    ],
)
async def test_non_admin_cannot_register_under_a_guarded_name(
    hub: Hub, wamp: WampFactory, procedure: str, match: str
) -> None:
    """bob (refused by admin.*) may not register admin.x, admin, or patterns reaching them."""
    bob = await join(hub, wamp, "bob")
    with pytest.raises(ApplicationError) as caught:
        await wait_for(bob.register(squat, procedure, options=RegisterOptions(match=match)))
    assert caught.value.error == NOT_AUTHORIZED
    assert "admin.*" in str(caught.value.args)


async def test_unguarded_names_and_admins_still_register(hub: Hub, wamp: WampFactory) -> None:
    """Names no rule guards stay open to bob; ada, whom admin.* admits, registers admin.x."""
    bob, ada = await join(hub, wamp, "bob"), await join(hub, wamp, "ada")
    await wait_for(bob.register(squat, "svc.work"))
    await wait_for(ada.register(lambda: "ada's", "admin.x"))
    assert await wait_for(ada.call("admin.x")) == "ada's"


async def test_hub_methods_cannot_be_shadowed(
    hub: Hub, wamp: WampFactory, jsonrpc: PeerFactory
) -> None:
    """Even an admin's prefix registration over admin.* leaves admin.reset to the hub method."""
    ada = await join(hub, wamp, "ada")
    await wait_for(ada.register(squat, "admin", options=RegisterOptions(match="prefix")))
    with pytest.raises(ApplicationError) as caught:
        await wait_for(ada.register(squat, "admin.reset"))
    assert caught.value.error == "wamp.error.procedure_already_exists"
    assert await wait_for(ada.call("admin.reset", "now")) == "reset by the hub now"
    caller = await jsonrpc(hub, path=as_user("ada"))
    assert await caller.call("admin.reset", {"confirm": "now"}) == "reset by the hub now"
    assert await wait_for(ada.call("admin.other")) == "squatted"  # the pattern serves the rest
