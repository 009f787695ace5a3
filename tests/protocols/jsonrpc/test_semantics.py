"""JSON-RPC 2.0 semantics over a real socket: errors, batches, notifications, limits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError

from hub import Hub, RpcError
from tests.hub._raw import OP_CLOSE, OP_TEXT, RawClient

NOT_ANSWERED_WITHIN = 0.2


@pytest.fixture
def seen() -> list[Any]:
    """The calls the hub's methods received, in order."""
    return []


@pytest.fixture
async def peer(hub: Hub, jsonrpc, seen: list[Any]) -> Any:
    """A client of a hub serving ``add``, ``fail`` and ``crash``, which log calls in ``seen``."""

    @hub.rpc("add")
    async def add(a: int, b: int) -> int:
        seen.append(("add", a, b))
        return a + b

    @hub.rpc("fail")
    async def fail() -> None:
        seen.append("fail")
        raise RpcError(1, "failed on purpose")

    @hub.rpc("crash")
    async def crash() -> None:
        seen.append("crash")
        raise RuntimeError("crashed on purpose")

    return await jsonrpc(hub)


async def still_serves(peer) -> None:
    assert await peer.call("add", [20, 22]) == 42


async def test_parse_error_keeps_the_connection(peer) -> None:
    """Malformed JSON gets -32700 with id null, and the connection stays usable."""
    await peer.ws.send('{"jsonrpc": "2.0", "method": "add", "params": [1, 2]')
    reply = await peer.recv()
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert reply["error"]["message"] == "Parse error"
    await still_serves(peer)


@pytest.mark.parametrize(
    ("message", "reply_id"),
    [
        (1, None),
        ("add", None),
        ({"id": 1, "method": "add", "params": [1, 2]}, 1),
        ({"jsonrpc": "2.0", "id": [1], "method": "add"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "add"}, None),
        ({"jsonrpc": "2.0", "id": 2, "method": "add", "params": "1,2"}, 2),
        ({"jsonrpc": "2.0", "id": 3, "method": "add", "params": 7}, 3),
        ({"jsonrpc": "2.0", "id": 4, "method": 5}, 4),
    ],
    ids=[
        "number",
        "string",
        "missing-jsonrpc",
        "array-id",
        "bool-id",
        "string-params",
        "number-params",
        "number-method",
    ],
)
async def test_invalid_request(peer, seen: list[Any], message: Any, reply_id: Any) -> None:
    """Invalid request objects get -32600 (id when readable, else null); nothing runs."""
    await peer.send(message)
    reply = await peer.recv()
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == reply_id
    assert reply["error"]["code"] == -32600
    assert reply["error"]["message"] == "Invalid Request"
    assert seen == []
    await still_serves(peer)


async def test_unknown_method(peer) -> None:
    """An unknown method is -32601."""
    error = await peer.error("nope.nothing", [1])
    assert error["code"] == -32601
    assert error["message"] == "Method not found"


async def test_request_with_null_id_is_answered(peer) -> None:
    """``id: null`` is a request (discouraged, not a notification) and gets a reply with id null."""
    await peer.send({"jsonrpc": "2.0", "id": None, "method": "add", "params": [1, 1]})
    assert await peer.recv() == {"jsonrpc": "2.0", "id": None, "result": 2}


async def test_empty_batch_is_one_error_object(peer) -> None:
    """``[]`` is answered with one -32600 error object, not an array."""
    await peer.ws.send("[]")
    reply = await peer.recv()
    assert isinstance(reply, dict)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    await still_serves(peer)


async def test_mixed_batch_answers_exactly_the_requests(peer) -> None:
    """A batch is answered by one array holding a reply for each non-notification element."""
    await peer.send(
        [
            {"jsonrpc": "2.0", "id": "sum", "method": "add", "params": [1, 2]},
            {"jsonrpc": "2.0", "method": "add", "params": [3, 4]},
            {"jsonrpc": "2.0", "id": "bad-params", "method": "add", "params": ["x", 1]},
            1,
            {"jsonrpc": "2.0", "id": "unknown", "method": "sub", "params": [1]},
            {"jsonrpc": "2.0", "method": "sub"},
            {"jsonrpc": "2.0", "method": "fail"},
            {"jsonrpc": "2.0", "id": "failed", "method": "fail"},
        ]
    )
    replies = await peer.recv()
    assert isinstance(replies, list)
    assert len(replies) == 5
    by_id = {reply["id"]: reply for reply in replies}
    assert by_id["sum"]["result"] == 3
    assert by_id["bad-params"]["error"]["code"] == -32602
    assert by_id[None]["error"]["code"] == -32600
    assert by_id["unknown"]["error"]["code"] == -32601
    assert by_id["failed"]["error"] == {"code": 1, "message": "failed on purpose"}
    # The notifications ran too, though nobody hears about them.
    await still_serves(peer)


async def test_batch_of_notifications_gets_no_reply(peer, seen: list[Any]) -> None:
    """A batch of only notifications is run and answered with nothing at all."""
    await peer.send(
        [
            {"jsonrpc": "2.0", "method": "add", "params": [1, 2]},
            {"jsonrpc": "2.0", "method": "add", "params": {"a": 3, "b": 4}},
        ]
    )
    assert await peer.silent_for(NOT_ANSWERED_WITHIN)
    await still_serves(peer)
    assert sorted(seen) == [("add", 1, 2), ("add", 3, 4), ("add", 20, 22)]


async def test_notification_errors_get_no_reply(peer, seen: list[Any]) -> None:
    """Notifications that fail (unknown method, bad params, RpcError, crash) are never answered."""
    for method, params in [("sub", [1]), ("add", ["x"]), ("fail", None), ("crash", None)]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await peer.send(message)
    assert await peer.silent_for(NOT_ANSWERED_WITHIN)
    await still_serves(peer)
    assert "fail" in seen
    assert "crash" in seen


async def test_binary_frame_is_invalid_request(peer) -> None:
    """A binary frame gets -32600 with id null; the connection stays open."""
    await peer.ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add"}).encode())
    reply = await peer.recv()
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert "binary" in reply["error"]["data"]
    await still_serves(peer)


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_message_over_max_size_closes_with_1009(
    make_hub, jsonrpc, compression: str | None
) -> None:
    """A message larger than ``websocket.max_message_size`` closes that connection with 1009."""
    hub = await make_hub({"websocket": {"max_message_size": 1024}})

    @hub.rpc("echo")
    async def echo(text: str) -> str:
        return text

    big, other = await jsonrpc(hub, compression=compression), await jsonrpc(hub)
    assert await big.call("echo", ["x" * 900]) == "x" * 900
    await big.send({"jsonrpc": "2.0", "id": 2, "method": "echo", "params": ["x" * 2000]})
    with pytest.raises(ConnectionClosedError):
        await big.recv()
    assert big.ws.close_code == 1009
    # The hub and its other clients carry on.
    assert await other.call("echo", ["still here"]) == "still here"


async def test_concurrent_requests_answer_out_of_order(hub: Hub, jsonrpc) -> None:
    """Requests on one connection run concurrently: a fast one overtakes an earlier slow one."""
    fast_done = asyncio.Event()

    @hub.rpc("slow")
    async def slow() -> str:
        # Only finishes once "fast", sent after it on the same connection, has run.
        await fast_done.wait()
        return "slow"

    @hub.rpc("fast")
    async def fast() -> str:
        fast_done.set()
        return "fast"

    peer = await jsonrpc(hub)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "slow"})
    await peer.send({"jsonrpc": "2.0", "id": 2, "method": "fast"})
    assert await peer.recv() == {"jsonrpc": "2.0", "id": 2, "result": "fast"}
    assert await peer.recv() == {"jsonrpc": "2.0", "id": 1, "result": "slow"}


async def test_timeout_inside_a_method_cancels_only_the_method(hub: Hub, jsonrpc) -> None:
    """``asyncio.timeout`` in a method times out the method, never the connection."""

    @hub.rpc("impatient")
    async def impatient() -> str:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "slept"

    peer = await jsonrpc(hub)
    assert await peer.call("impatient") == "timed out"
    # The connection outlived the method's timeout and still answers.
    await asyncio.sleep(0.1)
    assert await peer.call("impatient") == "timed out"


async def test_methods_done_without_waiting_free_their_slot(make_hub, jsonrpc) -> None:
    """With one slot, fifty back-to-back calls that never wait are all answered in order."""
    hub = await make_hub({"limits": {"max_concurrent_requests": 1}})

    @hub.rpc("double")
    async def double(i: int) -> int:
        return 2 * i

    peer = await jsonrpc(hub)
    for i in range(50):
        await peer.send({"jsonrpc": "2.0", "id": i, "method": "double", "params": [i]})
    replies = [await peer.recv() for _ in range(50)]
    assert replies == [{"jsonrpc": "2.0", "id": i, "result": 2 * i} for i in range(50)]


async def test_concurrent_sleepers_overlap(hub: Hub, jsonrpc) -> None:
    """Ten requests sleeping 0.2 s each on one connection finish together, not in 2 s."""

    @hub.rpc("nap")
    async def nap(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    peer = await jsonrpc(hub)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(10):
        await peer.send({"jsonrpc": "2.0", "id": i, "method": "nap", "params": [i]})
    replies = [await peer.recv() for _ in range(10)]
    assert sorted(reply["result"] for reply in replies) == list(range(10))
    assert loop.time() - started < 1.5


async def test_concurrency_per_connection_is_bounded(make_hub, jsonrpc) -> None:
    """At most ``limits.max_concurrent_requests`` requests of one connection run at once."""
    hub = await make_hub({"limits": {"max_concurrent_requests": 2}})
    running = peak = 0
    two_running = asyncio.Event()

    @hub.rpc("hold")
    async def hold(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            two_running.set()
        # The first requests hold their slots until two run side by side.
        await two_running.wait()
        await asyncio.sleep(0)
        running -= 1
        return i

    peer = await jsonrpc(hub)
    for i in range(6):
        await peer.send({"jsonrpc": "2.0", "id": i, "method": "hold", "params": [i]})
    replies = [await peer.recv() for _ in range(6)]
    assert sorted(reply["result"] for reply in replies) == list(range(6))
    assert peak == 2


async def test_text_frame_with_invalid_utf8_closes_with_1007(hub: Hub, peer) -> None:
    """A text frame that is not UTF-8 closes that connection with 1007; others carry on."""
    raw = await RawClient.connect(hub, "jsonrpc.2.0")
    try:
        await raw.send(b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}', opcode=OP_TEXT)
        frames = await raw.frames_until_eof(timeout=5)
    finally:
        raw.close()
    assert frames[-1].opcode == OP_CLOSE
    assert frames[-1].close_code == 1007
    await still_serves(peer)
