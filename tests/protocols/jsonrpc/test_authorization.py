"""RPC method permissions over jsonrpc.2.0 and channels.v1: -32011 for a refused call."""

from __future__ import annotations

from typing import Any

import pytest

from hub import CallContext, Hub
from hub.errors import PermissionDenied
from tests.conftest import HubFactory, PeerFactory
from tests.protocols.identities import as_user, authz_hub

PERMISSION_DENIED = -32011
METHOD_NOT_FOUND = -32601

CONFIG: dict[str, Any] = {
    "rpc": {
        "permissions": {
            "admin.*": {"users": ["ada"]},
            # An exact key beats the glob: open to everyone.
            "admin.ping": {},
            "reports.*": {"claims": {"roles": ["staff", "auditor"]}},
            "rpc.discover": {"authenticated": True},
        }
    }
}


@pytest.fixture
def calls() -> list[str]:
    """The methods that really ran, in order."""
    return []


@pytest.fixture
async def hub(make_hub: HubFactory, calls: list[str]) -> Hub:
    hub = await authz_hub(make_hub, CONFIG)

    @hub.rpc("admin.reset")
    def reset() -> str:
        calls.append("admin.reset")
        return "reset"

    @hub.rpc("admin.ping")
    def ping() -> str:
        return "pong"

    @hub.rpc("reports.sales")
    def sales() -> int:
        calls.append("reports.sales")
        return 42

    @hub.rpc("math.add")
    def add(a: int, b: int) -> int:
        return a + b

    return hub


@pytest.fixture
def client(hub: Hub, jsonrpc: PeerFactory) -> Any:
    """``await client("ada", "channels.v1")``: a JSON-RPC peer logged in as that user."""

    async def open_client(user: str | None, subprotocol: str = "jsonrpc.2.0") -> Any:
        return await jsonrpc(hub, subprotocol, path=as_user(user))

    return open_client


@pytest.mark.parametrize("subprotocol", ["jsonrpc.2.0", "channels.v1"])
async def test_denied_call_is_32011_with_the_method(
    client: Any, calls: list[str], subprotocol: str
) -> None:
    """A refused call answers -32011 "permission denied" naming the method, and never runs."""
    bob = await client("bob", subprotocol)
    error = await bob.error("admin.reset")
    assert error["code"] == PERMISSION_DENIED
    assert error["message"] == "permission denied"
    assert error["data"]["method"] == "admin.reset"
    assert calls == []
    ada = await client("ada", subprotocol)
    assert await ada.call("admin.reset") == "reset"
    assert calls == ["admin.reset"]


async def test_anonymous_and_claims(client: Any) -> None:
    """A claims rule refuses anonymous callers and users without the claim."""
    anonymous, bob, cy = await client(None), await client("bob"), await client("cy")
    assert (await anonymous.error("reports.sales"))["code"] == PERMISSION_DENIED
    assert (await bob.error("reports.sales"))["code"] == PERMISSION_DENIED
    assert await cy.call("reports.sales") == 42


async def test_exact_key_and_unlisted_methods_are_open(client: Any) -> None:
    """admin.ping's own (empty) rule beats admin.*; methods no key matches are open."""
    anonymous = await client(None)
    assert await anonymous.call("admin.ping") == "pong"
    assert await anonymous.call("math.add", [1, 2]) == 3


async def test_refusal_does_not_reveal_whether_a_method_exists(client: Any) -> None:
    """A name the rules refuse gets -32011 whether or not a method has it; allowed, -32601."""
    bob, ada = await client("bob"), await client("ada")
    assert (await bob.error("admin.reset"))["code"] == PERMISSION_DENIED
    assert (await bob.error("admin.no_such_thing"))["code"] == PERMISSION_DENIED
    assert (await ada.error("admin.no_such_thing"))["code"] == METHOD_NOT_FOUND


async def test_rpc_discover_is_a_method_like_the_others(client: Any) -> None:
    """rpc.discover obeys [rpc.permissions]: refused anonymously, served to a user."""
    anonymous, bob = await client(None), await client("bob")
    assert (await anonymous.error("rpc.discover"))["code"] == PERMISSION_DENIED
    assert (await bob.call("rpc.discover"))["openrpc"]


async def test_denied_notification_is_silent_and_does_not_run(
    client: Any, calls: list[str]
) -> None:
    """A refused notification gets no reply and does not run the method."""
    bob = await client("bob")
    await bob.send({"jsonrpc": "2.0", "method": "admin.reset"})
    assert await bob.silent_for(0.2)
    assert calls == []


async def test_batch_answers_each_call_by_its_own_rule(client: Any) -> None:
    """In one batch, the refused call gets -32011 and the allowed one its result."""
    bob = await client("bob")
    await bob.send(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "admin.reset"},
            {"jsonrpc": "2.0", "id": 2, "method": "math.add", "params": [2, 3]},
        ]
    )
    replies = {reply["id"]: reply for reply in await bob.recv()}
    assert replies[1]["error"]["code"] == PERMISSION_DENIED
    assert replies[2]["result"] == 5


async def test_on_call_hook_refuses_with_its_reason(hub: Hub, client: Any) -> None:
    """@hub.on_call(glob) runs after the rules; its PermissionDenied is -32011 with the reason."""
    seen: list[tuple[str | None, str]] = []

    @hub.on_call("math.*")
    def weekdays_only(ctx: CallContext, method: str) -> None:
        user = ctx.identity.user_id if ctx.identity else None
        seen.append((user, method))
        if user != "ada":
            raise PermissionDenied("math is for ada today")

    bob, ada = await client("bob"), await client("ada")
    error = await bob.error("math.add", [1, 1])
    assert error["code"] == PERMISSION_DENIED
    assert error["data"] == {"method": "math.add", "reason": "math is for ada today"}
    assert await ada.call("math.add", [1, 1]) == 2
    # The hook saw only names its glob matches, and not calls the rules refused.
    await bob.error("admin.reset")
    await ada.call("admin.ping")
    assert seen == [("bob", "math.add"), ("ada", "math.add")]


async def test_catch_all_rule_leaves_channel_builtins_to_namespaces(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """A "*" permission guards methods and rpc.discover, never subscribe/publish."""
    hub = await authz_hub(make_hub, {"rpc": {"permissions": {"*": {"users": ["nobody"]}}}})
    hub.add_method("math.add", lambda a, b: a + b)
    peer = await jsonrpc(hub, "channels.v1", path=as_user("ada"))
    assert (await peer.error("math.add", [1, 2]))["code"] == PERMISSION_DENIED
    assert (await peer.error("rpc.discover"))["code"] == PERMISSION_DENIED
    assert await peer.call("publish", {"channel": "news", "data": 1})
    assert (await peer.call("subscribe", {"channel": "news"}))["channel"] == "news"
