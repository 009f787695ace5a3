"""Which node's callee serves a WAMP procedure: the interface of a cluster's registration directory.

Only a backend of several nodes has one (:meth:`Backend.directory`); on one
node the router's own table is the whole truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Entry:
    """A registration another node (or this one) announced."""

    match: str
    procedure: str
    node: str
    registration: int


class RegistrationDirectory(Protocol):
    node_id: str

    async def claim(self, realm: str, match: str, procedure: str, registration: int) -> str | None:
        """Announce a registration of this node; the node holding it already, if alive."""

    async def release(self, realm: str, match: str, procedure: str, registration: int) -> None: ...

    async def exact(self, realm: str, procedure: str) -> Entry | None:
        """The live exact registration of ``procedure`` in the cluster, if any."""

    async def patterns(self, realm: str) -> list[Entry]:
        """Every live prefix and wildcard registration of the realm."""
