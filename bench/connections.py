"""Idle connections: RSS per connection at N connections, and handshakes/s.

Connections are opened by two node processes (50 handshakes in flight each);
RSS is the server's growth from before the first to after the last.
"""

from __future__ import annotations

import contextlib
import resource
import time

from bench.processes import Server, baseline_server, held_load, hub_server, last_json, rss_kib
from bench.report import Row

# Target KiB of RSS per idle connection, deflate on / off.
TARGET_KIB = {True: 32, False: 16}


def measure_idle(
    server: Server, protocol: str, connections: int, deflate: bool
) -> tuple[float, float]:
    """(KiB of server RSS per connection, handshakes per second)."""
    time.sleep(0.5)
    before = rss_kib(server.pid)
    groups = [connections // 2, connections - connections // 2]
    with contextlib.ExitStack() as stack:
        loads = [
            stack.enter_context(
                held_load("idle", url=server.url, protocol=protocol, connections=n, deflate=deflate)
            )
            for n in groups
        ]
        opened = [last_json(load.first_line) for load in loads]
        time.sleep(1.0)
        after = rss_kib(server.pid)
        for load in loads:
            load.finish()
    if sum(o["opened"] for o in opened) != connections:
        raise RuntimeError(f"opened {opened}, wanted {connections}")
    return (after - before) / connections, connections / max(o["seconds"] for o in opened)


def connections_workload(connections: int) -> list[Row]:
    # Server and loaders lift their soft limit to the hard one (processes.raise_nofile).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < connections + 100:
        raise RuntimeError(f"{connections} connections need `ulimit -Hn` above {hard}")
    rows = []
    for deflate in (True, False):
        with hub_server(compression=deflate) as server:
            hub_kib, hub_rate = measure_idle(server, "channels", connections, deflate)
        with baseline_server("idle", compression=deflate) as server:
            base_kib, base_rate = measure_idle(server, "plain", connections, deflate)
        label = "deflate on" if deflate else "deflate off"
        limit = TARGET_KIB[deflate]
        name = f"Idle connections ({connections}), {label}"
        rows += [
            Row(
                name,
                "KiB RSS / connection",
                hub_kib,
                base_kib,
                "websockets defaults",
                f"< {limit} KiB",
                hub_kib < limit,
            ),
            Row(name, "handshakes/s", hub_rate, base_rate, "websockets defaults"),
        ]
    return rows
