"""Fan-out: one publisher, N subscribers of one channel, deliveries/s and latency.

Subscribers live in one node process, the publisher in another; each publish
waits for its acknowledgement (one in flight), so the server's fan-out is the
pace. Latency is publish-to-receive, from a timestamp in the payload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.processes import Server, baseline_server, cpu_seconds, held_load, hub_server, run_load
from bench.report import Row

# Deliveries still in flight when the publisher stops get this long to land.
SETTLE_SECONDS = 1.0


@dataclass
class FanoutResult:
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    delivered_ratio: float
    server_cpu_us: float  # server CPU time per delivery
    loader_busy: float  # fraction of one core the subscriber process used
    closed_early: int


def measure_fanout(
    server: Server, protocol: str, subscribers: int, seconds: float, size: int
) -> FanoutResult:
    with held_load("subscribe", url=server.url, protocol=protocol, connections=subscribers) as subs:
        if subs.first_line != "ready":
            raise RuntimeError(f"subscribers did not connect: {subs.first_line}")
        cpu_before = cpu_seconds(server.pid)
        published = run_load(
            "publish", url=server.url, protocol=protocol, seconds=seconds, size=size
        )
        time.sleep(SETTLE_SECONDS)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        received = subs.finish()
    count = received["received"]
    # From the first publish to the last delivery: a backlog still draining counts.
    span = max(received["last_us"] - published["start_us"], 1) / 1e6
    return FanoutResult(
        deliveries_per_s=count / span,
        p50_ms=received["p50_ms"],
        p99_ms=received["p99_ms"],
        delivered_ratio=count / max(1, published["published"] * subscribers),
        server_cpu_us=server_cpu / max(1, count) * 1e6,
        loader_busy=received["cpu_s"] / span,
        closed_early=received["closed_early"],
    )


def fanout_rows(
    name: str,
    hub: FanoutResult,
    base: FanoutResult,
    baseline_name: str,
    throughput_target: tuple[str, bool] | None = None,
    latency_target: tuple[str, bool] | None = None,
) -> list[Row]:
    def row(metric: str, ours: float, theirs: float, target: tuple[str, bool] | None) -> Row:
        text, met = target if target is not None else ("", None)
        return Row(name, metric, ours, theirs, baseline_name, text, met)

    return [
        row("deliveries/s", hub.deliveries_per_s, base.deliveries_per_s, throughput_target),
        row("p50 ms", hub.p50_ms, base.p50_ms, None),
        row("p99 ms", hub.p99_ms, base.p99_ms, latency_target),
        row("delivered / expected", hub.delivered_ratio, base.delivered_ratio, None),
        row("server CPU µs/delivery", hub.server_cpu_us, base.server_cpu_us, None),
        row("loader busy (cores)", hub.loader_busy, base.loader_busy, None),
    ]


def fanout_workload(subscribers: int, seconds: float, size: int = 100) -> list[Row]:
    """channels.v1 against a server that ``websockets.broadcast``s the same bytes."""
    with hub_server() as server:
        hub = measure_fanout(server, "channels", subscribers, seconds, size)
    with baseline_server("broadcast") as server:
        base = measure_fanout(server, "broadcast", subscribers, seconds, size)
    gate = subscribers == 1000
    throughput = hub.deliveries_per_s / base.deliveries_per_s >= 0.7
    latency = hub.p99_ms < 2 * base.p99_ms
    return fanout_rows(
        f"Fan-out, {subscribers} subscribers",
        hub,
        base,
        "websockets.broadcast",
        (">= 0.70x", throughput) if gate else None,
        ("< 2x", latency) if gate else None,
    )
