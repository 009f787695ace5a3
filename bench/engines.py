"""The durable SQLite engine next to the memory engine, measured in the same run.

Two hubs side by side, the same load on both (the memory hub takes the
baseline column): channels.v1 fan-out, where each publish result waits for
the commit, and MQTT fan-out from a QoS 1 publisher, whose every PUBACK waits
for it. Target (issue 14): at N = 1,000 the SQLite hub delivers at least 0.8x
of the memory hub's deliveries/s, with a publish-to-receive p99 at most 2x.
"""

from __future__ import annotations

import dataclasses

from bench.fanout import best_fanout, fanout_rows
from bench.processes import hub_server
from bench.report import Row


def engines_workload(
    subscribers: int, seconds: float, rounds: int, size: int = 100, commit_interval: float = 0.0
) -> list[Row]:
    rows: list[Row] = []
    for protocol, name, path in (
        ("channels", "Fan-out on SQLite", ""),
        ("mqtt", "MQTT QoS 1 fan-out on SQLite", "mqtt"),
    ):
        with (
            hub_server(engine="sqlite", commit_interval=commit_interval) as durable_at,
            hub_server() as memory_at,
        ):
            durable_at = dataclasses.replace(durable_at, url=durable_at.url + path)
            memory_at = dataclasses.replace(memory_at, url=memory_at.url + path)
            durable, memory = best_fanout(
                rounds, (durable_at, protocol), (memory_at, protocol), subscribers, seconds, size
            )
        throughput = durable.deliveries_per_s >= 0.8 * memory.deliveries_per_s
        latency = durable.p99_ms <= 2 * memory.p99_ms
        rows += fanout_rows(
            f"{name}, {subscribers} subscribers",
            durable,
            memory,
            "the memory engine",
            (">= 0.80x", throughput),
            ("<= 2x", latency),
        )
    return rows
