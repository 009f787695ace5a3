"""Per-connection message rate: the token bucket, each protocol's refusal, then the close.

The hubs here refill one token per thousand seconds, so a test's messages are
accepted or refused by count alone, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import CallContext, Hub
from hub.limits import MessageRateLimiter, OpeningPool
from protocols.mqtt.codec import (
    SUBACK_FAILURE,
    Connack,
    Connect,
    PacketReader,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    encode,
)

SLOW = 0.001  # tokens per second: none come back during a test


def limited(burst: int) -> dict[str, Any]:
    return {"limits": {"message_rate": SLOW, "message_burst": burst}}


def sample(hub: Hub, name: str, **labels: str) -> float:
    return hub.metrics.registry.get_sample_value(name, labels or None) or 0.0


async def read_until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(5):
        while True:
            await ws.recv()


async def closed_for_rate(ws: ClientConnection) -> None:
    """The connection ends with 1008 "message rate exceeded"."""
    with pytest.raises(ConnectionClosed):
        await read_until_closed(ws)
    assert (ws.close_code, ws.close_reason) == (1008, "message rate exceeded")


# -- the bucket ----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    """A full bucket passes ``burst`` messages at once, then one per 1/rate seconds."""
    clock = FakeClock()
    bucket = MessageRateLimiter(rate=10, burst=3, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.05  # half a token
    assert not bucket.allow()
    clock.now += 0.06
    assert bucket.allow()
    assert not bucket.allow()
    clock.now += 1000  # refills to the burst, never beyond
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]


def test_refusals_are_forgiven_only_by_a_full_bucket() -> None:
    """Refusals add up while the client stays over the rate; a full refill resets them."""
    clock = FakeClock()
    bucket = MessageRateLimiter(rate=8, burst=5, clock=clock)
    for _ in range(5):
        bucket.allow()
    for step in range(1, 20):
        # Twice the rate (half a token per message): every other one passes,
        # and refusals still grow.
        clock.now += 1 / 16
        bucket.allow()
        assert bucket.refused == (step + 1) // 2
    clock.now += 0.25  # part of the bucket back: not forgiven yet
    assert bucket.allow()
    assert bucket.refused == 10
    clock.now += 1.0
    assert bucket.allow()
    assert bucket.refused == 0


def test_a_young_bucket_opens_small_and_grows_with_age() -> None:
    """A new connection starts with ``opening`` tokens and as many refusals to
    spare; both grow at the rate up to the burst."""
    clock = FakeClock()
    bucket = MessageRateLimiter(rate=10, burst=100, opening=5, clock=clock)
    assert [bucket.allow() for _ in range(6)] == [True] * 5 + [False]
    for _ in range(4):
        assert not bucket.allow()
    assert not bucket.flooding  # 5 refusals: its allowance, not more
    assert not bucket.allow()
    assert bucket.flooding
    clock.now += 10.0  # old enough: a whole burst, and refusals forgiven
    assert all(bucket.allow() for _ in range(100))
    assert not bucket.allow()
    assert not bucket.flooding


def test_young_connections_of_one_address_share_its_pool() -> None:
    """Past its own opening, a young bucket draws on its address's pool; an old
    one, a penalized one and another address do not touch it."""
    clock = FakeClock()
    pool = OpeningPool(rate=10, burst=6, clock=clock)
    first = MessageRateLimiter(rate=10, burst=100, opening=2, pool=pool, key="a", clock=clock)
    second = MessageRateLimiter(rate=10, burst=100, opening=2, pool=pool, key="a", clock=clock)
    # Its own 2, then the pool's 6.
    assert [first.allow() for _ in range(9)] == [True] * 8 + [False]
    # Its own 2; the pool is spent.
    assert [second.allow() for _ in range(3)] == [True, True, False]
    other = MessageRateLimiter(rate=10, burst=100, opening=2, pool=pool, key="b", clock=clock)
    assert [other.allow() for _ in range(9)] == [True] * 8 + [False]
    penalized = MessageRateLimiter(
        rate=10, burst=100, opening=2, pool=pool, key="c", full=False, clock=clock
    )
    assert not penalized.allow()
    assert pool.take("c")  # untouched: still full
    clock.now += 100.0  # old: its own whole burst, the pool no more
    assert all(first.allow() for _ in range(100))
    assert not first.allow()


def test_a_young_bucket_in_debt_does_not_draw_on_the_pool() -> None:
    """A large reply past its tokens is paid by the pool as far as it goes, the
    rest is debt; in debt, its messages do not draw on the pool."""
    clock = FakeClock()
    pool = OpeningPool(rate=10, burst=6, clock=clock)
    bucket = MessageRateLimiter(rate=10, burst=100, opening=2, pool=pool, key="a", clock=clock)
    assert bucket.allow()
    bucket.charge(50)  # a large reply: 1 of its own, 6 of the pool, 43 in debt
    assert not bucket.allow()
    assert not pool.take("a")  # spent by the reply, not by the refused message
    other = MessageRateLimiter(rate=10, burst=100, opening=2, pool=pool, key="a", clock=clock)
    assert [other.allow() for _ in range(3)] == [True, True, False]


def test_a_young_bucket_pays_a_large_reply_from_the_pool_and_goes_on() -> None:
    """One client's opening history fetch is covered by its address's pool: no debt."""
    clock = FakeClock()
    pool = OpeningPool(rate=10, burst=100, clock=clock)
    bucket = MessageRateLimiter(rate=10, burst=100, opening=5, pool=pool, key="a", clock=clock)
    assert all(bucket.allow() for _ in range(4))
    bucket.charge(60)  # 1 of its own, 59 of the pool
    assert bucket.allow()  # not in debt: served from the pool
    assert pool.draw("a", 100) == 40
    old = MessageRateLimiter(rate=10, burst=100, opening=5, pool=pool, key="b", clock=clock)
    clock.now += 100.0  # old: a reply past its tokens is its own debt
    assert all(old.allow() for _ in range(100))
    old.charge(10)
    assert not old.allow()
    assert pool.draw("b", 100) == 100  # untouched


def test_the_pool_forgets_the_least_recently_used_address() -> None:
    clock = FakeClock()
    pool = OpeningPool(rate=1, burst=1, max_entries=2, clock=clock)
    assert pool.take("a")
    assert pool.take("b")
    assert not pool.take("a")  # a is now the most recent
    assert pool.take("c")  # b forgotten
    assert len(pool) == 2
    assert pool.take("b")  # full again


def test_an_opening_larger_than_the_burst_is_the_burst() -> None:
    clock = FakeClock()
    bucket = MessageRateLimiter(rate=10, burst=3, opening=50, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]


def test_bucket_refuses_nonsense_settings() -> None:
    """A rate of zero or a burst below one is a programming error."""
    with pytest.raises(ValueError, match="rate must be positive"):
        MessageRateLimiter(0, 5)
    with pytest.raises(ValueError, match="burst at least 1"):
        MessageRateLimiter(1, 0)
    with pytest.raises(ValueError, match="opening must be at least 1"):
        MessageRateLimiter(1, 5, opening=0)


# -- JSON-RPC and channels.v1 ---------------------------------------------------


async def test_jsonrpc_requests_get_32029_then_the_connection_closes(make_hub, jsonrpc) -> None:
    """Over the rate: requests get -32029, notifications nothing, answers to hub calls count."""
    # 7 refusals before the close: the batch below counts one per element.
    hub = await make_hub(limited(burst=7))

    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.session_id

    peer = await jsonrpc(hub)
    session_id = await peer.call("whoami")
    for _ in range(6):
        await peer.call("whoami")
    # 1: a request.
    error = await peer.error("whoami")
    assert error == {
        "code": -32029,
        "message": "Rate limit exceeded",
        "data": {"message_rate": SLOW},
    }
    # 2: a notification is dropped without a word.
    await peer.send({"jsonrpc": "2.0", "method": "whoami"})
    assert await peer.silent_for(0.2)
    # 3-5: a batch: one error per request, none for its notification; each
    # element a refusal.
    await peer.send(
        [
            {"jsonrpc": "2.0", "id": "a", "method": "whoami"},
            {"jsonrpc": "2.0", "method": "whoami"},
            {"jsonrpc": "2.0", "id": "b", "method": "whoami"},
        ]
    )
    batch = await peer.recv()
    assert sorted(item["id"] for item in batch) == ["a", "b"]
    assert {item["error"]["code"] for item in batch} == {-32029}
    # 6: the answer to the hub's own call still gets through.
    call = asyncio.create_task(hub.call(session_id, "client.ping", timeout=5))
    request = await peer.recv()
    await peer.send({"jsonrpc": "2.0", "id": request["id"], "result": "pong"})
    assert await call == "pong"
    # 7: the last refusal answered; the next message closes.
    assert (await peer.error("whoami"))["code"] == -32029
    await peer.send({"jsonrpc": "2.0", "id": 99, "method": "whoami"})
    await closed_for_rate(peer.ws)
    assert sample(hub, "wshub_messages_rate_limited_total", subprotocol="jsonrpc.2.0") == 6
    assert sample(hub, "wshub_rate_limit_closes_total", subprotocol="jsonrpc.2.0") == 1


async def test_channels_subscribe_over_the_rate_is_refused(make_hub, jsonrpc) -> None:
    """channels.v1 answers -32029 and the refused subscribe does not happen."""
    hub = await make_hub(limited(burst=1))
    peer = await jsonrpc(hub, "channels.v1")
    await peer.call("subscribe", {"channel": "news"})
    error = await peer.error("subscribe", {"channel": "sport"})
    assert error["code"] == -32029
    await hub.publish("sport", "goal")
    await hub.publish("news", 2)
    # Only the news subscription exists: the next frame is news, not sport.
    message = await peer.recv()
    assert (message["params"]["channel"], message["params"]["data"]) == ("news", 2)
    assert sample(hub, "wshub_messages_rate_limited_total", subprotocol="channels.v1") == 1


# -- WAMP -----------------------------------------------------------------------

HELLO = [1, "realm1", {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}]


async def wamp_session(connect: Any, hub: Hub) -> ClientConnection:
    ws: ClientConnection = await connect(hub, "wamp.2.json")
    await ws.send(json.dumps(HELLO))
    welcome = json.loads(await ws.recv())
    assert welcome[0] == 2, welcome
    return ws


async def wamp_recv(ws: ClientConnection) -> list[Any]:
    async with asyncio.timeout(5):
        message: list[Any] = json.loads(await ws.recv())
    return message


async def test_wamp_requests_get_rate_limited_errors(make_hub, connect) -> None:
    """Over the rate: CALL, acknowledged PUBLISH, SUBSCRIBE get ERROR; YIELD still answers."""
    hub = await make_hub(limited(burst=5))
    callee = await wamp_session(connect, hub)  # HELLO: 1
    await callee.send(json.dumps([64, 1, {}, "com.example.echo"]))  # 2
    registered = await wamp_recv(callee)
    assert registered[0] == 65
    for request in (2, 3, 4):  # 3, 4, 5
        await callee.send(json.dumps([16, request, {"acknowledge": True}, "com.example.news"]))
        assert (await wamp_recv(callee))[:2] == [17, request]

    # Refused 1-2: a CALL and an acknowledged PUBLISH get ERROR.
    await callee.send(json.dumps([48, 10, {}, "com.example.echo", ["x"]]))
    assert await wamp_recv(callee) == [
        8,
        48,
        10,
        {},
        "wshub.error.rate_limited",
        ["message rate exceeded"],
    ]
    await callee.send(json.dumps([16, 11, {"acknowledge": True}, "com.example.news"]))
    assert (await wamp_recv(callee))[:5] == [8, 16, 11, {}, "wshub.error.rate_limited"]
    # Refused 3: an unacknowledged PUBLISH is dropped silently.
    await callee.send(json.dumps([16, 12, {}, "com.example.news"]))
    # Refused 4: the YIELD to another session's call is still routed.
    caller = await wamp_session(connect, hub)
    await caller.send(json.dumps([48, 1, {}, "com.example.echo", ["hi"]]))
    invocation = await wamp_recv(callee)
    assert invocation[0] == 68  # the unacknowledged PUBLISH got no answer before it
    await callee.send(json.dumps([70, invocation[1], {}, ["hi back"]]))
    assert await wamp_recv(caller) == [50, 1, {}, ["hi back"]]
    # Refused 5: SUBSCRIBE.
    await callee.send(json.dumps([32, 13, {}, "com.example.news"]))
    assert (await wamp_recv(callee))[:5] == [8, 32, 13, {}, "wshub.error.rate_limited"]
    # The next one closes.
    await callee.send(json.dumps([32, 14, {}, "com.example.news"]))
    await closed_for_rate(callee)
    assert sample(hub, "wshub_rate_limit_closes_total", subprotocol="wamp.2.json") == 1


# -- MQTT -----------------------------------------------------------------------


class MqttPeer:
    """Raw MQTT 3.1.1 packets over a websockets client, one packet per frame unless told."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.reader = PacketReader()
        self.pending: list[Any] = []

    async def send(self, packet: Any) -> None:
        await self.ws.send(encode(packet))

    async def recv(self) -> Any:
        async with asyncio.timeout(5):
            while not self.pending:
                self.pending.extend(self.reader.feed(await self.ws.recv()))
        return self.pending.pop(0)


async def test_mqtt_publish_dropped_subscribe_refused_stream_kept(make_hub, connect) -> None:
    """Over the rate: PUBLISH dropped (no PUBACK), SUBACK 0x80, PINGREQ answered, framing kept."""
    hub = await make_hub(limited(burst=5))
    peer = MqttPeer(await connect(hub, "mqtt"))
    await peer.send(Connect(client_id="limited"))  # 1
    assert await peer.recv() == Connack()
    await peer.send(Subscribe(1, (("t/#", 1),)))  # 2
    assert await peer.recv() == Suback(1, (1,))
    await peer.send(Publish("t/a", b"one", qos=1, packet_id=2))  # 3
    received = [await peer.recv(), await peer.recv()]
    assert Puback(2) in received
    assert any(isinstance(p, Publish) and p.payload == b"one" for p in received)
    for _ in range(2):  # 4, 5
        await peer.send(Pingreq())
        assert await peer.recv() == Pingresp()

    # Refused 1: a QoS 1 PUBLISH is neither acknowledged nor delivered.
    await peer.send(Publish("t/b", b"two", qos=1, packet_id=3))
    # Refused 2: SUBSCRIBE fails every filter.
    await peer.send(Subscribe(4, (("u/#", 0), ("v/#", 1))))
    assert await peer.recv() == Suback(4, (SUBACK_FAILURE, SUBACK_FAILURE))
    # Refused 3-4: a PUBLISH cut across two frames is dropped whole...
    split = encode(Publish("t/c", b"three" * 20))
    await peer.ws.send(split[:7])
    await peer.ws.send(split[7:])
    # ...refused 5: and the stream is still in step: PINGREQ is answered.
    await peer.send(Pingreq())
    assert await peer.recv() == Pingresp()
    assert peer.pending == []  # nothing of t/b or t/c was delivered before it
    # The next one closes.
    await peer.send(Pingreq())
    assert peer.pending == []
    await closed_for_rate(peer.ws)
    assert sample(hub, "wshub_messages_rate_limited_total", subprotocol="mqtt") == 6
