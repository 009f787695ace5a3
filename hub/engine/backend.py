"""The Backend: one object, chosen once from ``[engine]``, that supplies every store.

Memory (one process), SQLite (one node, durable) and Redis (several nodes)
implement it side by side (``hub/engine/<name>/``); :func:`hub.engine.select.open_backend`
is the one place that picks. Nothing above the engine asks which one runs: a
store a backend cannot offer is ``None`` (no shared MQTT sessions and no
registration directory on one node), and the caller keeps its own in memory.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hub.engine.api_stores import SharedIdempotency, SharedRevocations
    from hub.engine.core import ChannelEngine
    from hub.engine.directory import RegistrationDirectory
    from hub.engine.groups import SharedGroups
    from hub.engine.retained import RetainedStore
    from hub.engine.sessions import SessionJournal, SharedSessions
    from hub.services import Service


class Backend(Protocol):
    name: str
    # This node's fan-out over the backend's broker, history, presence and node bus.
    engine: ChannelEngine
    # What runs the backend's connections or files while the hub runs (a hub
    # service named "engine"); None when there is nothing to run.
    service: Service | None

    def retained(
        self, max_channels: int, *, max_bytes: int = ..., expiry: float | None = None
    ) -> RetainedStore:
        """The store of retained publications (MQTT's retain flag).

        At most ``max_channels`` of them and ``max_bytes`` of payload, each kept
        ``expiry`` seconds (unset: until replaced), on every engine.
        """

    def shared_sessions(
        self,
        *,
        expiry: float | None,
        max_queued: int,
        max_queued_bytes: int = ...,
        max_offline: int | None = None,
    ) -> SharedSessions | None:
        """MQTT sessions shared by the nodes; None: sessions live in this process."""

    def session_journal(self) -> SessionJournal | None:
        """Where each change of an MQTT persistent session is written; None: not kept."""

    def unit(self, *, wait: bool = True, atomic: bool = True) -> AbstractAsyncContextManager[None]:
        """Writes inside are stored together (and, with ``wait``, before the block ends).

        Not ``atomic``: each write may be stored on its own, as soon as it is
        made (an MQTT QoS 1 publication: a crash between two writes makes the
        client send it again, which QoS 1 allows); ``wait`` still holds.

        An acknowledgement sent after the block is true: what it acknowledges is
        stored. A no-op where nothing is written (memory) or writes are not
        grouped (Redis: each command is its own).
        """

    def directory(self) -> RegistrationDirectory | None:
        """The WAMP registration directory of a cluster; None on one node."""

    def shared_groups(self) -> SharedGroups:
        """Which node delivers each message of a shared subscription group (MQTT ``$share``)."""

    def idempotency(self, *, window: float) -> SharedIdempotency | None:
        """The server API's idempotency keys, kept ``window`` seconds; None: per node."""

    def revocations(self, *, ttl: float) -> SharedRevocations | None:
        """The server API's revocations, each kept ``ttl`` seconds; None: per node."""

    async def close(self) -> None: ...
