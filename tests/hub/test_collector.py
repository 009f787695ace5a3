"""A serving hub spaces its full garbage collections (hub/collector.py, issue 13).

After the startup heap is frozen, CPython 3.11 ran a full collection every 10
collections of generation 1: twice in each 8 s window of bench/hostile.py's
store growth, 10 to 15 ms each, the slowest steps the other clients waited
behind.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hub import collector
from tests.conftest import Connector, HubFactory
from tests.protocol_clients import MqttClient


@contextmanager
def settled() -> Iterator[Counter[int]]:
    """collector.settle() applied, and collections counted by generation; undone after."""
    counts: Counter[int] = Counter()

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            counts[info["generation"]] += 1

    saved = gc.get_threshold()
    # Young collections 14 times as often as by default (700), so that a test
    # of seconds sees as many as the bench's window: settle() keeps the
    # young thresholds and sets only the full one.
    gc.set_threshold(50, 10, 10)
    collector.settle()
    gc.callbacks.append(count)
    try:
        yield counts
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*saved)
        gc.unfreeze()


async def test_full_collections_are_spaced_while_the_stores_fill(
    make_hub: HubFactory, connect: Connector
) -> None:
    """History names and offline MQTT sessions filling: one full collection per 100 young ones.

    The count is of collections, not their time: it holds on a loaded machine.
    """
    hub = await make_hub({})
    with settled() as counts:
        for round_ in range(30):
            # A new connection each round, as bench/hostile.py's attacker: its
            # opening tokens pay for the 100 requests.
            ws = await connect(hub, "channels.v1")
            batch = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "history",
                    "params": {"channel": f"n/{round_}/{i}"},
                }
                for i in range(100)
            ]
            await ws.send(json.dumps(batch))
            async with asyncio.timeout(10):
                assert len(json.loads(await ws.recv())) == 100
            await ws.close()
            client = await MqttClient.open(hub.url)
            await client.connect(f"hoarder-{round_}", clean_session=False)
            await client.subscribe(f"q/{round_}", qos=1)
            client.disconnect()
            await client.wait_closed()
    # Enough young collections that the default (every 10th) would have run full ones.
    assert counts[1] >= 30, counts
    # By default (every 10th) this run had 3 or more.
    assert counts[2] <= 1, counts
