"""The hub's CPU time per cycle of a reconnecting flooder (a benchmark, ~20 s).

``python -m bench.flood_cycle [seconds] [publish|pingreq] [fast]`` runs a
default ``wshub`` process and four attackers that, as bench/hostile.py's
"MQTT PUBLISH packed" and "MQTT PINGREQ packed" rows, send 1 MiB MQTT
messages deflated to ~1.5 KB as fast as TCP takes them, reconnecting whenever
closed or refused. Its attacker (like hostile.py's) notices the close frame
only once a blocked write returns; a ``fast`` one reconnects as soon as the
close frame arrives. It prints the hub's CPU seconds (its threads'
schedstat, so not the machine's load) per connection attempt and per opened
connection. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import tempfile
from pathlib import Path

from bench import rawws
from protocols.mqtt.codec import Connect, Pingreq, Publish, encode
from tests.security.hub_process import wshub

MIB = 1024 * 1024
PACKETS = {
    "publish": encode(Publish(topic="t/ab", payload=b"")),
    "pingreq": encode(Pingreq()),
}


async def attack(
    url: str, seconds: float, packet: bytes, fast: bool, connections: int = 4
) -> dict[str, int]:
    frame = rawws.frame(packet * (MIB // len(packet)), text=False, compress=True)
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    numbers = itertools.count()
    counts = {"attempts": 0, "opened": 0, "messages": 0}

    async def one() -> None:
        while loop.time() < until:
            counts["attempts"] += 1
            try:
                ws = await rawws.RawClient.open(url, "mqtt")
            except (rawws.Closed, OSError):
                await asyncio.sleep(0)
                continue
            counts["opened"] += 1
            with contextlib.suppress(rawws.Closed, OSError):
                try:
                    connect = encode(Connect(client_id=f"f-{next(numbers)}", keepalive=600))
                    await ws.send(rawws.frame(connect, text=False, compress=True))
                    await ws.recv()
                    if fast:
                        await ws.send_until_closed(frame, until)
                    while not fast and loop.time() < until and not ws.closed.is_set():
                        await ws.send(frame)
                        counts["messages"] += 1
                        await asyncio.sleep(0)
                finally:
                    await ws.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return counts


async def main(seconds: float, name: str, fast: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with wshub(Path(tmp)) as hub:
            before = hub.cpu_seconds()
            counts = await attack(hub.url, seconds, PACKETS[name], fast)
            await asyncio.sleep(1)  # what the hub still does with what it read
            cpu = hub.cpu_seconds() - before
    attempts = max(counts["attempts"], 1)
    print(
        f"{name}{' fast' if fast else ''}: {seconds:.0f} s, "
        f"hub CPU {cpu:.2f} s ({cpu / seconds:.2f} cores), "
        f"{counts['attempts']} attempts, {counts['opened']} opened, "
        f"{counts['messages']} messages sent; {1000 * cpu / attempts:.2f} ms CPU per attempt, "
        f"{1000 * cpu / max(counts['opened'], 1):.2f} ms per opened connection"
    )


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    name = sys.argv[2] if len(sys.argv) > 2 else "publish"
    asyncio.run(main(seconds, name, sys.argv[3:4] == ["fast"]))
