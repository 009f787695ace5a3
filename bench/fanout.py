"""Fan-out: one publisher, N subscribers of one channel, deliveries/s and latency.

Subscribers live in one node process, the publisher in another; each publish
waits for its acknowledgement (one in flight), so the server's fan-out sets
the pace. Latency is publish-to-receive, from a timestamp in the payload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.processes import (
    Server,
    baseline_server,
    cpu_seconds,
    held_load,
    hub_server,
    machine_busy_seconds,
    run_load,
)
from bench.profiling import profiled
from bench.report import Row
from bench.rounds import best_of

# Deliveries still in flight when the publisher stops get this long to land.
SETTLE_SECONDS = 1.0


@dataclass
class FanoutResult:
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    delivered_ratio: float
    server_cpu_us: float  # server CPU time per delivery
    # Cores busy during the measurement: the server, the subscribers' process,
    # and everything else on the machine (the publisher, other jobs).
    server_busy: float
    loader_busy: float
    others_busy: float
    closed_early: int


def measure_fanout(
    server: Server,
    protocol: str,
    subscribers: int,
    seconds: float,
    size: int,
    publishers: int = 1,
    channels: int = 1,
) -> FanoutResult:
    """Deliveries of ``publishers`` publishing on ``channels``, each subscriber on all."""
    with held_load(
        "subscribe", url=server.url, protocol=protocol, connections=subscribers, channels=channels
    ) as subs:
        if subs.first_line != "ready":
            raise RuntimeError(f"subscribers did not connect: {subs.first_line}")
        cpu_before = cpu_seconds(server.pid)
        machine_before = machine_busy_seconds()
        published = run_load(
            "publish",
            url=server.url,
            protocol=protocol,
            seconds=seconds,
            size=size,
            publishers=publishers,
            channels=channels,
        )
        time.sleep(SETTLE_SECONDS)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        machine = machine_busy_seconds() - machine_before
        received = subs.finish()
    count = received["received"]
    # From the first publish to the last delivery: a backlog still draining counts.
    span = max(received["last_us"] - published["start_us"], 1) / 1e6
    window = published["seconds"] + SETTLE_SECONDS
    return FanoutResult(
        deliveries_per_s=count / span,
        p50_ms=received["p50_ms"],
        p99_ms=received["p99_ms"],
        delivered_ratio=count / max(1, published["published"] * subscribers),
        server_cpu_us=server_cpu / max(1, count) * 1e6,
        server_busy=server_cpu / window,
        loader_busy=received["cpu_s"] / window,
        others_busy=max(0.0, machine - server_cpu - received["cpu_s"]) / window,
        closed_early=received["closed_early"],
    )


def best_fanout(
    rounds: int,
    hub: tuple[Server, str],
    baseline: tuple[Server, str],
    subscribers: int,
    seconds: float,
    size: int,
    publishers: int = 1,
    channels: int = 1,
) -> tuple[FanoutResult, FanoutResult]:
    """(hub, baseline) results: each side's best of ``rounds`` alternating runs."""
    server, protocol = hub
    label = f"{protocol} fan-out {subscribers}" + (
        f" {publishers}x{channels}" if publishers > 1 else ""
    )
    shape = (subscribers, seconds, size, publishers, channels)
    return best_of(
        rounds,
        profiled(server.pid, label, lambda: measure_fanout(*hub, *shape)),
        lambda: measure_fanout(*baseline, *shape),
        lambda result: result.deliveries_per_s,
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
        row("server busy (cores)", hub.server_busy, base.server_busy, None),
        row("subscribers busy (cores)", hub.loader_busy, base.loader_busy, None),
        row("others busy (cores)", hub.others_busy, base.others_busy, None),
    ]


def fanout_workload(subscribers: int, seconds: float, rounds: int, size: int = 100) -> list[Row]:
    """channels.v1 against a server that ``websockets.broadcast``s the same bytes."""
    with hub_server() as hub_at, baseline_server("broadcast") as base_at:
        hub, base = best_fanout(
            rounds, (hub_at, "channels"), (base_at, "broadcast"), subscribers, seconds, size
        )
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


def burst_workload(
    subscribers: int, seconds: float, rounds: int, publishers: int = 20, channels: int = 10
) -> list[Row]:
    """Many publishers at once: each subscriber is sent a burst every loop iteration.

    ``publishers`` connections publish on ``channels`` channels, one publish in
    flight each; every subscriber is on every channel, so the server reads up to
    ``publishers`` publications per loop iteration and each subscriber gets that
    many frames. The hub writes them in one write per subscriber; the baseline
    ``websockets.broadcast``s each publication to every ``/sub`` connection.
    """
    with hub_server() as hub_at, baseline_server("broadcast") as base_at:
        hub, base = best_fanout(
            rounds,
            (hub_at, "channels"),
            (base_at, "broadcast"),
            subscribers,
            seconds,
            100,
            publishers,
            channels,
        )
    throughput = hub.deliveries_per_s / base.deliveries_per_s >= 1.3
    latency = hub.p99_ms <= base.p99_ms
    return fanout_rows(
        f"Burst: {publishers} publishers, {channels} channels, {subscribers} subscribers",
        hub,
        base,
        "websockets.broadcast",
        (">= 1.30x", throughput),
        ("<= 1x", latency),
    )
