"""Session lifecycle: HELLO, WELCOME, realms, GOODBYE, ABORT, meta-events and procedures."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from autobahn.wamp.types import SubscribeOptions

from hub import Hub
from tests.api.conftest import api_config, result
from tests.auth_helpers import hs_auth, mint
from tests.conftest import Connector, HubFactory
from tests.protocols.wamp.conftest import (
    ALL_SERIALIZERS,
    RawFactory,
    RawWamp,
    WampFactory,
    wait_for,
)

MAX_ID = 2**53


@ALL_SERIALIZERS
async def test_welcome_has_session_id_and_router_roles(
    hub: Hub, raw_wamp: RawFactory, serializer: str
) -> None:
    """WELCOME: a session id in [1, 2^53], broker and dealer roles with their features."""
    raw = await raw_wamp(hub, serializer)
    welcome = await raw.hello()
    assert welcome[0] == 2
    assert 1 <= welcome[1] <= MAX_ID
    details = welcome[2]
    assert details["realm"] == "realm1"
    assert details["authrole"] == "anonymous"
    assert details["authmethod"] == "anonymous"
    broker = details["roles"]["broker"]["features"]
    dealer = details["roles"]["dealer"]["features"]
    assert broker["pattern_based_subscription"] is True
    assert broker["publisher_exclusion"] is True
    assert broker["session_meta_api"] is True
    assert dealer["progressive_call_results"] is True
    assert dealer["call_canceling"] is True
    assert dealer["call_timeout"] is True


@ALL_SERIALIZERS
async def test_autobahn_joins_over_each_serializer(
    hub: Hub, wamp: WampFactory, serializer: str
) -> None:
    """Autobahn|Python joins realm1 (its HELLO announces features the router ignores)."""
    session = await wamp(hub, serializer)
    details = session.joined.result()
    assert details.realm == "realm1"
    assert 1 <= details.session <= MAX_ID
    assert details.authrole == "anonymous"


async def test_unsupported_features_in_hello_are_ignored(hub: Hub, raw_wamp: RawFactory) -> None:
    """Features, roles and details the router does not know do not refuse the session."""
    raw = await raw_wamp(hub, "cbor")
    roles = {
        "publisher": {"features": {"x_acknowledged_event_delivery": True}},
        "subscriber": {"features": {"payload_encryption_cryptobox": True}},
        "callee": {"features": {"shared_registration": True, "x_unheard_of": True}},
        "x_custom_role": {},
    }
    welcome = await raw.hello(roles=roles, authextra={"pubkey": "00"}, resumable=True)
    assert welcome[0] == 2
    # And options it does not know are ignored on requests too.
    published = await raw.request([16, 1, {"acknowledge": True, "retain": True}, "com.x"])
    assert published[0] == 17


async def test_session_ids_differ(hub: Hub, wamp: WampFactory) -> None:
    """Every session gets its own random id."""
    sessions = [await wamp(hub) for _ in range(5)]
    ids = {session.joined.result().session for session in sessions}
    assert len(ids) == 5


async def test_unknown_realm_is_aborted(hub: Hub, raw_wamp: RawFactory) -> None:
    """HELLO for a realm not in the config: ABORT wamp.error.no_such_realm, then close."""
    raw = await raw_wamp(hub)
    abort = await raw.hello("nowhere")
    assert abort[0] == 3
    assert abort[2] == "wamp.error.no_such_realm"
    assert await raw.closed() == 1000


async def test_unknown_realm_reaches_autobahn_as_leave(hub: Hub, wamp_refused: Any) -> None:
    """Autobahn learns the refusal reason from the ABORT."""
    details = await wamp_refused(hub, realm="nowhere")
    assert details.reason == "wamp.error.no_such_realm"


async def test_configured_realms_are_served(make_hub: HubFactory, raw_wamp: RawFactory) -> None:
    """Realms come from [wamp] realms; the default realm1 is then not served."""
    hub = await make_hub({"wamp": {"realms": ["com.example", {"name": "iot"}]}})
    for realm in ("com.example", "iot"):
        raw = await raw_wamp(hub)
        assert (await raw.hello(realm))[0] == 2
    raw = await raw_wamp(hub)
    assert (await raw.hello("realm1"))[2] == "wamp.error.no_such_realm"


@ALL_SERIALIZERS
async def test_goodbye_is_echoed(hub: Hub, raw_wamp: RawFactory, serializer: str) -> None:
    """GOODBYE gets GOODBYE wamp.close.goodbye_and_out; the transport may join again."""
    raw = await raw_wamp(hub, serializer, join=True)
    reply = await raw.request([6, {}, "wamp.close.close_realm"])
    assert reply == [6, {}, "wamp.close.goodbye_and_out"]
    again = await raw.hello()
    assert again[0] == 2


async def test_autobahn_leave_gets_goodbye_and_out(hub: Hub, wamp: WampFactory) -> None:
    """Autobahn's leave() ends with the router's goodbye_and_out."""
    session = await wamp(hub)
    session.leave()
    details = await wait_for(session.left)
    assert details.reason == "wamp.close.goodbye_and_out"


async def test_abort_is_not_answered(hub: Hub, raw_wamp: RawFactory) -> None:
    """ABORT from the client gets no reply: the router closes the transport."""
    raw = await raw_wamp(hub, join=True)
    await raw.send([3, {}, "wamp.close.system_shutdown"])
    assert await raw.closed() == 1000


async def test_abort_before_hello_is_not_answered(hub: Hub, raw_wamp: RawFactory) -> None:
    """ABORT during establishment: no reply, just the close."""
    raw = await raw_wamp(hub)
    await raw.send([3, {}, "wamp.error.canceled"])
    assert await raw.closed() == 1000


async def test_hello_timeout_closes(make_hub: HubFactory, raw_wamp: RawFactory) -> None:
    """A client that never sends HELLO is closed after [wamp] hello_timeout."""
    hub = await make_hub({"wamp": {"hello_timeout": 0.2}})
    raw = await raw_wamp(hub)
    assert await raw.closed() == 1008


async def test_leaving_releases_registrations(hub: Hub, raw_wamp: RawFactory) -> None:
    """After GOODBYE the session's registrations are gone for other callers."""
    callee = await raw_wamp(hub, join=True)
    assert (await callee.request([64, 1, {}, "com.gone"]))[0] == 65
    await callee.request([6, {}, "wamp.close.normal"])
    caller = await raw_wamp(hub, join=True)
    error = await caller.request([48, 1, {}, "com.gone", []])
    assert error[0] == 8
    assert error[4] == "wamp.error.no_such_procedure"


# --- session meta API ---------------------------------------------------------------------


@ALL_SERIALIZERS
async def test_meta_events_announce_join_and_leave(
    make_hub: HubFactory, wamp: WampFactory, serializer: str
) -> None:
    """wamp.session.on_join and on_leave reach subscribers with the spec's payloads."""
    # Everyone sees every detail here (the default shows others' id and role only).
    hub = await make_hub({"wamp": {"session_details_access": {}}})
    watcher = await wamp(hub, serializer)
    joins: asyncio.Queue[Any] = asyncio.Queue()
    leaves: asyncio.Queue[Any] = asyncio.Queue()
    await watcher.subscribe(lambda details: joins.put_nowait(details), "wamp.session.on_join")
    await watcher.subscribe(lambda *args: leaves.put_nowait(args), "wamp.session.on_leave")

    other = await wamp(hub)
    other_id = other.joined.result().session
    joined = await wait_for(joins.get())
    assert joined["session"] == other_id
    assert joined["authrole"] == "anonymous"
    assert joined["authmethod"] == "anonymous"
    assert joined["transport"]["protocol"] == "wamp.2.json"

    other.leave()
    session_id, authid, authrole = await wait_for(leaves.get())
    assert session_id == other_id
    assert authid == joined["authid"]
    assert authrole == "anonymous"


async def test_meta_events_by_prefix_pattern(hub: Hub, wamp: WampFactory) -> None:
    """A prefix subscription to wamp.session gets both meta-events, with their topics."""
    watcher = await wamp(hub)
    topics: asyncio.Queue[str] = asyncio.Queue()

    def seen(*args: Any, details: Any) -> None:
        topics.put_nowait(details.topic)

    await watcher.subscribe(
        seen, "wamp.session", options=SubscribeOptions(match="prefix", details_arg="details")
    )
    other = await wamp(hub)
    other.leave()
    assert await wait_for(topics.get()) == "wamp.session.on_join"
    assert await wait_for(topics.get()) == "wamp.session.on_leave"


async def test_meta_procedures(hub: Hub, wamp: WampFactory) -> None:
    """wamp.session.count, list and get describe the realm's sessions."""
    first = await wamp(hub)
    second = await wamp(hub)
    ids = {first.joined.result().session, second.joined.result().session}
    assert await first.call("wamp.session.count") == 2
    assert set(await first.call("wamp.session.list")) == ids
    assert await first.call("wamp.session.count", ["anonymous"]) == 2
    assert await first.call("wamp.session.count", ["admin"]) == 0
    details = await first.call("wamp.session.get", second.joined.result().session)
    assert details["session"] == second.joined.result().session
    assert details["authrole"] == "anonymous"


async def test_meta_get_unknown_session(hub: Hub, raw_wamp: RawFactory) -> None:
    """wamp.session.get of a session that does not exist: wamp.error.no_such_session."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([48, 1, {}, "wamp.session.get", [12345]])
    assert error[:2] == [8, 48]
    assert error[4] == "wamp.error.no_such_session"


async def test_channels_client_cannot_fake_meta_events(
    hub: Hub, wamp: WampFactory, jsonrpc: Any
) -> None:
    """A channels.v1 publish on wamp/session/on_join never reaches WAMP as a meta-event."""
    watcher = await wamp(hub)
    events: asyncio.Queue[Any] = asyncio.Queue()
    await watcher.subscribe(lambda *a: events.put_nowait(a), "wamp.session.on_join")
    await watcher.subscribe(
        lambda *a: events.put_nowait(a), "", options=SubscribeOptions(match="prefix")
    )
    peer = await jsonrpc(hub, "channels.v1")
    await peer.call("publish", {"channel": "wamp/session/on_join", "data": {"session": 1}})
    await peer.call("publish", {"channel": "plain/topic", "data": 1})
    assert await wait_for(events.get()) == (1,)
    assert events.empty()


@ALL_SERIALIZERS
async def test_hub_stop_says_goodbye_system_shutdown(
    hub: Hub, raw_wamp: RawFactory, serializer: str
) -> None:
    """On hub stop a joined session reads GOODBYE wamp.close.system_shutdown, then the
    close 1001; a transport before HELLO gets the close alone."""
    joined = await raw_wamp(hub, serializer, join=True)
    waiting = await raw_wamp(hub, serializer)
    await hub.stop()
    goodbye = [6, {"message": "server shutting down"}, "wamp.close.system_shutdown"]
    assert await joined.recv() == goodbye
    assert await joined.closed() == 1001
    assert await waiting.closed() == 1001


async def test_autobahn_leaves_with_system_shutdown_on_hub_stop(
    hub: Hub, wamp: WampFactory
) -> None:
    """Autobahn's onLeave sees the reason wamp.close.system_shutdown when the hub stops."""
    session = await wamp(hub, "msgpack")
    await hub.stop()
    details = await wait_for(session.left)
    assert (details.reason, details.message) == (
        "wamp.close.system_shutdown",
        "server shutting down",
    )


async def test_api_disconnect_says_goodbye_killed(make_hub: HubFactory, connect: Connector) -> None:
    """The server API's disconnect of a user: its WAMP session reads GOODBYE
    wamp.close.killed with the API's reason as message (as the session meta API's
    kill), then the API's close code."""
    hub = await make_hub({**api_config(), "auth": hs_auth()})
    ws = await connect(hub, "wamp.2.json", path=f"/?token={mint('ada')}")
    raw = RawWamp(ws, "json")
    assert (await raw.hello())[0] == 2
    await result(hub, "disconnect", {"user": "ada", "code": 4100, "reason": "account closed"})
    assert await raw.recv() == [6, {"message": "account closed"}, "wamp.close.killed"]
    assert await raw.closed() == 4100


@ALL_SERIALIZERS
async def test_api_revoke_says_goodbye_killed(
    make_hub: HubFactory, connect: Connector, serializer: str
) -> None:
    """The server API's revoke of a user: its WAMP session reads GOODBYE
    wamp.close.killed {message: "token revoked"}, then the close 3003; a session of a
    newer token stays."""
    hub = await make_hub({**api_config(), "auth": hs_auth()})
    issued = int(time.time()) - 10
    wire = f"wamp.2.{serializer}"
    old = RawWamp(await connect(hub, wire, path=f"/?token={mint('ada', iat=issued)}"), serializer)
    new = RawWamp(
        await connect(hub, wire, path=f"/?token={mint('ada', iat=issued + 6)}"), serializer
    )
    assert (await old.hello())[0] == 2
    assert (await new.hello())[0] == 2
    await result(hub, "revoke", {"user": "ada", "before": issued + 5})
    assert await old.recv() == [6, {"message": "token revoked"}, "wamp.close.killed"]
    assert await old.closed() == 3003
    assert await new.request([48, 1, {}, "wamp.session.count"]) == [50, 1, {}, [1]]
