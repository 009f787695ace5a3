"""The session meta API's kill procedures: ``wamp.session.kill``, ``.kill_by_authid``,
``.kill_by_authrole`` and ``.kill_all`` (WAMP advanced profile, Session Meta API).

Each ends other sessions of the caller's realm on this node with GOODBYE
(``reason``, default ``wamp.close.killed``; ``{"message": message}`` when given),
then closes their transports. The caller's own session is never among them.
Only a caller that ``wamp.session_details_access`` admits may kill (unset: nobody),
on top of ``[rpc.permissions]`` checked for every CALL: ending others' sessions
is an operator's act, at least as much as seeing who they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from protocols.wamp.errors import (
    INVALID_ARGUMENT,
    INVALID_URI,
    KILLED,
    NO_SUCH_SESSION,
    NOT_AUTHORIZED,
    WampError,
)
from protocols.wamp.uri import is_valid_uri

if TYPE_CHECKING:
    from protocols.wamp.peer import Peer
    from protocols.wamp.realm import Realm

KILL: Final = "wamp.session.kill"
KILL_BY_AUTHID: Final = "wamp.session.kill_by_authid"
KILL_BY_AUTHROLE: Final = "wamp.session.kill_by_authrole"
KILL_ALL: Final = "wamp.session.kill_all"
PROCEDURES: Final = frozenset({KILL, KILL_BY_AUTHID, KILL_BY_AUTHROLE, KILL_ALL})


def _goodbye(kwargs: dict[str, Any] | None) -> tuple[str, str | None]:
    """The GOODBYE's reason and message from the call's keyword arguments."""
    kwargs = kwargs or {}
    reason = kwargs.get("reason", KILLED)
    if not is_valid_uri(reason):
        raise WampError(INVALID_URI, f"reason must be a valid non-empty URI, not {reason!r}")
    message = kwargs.get("message")
    if message is not None and not isinstance(message, str):
        raise WampError(INVALID_ARGUMENT, "message must be a string")
    return reason, message


def _string_arg(args: list[Any] | None, name: str) -> str:
    value = args[0] if args else None
    if not isinstance(value, str):
        raise WampError(INVALID_ARGUMENT, f"{name} must be a string")
    return value


async def kill_call(
    realm: Realm,
    caller: Peer,
    procedure: str,
    args: list[Any] | None,
    kwargs: dict[str, Any] | None,
) -> list[Any] | None:
    """Run one kill procedure for ``caller``: the RESULT's args (None: no args)."""
    # Refused before the arguments are looked at: a refusal tells nothing of the realm.
    if not realm.may_kill(caller):
        raise WampError(NOT_AUTHORIZED, f"calling {procedure!r} is not authorized")
    reason, message = _goodbye(kwargs)
    others = [peer for peer in realm.sessions.values() if peer is not caller]
    if procedure == KILL:
        session_id = args[0] if args else None
        if not isinstance(session_id, int) or isinstance(session_id, bool):
            raise WampError(INVALID_ARGUMENT, "session must be a session id")
        # The caller's own id is no *other* session: no_such_session, as the spec says.
        targets = [peer for peer in others if peer.session_id == session_id]
        if not targets:
            raise WampError(NO_SUCH_SESSION, f"no session {session_id!r}")
    elif procedure == KILL_BY_AUTHID:
        authid = _string_arg(args, "authid")
        targets = [peer for peer in others if peer.authid == authid]
    elif procedure == KILL_BY_AUTHROLE:
        authrole = _string_arg(args, "authrole")
        targets = [peer for peer in others if peer.authrole == authrole]
    else:
        targets = others
    killed = [peer.session_id for peer in targets]
    for peer in targets:
        await peer.kill(reason, message)
    if procedure == KILL:
        return None
    # kill_by_authid answers the killed sessions' ids, the others their count (the spec).
    return [killed] if procedure == KILL_BY_AUTHID else [len(killed)]
