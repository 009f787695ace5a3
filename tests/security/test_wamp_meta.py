"""WAMP session meta-events and procedures obey the hub's rules, and tell others little.

``wamp.session.on_join`` / ``on_leave`` and ``wamp.session.get`` used to show
every session's user, role and IP:port to anyone, whatever the rules said.
Now meta topics follow the subscribe rules (and hooks) of their channel
(``wamp/session/...``), meta procedures follow ``[rpc.permissions]``, and
others' sessions show only their id and authrole unless
``wamp.session_details_access`` admits the viewer. Autobahn|Python clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions

from hub import CallContext, Hub
from hub.errors import PermissionDenied
from tests.conftest import HubFactory
from tests.protocols.identities import authz_hub, password
from tests.protocols.wamp.conftest import Client, WampFactory, wait_for

NOT_AUTHORIZED = "wamp.error.not_authorized"


async def join(hub: Hub, wamp: WampFactory, user: str | None) -> Client:
    if user is None:
        return await wamp(hub)
    return await wamp(hub, authmethods=["ticket"], authid=user, ticket=password(user))


async def refused(awaitable: Any) -> str:
    with pytest.raises(ApplicationError) as caught:
        await wait_for(awaitable)
    return str(caught.value.error)


async def test_others_details_are_hidden_by_default(
    make_hub: HubFactory, wamp: WampFactory
) -> None:
    """An anonymous watcher sees a user's session id and role, not its authid or IP:port."""
    hub = await authz_hub(make_hub, {})
    watcher = await join(hub, wamp, None)
    joins: asyncio.Queue[Any] = asyncio.Queue()
    leaves: asyncio.Queue[Any] = asyncio.Queue()
    await wait_for(watcher.subscribe(joins.put_nowait, "wamp.session.on_join"))
    await wait_for(watcher.subscribe(lambda *a: leaves.put_nowait(a), "wamp.session.on_leave"))
    ada = await join(hub, wamp, "ada")
    ada_id = ada.joined.result().session
    joined = await wait_for(joins.get())
    assert set(joined) == {"session", "authrole"}
    assert joined["session"] == ada_id
    seen = await wait_for(watcher.call("wamp.session.get", ada_id))
    assert set(seen) == {"session", "authrole"}
    own = await wait_for(ada.call("wamp.session.get", ada_id))
    assert own["authid"] == "ada"
    assert own["transport"]["peer"].startswith("127.0.0.1:")
    ada.leave()
    assert await wait_for(leaves.get()) == (ada_id, "", joined["authrole"])


async def test_session_details_access_admits_operators(
    make_hub: HubFactory, wamp: WampFactory
) -> None:
    """wamp.session_details_access: ada sees bob's authid and address, cy does not."""
    hub = await authz_hub(make_hub, {"wamp": {"session_details_access": {"users": ["ada"]}}})
    ada, cy = await join(hub, wamp, "ada"), await join(hub, wamp, "cy")
    bob = await join(hub, wamp, "bob")
    bob_id = bob.joined.result().session
    full = await wait_for(ada.call("wamp.session.get", bob_id))
    assert full["authid"] == "bob"
    assert "peer" in full["transport"]
    assert set(await wait_for(cy.call("wamp.session.get", bob_id))) == {"session", "authrole"}


async def test_meta_topics_follow_the_wamp_namespace(
    make_hub: HubFactory, wamp: WampFactory
) -> None:
    """A closed wamp namespace refuses anonymous subscriptions to meta topics, exact or prefix."""
    hub = await authz_hub(
        make_hub,
        {"channels": {"namespaces": {"wamp": {"subscribe_access": {"authenticated": True}}}}},
    )
    anonymous, bob = await join(hub, wamp, None), await join(hub, wamp, "bob")
    assert await refused(anonymous.subscribe(print, "wamp.session.on_join")) == NOT_AUTHORIZED
    prefix = SubscribeOptions(match="prefix")
    assert await refused(anonymous.subscribe(print, "wamp", options=prefix)) == NOT_AUTHORIZED
    assert await wait_for(bob.subscribe(print, "wamp.session.on_join"))


async def test_meta_procedures_follow_rpc_permissions(
    make_hub: HubFactory, wamp: WampFactory
) -> None:
    """[rpc.permissions."wamp.*"] closes list, get and count to those it refuses."""
    hub = await authz_hub(make_hub, {"rpc": {"permissions": {"wamp.*": {"users": ["ada"]}}}})
    bob, ada = await join(hub, wamp, "bob"), await join(hub, wamp, "ada")
    for procedure, args in (
        ("wamp.session.list", ()),
        ("wamp.session.count", ()),
        ("wamp.session.get", (ada.joined.result().session,)),
    ):
        assert await refused(bob.call(procedure, *args)) == NOT_AUTHORIZED
    assert len(await wait_for(ada.call("wamp.session.list"))) == 2


async def test_subscribe_hooks_run_for_meta_topics(hub: Hub, wamp: WampFactory) -> None:
    """An on_subscribe hook on wamp/# sees (and may refuse) meta-topic subscriptions."""
    seen: list[str] = []

    @hub.on_subscribe("wamp/#")
    def no_watchers(ctx: CallContext, channel: str) -> None:
        seen.append(channel)
        raise PermissionDenied("no session watching here")

    watcher = await wamp(hub)
    assert await refused(watcher.subscribe(print, "wamp.session.on_join")) == NOT_AUTHORIZED
    assert seen == ["wamp/session/on_join"]


async def test_nobody_kills_others_by_default_and_users_not_operators(
    make_hub: HubFactory, wamp: WampFactory
) -> None:
    """The kill procedures are not open with the other meta procedures: an anonymous
    session and a user wamp.session_details_access does not admit get
    wamp.error.not_authorized from each, and the victim stays joined; the operator it
    admits kills (Autobahn|Python on both ends; the default hub: tests/protocols/wamp/
    test_kill.py)."""
    hub = await authz_hub(make_hub, {"wamp": {"session_details_access": {"users": ["ada"]}}})
    attacker, cy = await join(hub, wamp, None), await join(hub, wamp, "cy")
    bob = await join(hub, wamp, "bob")
    bob_id = bob.joined.result().session
    for caller in (attacker, cy):
        for procedure, args in (
            ("wamp.session.kill", [bob_id]),
            ("wamp.session.kill_by_authid", ["bob"]),
            ("wamp.session.kill_by_authrole", [bob.joined.result().authrole]),
            ("wamp.session.kill_all", []),
        ):
            assert await refused(caller.call(procedure, *args)) == NOT_AUTHORIZED
    assert bob.is_attached()
    assert bob_id in await wait_for(cy.call("wamp.session.list"))
    ada = await join(hub, wamp, "ada")
    killed = await wait_for(ada.call("wamp.session.kill_by_authid", "bob"))
    assert killed == [bob_id]
    assert (await wait_for(bob.left)).reason == "wamp.close.killed"
