"""The node bus: messages and requests between hub processes, and who is alive.

The contract (a node talking to itself, nobody else answering) holds for both
engines; the Redis engine's bus is also shown between two nodes, across a
node's death and across Redis going away.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.engine import ChannelEngine
from hub.engine.bus import NodeGone
from hub.errors import EngineUnavailable
from tests.engine.conftest import Backend
from tests.engine.test_redis_engine import NodeFactory, broker, eventually
from tests.engine.test_redis_engine import node as node
from tests.multinode.redis_server import RedisServer


class Inbox:
    """A bus handler that queues what it is handed."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def __call__(self, sender: str, body: Any) -> None:
        self.received.put_nowait((sender, body))

    async def next(self, timeout: float = 3.0) -> tuple[str, Any]:
        async with asyncio.timeout(timeout):
            return await self.received.get()


async def test_a_node_reaches_itself_and_answers_its_own_requests(
    engine_backend: Backend,
) -> None:
    """A message to this node's id is handed to its kind's handler; a request gets its reply."""
    bus = engine_backend.engine.bus
    inbox = Inbox()
    bus.on("test.note", inbox)

    async def double(sender: str, body: Any) -> Any:
        return {"from": sender, "twice": body * 2}

    bus.on_request("test.double", double)
    await bus.send(bus.node_id, "test.note", {"n": 1, "raw": b"\x00\xff"})
    assert await inbox.next() == (bus.node_id, {"n": 1, "raw": b"\x00\xff"})
    reply = await bus.request(bus.node_id, "test.double", 21, timeout=3)
    assert reply == {"from": bus.node_id, "twice": 42}
    assert await bus.alive(bus.node_id)


async def test_a_node_nobody_runs_is_not_alive_and_never_answers(engine_backend: Backend) -> None:
    """Requests to a node id no process holds end in NodeGone after the timeout, not a hang."""
    bus = engine_backend.engine.bus
    assert not await bus.alive("no-such-node")
    with pytest.raises(NodeGone):
        await bus.request("no-such-node", "test.anything", None, timeout=0.3)
    with pytest.raises(ValueError, match="already registered"):
        bus.on("bus.reply", Inbox())


async def test_a_failing_request_handler_answers_with_nodegone(engine_backend: Backend) -> None:
    """A request whose handler raises is answered as failed, with the handler's message."""
    bus = engine_backend.engine.bus

    async def broken(sender: str, body: Any) -> Any:
        raise RuntimeError("no such session")

    bus.on_request("test.broken", broken)
    with pytest.raises(NodeGone, match="no such session"):
        await bus.request(bus.node_id, "test.broken", None, timeout=3)


# -- between Redis nodes ----------------------------------------------------------------


async def started_pair(node: NodeFactory) -> tuple[ChannelEngine, ChannelEngine]:
    a, b = await node("a", health_interval=0.2), await node("b", health_interval=0.2)
    return a, b


async def test_two_redis_nodes_message_and_request_each_other(node: NodeFactory) -> None:
    """Node a sends to node b and asks it; each sees the other alive."""
    a, b = await started_pair(node)
    inbox = Inbox()
    b.bus.on("test.note", inbox)

    async def echo(sender: str, body: Any) -> Any:
        return [sender, body]

    b.bus.on_request("test.echo", echo)
    await a.bus.send("b", "test.note", "hello")
    assert await inbox.next() == ("a", "hello")
    assert await a.bus.request("b", "test.echo", {"x": [1, 2]}, timeout=3) == ["a", {"x": [1, 2]}]
    assert await a.bus.alive("b")
    assert await b.bus.alive("a")


async def test_a_stopped_node_is_soon_not_alive_and_its_requests_time_out(
    node: NodeFactory,
) -> None:
    """Once a node stops beating, others see it gone within a few health intervals."""
    a, b = await started_pair(node)

    async def echo(sender: str, body: Any) -> Any:
        return body

    b.bus.on_request("test.echo", echo)
    assert await a.bus.request("b", "test.echo", 1, timeout=3) == 1
    await b.close()  # stops its heartbeat and its listening, like a crash for others

    async def b_gone() -> bool:
        return not await a.bus.alive("b")

    await eventually(b_gone, timeout=3)
    with pytest.raises(NodeGone):
        await a.bus.request("b", "test.echo", 2, timeout=0.3)


async def test_the_bus_listens_again_after_redis_comes_back(
    node: NodeFactory, redis_server: RedisServer
) -> None:
    """Redis restarted: sending fails cleanly while it is away, then messages flow again."""
    a, b = await started_pair(node)
    inbox = Inbox()
    b.bus.on("test.note", inbox)
    await redis_server.stop()
    with pytest.raises(EngineUnavailable):
        await a.bus.send("b", "test.note", "lost")
    await redis_server.start()

    async def both_up() -> bool:
        return all(broker(e).health()["status"] == "ok" for e in (a, b))

    await eventually(both_up, timeout=6)
    await a.bus.send("b", "test.note", "after")
    assert await inbox.next() == ("a", "after")
