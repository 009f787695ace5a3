"""User hooks may be sync or async: one helper to call either."""

from __future__ import annotations

import inspect
from typing import Any


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first if a hook returned an awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value
