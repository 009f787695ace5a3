"""The dealer with Autobahn|Python: register, call, results, errors, patterns, progress."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CallResult, RegisterOptions

from hub import Hub
from tests.conftest import HubFactory
from tests.protocols.wamp.conftest import (
    ALL_SERIALIZERS,
    RawFactory,
    WampFactory,
    wait_for,
)


@ALL_SERIALIZERS
async def test_call_invocation_yield_result(hub: Hub, wamp: WampFactory, serializer: str) -> None:
    """CALL -> INVOCATION -> YIELD -> RESULT with args and kwargs intact, bytes included."""
    callee = await wamp(hub, serializer)
    caller = await wamp(hub, serializer)

    def echo(*args: Any, **kwargs: Any) -> CallResult:
        return CallResult(*args, **kwargs)

    await callee.register(echo, "com.echo")
    result = await caller.call("com.echo", 1, "two", [3], {"four": 4}, b"\x05", k=None, b=b"\x06")
    assert list(result.results) == [1, "two", [3], {"four": 4}, b"\x05"]
    assert result.kwresults == {"k": None, "b": b"\x06"}


async def test_call_across_serializers(hub: Hub, wamp: WampFactory) -> None:
    """A CBOR caller reaches a MessagePack callee; a single result comes back as is."""
    callee = await wamp(hub, "msgpack")
    caller = await wamp(hub, "cbor")
    await callee.register(lambda a, b: a * b, "com.mul")
    assert await caller.call("com.mul", 6, 7) == 42


@ALL_SERIALIZERS
async def test_callee_error_is_relayed(hub: Hub, wamp: WampFactory, serializer: str) -> None:
    """The callee's ERROR reaches the caller with its URI, args and kwargs."""
    callee = await wamp(hub, serializer)
    caller = await wamp(hub)

    def fail() -> None:
        raise ApplicationError("com.example.error.oops", "bad", 2, detail={"x": [1]})

    await callee.register(fail, "com.fail")
    with pytest.raises(ApplicationError) as raised:
        await caller.call("com.fail")
    assert raised.value.error == "com.example.error.oops"
    assert raised.value.args == ("bad", 2)
    assert raised.value.kwargs == {"detail": {"x": [1]}}


async def test_no_such_procedure(hub: Hub, wamp: WampFactory) -> None:
    """A call nobody registered: ERROR wamp.error.no_such_procedure."""
    caller = await wamp(hub)
    with pytest.raises(ApplicationError) as raised:
        await caller.call("com.nobody.home")
    assert raised.value.error == "wamp.error.no_such_procedure"


async def test_procedure_already_exists(hub: Hub, wamp: WampFactory) -> None:
    """A second REGISTER of the same procedure: wamp.error.procedure_already_exists."""
    first = await wamp(hub)
    second = await wamp(hub)
    await first.register(lambda: 1, "com.taken")
    with pytest.raises(ApplicationError) as raised:
        await second.register(lambda: 2, "com.taken")
    assert raised.value.error == "wamp.error.procedure_already_exists"


async def test_hub_method_name_is_taken(hub: Hub, wamp: WampFactory) -> None:
    """A hub @rpc method's name cannot be registered by a WAMP callee."""

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    callee = await wamp(hub)
    with pytest.raises(ApplicationError) as raised:
        await callee.register(lambda a, b: 0, "math.add")
    assert raised.value.error == "wamp.error.procedure_already_exists"


@pytest.mark.parametrize("procedure", ["wamp.mine", "com..x", "com.x y"])
async def test_register_invalid_or_reserved(hub: Hub, raw_wamp: RawFactory, procedure: str) -> None:
    """REGISTER of a reserved or invalid URI: ERROR wamp.error.invalid_uri."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([64, 1, {}, procedure])
    assert error[:3] == [8, 64, 1]
    assert error[4] == "wamp.error.invalid_uri"


async def test_unregister(hub: Hub, wamp: WampFactory, raw_wamp: RawFactory) -> None:
    """UNREGISTERED frees the name; an unknown id gets wamp.error.no_such_registration."""
    callee = await wamp(hub)
    caller = await wamp(hub)
    registration = await callee.register(lambda: "here", "com.unreg")
    assert await caller.call("com.unreg") == "here"
    await registration.unregister()
    with pytest.raises(ApplicationError) as raised:
        await caller.call("com.unreg")
    assert raised.value.error == "wamp.error.no_such_procedure"

    raw = await raw_wamp(hub, join=True)
    error = await raw.request([66, 3, 99999])
    assert error[:3] == [8, 66, 3]
    assert error[4] == "wamp.error.no_such_registration"


async def test_unregister_someone_elses_registration(hub: Hub, raw_wamp: RawFactory) -> None:
    """A session cannot unregister another session's registration."""
    owner = await raw_wamp(hub, join=True)
    registered = await owner.request([64, 1, {}, "com.mine"])
    other = await raw_wamp(hub, join=True)
    error = await other.request([66, 2, registered[2]])
    assert error[4] == "wamp.error.no_such_registration"


@ALL_SERIALIZERS
async def test_callee_leaving_mid_call_cancels(
    hub: Hub, wamp: WampFactory, serializer: str
) -> None:
    """The callee leaving while a call runs: the caller gets ERROR wamp.error.canceled."""
    callee = await wamp(hub, serializer)
    caller = await wamp(hub)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    await callee.register(forever, "com.forever")
    call = asyncio.ensure_future(caller.call("com.forever"))
    await wait_for(started.wait())
    callee.leave()
    with pytest.raises(ApplicationError) as raised:
        await wait_for(call)
    assert raised.value.error == "wamp.error.canceled"


async def test_calls_keep_their_order(hub: Hub, wamp: WampFactory) -> None:
    """Calls from one caller reach one callee in order, and their results come back in order."""
    callee = await wamp(hub, "msgpack")
    caller = await wamp(hub)
    seen: list[int] = []

    def record(n: int) -> int:
        seen.append(n)
        return n

    await callee.register(record, "com.order")
    results: list[int] = []
    calls = [caller.call("com.order", n) for n in range(50)]
    for call in calls:
        call.add_done_callback(lambda done: results.append(done.result()))
    await wait_for(asyncio.gather(*calls))
    assert seen == list(range(50))
    assert results == list(range(50))


# --- hub methods as WAMP procedures ----------------------------------------------------


@pytest.fixture
def math_hub(hub: Hub) -> Hub:
    from hub.rpc import RpcError

    @hub.rpc("math.add")
    async def add(a: int, b: int = 0) -> int:
        return a + b

    @hub.rpc("math.div")
    def div(a: float, b: float) -> float:
        if b == 0:
            raise RpcError(4001, "division by zero", {"a": a})
        return a / b

    @hub.rpc("math.broken")
    async def broken() -> None:
        raise RuntimeError("bug")

    @hub.rpc("math.slow")
    async def slow() -> str:
        await asyncio.sleep(30)
        return "late"

    return hub


@ALL_SERIALIZERS
async def test_hub_method_with_args_or_kwargs(
    math_hub: Hub, wamp: WampFactory, serializer: str
) -> None:
    """math.add takes args, kwargs, or both (positional first)."""
    caller = await wamp(math_hub, serializer)
    assert await caller.call("math.add", 2, 3) == 5
    assert await caller.call("math.add", a=4, b=6) == 10
    assert await caller.call("math.add", 1, b=9) == 10
    assert await caller.call("math.add", 7) == 7
    assert await caller.call("math.div", 1, 4) == 0.25


async def test_hub_method_validation_error(math_hub: Hub, wamp: WampFactory) -> None:
    """Params pydantic refuses: wamp.error.invalid_argument with the details."""
    caller = await wamp(math_hub)
    for args, kwargs in [(("x", 1), {}), ((1, 2, 3), {}), ((1,), {"a": 2}), ((), {"c": 1})]:
        with pytest.raises(ApplicationError) as raised:
            await caller.call("math.add", *args, **kwargs)
        assert raised.value.error == "wamp.error.invalid_argument"
        assert raised.value.kwargs["code"] == -32602


async def test_hub_method_rpc_error(math_hub: Hub, wamp: WampFactory) -> None:
    """An RpcError becomes wshub.error.<code> with message and data."""
    caller = await wamp(math_hub)
    with pytest.raises(ApplicationError) as raised:
        await caller.call("math.div", 1, 0)
    assert raised.value.error == "wshub.error.4001"
    assert raised.value.args == ("division by zero",)
    assert raised.value.kwargs == {"code": 4001, "data": {"a": 1}}


async def test_hub_method_crash(math_hub: Hub, wamp: WampFactory) -> None:
    """An unexpected exception: wamp.error.runtime_error, the session keeps working."""
    caller = await wamp(math_hub)
    with pytest.raises(ApplicationError) as raised:
        await caller.call("math.broken")
    assert raised.value.error == "wamp.error.runtime_error"
    assert await caller.call("math.add", 1, 1) == 2


async def test_hub_method_timeout(math_hub: Hub, wamp: WampFactory) -> None:
    """CALL.Options.timeout applies to hub methods too: wamp.error.timeout."""
    from autobahn.wamp.types import CallOptions

    caller = await wamp(math_hub)
    with pytest.raises(ApplicationError) as raised:
        await caller.call("math.slow", options=CallOptions(timeout=100))
    assert raised.value.error == "wamp.error.timeout"


async def test_hub_method_cancel(math_hub: Hub, raw_wamp: RawFactory) -> None:
    """CANCEL of a running hub method: ERROR wamp.error.canceled."""
    raw = await raw_wamp(math_hub, join=True)
    await raw.send([48, 1, {}, "math.slow", []])
    await asyncio.sleep(0.05)
    await raw.send([49, 1, {"mode": "kill"}])
    error = await raw.recv()
    assert error[:3] == [8, 48, 1]
    assert error[4] == "wamp.error.canceled"


async def test_exact_hub_method_beats_prefix_registration(math_hub: Hub, wamp: WampFactory) -> None:
    """A prefix registration on "math" does not shadow the hub's math.add."""
    callee = await wamp(math_hub)
    caller = await wamp(math_hub)
    await callee.register(lambda *a: "callee", "math", options=RegisterOptions(match="prefix"))
    assert await caller.call("math.add", 1, 2) == 3
    assert await caller.call("math.mul", 1, 2) == "callee"


# --- advanced: patterns, progress, disclosure -------------------------------------------


async def test_pattern_registration_precedence(hub: Hub, wamp: WampFactory) -> None:
    """exact > longest prefix > wildcard with the longest leading components (the spec's table)."""
    callee = await wamp(hub)
    caller = await wamp(hub)

    def named(name: str) -> Any:
        def endpoint(*args: Any, details: CallDetails) -> list[Any]:
            return [name, details.procedure]

        return endpoint

    for name, uri, match in [
        ("1", "a1.b2.c3.d4.e55", "exact"),
        ("2", "a1.b2.c3", "prefix"),
        ("3", "a1.b2.c3.d4", "prefix"),
        ("4", "a1.b2..d4.e5", "wildcard"),
        ("5", "a1.b2.c3..e5", "wildcard"),
        ("6", "a1.b2..d4.e5..g7", "wildcard"),
        ("7", "a1.b2..d4..f6.g7", "wildcard"),
    ]:
        await callee.register(
            named(name), uri, options=RegisterOptions(match=match, details_arg="details")
        )
    expected = {
        "a1.b2.c3.d4.e55": "1",
        "a1.b2.c3.d98.e74": "2",
        "a1.b2.c3.d4.e325": "3",
        "a1.b2.c55.d4.e5": "4",
        "a1.b2.c3.d4.e5": "3",  # prefix a1.b2.c3.d4 beats every wildcard
        "a1.b2.c88.d4.e5.f6.g7": "6",
    }
    for procedure, name in expected.items():
        got = await caller.call(procedure)
        assert got[0] == name, procedure
        # The concrete procedure is in INVOCATION.Details for pattern registrations.
        assert got[1] == procedure
    with pytest.raises(ApplicationError) as raised:
        await caller.call("a2.b2.c2.d2.e2")
    assert raised.value.error == "wamp.error.no_such_procedure"


async def test_wildcard_rank_without_prefixes(hub: Hub, wamp: WampFactory) -> None:
    """Among wildcards, longer leading runs of components win (a1.b2.c3..e5 over a1.b2..d4.e5)."""
    callee = await wamp(hub)
    caller = await wamp(hub)
    await callee.register(lambda: "4", "a1.b2..d4.e5", options=RegisterOptions(match="wildcard"))
    await callee.register(lambda: "5", "a1.b2.c3..e5", options=RegisterOptions(match="wildcard"))
    assert await caller.call("a1.b2.c3.d4.e5") == "5"


@ALL_SERIALIZERS
async def test_progressive_results(hub: Hub, wamp: WampFactory, serializer: str) -> None:
    """receive_progress: YIELD progress=true arrives as RESULT progress, then the final one."""
    from autobahn.wamp.types import CallOptions

    callee = await wamp(hub, serializer)
    caller = await wamp(hub, serializer)

    async def countdown(n: int, details: CallDetails) -> str:
        assert details.progress is not None
        for i in range(n, 0, -1):
            details.progress(i, left=i - 1)
        return "liftoff"

    await callee.register(countdown, "com.countdown", RegisterOptions(details_arg="details"))
    progress: list[tuple[Any, ...]] = []
    result = await caller.call(
        "com.countdown",
        3,
        options=CallOptions(on_progress=lambda *args, **kw: progress.append((*args, kw))),
    )
    assert result == "liftoff"
    assert progress == [(3, {"left": 2}), (2, {"left": 1}), (1, {"left": 0})]


async def test_progress_not_sent_to_caller_that_did_not_ask(
    hub: Hub, wamp: WampFactory, raw_wamp: RawFactory
) -> None:
    """Without receive_progress the callee gets no progress callback; only RESULT comes."""
    callee = await wamp(hub)

    async def maybe(details: CallDetails) -> str:
        return "no progress" if details.progress is None else "progress"

    await callee.register(maybe, "com.maybe", RegisterOptions(details_arg="details"))
    raw = await raw_wamp(hub, join=True)
    assert await raw.request([48, 1, {}, "com.maybe", []]) == [50, 1, {}, ["no progress"]]


async def test_caller_disclosure(hub: Hub, wamp: WampFactory, raw_wamp: RawFactory) -> None:
    """disclose_me=true tells the callee the caller's session id, authid and authrole."""
    callee = await wamp(hub)

    def who(details: CallDetails) -> list[Any]:
        return [details.caller, details.caller_authrole]

    await callee.register(who, "com.who", RegisterOptions(details_arg="details"))
    raw = await raw_wamp(hub, join=True)
    disclosed = await raw.request([48, 1, {"disclose_me": True}, "com.who", []])
    assert disclosed[3] == [[raw.session_id, "anonymous"]]
    hidden = await raw.request([48, 2, {}, "com.who", []])
    assert hidden[3] == [[None, None]]


async def test_router_discloses_callers_when_configured(
    make_hub: HubFactory, wamp: WampFactory
) -> None:
    """[wamp] disclose_caller=true discloses every caller."""
    hub = await make_hub({"wamp": {"disclose_caller": True}})
    callee = await wamp(hub)
    caller = await wamp(hub, "msgpack")
    await callee.register(
        lambda details: details.caller, "com.who", RegisterOptions(details_arg="details")
    )
    assert await caller.call("com.who") == caller.joined.result().session


async def test_shared_registration_is_refused(hub: Hub, raw_wamp: RawFactory) -> None:
    """invoke policies other than single: wamp.error.option_not_allowed."""
    raw = await raw_wamp(hub, join=True)
    error = await raw.request([64, 1, {"invoke": "roundrobin"}, "com.shared"])
    assert error[4] == "wamp.error.option_not_allowed"


async def test_result_that_caller_cannot_decode(hub: Hub, raw_wamp: RawFactory) -> None:
    """A CBOR tag a JSON caller cannot receive: ERROR wamp.error.invalid_payload instead."""
    import cbor2

    callee = await raw_wamp(hub, "cbor", join=True)
    assert (await callee.request([64, 1, {}, "com.tagged"]))[0] == 65
    caller = await raw_wamp(hub, "json", join=True)
    await caller.send([48, 1, {}, "com.tagged", []])
    invocation = await callee.recv()
    await callee.send([70, invocation[1], {}, [cbor2.CBORTag(4242, "opaque")]])
    error = await caller.recv()
    assert error[:3] == [8, 48, 1]
    assert error[4] == "wamp.error.invalid_payload"
