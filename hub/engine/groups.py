"""Which node delivers each message of a shared subscription group: the interface, and one node's.

A shared group (MQTT's ``$share/<group>/<filter>``) may have members on every
node, and every node holding members receives every message of the filter.
Exactly one of those nodes must hand each message to one of its members. A
node says how many members of a group it holds (:meth:`SharedGroups.members`)
and offers each message it receives (:meth:`SharedGroups.offer`); the
backend calls ``deliver`` on one node only.

On one node (memory, SQLite) that node delivers everything: :class:`LocalGroups`.
The Redis engine's (:mod:`hub.engine.redis.groups`) claims each message in
Redis for one live node, in turn, weighted by its members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hub.engine.base import Publication

Deliver = Callable[[Publication], bool]
"""Hand a message to one of this node's members; False when none could take it."""


class SharedGroups(Protocol):
    def members(self, group: str, count: int) -> None:
        """This node holds ``count`` members of ``group`` now (0: none). Must not block."""

    def offer(self, group: str, publication: Publication, deliver: Deliver) -> None:
        """Call ``deliver(publication)`` (maybe later) if this node is the one to deliver it.

        When ``deliver`` answers False (this node's members left meanwhile), a
        backend with other nodes passes the message to another node with members.
        """

    async def left(self, group: str) -> None:
        """Return once other nodes no longer pick this one for ``group`` (its count is 0).

        Until then this node must keep receiving the group's messages, so that
        it can hand back those picked for it.
        """

    async def close(self) -> None:
        """This node leaves every group (the hub stops)."""


class LocalGroups:
    """One node: every member is here, so this node delivers every message, at once."""

    def members(self, group: str, count: int) -> None:
        pass

    def offer(self, group: str, publication: Publication, deliver: Deliver) -> None:
        deliver(publication)

    async def left(self, group: str) -> None:
        pass

    async def close(self) -> None:
        pass
