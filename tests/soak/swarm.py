"""One swarm of soak clients, run as its own process: ``python -m tests.soak.swarm``.

It reads a plan (JSON) from its first stdin line, opens every client, says
``{"event": "ready"}`` on stdout, waits for ``go`` on stdin, then plays the
plan: publishers publish numbered messages, well-behaved subscribers check
they get every message of every source in order, slow clients stop reading,
garbage clients send their protocol's nonsense and check its error or close,
abrupt clients drop their TCP connection mid-stream. It ends by closing its
well-behaved clients cleanly and printing ``{"event": "report", ...}``.

The clients are the asyncio ones of ``tests.protocol_clients`` and, for some
WAMP subscribers, Autobahn|Python (on the same loop: no thread per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import txaio

from protocols.mqtt.codec import Will
from tests.protocol_clients import ChannelsClient, JsonRpcClient, MqttClient, Peer, WampClient

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402  (after txaio's choice)
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from autobahn.wamp.types import ComponentConfig  # noqa: E402

FEED = "soak/feed"
BULK = "soak/bulk"
ROOM = "soak/room"
WAMP_SERIALIZERS = ("json", "msgpack", "cbor")
P = TypeVar("P", bound=Peer)
# An abrupt client's wait for its own abort, at most: the play's stall check
# ends it sooner if the feed stops.
ABORT_WAIT = 600.0
AUTOBAHN_SERIALIZERS = {
    "json": JsonSerializer,
    "msgpack": MsgPackSerializer,
    "cbor": CBORSerializer,
}


@dataclass
class Plan:
    swarm: str
    url: str
    # Clients per protocol and role.
    counts: dict[str, dict[str, int]]
    # Messages every well-behaved feed subscriber must get, by source.
    feed: dict[str, int]
    bulk: int
    publishes: int
    rpc_calls: int
    # An abrupt client drops its connection after this many feed messages.
    abort_after: int
    seed: int
    # The play fails once nothing has progressed (no message delivered,
    # published, called, refused or aborted) for this many seconds: a lost
    # message shows as a stall, while a slow machine only makes the play longer.
    stall: float


class Tally:
    """What one subscriber got: every source's messages must arrive in order, none missing."""

    def __init__(self, expected: dict[str, int], name: str) -> None:
        self.name = name
        self.expected = expected
        self.next = dict.fromkeys(expected, 0)
        self.total = sum(expected.values())
        self.count = 0
        self.errors: list[str] = []
        self.done = asyncio.Event()
        self.on_count: Callable[[int], None] = lambda count: None
        if self.total == 0:
            self.done.set()

    def see(self, value: Any) -> None:
        if not isinstance(value, dict) or "src" not in value:
            self.errors.append(f"{self.name}: unexpected payload {value!r:.80}")
            return
        source, seq = value["src"], value["seq"]
        wanted = self.next.get(source)
        if wanted is None:
            self.errors.append(f"{self.name}: unknown source {source!r}")
            return
        if seq != wanted:
            self.errors.append(f"{self.name}: {source} #{seq} arrived, #{wanted} expected")
        self.next[source] = seq + 1
        self.count += 1
        self.on_count(self.count)
        if self.count >= self.total:
            self.done.set()

    def missing(self) -> dict[str, int]:
        return {s: n - self.next[s] for s, n in self.expected.items() if self.next[s] != n}


@dataclass
class Report:
    swarm: str
    clients: int = 0
    subscribers: int = 0
    complete: int = 0
    delivered: int = 0
    rpc_calls: int = 0
    published: int = 0
    garbage: int = 0
    aborted: int = 0
    slow: int = 0
    slow_closed: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class Swarm:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.report = Report(plan.swarm)
        self.random = random.Random(plan.seed)
        self.host, port = plan.url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        self.port = int(port)
        self.tallies: list[Tally] = []
        self.good: list[Peer] = []
        self.autobahn: list[tuple[Soaker, Any]] = []
        self.slow: list[Peer] = []
        self.publishers: list[Callable[[], Awaitable[None]]] = []
        self.behaviours: list[Callable[[], Awaitable[None]]] = []
        self._opening = asyncio.Semaphore(32)

    def fail(self, message: str) -> None:
        if len(self.report.failures) < 50:
            self.report.failures.append(f"{self.plan.swarm}: {message}")

    def count(self, protocol: str, role: str) -> int:
        return self.plan.counts.get(protocol, {}).get(role, 0)

    def tally(self, name: str, feed: bool = True, bulk: bool = False) -> Tally:
        expected = dict(self.plan.feed) if feed else {}
        if bulk:
            expected["bulk"] = self.plan.bulk
        tally = Tally(expected, f"{self.plan.swarm}/{name}")
        self.tallies.append(tally)
        return tally

    async def opened(self, kind: type[P], **options: Any) -> P:
        async with self._opening:
            peer = await kind.open(self.plan.url, **options)
        self.report.clients += 1
        return peer

    # -- well-behaved clients ------------------------------------------------------------

    async def channels_subscriber(self, n: int) -> None:
        client = await self.opened(ChannelsClient)
        bulk = n < 2
        tally = self.tally(f"channels-{n}", bulk=bulk)
        client.on_notification = lambda m: (
            tally.see(m["params"]["data"]) if m["method"] == "message" else None
        )
        await client.subscribe(FEED)
        await client.subscribe(ROOM, presence=True)
        if bulk:
            await client.subscribe(BULK)
        self.good.append(client)

    async def mqtt_subscriber(self, n: int) -> None:
        client = await self.opened(MqttClient)
        await client.connect(f"{self.plan.swarm}-sub-{n}")
        tally = self.tally(f"mqtt-{n}")
        client.on_publish = lambda packet: tally.see(orjson.loads(packet.payload))
        await client.subscribe(FEED, n % 3)
        self.good.append(client)

    async def wamp_subscriber(self, n: int) -> None:
        serializer = WAMP_SERIALIZERS[n % 3]
        tally = self.tally(f"wamp-{serializer}-{n}")
        if n % 4 == 0:
            await self.autobahn_subscriber(serializer, tally)
            return
        client = await self.opened(WampClient, subprotocol=f"wamp.2.{serializer}")
        await client.join()
        client.on_event = lambda event: tally.see(event[4][0])
        await client.subscribe(FEED.replace("/", "."))
        self.good.append(client)

    async def autobahn_subscriber(self, serializer: str, tally: Tally) -> None:
        session = Soaker(ComponentConfig("realm1"), tally)
        factory = WampWebSocketClientFactory(
            lambda: session, url=self.plan.url, serializers=[AUTOBAHN_SERIALIZERS[serializer]()]
        )
        async with self._opening:
            transport, _ = await asyncio.get_running_loop().create_connection(
                factory, self.host, self.port
            )
            async with asyncio.timeout(20):
                await session.subscribed
        self.report.clients += 1
        self.autobahn.append((session, transport))

    async def rpc_caller(self, n: int) -> None:
        client = await self.opened(JsonRpcClient)

        async def calls() -> None:
            for i in range(self.plan.rpc_calls):
                result = await client.call("soak.echo", {"value": [n, i]})
                if result != [n, i]:
                    self.fail(f"rpc {n}: call {i} answered {result!r}")
                self.report.rpc_calls += 1
            futures = client.start_batch([("soak.echo", [[n, i]]) for i in range(3)])
            async with asyncio.timeout(20):
                replies = [await future for future in futures]
            if [reply.get("result") for reply in replies] != [[n, i] for i in range(3)]:
                self.fail(f"rpc {n}: batch answered {replies!r:.200}")

        self.good.append(client)
        self.behaviours.append(calls)

    # -- publishers ---------------------------------------------------------------------

    async def channels_publisher(self, source: str) -> None:
        client = await self.opened(ChannelsClient)

        async def publish() -> None:
            for seq in range(self.plan.publishes):
                await client.publish(FEED, {"src": source, "seq": seq})
                self.report.published += 1

        self.good.append(client)
        self.publishers.append(publish)

    async def mqtt_publisher(self, source: str) -> None:
        client = await self.opened(MqttClient)
        await client.connect(source)

        async def publish() -> None:
            for seq in range(self.plan.publishes):
                payload = orjson.dumps({"src": source, "seq": seq})
                await client.publish(FEED, payload, 1 + seq % 2)
                self.report.published += 1

        self.good.append(client)
        self.publishers.append(publish)

    async def wamp_publisher(self, source: str) -> None:
        client = await self.opened(WampClient, subprotocol="wamp.2.cbor")
        await client.join()

        async def publish() -> None:
            for seq in range(self.plan.publishes):
                await client.publish(FEED.replace("/", "."), [{"src": source, "seq": seq}])
                self.report.published += 1

        self.good.append(client)
        self.publishers.append(publish)

    # -- slow consumers: subscribe, then never read again --------------------------------

    async def slow_client(self, protocol: str, n: int) -> None:
        peer: Peer
        if protocol == "channels.v1":
            channels = await self.opened(ChannelsClient, recv_buffer=4096)
            await channels.subscribe(FEED)
            await channels.subscribe(BULK)
            peer = channels
        elif protocol == "mqtt":
            mqtt = await self.opened(MqttClient, recv_buffer=4096)
            await mqtt.connect(f"{self.plan.swarm}-slow-{n}")
            await mqtt.subscribe(FEED, 0)
            await mqtt.subscribe(BULK, 0)
            peer = mqtt
        else:
            wamp = await self.opened(WampClient, subprotocol="wamp.2.msgpack", recv_buffer=4096)
            await wamp.join()
            await wamp.subscribe(FEED.replace("/", "."))
            await wamp.subscribe(BULK.replace("/", "."))
            peer = wamp
        peer.stop_reading()
        self.slow.append(peer)
        self.report.slow += 1

    # -- garbage: each protocol's nonsense must get that protocol's answer ---------------

    async def garbage_client(self, protocol: str, n: int) -> None:
        junk = bytes(self.random.getrandbits(8) for _ in range(self.random.randint(1, 64)))
        if protocol == "jsonrpc.2.0":
            rpc = await self.opened(JsonRpcClient)

            async def play_rpc() -> None:
                for frame, code in (("}{ not json", -32700), ("[]", -32600), (junk, -32600)):
                    rpc.send_frame(frame)
                    async with asyncio.timeout(20):
                        reply = await rpc.orphans.get()
                    if reply.get("error", {}).get("code") != code:
                        self.fail(f"jsonrpc garbage {frame!r:.40} answered {reply!r:.200}")
                        return
                if await rpc.call("soak.echo", {"value": "still"}) != "still":
                    self.fail("jsonrpc garbage client not served after its errors")
                    return
                await rpc.close()
                self.report.garbage += 1

            self.behaviours.append(play_rpc)
        elif protocol == "channels.v1":
            channels = await self.opened(ChannelsClient)

            async def play_channels() -> None:
                channels.send_frame(junk.hex() + "{")
                async with asyncio.timeout(20):
                    parse = await channels.orphans.get()
                codes = [parse.get("error", {}).get("code")]
                for params in ({"channel": 5}, {"channel": "a/#/b"}, {"channel": FEED, "x": 1}):
                    reply = await channels.request("subscribe", params)
                    codes.append(reply.get("error", {}).get("code"))
                if codes[:2] != [-32700, -32602] or codes[3] != -32602 or codes[2] is None:
                    self.fail(f"channels garbage answered {codes}")
                    return
                await channels.close()
                self.report.garbage += 1

            self.behaviours.append(play_channels)
        elif protocol == "mqtt":
            mqtt = await self.opened(MqttClient)
            connected = n % 2 == 0
            if connected:
                await mqtt.connect(f"{self.plan.swarm}-junk-{n}")

            async def play_mqtt() -> None:
                # Packet type 0 and 15 are reserved: a protocol error, whatever follows.
                if n % 3 == 2:
                    mqtt.send_frame("text is not MQTT")
                    expected = 1003
                else:
                    mqtt.send_frame(bytes([0xF0 if n % 2 else 0x00]) + junk)
                    expected = 1002
                code, _ = await mqtt.wait_closed(20)
                if code != expected:
                    self.fail(f"mqtt garbage (connected={connected}) closed with {code}")
                    return
                self.report.garbage += 1

            self.behaviours.append(play_mqtt)
        else:
            serializer = WAMP_SERIALIZERS[n % 3]
            wamp = await self.opened(WampClient, subprotocol=f"wamp.2.{serializer}")
            if n % 2 == 0:
                await wamp.join()
            # Not a WAMP list in any serialization: invalid JSON, 0xc1 (never used in
            # MessagePack), a lone CBOR "break".
            frames: dict[str, str | bytes] = {
                "json": "[1, " + junk.hex(),
                "msgpack": b"\xc1" + junk,
                "cbor": b"\xff" + junk,
            }
            frame = frames[serializer]

            async def play_wamp() -> None:
                wamp.send_frame(frame)
                code, _ = await wamp.wait_closed(20)
                aborts = [m for m in wamp.goodbyes if m[0] == 3]
                if code != 1002 or not aborts or aborts[-1][2] != "wamp.error.protocol_violation":
                    self.fail(f"wamp garbage ({serializer}) closed {code} after {wamp.goodbyes}")
                    return
                self.report.garbage += 1

            self.behaviours.append(play_wamp)

    # -- abrupt: subscribed (presence, will, registration), then the TCP connection drops

    async def abrupt_client(self, protocol: str, n: int) -> None:
        tally = Tally(dict(self.plan.feed), f"abrupt-{protocol}-{n}")
        peer: Peer
        if protocol == "channels.v1":
            channels = await self.opened(ChannelsClient)
            channels.on_notification = lambda m: (
                tally.see(m["params"]["data"]) if m["method"] == "message" else None
            )
            await channels.subscribe(FEED)
            await channels.subscribe(ROOM, presence=True)
            peer = channels
        elif protocol == "mqtt":
            mqtt = await self.opened(MqttClient)
            will = Will(f"soak/wills/{self.plan.swarm}-{n}", b"gone", 1)
            await mqtt.connect(f"{self.plan.swarm}-abrupt-{n}", will=will)
            mqtt.on_publish = lambda packet: tally.see(orjson.loads(packet.payload))
            await mqtt.subscribe(FEED, 1)
            peer = mqtt
        elif protocol == "jsonrpc.2.0":
            rpc = await self.opened(JsonRpcClient)
            rpc.start("soak.sleep", {"seconds": 30})  # a call still running when it goes
            tally.done.set()
            peer = rpc
        else:
            wamp = await self.opened(WampClient, subprotocol=f"wamp.2.{WAMP_SERIALIZERS[n % 3]}")
            await wamp.join()
            wamp.on_event = lambda event: tally.see(event[4][0])
            await wamp.subscribe(FEED.replace("/", "."))
            peer = wamp
        after = self.random.randint(1, self.plan.abort_after)
        tally.on_count = lambda count: peer.abort() if count == after else None

        async def play_abort() -> None:
            if protocol == "jsonrpc.2.0":
                await asyncio.sleep(self.random.uniform(0.1, 1.0))
                peer.abort()
            # Until the tally reaches ``after``, however long the feed takes
            # (the play's stall check bounds it).
            with contextlib.suppress(TimeoutError):
                await peer.wait_closed(ABORT_WAIT)
            if not peer.is_closed:
                self.fail(f"abrupt {protocol} client still open")
                return
            self.report.aborted += 1

        self.behaviours.append(play_abort)

    # -- the run --------------------------------------------------------------------------

    async def open_all(self) -> None:
        openers: list[Awaitable[None]] = []
        for n in range(self.count("channels.v1", "subscribers")):
            openers.append(self.channels_subscriber(n))
        for n in range(self.count("mqtt", "subscribers")):
            openers.append(self.mqtt_subscriber(n))
        for n in range(self.count("wamp", "subscribers")):
            openers.append(self.wamp_subscriber(n))
        for n in range(self.count("jsonrpc.2.0", "callers")):
            openers.append(self.rpc_caller(n))
        for protocol, source in (("channels.v1", "channels"), ("mqtt", "mqtt"), ("wamp", "wamp")):
            if self.count(protocol, "publishers"):
                publish = getattr(self, f"{source}_publisher")
                openers.append(publish(f"{self.plan.swarm}-{source}"))
        for protocol in ("jsonrpc.2.0", "channels.v1", "mqtt", "wamp"):
            for n in range(self.count(protocol, "slow")):
                openers.append(self.slow_client(protocol, n))
            for n in range(self.count(protocol, "garbage")):
                openers.append(self.garbage_client(protocol, n))
            for n in range(self.count(protocol, "abrupt")):
                openers.append(self.abrupt_client(protocol, n))
        self.random.shuffle(openers)
        await asyncio.gather(*openers)
        self.report.subscribers = len(self.tallies)

    async def play(self) -> None:
        async def timed(run: Callable[[], Awaitable[None]]) -> None:
            started = time.monotonic()
            await run()
            if time.monotonic() - started > 3:
                note(f"{run.__qualname__} took {time.monotonic() - started:.1f}s")

        async def everything() -> None:
            await asyncio.gather(*runs)
            note("publishers and behaviours done")
            await asyncio.gather(*(tally.done.wait() for tally in self.tallies))

        runs = [asyncio.ensure_future(timed(run)) for run in self.publishers + self.behaviours]
        playing = asyncio.ensure_future(everything())
        # No wall-clock deadline: on a loaded machine the same play takes two or
        # three times as long. What fails it is a stall, nothing happening.
        last, since = self.progress(), time.monotonic()
        while not playing.done():
            await asyncio.wait({playing}, timeout=0.25)
            now = self.progress()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > self.plan.stall:
                self.fail(
                    f"nothing progressed for {self.plan.stall:.0f}s before every subscriber "
                    "got every message"
                )
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await playing
                break
        else:
            playing.result()  # a run that raised fails the swarm, as it did
        for run in runs:
            run.cancel()
        for tally in self.tallies:
            self.report.delivered += tally.count
            if tally.done.is_set() and not tally.errors:
                self.report.complete += 1
            for error in tally.errors[:3]:
                self.fail(error)
            if not tally.done.is_set():
                self.fail(f"{tally.name}: missing {tally.missing()}")

    def progress(self) -> int:
        """Everything the play has done so far, as one number that only grows."""
        report = self.report
        done = report.published + report.rpc_calls + report.garbage + report.aborted
        return done + sum(tally.count for tally in self.tallies)

    async def close_all(self) -> None:
        async def close_peer(peer: Peer) -> None:
            if isinstance(peer, MqttClient):
                peer.disconnect()
            elif isinstance(peer, WampClient):
                peer.leave()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await peer.close()

        await asyncio.gather(*(close_peer(peer) for peer in self.good))
        for session, transport in self.autobahn:
            if session.is_attached():
                session.leave()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await session.disconnected
            transport.close()
        # A slow consumer reads again: it must find its connection closed by the hub.
        for peer in self.slow:
            peer.resume_reading()

        async def closed_by_hub(peer: Peer) -> None:
            try:
                await peer.wait_closed(10)
            except TimeoutError:
                self.fail(f"a slow {peer.subprotocol} consumer was never closed by the hub")
                peer.abort()
            else:
                self.report.slow_closed += 1

        await asyncio.gather(*(closed_by_hub(peer) for peer in self.slow))


class Soaker(ApplicationSession):  # type: ignore[misc]
    """An Autobahn|Python subscriber of the feed."""

    def __init__(self, config: ComponentConfig, tally: Tally) -> None:
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.tally = tally
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.disconnected: asyncio.Future[None] = loop.create_future()

    def onConnect(self) -> None:
        self.join(self.config.realm)

    async def onJoin(self, details: Any) -> None:
        await self.subscribe(self.tally.see, FEED.replace("/", "."))
        self.subscribed.set_result(None)

    def onDisconnect(self) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def note(message: str) -> None:
    """Progress for the swarm's log (its stderr, kept by the test)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    plan = Plan(**json.loads(await reader.readline()))
    swarm = Swarm(plan)
    started = time.monotonic()
    try:
        await swarm.open_all()
    except Exception as exc:
        swarm.fail(f"opening clients failed: {exc!r}")
        emit("ready", clients=swarm.report.clients, failed=True)
    else:
        emit("ready", clients=swarm.report.clients, failed=False)
    swarm.report.seconds["open"] = round(time.monotonic() - started, 2)
    note(f"{swarm.report.clients} clients open")
    if (await reader.readline()).strip() == b"go":
        started = time.monotonic()
        await swarm.play()
        swarm.report.seconds["play"] = round(time.monotonic() - started, 2)
        note(f"played: {swarm.report.complete}/{swarm.report.subscribers} complete")
        started = time.monotonic()
        await swarm.close_all()
        swarm.report.seconds["close"] = round(time.monotonic() - started, 2)
        note(f"closed; {len(swarm.report.failures)} failure(s)")
    emit("report", **vars(swarm.report))


if __name__ == "__main__":
    asyncio.run(main())
