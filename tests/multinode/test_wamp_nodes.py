"""WAMP RPC across hub processes with Autobahn|Python: caller on one node, callee on another.

A CALL for a procedure registered by a callee connected to another node
reaches it and returns: results, errors, progressive results, pattern
registrations, timeouts and cancels; a callee whose node is killed (SIGKILL)
ends the call with an error instead of a hang, and its registrations expire.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CallOptions, RegisterOptions

from tests.multinode.conftest import ClusterFactory, HubProcess
from tests.multinode.redis_server import RedisServer
from tests.protocols.wamp.conftest import Client, WampFactory, wait_for

pytestmark = pytest.mark.service


class Stuck:
    """An endpoint that runs until interrupted, and records it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.interrupted = asyncio.Event()

    async def __call__(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.interrupted.set()
            raise
        return "finished"


async def two_nodes(cluster: ClusterFactory, wamp: WampFactory) -> tuple[Client, Client]:
    """A callee session on node 1 and a caller session on node 2."""
    a, b = await cluster(2)
    return await wamp(a, "msgpack"), await wamp(b, "json")


async def test_a_call_reaches_a_callee_on_another_node_and_returns(
    cluster: ClusterFactory, wamp: WampFactory
) -> None:
    """Positional and keyword results, bytes included, come back from the other node."""
    callee, caller = await two_nodes(cluster, wamp)

    def describe(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    await callee.register(lambda a, b: a + b, "com.calc.add")
    await callee.register(describe, "com.calc.describe")
    assert await wait_for(caller.call("com.calc.add", 2, 3)) == 5
    assert await wait_for(caller.call("com.calc.describe", 1, "x", unit="m")) == {
        "args": [1, "x"],
        "kwargs": {"unit": "m"},
    }
    # Many calls in a row keep their answers apart.
    answers = await wait_for(
        asyncio.gather(*(caller.call("com.calc.add", n, n) for n in range(20)))
    )
    assert answers == [2 * n for n in range(20)]


async def test_a_callee_error_reaches_the_caller_on_another_node(
    cluster: ClusterFactory, wamp: WampFactory
) -> None:
    """The callee's ERROR URI, args and kwargs arrive as they were sent."""
    callee, caller = await two_nodes(cluster, wamp)

    def refuse(amount: int) -> None:
        raise ApplicationError("com.bank.insufficient_funds", amount, balance=3)

    await callee.register(refuse, "com.bank.withdraw")
    with pytest.raises(ApplicationError) as raised:
        await wait_for(caller.call("com.bank.withdraw", 10))
    assert raised.value.error == "com.bank.insufficient_funds"
    assert raised.value.args == (10,)
    assert raised.value.kwargs == {"balance": 3}
    with pytest.raises(ApplicationError) as missing:
        await wait_for(caller.call("com.bank.nothing_here"))
    assert missing.value.error == "wamp.error.no_such_procedure"


async def test_progressive_results_cross_nodes_in_order(
    cluster: ClusterFactory, wamp: WampFactory
) -> None:
    """receive_progress: every progressive RESULT arrives, in order, then the final one."""
    callee, caller = await two_nodes(cluster, wamp)

    async def countdown(n: int, details: CallDetails) -> str:
        assert details.progress is not None
        for i in range(n, 0, -1):
            details.progress(i)
        return "liftoff"

    await callee.register(countdown, "com.countdown", RegisterOptions(details_arg="details"))
    progress: list[Any] = []
    result = await wait_for(
        caller.call("com.countdown", 10, options=CallOptions(on_progress=progress.append))
    )
    assert result == "liftoff"
    assert progress == list(range(10, 0, -1))


async def test_a_pattern_registration_on_another_node_serves_the_call(
    cluster: ClusterFactory, wamp: WampFactory
) -> None:
    """Prefix and wildcard registrations are found across nodes, with the spec's precedence."""
    callee, caller = await two_nodes(cluster, wamp)

    def which(name: str) -> Any:
        return lambda details: [name, details.procedure]

    options = {"details_arg": "details"}
    await callee.register(which("prefix"), "com.files.", RegisterOptions(match="prefix", **options))
    await callee.register(
        which("wildcard"), "com..read", RegisterOptions(match="wildcard", **options)
    )
    assert await wait_for(caller.call("com.files.read")) == ["prefix", "com.files.read"]
    assert await wait_for(caller.call("com.disk.read")) == ["wildcard", "com.disk.read"]


async def test_timeout_and_cancel_reach_the_callee_on_the_other_node(
    cluster: ClusterFactory, wamp: WampFactory
) -> None:
    """A call timeout answers wamp.error.timeout; a cancel interrupts the remote endpoint."""
    callee, caller = await two_nodes(cluster, wamp)
    slow, stuck = Stuck(), Stuck()
    await callee.register(slow, "com.slow")
    await callee.register(stuck, "com.stuck")
    with pytest.raises(ApplicationError) as raised:
        await wait_for(caller.call("com.slow", options=CallOptions(timeout=200)))
    assert raised.value.error == "wamp.error.timeout"
    await wait_for(slow.interrupted.wait())

    call = asyncio.ensure_future(caller.call("com.stuck"))
    await wait_for(stuck.started.wait())
    call.cancel()
    await wait_for(stuck.interrupted.wait())
    assert await wait_for(caller.call("wamp.session.count")) == 1  # the caller is fine


async def test_names_are_unique_in_the_cluster(cluster: ClusterFactory, wamp: WampFactory) -> None:
    """A procedure registered on one node cannot be registered again on another."""
    callee, other = await two_nodes(cluster, wamp)
    await callee.register(lambda: "first", "com.unique")
    with pytest.raises(ApplicationError) as raised:
        await wait_for(other.register(lambda: "second", "com.unique"))
    assert raised.value.error == "wamp.error.procedure_already_exists"
    assert await wait_for(other.call("com.unique")) == "first"


async def test_a_killed_callee_node_ends_the_call_with_an_error_and_its_names_expire(
    cluster: ClusterFactory, wamp: WampFactory
) -> None:
    """SIGKILL the callee's node mid-call: the caller gets an error within seconds, not a hang."""
    a, b = await cluster(2)
    callee, caller = await wamp(a), await wamp(b)
    stuck = Stuck()
    await callee.register(stuck, "com.doomed")
    call = asyncio.ensure_future(caller.call("com.doomed"))
    await wait_for(stuck.started.wait())
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    a.kill()
    with pytest.raises(ApplicationError) as raised:
        await wait_for(call, timeout=10)
    assert raised.value.error == "wamp.error.canceled"
    assert loop.time() - killed_at < 8
    # The dead node's registration is gone: the name is free on the living node.
    await wait_for(callee_registers_again(b, wamp, "com.doomed"), timeout=10)


async def callee_registers_again(node: HubProcess, wamp: WampFactory, procedure: str) -> None:
    successor = await wamp(node)
    await successor.register(lambda: "reborn", procedure)
    assert await successor.call(procedure) == "reborn"


async def test_session_kills_reach_this_nodes_sessions_only(
    tmp_path: Path, redis_server: RedisServer, wamp: WampFactory
) -> None:
    """wamp.session.kill* act on what wamp.session.list lists, the realm's sessions on the
    caller's node: a session id of the other node is no_such_session, and a kill by role
    ends this node's session of that role, not the other node's (docs/wamp.md)."""
    nodes = [HubProcess(tmp_path, f"kill{n}", redis_server.url) for n in (1, 2)]
    for node in nodes:
        with node.config.open("a") as config:
            config.write("[wamp]\nsession_details_access = {}\n")  # everyone is an operator
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        operator, here = await wamp(nodes[0], "json"), await wamp(nodes[0], "msgpack")
        there = await wamp(nodes[1], "json")
        with pytest.raises(ApplicationError) as caught:
            await wait_for(operator.call("wamp.session.kill", there.joined.result().session))
        assert caught.value.error == "wamp.error.no_such_session"
        assert await wait_for(operator.call("wamp.session.kill_by_authrole", "anonymous")) == 1
        assert (await wait_for(here.left)).reason == "wamp.close.killed"
        assert there.is_attached()
        assert await wait_for(there.call("wamp.session.count")) == 1
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))
