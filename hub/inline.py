"""Can a function run to completion without ever giving the event loop a turn?

A coroutine function whose own bytecode has no ``await``, ``async with`` or
``async for`` cannot suspend: awaiting it finishes it in the awaiting
coroutine's step. Such RPC methods are answered inline, in the connection's
reader, with no task per request (protocols/jsonrpc/handler.py).
The test is on the function's own code only: a decorator's wrapper that
awaits, a callable object or a partial is "may suspend".
"""

from __future__ import annotations

import dis
import inspect
from collections.abc import Callable
from typing import Any

# Opcodes through which a coroutine gives way (3.11 to 3.13).
_SUSPENDING = frozenset(
    {
        "GET_AWAITABLE",
        "BEFORE_ASYNC_WITH",
        "GET_AITER",
        "GET_ANEXT",
        "SEND",
        "YIELD_VALUE",
        "END_ASYNC_FOR",
        "ASYNC_GEN_WRAP",
        "CALL_INTRINSIC_1",  # 3.12+: the async generator wrapper, among others
    }
)


def never_suspends(func: Callable[..., Any]) -> bool:
    """True when ``func`` is an ``async def`` whose body has no suspension point."""
    if not inspect.iscoroutinefunction(func) or not inspect.isfunction(func):
        return False
    return all(op.opname not in _SUSPENDING for op in dis.get_instructions(func.__code__))
