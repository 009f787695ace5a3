"""The ``[auth.basic]`` user table: argon2id password hashes, checked off the event loop.

Hashes come from the config (``users``) and from a ``users_file`` of
``user:hash`` lines that :meth:`UserTable.reload` re-reads (SIGHUP). Checking
a password costs tens of milliseconds and tens of MiB by design, so it runs in
a worker thread, a few at a time: a flood of logins queues instead of blocking
the loop or exhausting memory.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from hub.config import BasicAuthConfig
from hub.errors import HubError

# argon2-cffi's defaults: argon2id, RFC 9106's low-memory profile.
_HASHER = PasswordHasher()
# Checked for unknown users, so a wrong user name costs what a wrong password
# does and response times do not tell which users exist.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$eU7hw/vGi3645PHZiJr4Dg"
    "$7DR8Cl6rWLsCR8BqsQQnZkaDfjCoUcFWhUCaZxd1Gh4"
)


def dummy_hash(hashes: Iterable[str]) -> str:
    """A hash to check unknown users against, as costly as the table's own.

    A table made with cheaper (or dearer) parameters than argon2-cffi's
    defaults would otherwise tell unknown users apart by time all the same:
    the dummy takes the parameters most of the table's hashes use.
    """
    counted: Counter[tuple[int, ...]] = Counter()
    found: dict[tuple[int, ...], Parameters] = {}
    for hashed in hashes:
        try:
            params = extract_parameters(hashed)
        except InvalidHashError:
            continue
        key = (
            params.time_cost,
            params.memory_cost,
            params.parallelism,
            params.hash_len,
            params.salt_len,
            params.version,
        )
        counted[key] += 1
        found.setdefault(key, params)
    if not counted:
        return _DUMMY_HASH
    params = found[counted.most_common(1)[0][0]]
    return PasswordHasher.from_parameters(params).hash(secrets.token_urlsafe(16))


class UsersFileError(HubError, ValueError):
    """A users file that cannot be used (at start, or on reload)."""


def hash_password(password: str) -> str:
    """An argon2id hash for ``[auth.basic] users`` or a users file."""
    return _HASHER.hash(password)


def _check(hashed: str, password: bytes) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


class UserTable:
    def __init__(self, config: BasicAuthConfig) -> None:
        self.config = config
        self._users = self._load()
        self._dummy = dummy_hash(self._users.values())
        # Enough parallel checks to use the cores, few enough to bound memory.
        self._slots = asyncio.Semaphore(max(2, os.cpu_count() or 1))

    def reload(self) -> None:
        """Re-read the users file; raises (keeping the old table) on error."""
        users = self._load()
        self._dummy = dummy_hash(users.values())
        self._users = users

    def __contains__(self, user: str) -> bool:
        return user in self._users

    def __len__(self) -> int:
        return len(self._users)

    async def check(self, user: str, password: bytes) -> bool:
        """True when ``password`` is the user's; the hash is checked in a thread."""
        hashed = self._users.get(user)
        async with self._slots:
            matches = await asyncio.to_thread(_check, hashed or self._dummy, password)
        return matches and hashed is not None

    def _load(self) -> dict[str, str]:
        users = dict(self.config.users)
        path = self.config.users_file
        if path is not None:
            for user, hashed in _read_users_file(path).items():
                if user in users:
                    raise UsersFileError(f"{path}: user {user!r} is also in auth.basic.users")
                users[user] = hashed
        return users


def _read_users_file(path: Path) -> Mapping[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsersFileError(f"{path}: cannot read users file: {reason}") from None
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon or not user:
            raise UsersFileError(f"{path}:{number}: expected 'user:hash'")
        if not hashed.startswith("$argon2"):
            raise UsersFileError(
                f"{path}:{number}: the password of {user!r} is not an argon2 hash "
                "(make one with `wshub hash-password`)"
            )
        if user in users:
            raise UsersFileError(f"{path}:{number}: user {user!r} appears twice")
        users[user] = hashed
    return users
