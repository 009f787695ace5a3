"""Authorization: who may do what, decided from a session's identity.

Pure functions and tables, no I/O: :class:`Rule` is an
:class:`~hub.config.AccessRule` compiled once, :class:`RpcPermissions` the
``[rpc.permissions]`` table. The ChannelService (channels) and the hub's call
check (RPC, every protocol) are their only users, so a rule holds the same way
whatever the client speaks (docs/security.md, "Authorization").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub.config_section import AccessRule
from hub.handler import Identity

_MISSING: Final = object()


def _key(value: Any) -> tuple[str, Any] | None:
    """A claim value as a set key; None for values no condition can match.

    Booleans get a kind of their own so that true never matches the claim 1
    (nor false 0), as == would have it; 3 and 3.0 stay equal.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return None


def claim_value(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``; a dotted name reaches into nested claims.

    ``realm_access.roles`` is Keycloak's ``{"realm_access": {"roles": [...]}}``.
    A claim whose own name holds a dot is found first.
    """
    value = claims.get(name, _MISSING)
    if value is not _MISSING or "." not in name:
        return value
    current: Any = claims
    for part in name.split("."):
        if not isinstance(current, Mapping):
            return _MISSING
        current = current.get(part, _MISSING)
        if current is _MISSING:
            return _MISSING
    return current


def _accepted(values: list[Any]) -> frozenset[tuple[str, Any]]:
    return frozenset(key for key in map(_key, values) if key is not None)


def _claim_matches(accepted: frozenset[tuple[str, Any]], actual: Any) -> bool:
    if isinstance(actual, list | tuple):
        # A list claim (roles = ["a", "b"]) matches when it holds any accepted value.
        return not accepted.isdisjoint(map(_key, actual))
    return _key(actual) in accepted


class Rule:
    """An :class:`AccessRule` ready to evaluate; every condition given must hold."""

    __slots__ = ("authenticated", "claims", "open", "users")

    def __init__(self, rule: AccessRule) -> None:
        self.users: frozenset[str] | None = frozenset(rule.users) if rule.users else None
        self.claims: tuple[tuple[str, frozenset[tuple[str, Any]]], ...] = tuple(
            (name, _accepted(value if isinstance(value, list) else [value]))
            for name, value in rule.claims.items()
        )
        # Users or claims need an identity as much as authenticated does.
        self.authenticated = rule.authenticated or self.users is not None or bool(self.claims)
        # The empty rule admits everyone; most namespaces have it, so it costs nothing.
        self.open = not self.authenticated

    def admits(self, identity: Identity | None) -> bool:
        if self.open:
            return True
        if identity is None:
            return False
        if self.users is not None and identity.user_id not in self.users:
            return False
        claims = identity.claims
        for name, accepted in self.claims:
            if not _claim_matches(accepted, claim_value(claims, name)):
                return False
        return True


OPEN: Final = Rule(AccessRule())


class _Nobody(Rule):
    """Admits no one: what reading follows in a namespace closed to subscribers."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(AccessRule(authenticated=True))

    def admits(self, identity: Identity | None) -> bool:
        return False


NOBODY: Final[Rule] = _Nobody()


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    # Only "*" is special; dots, slashes and everything else match themselves.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    rule: Rule
    regex: re.Pattern[str]


def is_glob(key: str) -> bool:
    return "*" in key


def glob_matches(pattern: str, name: str) -> bool:
    """Whether a method glob (``"admin.*"``, ``"*.delete"``) matches ``name``.

    ``*`` matches any run of characters, ``.`` and ``/`` included, so
    ``admin.*`` covers ``admin.users.delete``; every other character,
    ``.``, ``?`` and ``[`` included, matches only itself.
    """
    return _glob_regex(pattern).fullmatch(name) is not None


class RpcPermissions:
    """``[rpc.permissions]``: which rule guards which method name.

    An exact key beats every glob; among globs the longest key wins, then the
    one with fewer ``*`` (more literal text), then the first in sort order, so
    the choice never depends on the config's key order. A name no key matches
    is open to all.
    """

    def __init__(self, permissions: Mapping[str, AccessRule]) -> None:
        self._exact: dict[str, tuple[str, Rule]] = {}
        globs: list[_Entry] = []
        for key, rule in permissions.items():
            if is_glob(key):
                globs.append(_Entry(key, Rule(rule), _glob_regex(key)))
            else:
                self._exact[key] = (key, Rule(rule))
        globs.sort(key=lambda entry: (-len(entry.key), entry.key.count("*"), entry.key))
        self._globs: tuple[_Entry, ...] = tuple(globs)
        # Method names are few and called often: remember each one's rule.
        self._cache: dict[str, tuple[str | None, Rule]] = {}
        # Any key at all: without one every method is open, nothing to look up.
        self.guarded = bool(self._exact or self._globs)

    def __bool__(self) -> bool:
        return self.guarded

    def lookup(self, name: str) -> tuple[str | None, Rule]:
        """The key that governs ``name`` (None: no key) and its rule."""
        found = self._cache.get(name)
        if found is not None:
            return found
        found = self._exact.get(name)
        if found is None:
            found = next(
                ((entry.key, entry.rule) for entry in self._globs if entry.regex.fullmatch(name)),
                (None, OPEN),
            )
        # Names come from clients: bound the cache so guessing cannot grow it.
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[name] = found
        return found

    def admits(self, name: str, identity: Identity | None) -> bool:
        return self.lookup(name)[1].admits(identity)

    def reaching(self, name: str, match: str = "exact") -> list[tuple[str | None, Rule]]:
        """The keys and rules guarding the calls a registration could receive.

        ``match`` is WAMP's: an exact name meets its own rule (and that of a
        glob hanging from it, ``admin.*`` for ``admin``); a prefix or
        wildcard pattern meets every key whose names it might share, judged
        on literal prefixes (more than needed, never less): ``admin`` as a
        prefix meets ``admin.*`` and ``admin.reset``; ``.delete`` as a wildcard
        (any first component) meets every key.
        """
        if match == "exact":
            # The name a glob's namespace hangs from ("admin" for "admin.*") is
            # guarded by it too: admins calling it would reach a squatter.
            roots = [
                (entry.key, entry.rule)
                for entry in self._globs
                if entry.key.split("*", 1)[0] in (name + ".", name + "/")
            ]
            return [self.lookup(name), *roots]
        prefix = name
        if match == "wildcard":
            # Up to the first empty (any) component: "a.b..d" reaches what "a.b." may.
            parts = name.split(".")
            fixed = parts[: parts.index("")] if "" in parts else parts
            prefix = ".".join(fixed) + ("." if fixed and len(fixed) < len(parts) else "")
        out: list[tuple[str | None, Rule]] = [
            (key, rule) for key, rule in self._exact.values() if key.startswith(prefix)
        ]
        for entry in self._globs:
            literal = entry.key.split("*", 1)[0]
            if literal.startswith(prefix) or prefix.startswith(literal):
                out.append((entry.key, entry.rule))
        return out
