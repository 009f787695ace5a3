"""Server API publishing next to channels.v1 publishing, on one hub in the same run.

N channels.v1 subscribers of one channel; one publisher with one publish in
flight, first over a channels.v1 WebSocket, then as a backend would: POST
/api/publish over a kept-alive HTTP connection (node's fetch). Rows: the API
("hub" column) against channels.v1 ("baseline" column): publishes/s,
deliveries/s end to end, and publish-to-receive latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.processes import API_KEY, Server, cpu_seconds, held_load, hub_server, run_load
from bench.report import Row
from bench.rounds import best_of

SETTLE_SECONDS = 1.0


@dataclass
class PublishResult:
    publishes_per_s: float
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    delivered_ratio: float
    server_cpu_us: float  # server CPU per publish


def measure(server: Server, via: str, subscribers: int, seconds: float, size: int) -> PublishResult:
    with held_load(
        "subscribe", url=server.url, protocol="channels", connections=subscribers
    ) as subs:
        if subs.first_line != "ready":
            raise RuntimeError(f"subscribers did not connect: {subs.first_line}")
        cpu_before = cpu_seconds(server.pid)
        if via == "api":
            published = run_load(
                "publish",
                url=server.api_url,
                protocol="api",
                key=API_KEY,
                seconds=seconds,
                size=size,
            )
        else:
            published = run_load(
                "publish", url=server.url, protocol="channels", seconds=seconds, size=size
            )
        time.sleep(SETTLE_SECONDS)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        received = subs.finish()
    count = received["received"]
    span = max(received["last_us"] - published["start_us"], 1) / 1e6
    return PublishResult(
        publishes_per_s=published["published"] / published["seconds"],
        deliveries_per_s=count / span,
        p50_ms=received["p50_ms"],
        p99_ms=received["p99_ms"],
        delivered_ratio=count / max(1, published["published"] * subscribers),
        server_cpu_us=server_cpu / max(1, published["published"]) * 1e6,
    )


def api_workload(subscribers: int, seconds: float, rounds: int, size: int = 100) -> list[Row]:
    with hub_server(api=True) as server:
        api, channels = best_of(
            rounds,
            lambda: measure(server, "api", subscribers, seconds, size),
            lambda: measure(server, "channels", subscribers, seconds, size),
            lambda result: result.publishes_per_s,
        )
    name = f"API publish, {subscribers} subscribers"
    baseline = "channels.v1 publish"

    def row(metric: str, ours: float, theirs: float) -> Row:
        return Row(name, metric, ours, theirs, baseline)

    return [
        row("publishes/s (1 in flight)", api.publishes_per_s, channels.publishes_per_s),
        row("deliveries/s", api.deliveries_per_s, channels.deliveries_per_s),
        row("p50 ms", api.p50_ms, channels.p50_ms),
        row("p99 ms", api.p99_ms, channels.p99_ms),
        row("delivered / expected", api.delivered_ratio, channels.delivered_ratio),
        row("server CPU µs/publish", api.server_cpu_us, channels.server_cpu_us),
    ]
