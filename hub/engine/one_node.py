"""What a backend serving one node answers for the stores that span nodes.

Memory and SQLite both run on one node: no shared MQTT sessions, no
registration directory, no cluster-wide API stores (the caller keeps its own
in memory), and a shared subscription group delivers every message itself.
"""

from __future__ import annotations

from hub.engine.api_stores import SharedIdempotency, SharedRevocations
from hub.engine.directory import RegistrationDirectory
from hub.engine.groups import LocalGroups, SharedGroups
from hub.engine.sessions import SharedSessions


class OneNodeStores:
    """The cross-node stores of a one-node backend: none, or the local stand-in."""

    def shared_sessions(
        self,
        *,
        expiry: float | None,
        max_queued: int,
        max_queued_bytes: int = 1024 * 1024,
        max_offline: int | None = None,
    ) -> SharedSessions | None:
        return None

    def directory(self) -> RegistrationDirectory | None:
        return None

    def shared_groups(self) -> SharedGroups:
        # One node: it delivers every message of its groups.
        return LocalGroups()

    def idempotency(self, *, window: float) -> SharedIdempotency | None:
        # One node: the API's own bounded store is the whole truth.
        return None

    def revocations(self, *, ttl: float) -> SharedRevocations | None:
        return None
