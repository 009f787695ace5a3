"""A realm's registrations and the spec's rule for which one a call goes to.

Exact beats prefix, the longest prefix beats shorter ones, and among wildcard
patterns the one matching the longest runs of components before each wildcard
wins (``a1.b2.c3..e5`` over ``a1.b2..d4.e5`` for ``a1.b2.c3.d4.e5``). Prefixes
are plain string prefixes here, as the spec defines them for registrations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocols.wamp.peer import Peer, random_id

if TYPE_CHECKING:
    from hub.rpc import RemoteMethod


@dataclass(eq=False, slots=True)
class Registration:
    procedure: str
    match: str
    callee: Peer
    # REGISTER.Options.disclose_caller: the callee always learns who calls.
    disclose_caller: bool = False
    id: int = field(default_factory=random_id)
    # The entry serving this procedure to JSON-RPC and channels clients.
    remote: RemoteMethod | None = None


def wildcard_rank(pattern: str) -> tuple[int, ...]:
    """Lengths of the runs of fixed components: compared, longer runs first win."""
    runs = [0]
    for component in pattern.split("."):
        if component:
            runs[-1] += 1
        else:
            runs.append(0)
    return tuple(runs)


def wildcard_matches(pattern: str, procedure: str) -> bool:
    wanted = pattern.split(".")
    given = procedure.split(".")
    return len(wanted) == len(given) and all(
        not want or want == got for want, got in zip(wanted, given, strict=True)
    )


def pattern_matches(match: str, pattern: str, procedure: str) -> bool:
    """Whether a "prefix" or "wildcard" registration of ``pattern`` covers ``procedure``."""
    if match == "prefix":
        return procedure.startswith(pattern)
    return wildcard_matches(pattern, procedure)


def pattern_precedence(match: str, pattern: str) -> tuple[int, ...]:
    """The spec's precedence among pattern registrations covering one call: the highest wins.

    Any prefix beats any wildcard; the longest prefix, or the wildcard with the
    longest runs of fixed components, wins among its kind.
    """
    if match == "prefix":
        return (2, len(pattern))
    return (1, *wildcard_rank(pattern))


class RegistrationTable:
    def __init__(self) -> None:
        self._by_policy: dict[str, dict[str, Registration]] = {
            "exact": {},
            "prefix": {},
            "wildcard": {},
        }
        self._by_id: dict[int, Registration] = {}

    def find(self, procedure: str, match: str) -> Registration | None:
        """The registration of exactly this procedure and policy."""
        return self._by_policy[match].get(procedure)

    def add(self, registration: Registration) -> None:
        table = self._by_policy[registration.match]
        if registration.procedure in table:
            raise KeyError(registration.procedure)
        table[registration.procedure] = registration
        self._by_id[registration.id] = registration

    def remove(self, registration: Registration) -> None:
        self._by_id.pop(registration.id, None)
        table = self._by_policy[registration.match]
        if table.get(registration.procedure) is registration:
            del table[registration.procedure]

    def get(self, registration_id: int) -> Registration | None:
        return self._by_id.get(registration_id)

    def of_callee(self, callee: Peer) -> list[Registration]:
        return [r for r in self._by_id.values() if r.callee is callee]

    def route(self, procedure: str) -> Registration | None:
        """The one registration a call to ``procedure`` goes to, by the spec's precedence."""
        exact = self._by_policy["exact"].get(procedure)
        if exact is not None:
            return exact
        covering = [
            r
            for match in ("prefix", "wildcard")
            for pattern, r in self._by_policy[match].items()
            if pattern_matches(match, pattern, procedure)
        ]
        if not covering:
            return None
        return max(covering, key=lambda r: pattern_precedence(r.match, r.procedure))
