"""Methods that cannot suspend are answered without a task (hub.inline, hub.rpc)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub import CallContext, Hub, RpcError
from hub.inline import never_suspends
from hub.rpc import RpcMethod


async def plain(value: Any = None) -> Any:
    return value


async def awaits() -> None:
    await asyncio.sleep(0)


async def times_out(lock: asyncio.Lock) -> None:
    # Entering a context manager is a suspension point, whatever its body does.
    async with lock:
        return None


async def iterates(source: Any) -> None:
    async for _ in source:
        pass


async def defines_an_awaiting_inner() -> Any:
    async def inner() -> None:
        await asyncio.sleep(0)

    return inner


def sync() -> int:
    return 1


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (plain, True),
        (defines_an_awaiting_inner, True),
        (awaits, False),
        (times_out, False),
        (iterates, False),
        (sync, False),
    ],
)
def test_never_suspends_reads_the_functions_own_code(func: Any, expected: bool) -> None:
    """await, async with and async for make a function 'may suspend'; an inner def does not."""
    assert never_suspends(func) is expected


async def typed(a: int, b: str = "x", c: Any = None) -> Any:
    return a, b, c


@pytest.mark.parametrize(
    "params",
    [
        [1],
        [1, "y", {"k": [1]}],
        {"a": 1},
        {"a": 1, "c": [2]},
        {"a": "1"},  # pydantic converts it; the shortcut leaves it to pydantic
        {"a": True},
        [1.0],
        [],
        [1, 2],
        [1, "y"],
        {"a": 1, "z": 2},
        [1, 2, 3, 4],
        {},
        None,
        "text",
    ],
)
def test_shortcut_binding_agrees_with_pydantic(params: Any) -> None:
    """Params bound without pydantic give exactly pydantic's arguments or pydantic's error."""
    method = RpcMethod("typed", typed)

    def outcome(bind: Any) -> Any:
        try:
            return ("ok", bind(params))
        except RpcError as exc:
            return ("error", exc.code, exc.data)

    fast = outcome(method.bind)
    method._trivial = None  # the pydantic-only path
    assert fast == outcome(method.bind)


async def test_inline_methods_keep_errors_and_order(hub: Hub, jsonrpc) -> None:
    """A method run inline answers like any other: results, invalid params, its own failures."""
    release = asyncio.Event()

    @hub.rpc("slow")
    async def slow() -> str:
        await release.wait()
        return "slow"

    @hub.rpc("quick")
    async def quick(n: int) -> int:
        if n < 0:
            raise RpcError(-32000, "negative")
        if n == 13:
            raise ValueError("unlucky")
        release.set()
        return n * 2

    peer = await jsonrpc(hub)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "slow"})
    await peer.send({"jsonrpc": "2.0", "id": 2, "method": "quick", "params": [21]})
    assert await peer.recv() == {"jsonrpc": "2.0", "id": 2, "result": 42}
    assert await peer.recv() == {"jsonrpc": "2.0", "id": 1, "result": "slow"}
    assert (await peer.error("quick", [-1]))["code"] == -32000
    assert (await peer.error("quick", ["many"]))["code"] == -32602
    failed = await peer.error("quick", [13])
    assert failed["code"] == -32603
    assert failed["message"] == "Internal error"
    # A notification to an inline method gets no reply; the next call does.
    await peer.send({"jsonrpc": "2.0", "method": "quick", "params": [1]})
    assert await peer.call("quick", [2]) == 4


async def test_inline_methods_still_answer_to_permissions(make_hub, jsonrpc) -> None:
    """[rpc.permissions] refuses a method that could run inline as any other (-32011)."""
    hub = await make_hub({"rpc": {"permissions": {"secret.*": {"users": ["alice"]}}}})

    @hub.rpc("secret.value")
    async def value(ctx: CallContext) -> str:
        return "42"

    peer = await jsonrpc(hub)
    refused = await peer.error("secret.value")
    assert refused["code"] == -32011


async def test_a_removed_inline_method_is_gone(hub: Hub, jsonrpc) -> None:
    """The table of inline methods follows registrations: removed, a method is not found."""

    @hub.rpc("brief")
    async def brief() -> str:
        return "here"

    assert hub.methods.inline["brief"].name == "brief"
    peer = await jsonrpc(hub)
    assert await peer.call("brief") == "here"
    hub.methods.remove("brief")
    assert "brief" not in hub.methods.inline
    assert (await peer.error("brief"))["code"] == -32601
