"""Stores the server API keeps through the backend, so that every node sees them.

A backend on one node offers neither (``None``): the API keeps them in this
process, bounded (hub/api/idempotency.py, hub/auth/revocations.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# What an idempotent operation returns: a JSON object, stored as it is.
JsonResult = dict[str, Any]


class SharedIdempotency(Protocol):
    async def run(self, key: str, operation: Callable[[], Awaitable[JsonResult]]) -> JsonResult:
        """The result of ``operation``, run once per key over every node within the window."""


class SharedRevocations(Protocol):
    async def revoke(self, user: str, before: float) -> None:
        """Keep ``user``'s revocation (tokens issued before ``before``); the later time wins."""

    async def load(self) -> dict[str, float]:
        """Every revocation still kept: user -> time before which its tokens are refused."""
