"""Per-request tasks, started eagerly where the running Python can (3.12+).

A request task started by ``asyncio.eager_task_factory`` runs its first step
at creation, with itself as the current task, so a request that finishes
without waiting (most RPC calls) costs no trip through the event loop. On 3.11
there is no way to do that with the new task as the current task (an
``asyncio.timeout`` inside a method would arm against the connection's task),
so the task is scheduled as usual.

Callers must not rely on the task not having run yet: when ``start_task``
returns, the task may be done (its done callbacks are then scheduled with
``call_soon``, as for any done future).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_EagerFactory = Callable[[asyncio.AbstractEventLoop, Coroutine[Any, Any, Any]], asyncio.Task[Any]]

# Public in asyncio since 3.12; looked up so the code type-checks for 3.11.
_eager_factory: _EagerFactory | None = getattr(asyncio, "eager_task_factory", None)

EAGER = _eager_factory is not None


def start_task(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task for ``coroutine`` on the running loop, eager when Python allows."""
    loop = asyncio.get_running_loop()
    if _eager_factory is None:
        return loop.create_task(coroutine)
    return _eager_factory(loop, coroutine)
