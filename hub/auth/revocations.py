"""Revoked tokens: per user, tokens issued before a time are refused.

Set by the server API's ``revoke`` on every node. Bounded in users (the oldest
revocation is forgotten first); kept in memory, so a node started after the
revocation does not know of it (docs/api.md).
"""

from __future__ import annotations

from collections import OrderedDict

from hub.handler import Identity

MAX_REVOKED_USERS = 100_000


class Revocations:
    def __init__(self, max_users: int = MAX_REVOKED_USERS) -> None:
        self._max_users = max_users
        self._before: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._before)

    def revoke(self, user: str, before: float) -> None:
        """Refuse ``user``'s tokens issued before ``before`` (Unix time); the later time wins."""
        current = self._before.pop(user, None)
        self._before[user] = before if current is None else max(current, before)
        while len(self._before) > self._max_users:
            self._before.popitem(last=False)

    def revoked(self, identity: Identity) -> bool:
        """Whether the identity's token was issued before its user's revocation.

        A token without ``iat`` cannot prove it is newer, so it counts as revoked.
        """
        before = self._before.get(identity.user_id)
        if before is None:
            return False
        issued = identity.claims.get("iat")
        return not isinstance(issued, int | float) or issued < before
