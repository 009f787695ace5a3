"""Call timeouts and CANCEL (skip, kill, killnowait), with Autobahn and raw peers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions

from hub import Hub
from tests.protocols.wamp.conftest import (
    CLIENT_ROLES,
    Client,
    RawFactory,
    RawWamp,
    WampFactory,
    wait_for,
)


class Stuck:
    """An endpoint that never finishes on its own and records being interrupted."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.interrupted = asyncio.Event()

    async def __call__(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.interrupted.set()
            raise
        return "finished"


async def stuck_callee(hub: Hub, wamp: WampFactory, procedure: str) -> tuple[Client, Stuck]:
    callee = await wamp(hub, "msgpack")
    endpoint = Stuck()
    await callee.register(endpoint, procedure)
    return callee, endpoint


async def raw_callee(
    hub: Hub, raw_wamp: RawFactory, procedure: str, *, canceling: bool = True
) -> RawWamp:
    """A raw callee; with canceling=False it does not announce call_canceling."""
    raw = await raw_wamp(hub)
    roles = CLIENT_ROLES if canceling else {"callee": {"features": {}}, "caller": {}}
    welcome = await raw.hello(roles=roles)
    assert welcome[0] == 2
    assert (await raw.request([64, 1, {}, procedure]))[0] == 65
    return raw


async def test_timeout_interrupts_callee(hub: Hub, wamp: WampFactory) -> None:
    """CALL.Options.timeout: the caller gets wamp.error.timeout and the callee is interrupted."""
    _, endpoint = await stuck_callee(hub, wamp, "com.stuck")
    caller = await wamp(hub)
    with pytest.raises(ApplicationError) as raised:
        await caller.call("com.stuck", options=CallOptions(timeout=150))
    assert raised.value.error == "wamp.error.timeout"
    await wait_for(endpoint.interrupted.wait())


async def test_timeout_interrupt_message(hub: Hub, raw_wamp: RawFactory) -> None:
    """The dealer's INTERRUPT for a timeout: mode killnowait, reason wamp.error.timeout."""
    callee = await raw_callee(hub, raw_wamp, "com.slow")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 1, {"timeout": 100}, "com.slow", []])
    invocation = await callee.recv()
    interrupt = await callee.recv()
    assert interrupt == [69, invocation[1], {"mode": "killnowait", "reason": "wamp.error.timeout"}]
    error = await caller.recv()
    assert error[:3] == [8, 48, 1]
    assert error[4] == "wamp.error.timeout"
    # The callee's late answer is discarded.
    await callee.send([70, invocation[1], {}, ["late"]])
    assert await caller.silent_for(0.2)


async def test_timeout_without_callee_canceling(hub: Hub, raw_wamp: RawFactory) -> None:
    """A callee that cannot be interrupted is skipped: no INTERRUPT, the caller still times out."""
    callee = await raw_callee(hub, raw_wamp, "com.plain", canceling=False)
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 1, {"timeout": 100}, "com.plain", []])
    assert (await callee.recv())[0] == 68
    error = await caller.recv()
    assert error[4] == "wamp.error.timeout"
    assert await callee.silent_for(0.2)


async def test_no_timeout_when_answered_in_time(hub: Hub, wamp: WampFactory) -> None:
    """A call answered before its timeout completes normally."""
    callee = await wamp(hub)
    caller = await wamp(hub)
    await callee.register(lambda: "quick", "com.quick")
    assert await caller.call("com.quick", options=CallOptions(timeout=5000)) == "quick"


@pytest.mark.parametrize("timeout", [-1, 1.5, "10", True])
async def test_invalid_timeout(hub: Hub, raw_wamp: RawFactory, timeout: Any) -> None:
    """A timeout that is not milliseconds >= 0: wamp.error.invalid_argument."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([48, 1, {"timeout": timeout}, "wamp.session.count", []])
    assert error[4] == "wamp.error.invalid_argument"


async def test_autobahn_cancel(hub: Hub, wamp: WampFactory) -> None:
    """Autobahn cancelling its call future: the callee's endpoint is interrupted."""
    _, endpoint = await stuck_callee(hub, wamp, "com.cancel.me")
    caller = await wamp(hub)
    call = asyncio.ensure_future(caller.call("com.cancel.me"))
    await wait_for(endpoint.started.wait())
    call.cancel()
    await wait_for(endpoint.interrupted.wait())
    # The caller's session is fine afterwards.
    assert await caller.call("wamp.session.count") == 2


async def test_cancel_killnowait(hub: Hub, raw_wamp: RawFactory) -> None:
    """killnowait: ERROR canceled to the caller at once, INTERRUPT to the callee."""
    callee = await raw_callee(hub, raw_wamp, "com.k")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.k", [1]])
    invocation = await callee.recv()
    await caller.send([49, 5, {"mode": "killnowait"}])
    error = await caller.recv()
    assert error[:3] == [8, 48, 5]
    assert error[4] == "wamp.error.canceled"
    interrupt = await callee.recv()
    assert interrupt == [69, invocation[1], {"mode": "killnowait", "reason": "wamp.error.canceled"}]
    await callee.send([8, 68, invocation[1], {}, "wamp.error.canceled"])
    assert await caller.silent_for(0.2)


async def test_cancel_without_mode_is_killnowait(hub: Hub, raw_wamp: RawFactory) -> None:
    """CANCEL without a mode behaves as killnowait (what Autobahn sends)."""
    callee = await raw_callee(hub, raw_wamp, "com.default")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.default", []])
    await callee.recv()
    await caller.send([49, 5, {}])
    assert (await caller.recv())[4] == "wamp.error.canceled"
    assert (await callee.recv())[2]["mode"] == "killnowait"


async def test_cancel_skip(hub: Hub, raw_wamp: RawFactory) -> None:
    """skip: ERROR canceled to the caller, no INTERRUPT, the late YIELD discarded."""
    callee = await raw_callee(hub, raw_wamp, "com.s")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.s", []])
    invocation = await callee.recv()
    await caller.send([49, 5, {"mode": "skip"}])
    assert (await caller.recv())[4] == "wamp.error.canceled"
    assert await callee.silent_for(0.2)
    await callee.send([70, invocation[1], {}, ["late"]])
    assert await caller.silent_for(0.2)


async def test_cancel_kill_waits_for_callee_error(hub: Hub, raw_wamp: RawFactory) -> None:
    """kill: INTERRUPT first; the caller gets the callee's ERROR, relayed, only then."""
    callee = await raw_callee(hub, raw_wamp, "com.kill")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.kill", []])
    invocation = await callee.recv()
    await caller.send([49, 5, {"mode": "kill"}])
    interrupt = await callee.recv()
    assert interrupt == [69, invocation[1], {"mode": "kill", "reason": "wamp.error.canceled"}]
    assert await caller.silent_for(0.2)
    await callee.send([8, 68, invocation[1], {}, "wamp.error.canceled", ["stopped"], {"at": 3}])
    error = await caller.recv()
    assert error == [8, 48, 5, {}, "wamp.error.canceled", ["stopped"], {"at": 3}]


async def test_cancel_kill_may_still_get_result(hub: Hub, raw_wamp: RawFactory) -> None:
    """kill: a callee that finishes before the interrupt lands answers with RESULT."""
    callee = await raw_callee(hub, raw_wamp, "com.race")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.race", []])
    invocation = await callee.recv()
    await caller.send([49, 5, {"mode": "kill"}])
    await callee.recv()  # INTERRUPT
    await callee.send([70, invocation[1], {}, ["done anyway"]])
    assert await caller.recv() == [50, 5, {}, ["done anyway"]]


async def test_cancel_kill_autobahn_callee(
    hub: Hub, wamp: WampFactory, raw_wamp: RawFactory
) -> None:
    """kill on an Autobahn callee: its endpoint is cancelled and its ERROR reaches the caller."""
    _, endpoint = await stuck_callee(hub, wamp, "com.ab.kill")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.ab.kill", []])
    await wait_for(endpoint.started.wait())
    await caller.send([49, 5, {"mode": "kill"}])
    await wait_for(endpoint.interrupted.wait())
    error = await caller.recv()
    assert error[:3] == [8, 48, 5]


async def test_cancel_of_finished_call_is_ignored(hub: Hub, raw_wamp: RawFactory) -> None:
    """CANCEL after the RESULT: nothing happens."""
    callee = await raw_callee(hub, raw_wamp, "com.done")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.done", []])
    invocation = await callee.recv()
    await callee.send([70, invocation[1], {}, [1]])
    assert (await caller.recv())[0] == 50
    await caller.send([49, 5, {"mode": "kill"}])
    assert await caller.silent_for(0.2)
    assert await callee.silent_for(0.1)


async def test_caller_leaving_interrupts_callee(hub: Hub, raw_wamp: RawFactory) -> None:
    """The caller leaving mid-call: the callee gets INTERRUPT killnowait."""
    callee = await raw_callee(hub, raw_wamp, "com.orphan")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.orphan", []])
    invocation = await callee.recv()
    await caller.ws.close()
    interrupt = await callee.recv()
    assert interrupt[:2] == [69, invocation[1]]
    assert interrupt[2]["mode"] == "killnowait"


async def test_duplicate_call_request_id(hub: Hub, raw_wamp: RawFactory) -> None:
    """Reusing the request id of a call still in flight is a protocol violation."""
    await raw_callee(hub, raw_wamp, "com.dup")
    caller = await raw_wamp(hub, join=True)
    await caller.send([48, 5, {}, "com.dup", []])
    await caller.send([48, 5, {}, "com.dup", []])
    abort = await caller.recv()
    assert abort[0] == 3
    assert abort[2] == "wamp.error.protocol_violation"
