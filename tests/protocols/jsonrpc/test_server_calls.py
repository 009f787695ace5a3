"""Server-to-client traffic: hub.notify and hub.call over jsonrpc.2.0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub import CallContext, Hub, SessionNotFound
from protocols.jsonrpc import ClientCallError


@pytest.fixture
def add_whoami(hub: Hub) -> None:
    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id


async def session_of(peer) -> str:
    return str(await peer.call("whoami"))


async def answer_next_call(peer, reply: Any) -> dict[str, Any]:
    """Read the server's next request and answer it with ``reply`` (result or error)."""
    request = await peer.recv()
    assert request["jsonrpc"] == "2.0"
    assert "id" in request
    await peer.send({"jsonrpc": "2.0", "id": request["id"], **reply})
    return dict(request)


@pytest.mark.usefixtures("add_whoami")
async def test_notify_reaches_the_client(hub: Hub, jsonrpc) -> None:
    """``hub.notify(session_id, method, params)`` arrives as a JSON-RPC notification."""
    peer, other = await jsonrpc(hub), await jsonrpc(hub)
    session_id = await session_of(peer)
    hub.notify(session_id, "news.flash", {"headline": "hi"})
    hub.notify(session_id, "news.tick")
    assert await peer.recv() == {
        "jsonrpc": "2.0",
        "method": "news.flash",
        "params": {"headline": "hi"},
    }
    assert await peer.recv() == {"jsonrpc": "2.0", "method": "news.tick"}
    # Only the addressed session hears it: the other's next message is its own reply.
    assert await other.call("whoami") != session_id


@pytest.mark.usefixtures("add_whoami")
async def test_call_returns_the_client_result(hub: Hub, jsonrpc) -> None:
    """``hub.call`` sends a request with an id and returns the client's result."""
    peer = await jsonrpc(hub)
    call = asyncio.create_task(
        hub.call(await session_of(peer), "client.echo", ["ping", 1], timeout=5)
    )
    request = await answer_next_call(peer, {"result": {"echo": ["ping", 1]}})
    assert request["method"] == "client.echo"
    assert request["params"] == ["ping", 1]
    assert await call == {"echo": ["ping", 1]}


@pytest.mark.usefixtures("add_whoami")
async def test_concurrent_calls_are_matched_by_id(hub: Hub, jsonrpc) -> None:
    """Answers to several outstanding calls are matched by id, whatever their order."""
    peer = await jsonrpc(hub)
    session_id = await session_of(peer)
    calls = [
        asyncio.create_task(hub.call(session_id, "client.square", [n], timeout=5)) for n in (2, 3)
    ]
    first, second = await peer.recv(), await peer.recv()
    assert first["id"] != second["id"]
    for request in (second, first):
        await peer.send(
            {"jsonrpc": "2.0", "id": request["id"], "result": request["params"][0] ** 2}
        )
    assert await asyncio.gather(*calls) == [4, 9]


@pytest.mark.usefixtures("add_whoami")
async def test_client_error_raises_client_call_error(hub: Hub, jsonrpc) -> None:
    """A JSON-RPC error answer raises ClientCallError with the client's code and message."""
    peer = await jsonrpc(hub)
    call = asyncio.create_task(hub.call(await session_of(peer), "client.fail", timeout=5))
    error = {"code": -32601, "message": "Method not found", "data": {"why": "nope"}}
    await answer_next_call(peer, {"error": error})
    with pytest.raises(ClientCallError) as info:
        await call
    assert info.value.code == -32601
    assert info.value.message == "Method not found"
    assert info.value.data == {"why": "nope"}


@pytest.mark.usefixtures("add_whoami")
async def test_unanswered_call_times_out(hub: Hub, jsonrpc) -> None:
    """A call the client never answers raises TimeoutError after ``timeout`` seconds."""
    peer = await jsonrpc(hub)
    session_id = await session_of(peer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await hub.call(session_id, "client.sleep", timeout=0.2)
    assert 0.2 <= loop.time() - started < 2.0
    # A late answer is ignored and the session carries on.
    request = await peer.recv()
    await peer.send({"jsonrpc": "2.0", "id": request["id"], "result": "too late"})
    assert await session_of(peer) == session_id


async def test_default_call_timeout_comes_from_config(make_hub, jsonrpc) -> None:
    """Without ``timeout=``, ``rpc.call_timeout`` from the config applies."""
    hub = await make_hub({"rpc": {"call_timeout": 0.2}})

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    peer = await jsonrpc(hub)
    async with asyncio.timeout(2):
        with pytest.raises(TimeoutError):
            await hub.call(await session_of(peer), "client.sleep")


async def test_unknown_session(hub: Hub) -> None:
    """Notifying or calling a session id that is not open raises SessionNotFound."""
    with pytest.raises(SessionNotFound):
        hub.notify("no-such-session", "x")
    with pytest.raises(SessionNotFound):
        await hub.call("no-such-session", "x", timeout=1)


@pytest.mark.usefixtures("add_whoami")
async def test_pending_call_fails_when_the_client_leaves(hub: Hub, jsonrpc) -> None:
    """A call still waiting when its client disconnects fails at once, not at its timeout."""
    peer = await jsonrpc(hub)
    session_id = await session_of(peer)
    call = asyncio.create_task(hub.call(session_id, "client.wait", timeout=30))
    await peer.recv()
    await peer.ws.close()
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionError):
            await call
    with pytest.raises(SessionNotFound):
        hub.notify(session_id, "gone")


async def test_method_calls_back_into_its_caller(hub: Hub, jsonrpc) -> None:
    """A method may ``await ctx.call(...)`` on its caller while the caller waits for it."""

    @hub.rpc("order.place")
    async def place(ctx: CallContext, item: str) -> str:
        confirmed = await ctx.call("client.confirm", {"item": item}, timeout=5)
        return f"{item}: {'placed' if confirmed else 'cancelled'}"

    peer = await jsonrpc(hub)
    await peer.send({"jsonrpc": "2.0", "id": "o1", "method": "order.place", "params": ["tea"]})
    request = await answer_next_call(peer, {"result": True})
    assert request["method"] == "client.confirm"
    assert request["params"] == {"item": "tea"}
    assert await peer.recv() == {"jsonrpc": "2.0", "id": "o1", "result": "tea: placed"}


async def test_answers_to_callbacks_are_read_when_every_slot_is_busy(make_hub, jsonrpc) -> None:
    """With every request slot held by methods awaiting ``ctx.call``, the answers still get in."""
    hub = await make_hub({"limits": {"max_concurrent_requests": 2}})

    @hub.rpc("ask")
    async def ask(ctx: CallContext, n: int) -> int:
        return int(await ctx.call("client.double", [n], timeout=3)) + 1

    peer = await jsonrpc(hub)
    for n in (1, 2):
        await peer.send({"jsonrpc": "2.0", "id": f"ask{n}", "method": "ask", "params": [n]})
    for _ in range(2):
        request = await peer.recv()
        await peer.send({"jsonrpc": "2.0", "id": request["id"], "result": request["params"][0] * 2})
    replies = {reply["id"]: reply for reply in [await peer.recv(), await peer.recv()]}
    assert replies["ask1"].get("result") == 3, replies
    assert replies["ask2"].get("result") == 5, replies
