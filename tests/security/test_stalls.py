"""One inbound message cannot hold the event loop: the hub yields between units.

Issue 13: one 1 MiB WebSocket message of 131k tiny MQTT PUBLISH packets held
the loop ~1.1 s, 1 MiB of PINGREQ 8 s, a batch of 25k notifications 3.5 s.
Here the attacker's rate is set out of reach, so every packet is handled (the
default rate would close it long before): what is bounded is how long a
well-behaved client waits meanwhile, in the hub's CPU time (the work the hub
did between the client's request and its reply), so that the bound holds on
a machine loaded by other jobs, where wall-clock round trips also count the
hub waiting for a CPU. It catches a loop step of one whole message, not a
slow hub.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as sync_connect
from websockets.typing import Subprotocol

from hub import Hub
from protocols.channels.handler import ChannelsHandler
from tests.conftest import Connector, HubFactory
from tests.protocols.mqtt.conftest import FakeSession
from tests.security.hub_process import HubProcess, RoundTrips, open_ws, wshub

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
# The hub's CPU time during a well-behaved round trip while an attack runs, at
# most. Measured: 0.010 to 0.021 s at most, on a 2-core machine at load 7
# (wall-clock round trips meanwhile up to 0.64 s). Without the yields between
# MQTT packets a round trip took 0.94 to 1.1 s of the hub's CPU; before issue
# 13's fix these attacks stalled everyone 1 to 8 s.
STALL_CPU_BOUND = 0.25
# The attacker's rate, out of reach: the packets are all handled.
UNLIMITED = {"limits": {"message_rate": 1e9, "message_burst": 1_000_000_000}}


async def timed_while(hub: HubProcess, attack: str) -> list[float]:
    """The hub's CPU time in each round trip of a channels.v1 client, until the
    attacker process is done."""
    ws = await open_ws(hub, "channels.v1")
    probe = RoundTrips(ws, hub)
    await probe.once()  # warm
    probe.times.clear()
    attacker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.security.attackers", attack, hub.url, cwd=ROOT
    )
    done = asyncio.Event()
    waiting = asyncio.create_task(attacker.wait())
    waiting.add_done_callback(lambda _: done.set())
    await probe.run_until(done)
    assert await waiting == 0, f"the {attack} attack did not complete"
    await ws.close()
    print(
        f"{attack}: {len(probe.times)} round trips, max {max(probe.times):.3f}s, "
        f"hub CPU max {max(probe.hub_cpu):.3f}s"
    )
    return probe.hub_cpu


async def test_a_message_of_131k_publish_packets_does_not_stall_others(tmp_path: Path) -> None:
    """1 MiB of 8-byte QoS 0 PUBLISH: every packet handled, others' round trips stay short."""
    async with wshub(tmp_path, UNLIMITED) as hub:
        times = await timed_while(hub, "publish-pack")
        assert len(times) >= 5
        assert max(times) < STALL_CPU_BOUND, f"a round trip took {max(times):.3f}s of hub CPU"


async def test_a_message_of_524k_pingreq_does_not_stall_others(tmp_path: Path) -> None:
    """1 MiB of PINGREQ: 524,288 PINGRESP come back, others' round trips stay short."""
    async with wshub(tmp_path, UNLIMITED) as hub:
        times = await timed_while(hub, "pingreq-pack")
        assert len(times) >= 5
        assert max(times) < STALL_CPU_BOUND, f"a round trip took {max(times):.3f}s of hub CPU"


async def test_packed_mqtt_frames_deflated_once_neither_stall_nor_swell_the_hub(
    tmp_path: Path,
) -> None:
    """1 MiB PUBLISH packs deflated to ~1.5 KB, four connections at TCP speed, default config.

    A 256 KiB read held ~170 such frames, which websockets inflated in one
    call: steps of ~280 ms and every message queued. A compressed connection's
    reads are now fed a KiB at a time, pausing once a step ran 1 ms or the
    message queue is full. Measured here (2-core machine, load 5 to 7): before,
    0.12 to 0.28 s of hub CPU in one round trip and +285 to +345 MiB; after,
    0.021 to 0.028 s and +75 MiB.
    """
    async with wshub(tmp_path) as hub:
        hub.reset_peak()
        before = hub.rss()
        times = await timed_while(hub, "deflated-publish-pack")
        growth = (hub.peak_rss() - before) / (1024 * 1024)
    print(f"peak RSS growth {growth:.0f} MiB")
    assert len(times) >= 5
    assert max(times) < 0.1, f"a round trip took {max(times):.3f}s of hub CPU"
    assert growth < 160, f"peak RSS grew {growth:.0f} MiB"


async def test_a_batch_of_25k_notifications_does_not_stall_others(tmp_path: Path) -> None:
    """A 25k-notification batch is refused by its size (-32600); 100-element ones yield.

    The 775 KB batch is over channels.v1's own 128 KiB (closed 1009 unparsed,
    test_request_size.py); here the bound is raised, as an operator may, to
    the old 1 MiB, so the batch reaches the element count's scan.
    """
    roomy = UNLIMITED | {"limits.max_message_size": {'"channels.v1"': 1024 * 1024}}
    async with wshub(tmp_path, roomy) as hub:
        times = await timed_while(hub, "notification-batches")
        assert max(times) < STALL_CPU_BOUND, f"a round trip took {max(times):.3f}s of hub CPU"


async def test_pipelined_requests_do_not_stall_others(tmp_path: Path) -> None:
    """20k small requests in a row: a read holds thousands, each handled in its turn."""
    async with wshub(tmp_path, UNLIMITED) as hub:
        times = await timed_while(hub, "pipelined-requests")
        assert len(times) >= 5
        assert max(times) < STALL_CPU_BOUND, f"a round trip took {max(times):.3f}s of hub CPU"


async def test_a_large_reply_on_a_compressed_connection_goes_out_in_fragments(
    hub: Hub, connect: Connector
) -> None:
    """A ~900 KB history reply leaves in 64 KiB fragments, intact, and in order.

    Each fragment is one deflate step, and the loop serves others between
    them (deflating a 4 MiB reply at once held it ~20 ms); a reply sent
    meanwhile waits behind the large one.
    """
    frames: list[str] = []

    class Frames(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            frames.append(record.getMessage())

    logger = logging.getLogger("tests.security.frames")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(Frames())
    ws = await connect(hub, "channels.v1", compression="deflate", logger=logger)
    assert ws.protocol.extensions, "permessage-deflate was not negotiated"
    for i in range(15):
        data = {"n": i, "text": "x" * 60_000}
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "publish",
                    "params": {"channel": "big", "data": data},
                }
            )
        )
        await ws.recv()
    frames.clear()
    await ws.send(
        json.dumps({"jsonrpc": "2.0", "id": "h", "method": "history", "params": {"channel": "big"}})
    )
    await ws.send(
        json.dumps(
            {"jsonrpc": "2.0", "id": "p", "method": "presence_stats", "params": {"channel": "big"}}
        )
    )
    async with asyncio.timeout(10):
        first, second = json.loads(await ws.recv()), json.loads(await ws.recv())
    assert (first["id"], second["id"]) == ("h", "p")
    assert [p["data"]["n"] for p in first["result"]["publications"]] == list(range(15))
    continued = [line for line in frames if line.startswith("< CONT")]
    assert len(continued) >= 900_000 // (64 * 1024), frames[:5]


class Replies(FakeSession):
    """A channels.v1 session without a socket that tells when two replies came."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.subprotocol = "channels.v1"
        self.two = asyncio.Event()

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        super().send(message, text=text)
        if len(self.frames) >= 2:
            self.two.set()


def subscribe_with_info(size: int) -> str:
    """The store-growth attack's presence ``subscribe``: an info of ``size`` bytes."""
    params = {"channel": "room/1", "presence": True, "info": {"bio": "x" * size}}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": params})


async def test_a_900_kb_request_is_parsed_in_one_step_and_handled_in_the_next(hub: Hub) -> None:
    """The 900 KB presence ``subscribe`` of the store-growth attack is not one loop step.

    Its parse and what follows (nesting count, dispatch, the handler's
    checks) were one 2 to 8 ms step under load; a message of 128 KiB or more
    now yields to the loop once parsed. Driven by hand here: the handler's
    coroutine suspends after the parse, before anything is dispatched, until
    the loop's next poll; a small request is answered without suspending.
    """
    session = Replies("s1")
    handler = ChannelsHandler(session, hub)  # type: ignore[arg-type]
    small = handler.on_message(subscribe_with_info(100_000))
    with pytest.raises(StopIteration):
        small.send(None)  # parsed and dispatched in one go (its reply comes from a task)
    large = handler.on_message(subscribe_with_info(900_000))
    # A suspension behind the loop's next poll (hub.turns): a timer's future.
    behind_io = large.send(None)
    assert isinstance(behind_io, asyncio.Future), "a yield to the loop"
    fired = asyncio.Event()  # the timer fires at the loop's next poll
    behind_io.add_done_callback(lambda _: fired.set())
    async with asyncio.timeout(1):
        await fired.wait()
    with pytest.raises(StopIteration):
        large.send(None)  # the next step: dispatched
    async with asyncio.timeout(5):
        await session.two.wait()
    # Both refused by the presence info bound, once the handler's checks ran.
    assert [json.loads(frame)["error"]["code"] for frame in session.frames] == [-32015] * 2


class LoopSteps:
    """The event loop's longest step, in this thread's CPU time.

    A task that yields at every iteration reads the thread's CPU clock each
    time it runs: the difference is what everything else did in between,
    one loop iteration. CPU time, not wall-clock: on a loaded machine the
    loop also waits for a CPU, which is no step of its own.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.thread_time()
        while True:
            await asyncio.sleep(0)
            now = time.thread_time()
            self.longest = max(self.longest, now - last)
            self.count += 1
            last = now

    def __enter__(self) -> LoopSteps:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class Continuations(logging.Handler):
    """Counts the continuation frames a websockets client reads (its debug log)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("< CONT"):
            self.count += 1


def fetch_history_batch(url: str, calls: int, compressed: bool) -> tuple[list[Any], int]:
    """A client in a thread of its own (its CPU is not the loop's): one batch of
    ``history`` calls; the reply and the continuation frames it came in."""
    continuations = Continuations()
    logger = logging.getLogger("tests.security.batch_frames")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers[:] = [continuations]
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "history", "params": {"channel": "big"}}
        for i in range(calls)
    ]
    with sync_connect(
        url,
        subprotocols=[Subprotocol("channels.v1")],
        max_size=None,
        logger=logger,
        compression="deflate" if compressed else None,
    ) as ws:
        assert bool(ws.protocol.extensions) == compressed
        ws.send(json.dumps(batch))
        reply = json.loads(ws.recv(timeout=30))
    return reply, continuations.count


@pytest.mark.parametrize("compressed", [False, True])
async def test_a_large_batch_reply_goes_out_in_slices(
    make_hub: HubFactory, connect: Connector, compressed: bool
) -> None:
    """A 6 MB batch reply (100 history calls of 60 KB) never holds the loop 2 ms.

    The replies were joined into one array and framed, two copies of it in
    one loop step: 4.5 to 6.6 ms of CPU for 4 MiB (measured on a 2-core
    machine; 6 MB here). They now leave as 64 KiB fragments cut from the
    replies, one per loop iteration: 0.3 to 0.6 ms at most for 4 MiB, an
    element's reply being encoded. With permessage-deflate (which already
    went out in fragments, after the join): 3.1 ms before, 0.55 to 0.6 now.
    """
    limits = UNLIMITED["limits"] | {"max_outbound_bytes": 7 * MIB}
    hub = await make_hub({"limits": limits})
    publisher = await connect(hub, "channels.v1")
    publish = {"channel": "big", "data": {"text": "x" * 60_000}}
    await publisher.send(
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "publish", "params": publish})
    )
    assert "result" in json.loads(await publisher.recv())
    gc.collect()
    gc.disable()  # a collection of the test process's own heap is no step of the hub's
    try:
        with LoopSteps() as steps:
            reply, continuations = await asyncio.to_thread(
                fetch_history_batch, hub.url, 100, compressed
            )
    finally:
        gc.enable()
    print(f"{steps.count} loop steps, longest {steps.longest * 1000:.2f} ms of CPU")
    assert [item["id"] for item in reply] == list(range(100))
    assert all(item["result"]["publications"][0]["data"] == publish["data"] for item in reply)
    assert steps.longest < 0.002, f"one loop step held {steps.longest * 1000:.2f} ms of CPU"
    assert continuations >= 6_000_000 // (64 * 1024) - 1
