"""The session meta API's kill procedures: wamp.session.kill, kill_by_authid,
kill_by_authrole and kill_all, their arguments, their answers and who may call them."""

from __future__ import annotations

from typing import Any

from hub import Hub
from tests.auth_helpers import hs_auth, mint
from tests.conftest import Connector, HubFactory
from tests.protocols.wamp.conftest import ALL_SERIALIZERS, RawWamp, WampFactory, wait_for

CALL, RESULT, ERROR, GOODBYE = 48, 50, 8, 6
# Operators: the viewers wamp.session_details_access admits may kill too.
OPERATORS: dict[str, Any] = {
    "wamp": {"session_details_access": {"claims": {"role": "admin"}}},
    "auth": hs_auth(),
}


async def joined(
    hub: Hub, connect: Connector, user: str | None, serializer: str = "json", **claims: Any
) -> RawWamp:
    """A raw WAMP session of realm1, identified at the handshake by a token for ``user``."""
    path = "/" if user is None else f"/?token={mint(user, **claims)}"
    raw = RawWamp(await connect(hub, f"wamp.2.{serializer}", path=path), serializer)
    assert (await raw.hello())[0] == 2
    return raw


async def call(raw: RawWamp, procedure: str, *args: Any, **kwargs: Any) -> list[Any]:
    """CALL ``procedure``; the answer (RESULT or ERROR)."""
    request = next(raw.ids)
    answer = await raw.request([CALL, request, {}, procedure, list(args), kwargs])
    assert answer[0] in (RESULT, ERROR), answer
    assert answer[1 if answer[0] == RESULT else 2] == request, answer
    return answer


def error_uri(answer: list[Any]) -> str:
    assert answer[0] == ERROR, answer
    return str(answer[4])


async def killed(raw: RawWamp) -> tuple[list[Any], int | None]:
    """The GOODBYE a killed session reads, and the close code after it."""
    return await raw.recv(), await raw.closed()


@ALL_SERIALIZERS
async def test_kill_one_session_with_reason_and_message(
    make_hub: HubFactory, connect: Connector, serializer: str
) -> None:
    """kill: the session reads GOODBYE with the given reason and {message}, then the
    close 1000; the caller's RESULT has no args; without kwargs the reason is
    wamp.close.killed and the details are empty."""
    hub = await make_hub(OPERATORS)
    root = await joined(hub, connect, "root", serializer, role="admin")
    ada = await joined(hub, connect, "ada", serializer)
    bob = await joined(hub, connect, "bob", serializer)
    answer = await call(
        root, "wamp.session.kill", ada.session_id, reason="com.example.kicked", message="bye"
    )
    assert answer == [RESULT, answer[1], {}]
    assert await killed(ada) == ([GOODBYE, {"message": "bye"}, "com.example.kicked"], 1000)
    assert (await call(root, "wamp.session.kill", bob.session_id))[0] == RESULT
    assert await killed(bob) == ([GOODBYE, {}, "wamp.close.killed"], 1000)
    assert (await call(root, "wamp.session.count"))[3] == [1]


async def test_kill_errors(make_hub: HubFactory, connect: Connector) -> None:
    """kill of the caller's own session or an unknown id: wamp.error.no_such_session; a
    reason that is no URI: wamp.error.invalid_uri; a session id that is no integer, a
    message that is no string: wamp.error.invalid_argument. Nobody was killed."""
    hub = await make_hub(OPERATORS)
    root = await joined(hub, connect, "root", role="admin")
    ada = await joined(hub, connect, "ada")
    kill = "wamp.session.kill"
    assert error_uri(await call(root, kill, root.session_id)) == "wamp.error.no_such_session"
    assert error_uri(await call(root, kill, 12345)) == "wamp.error.no_such_session"
    assert error_uri(await call(root, kill)) == "wamp.error.invalid_argument"
    assert error_uri(await call(root, kill, str(ada.session_id))) == "wamp.error.invalid_argument"
    for reason in ("", "not a uri", 7):
        answer = await call(root, kill, ada.session_id, reason=reason)
        assert error_uri(answer) == "wamp.error.invalid_uri"
    answer = await call(root, kill, ada.session_id, message=["no"])
    assert error_uri(answer) == "wamp.error.invalid_argument"
    answer = await call(root, "wamp.session.kill_by_authid", 3)
    assert error_uri(answer) == "wamp.error.invalid_argument"
    assert (await call(root, "wamp.session.count"))[3] == [2]
    assert await ada.silent_for(0.1)


async def test_kill_by_authid_spares_the_caller(make_hub: HubFactory, connect: Connector) -> None:
    """kill_by_authid: every other session of that authid reads the GOODBYE, the caller's
    own session with the same authid stays, other users stay; RESULT [[ids]]."""
    hub = await make_hub(OPERATORS)
    ada_admin = await joined(hub, connect, "ada", role="admin")
    ada_tab = await joined(hub, connect, "ada")
    ada_phone = await joined(hub, connect, "ada", "msgpack")
    bob = await joined(hub, connect, "bob")
    answer = await call(ada_admin, "wamp.session.kill_by_authid", "ada", message="sign in again")
    assert answer[0] == RESULT
    assert sorted(answer[3][0]) == sorted([ada_tab.session_id, ada_phone.session_id])
    goodbye = [GOODBYE, {"message": "sign in again"}, "wamp.close.killed"]
    assert await killed(ada_tab) == (goodbye, 1000)
    assert await killed(ada_phone) == (goodbye, 1000)
    remaining = (await call(ada_admin, "wamp.session.list"))[3][0]
    assert sorted(remaining) == sorted([ada_admin.session_id, bob.session_id])
    # Nobody left with that authid: an empty list, not an error.
    assert (await call(ada_admin, "wamp.session.kill_by_authid", "nobody"))[3] == [[]]


async def test_kill_by_authrole_and_kill_all(make_hub: HubFactory, connect: Connector) -> None:
    """kill_by_authrole ends the sessions of that role but the caller's, RESULT [count];
    kill_all ends every other session of the realm."""
    hub = await make_hub(OPERATORS)
    root = await joined(hub, connect, "root", role="admin", authrole="staff")
    staff = await joined(hub, connect, "eve", authrole="staff")
    users = [await joined(hub, connect, name) for name in ("ada", "bob")]
    answer = await call(root, "wamp.session.kill_by_authrole", "staff", reason="wamp.close.normal")
    assert answer[3] == [1]
    assert await killed(staff) == ([GOODBYE, {}, "wamp.close.normal"], 1000)
    assert (await call(root, "wamp.session.kill_all"))[3] == [2]
    for user in users:
        assert await killed(user) == ([GOODBYE, {}, "wamp.close.killed"], 1000)
    assert (await call(root, "wamp.session.count"))[3] == [1]


async def test_kill_needs_the_operator_rule_and_rpc_permissions(
    make_hub: HubFactory, connect: Connector
) -> None:
    """A caller wamp.session_details_access does not admit gets wamp.error.not_authorized
    for every kill procedure, whatever the arguments, and kills nobody; so does an
    admitted one that [rpc.permissions] refuses "wamp.session.kill*"."""
    hub = await make_hub(
        {
            **OPERATORS,
            "rpc": {"permissions": {"wamp.session.kill*": {"users": ["root"]}}},
        }
    )
    bob = await joined(hub, connect, "bob")
    anonymous = await joined(hub, connect, None)
    other_admin = await joined(hub, connect, "mallory", role="admin")
    ada = await joined(hub, connect, "ada")
    for caller in (bob, anonymous, other_admin):
        for procedure, args in (
            ("wamp.session.kill", [ada.session_id]),
            ("wamp.session.kill", ["not an id"]),
            ("wamp.session.kill_by_authid", ["ada"]),
            ("wamp.session.kill_by_authrole", ["user"]),
            ("wamp.session.kill_all", []),
        ):
            answer = await call(caller, procedure, *args)
            assert error_uri(answer) == "wamp.error.not_authorized", (caller, procedure)
    assert await ada.silent_for(0.1)
    root = await joined(hub, connect, "root", role="admin")
    assert (await call(root, "wamp.session.kill", ada.session_id))[0] == RESULT
    assert (await killed(ada))[0] == [GOODBYE, {}, "wamp.close.killed"]


async def test_default_hub_lets_nobody_kill(make_hub: HubFactory, connect: Connector) -> None:
    """Without wamp.session_details_access nobody may kill, though the other meta
    procedures stay open."""
    hub = await make_hub()
    one = await joined(hub, connect, None)
    two = await joined(hub, connect, None)
    answer = await call(one, "wamp.session.kill", two.session_id)
    assert error_uri(answer) == "wamp.error.not_authorized"
    assert (await call(one, "wamp.session.count"))[3] == [2]


async def test_autobahn_killed_session_leaves_with_the_reason(
    make_hub: HubFactory, connect: Connector, wamp: WampFactory
) -> None:
    """An Autobahn|Python session killed by an operator sees the reason and message in
    onLeave; its on_leave meta event reaches the others."""
    hub = await make_hub(OPERATORS)
    root = await joined(hub, connect, "root", role="admin")
    await root.request([32, 1, {}, "wamp.session.on_leave"])
    session = await wamp(hub, "cbor")
    session_id = session.session_id
    await root.send([CALL, 7, {}, "wamp.session.kill", [session_id], {"message": "maintenance"}])
    # The session has left when the kill is answered: its on_leave comes first.
    event, answer = await root.recv(), await root.recv()
    assert (event[0], event[4][0]) == (36, session_id)
    assert answer == [RESULT, 7, {}]
    details = await wait_for(session.left)
    assert (details.reason, details.message) == ("wamp.close.killed", "maintenance")
    await wait_for(session.disconnected)
