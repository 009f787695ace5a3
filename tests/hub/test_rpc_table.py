"""The RPC method table, exercised over a real JSON-RPC connection."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from hub import CallContext, Hub, RpcError
from hub.rpc import MethodTable


class Point(BaseModel):
    x: float
    y: float


@pytest.fixture
async def peer(hub: Hub, jsonrpc) -> Any:
    """A JSON-RPC client of ``hub``, which serves a few typed methods."""

    @hub.rpc("math.add")
    async def add(a: int, b: int = 10) -> int:
        return a + b

    @hub.rpc("geo.mirror")
    def mirror(point: Point) -> Point:
        return Point(x=point.y, y=point.x)

    @hub.rpc("geo.line")
    async def line(n: int) -> list[Point]:
        return [Point(x=i, y=2 * i) for i in range(n)]

    return await jsonrpc(hub)


async def test_sync_methods_run_in_a_worker_thread(hub: Hub, peer) -> None:
    """A sync function runs off the event loop's thread, so blocking cannot stall the hub."""

    @hub.rpc("thread.sync")
    def in_sync() -> int:
        return threading.get_ident()

    @hub.rpc("thread.async")
    async def in_async() -> int:
        return threading.get_ident()

    @hub.rpc("thread.inline", run_in_thread=False)
    def inline() -> int:
        return threading.get_ident()

    loop_thread = threading.get_ident()
    assert await peer.call("thread.sync") != loop_thread
    assert await peer.call("thread.async") == loop_thread
    assert await peer.call("thread.inline") == loop_thread


async def test_blocking_sync_method_does_not_block_others(hub: Hub, peer) -> None:
    """While a sync method blocks its thread, other requests on the connection are answered."""
    release = threading.Event()

    @hub.rpc("block")
    def block() -> str:
        assert release.wait(5)
        return "released"

    await peer.send({"jsonrpc": "2.0", "id": "slow", "method": "block"})
    assert await peer.call("math.add", [1, 2]) == 3
    release.set()
    assert (await peer.recv())["result"] == "released"


async def test_params_by_position_and_by_name(peer) -> None:
    """Params may be an array (by position) or an object (by name), with defaults filled in."""
    assert await peer.call("math.add", [1, 2]) == 3
    assert await peer.call("math.add", {"b": 2, "a": 1}) == 3
    assert await peer.call("math.add", [1]) == 11
    assert await peer.call("math.add", {"a": 1}) == 11


async def test_too_many_positional_params(peer) -> None:
    """More positional params than the function takes is -32602."""
    error = await peer.error("math.add", [1, 2, 3])
    assert error["code"] == -32602
    assert error["message"] == "Invalid params"
    assert error["data"][0]["type"] == "too_many_arguments"


@pytest.mark.parametrize(
    ("params", "loc", "kind"),
    [
        ([1, "two"], ["b"], "int_parsing"),
        ({"a": 1.5}, ["a"], "int_from_float"),
        ({"b": 1}, ["a"], "missing"),
        ({"a": 1, "c": 3}, ["c"], "extra_forbidden"),
        (None, ["a"], "missing"),
    ],
)
async def test_invalid_params_carry_pydantic_detail(peer, params, loc, kind) -> None:
    """Wrong, missing or unknown params are -32602 with pydantic's loc and type in ``data``."""
    error = await peer.error("math.add", params)
    assert error["code"] == -32602
    assert [{k: d[k] for k in ("loc", "type")} for d in error["data"]] == [
        {"loc": loc, "type": kind}
    ]
    assert error["data"][0]["msg"]


async def test_pydantic_model_params_and_results(peer) -> None:
    """Model params are validated from JSON objects; model results are serialized."""
    assert await peer.call("geo.mirror", [{"x": 1, "y": 2.5}]) == {"x": 2.5, "y": 1.0}
    assert await peer.call("geo.line", [2]) == [{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 2.0}]
    error = await peer.error("geo.mirror", {"point": {"x": "left", "y": 1}})
    assert error["code"] == -32602
    assert error["data"][0]["loc"] == ["point", "x"]
    assert error["data"][0]["type"] == "float_parsing"


async def test_call_context_is_injected(hub: Hub, jsonrpc) -> None:
    """``ctx: CallContext`` gets the caller's session id and identity (None without auth)."""

    @hub.rpc("me")
    async def me(ctx: CallContext, tag: str) -> dict[str, Any]:
        return {"session": ctx.session_id, "identity": ctx.identity, "tag": tag}

    @hub.rpc("me.untyped")
    async def me_untyped(tag, ctx) -> str:  # type: ignore[no-untyped-def]
        return f"{tag}:{ctx.session_id}"

    peer = await jsonrpc(hub)
    result = await peer.call("me", ["x"])
    assert result["session"] in hub.session_ids
    assert result == {"session": result["session"], "identity": None, "tag": "x"}
    assert await peer.call("me.untyped", {"tag": "y"}) == f"y:{result['session']}"
    # ctx is not a wire parameter: sending it is an unknown param.
    error = await peer.error("me", {"tag": "x", "ctx": 1})
    assert error["data"][0]["loc"] == ["ctx"]


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_ctx_notify_reaches_only_the_caller(hub: Hub, jsonrpc, sync: bool) -> None:
    """``ctx.notify`` sends a notification to the calling client and to no other."""
    if sync:

        @hub.rpc("poke")
        def poke_sync(ctx: CallContext, n: int) -> str:
            ctx.notify("poked", {"n": n})
            return "done"

    else:

        @hub.rpc("poke")
        async def poke(ctx: CallContext, n: int) -> str:
            ctx.notify("poked", {"n": n})
            return "done"

    @hub.rpc("ping")
    async def ping() -> str:
        return "pong"

    caller, other = await jsonrpc(hub), await jsonrpc(hub)
    await caller.send({"jsonrpc": "2.0", "id": 1, "method": "poke", "params": [7]})
    assert await caller.recv() == {"jsonrpc": "2.0", "method": "poked", "params": {"n": 7}}
    assert await caller.recv() == {"jsonrpc": "2.0", "id": 1, "result": "done"}
    # Messages on one connection stay in order: had ``other`` been notified, that
    # notification would arrive before this reply.
    assert await other.request("ping") == {"jsonrpc": "2.0", "id": 1, "result": "pong"}


async def test_rpc_error_reaches_the_client_as_is(hub: Hub, peer) -> None:
    """``RpcError(code, message, data)`` becomes exactly that JSON-RPC error."""

    @hub.rpc("account.withdraw")
    async def withdraw(amount: int) -> None:
        raise RpcError(4002, "insufficient funds", {"balance": 3, "asked": amount})

    assert await peer.error("account.withdraw", [5]) == {
        "code": 4002,
        "message": "insufficient funds",
        "data": {"balance": 3, "asked": 5},
    }


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_unexpected_exception_is_internal_error_without_traceback(
    hub: Hub, peer, caplog: pytest.LogCaptureFixture, sync: bool
) -> None:
    """An unexpected exception is -32603 without a traceback; the log has it and the session."""

    def explode() -> None:
        raise KeyError("secret-internal-detail")

    if sync:
        hub.add_method("explode", explode)
    else:

        async def explode_async() -> None:
            explode()

        hub.add_method("explode", explode_async)

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    session_id = await peer.call("whoami")
    with caplog.at_level(logging.ERROR):
        reply = await peer.request("explode")
    error = reply["error"]
    assert error["code"] == -32603
    assert error["message"] == "Internal error"
    text = str(reply)
    assert "secret-internal-detail" not in text
    assert "Traceback" not in text
    assert "KeyError" not in text
    failures = [r for r in caplog.records if r.exc_info and "explode" in r.getMessage()]
    assert len(failures) == 1
    assert session_id in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert failures[0].exc_info[0] is KeyError


async def test_unserializable_result_is_internal_error(hub: Hub, peer) -> None:
    """A result that is not JSON becomes -32603 and the connection keeps working."""

    @hub.rpc("opaque")
    async def opaque() -> Any:
        return object()

    assert (await peer.error("opaque"))["code"] == -32603
    assert await peer.call("math.add", [2, 2]) == 4


async def test_unknown_method(peer) -> None:
    """Calling a method nobody registered is -32601 naming the method."""
    error = await peer.error("math.sub", [1, 2])
    assert error == {"code": -32601, "message": "Method not found", "data": {"method": "math.sub"}}


@pytest.mark.parametrize(
    "name", ["", "1st", "math..add", "math.", ".add", "has space", "dash-ed", "a.b-c"]
)
def test_invalid_method_names_are_rejected(name: str) -> None:
    """Names that are not dotted/slashed identifiers fail at registration."""
    with pytest.raises(ValueError, match="invalid method name"):
        MethodTable().add(name, lambda: None)


@pytest.mark.parametrize("name", ["rpc.x", "rpc.discover", "wamp.session.get"])
def test_reserved_prefixes_are_rejected(name: str) -> None:
    """The ``rpc.`` (JSON-RPC) and ``wamp.`` prefixes cannot be registered."""
    with pytest.raises(ValueError, match="reserved prefix"):
        Hub().add_method(name, lambda: None)


@pytest.mark.parametrize("name", ["subscribe", "publish", "presence", "history"])
def test_builtin_protocol_method_names_are_rejected(name: str) -> None:
    """Names the channels protocol answers itself cannot be taken by an RPC method."""
    hub = Hub()
    with pytest.raises(ValueError, match="reserved"):

        @hub.rpc(name)
        async def taken() -> None: ...


def test_valid_names_are_accepted() -> None:
    """Dotted and slashed identifiers register; the table lists them sorted."""
    table = MethodTable()
    for name in ("math.add", "users/get", "_private", "v2.items.list"):
        table.add(name, lambda: None)
    assert table.names == ["_private", "math.add", "users/get", "v2.items.list"]


def test_duplicate_registration_is_rejected() -> None:
    """Registering a name twice fails instead of silently replacing the first."""
    hub = Hub()

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ValueError, match=r"'math\.add' is already registered"):
        hub.add_method("math.add", add)


def test_unvalidatable_signatures_are_rejected() -> None:
    """``*args``/``**kwargs`` and positional-only params fail at registration."""
    table = MethodTable()

    def star(*args: int) -> None: ...

    def pos_only(a: int, /) -> None: ...

    with pytest.raises(TypeError, match="name them"):
        table.add("star", star)
    with pytest.raises(TypeError, match="positional-only"):
        table.add("pos", pos_only)


async def test_load_module_serves_marked_functions(
    hub: Hub, jsonrpc, tmp_path, monkeypatch
) -> None:
    """A module's ``@rpc`` functions are served and its ``setup(hub)`` is called."""
    (tmp_path / "table_mod.py").write_text(
        "from hub import rpc\n"
        "@rpc('mod.twice')\n"
        "async def twice(x: int) -> int:\n"
        "    return 2 * x\n"
        "def setup(hub):\n"
        "    hub.add_method('mod.setup_ran', lambda: True)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "table_mod", raising=False)
    assert hub.load_module("table_mod") == 1
    peer = await jsonrpc(hub)
    assert await peer.call("mod.twice", [21]) == 42
    assert await peer.call("mod.setup_ran") is True
