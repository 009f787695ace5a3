"""RPC round trip: K clients, one call in flight each, calls/s and latency."""

from __future__ import annotations

from typing import Any

from bench.processes import (
    Server,
    baseline_server,
    cpu_seconds,
    hub_server,
    machine_busy_seconds,
    run_load,
)
from bench.profiling import profiled
from bench.report import Row
from bench.rounds import best_of


def measure_rpc(server: Server, protocol: str, clients: int, seconds: float) -> dict[str, Any]:
    cpu_before = cpu_seconds(server.pid)
    machine_before = machine_busy_seconds()
    result = run_load("rpc", url=server.url, protocol=protocol, clients=clients, seconds=seconds)
    server_cpu = cpu_seconds(server.pid) - cpu_before
    # The callers' setup (connecting) is outside result["seconds"]: others is approximate.
    others = machine_busy_seconds() - machine_before - server_cpu - result["cpu_s"]
    result["server_cpu_us"] = server_cpu / result["calls"] * 1e6
    result["server_busy"] = server_cpu / result["seconds"]
    result["loader_busy"] = result["cpu_s"] / result["seconds"]
    result["others_busy"] = max(0.0, others) / result["seconds"]
    return result


def best_rpc(
    rounds: int, hub: tuple[Server, str], baseline: tuple[Server, str], clients: int, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hub, baseline) results: each side's best of ``rounds`` alternating runs."""
    server, protocol = hub
    label = f"{protocol} rpc {clients}"
    return best_of(
        rounds,
        profiled(server.pid, label, lambda: measure_rpc(*hub, clients, seconds)),
        lambda: measure_rpc(*baseline, clients, seconds),
        lambda result: float(result["rate"]),
    )


def rpc_rows(
    name: str,
    hub: dict[str, Any],
    base: dict[str, Any],
    baseline_name: str,
    target: str,
    met: bool,
    cpu_target: tuple[str, bool] | None = None,
) -> list[Row]:
    def row(metric: str, key: str) -> Row:
        return Row(name, metric, hub[key], base[key], baseline_name)

    cpu = row("server CPU µs/call", "server_cpu_us")
    if cpu_target is not None:
        cpu.target, cpu.met = cpu_target
    return [
        Row(name, "calls/s", hub["rate"], base["rate"], baseline_name, target, met),
        row("p50 ms", "p50_ms"),
        row("p99 ms", "p99_ms"),
        cpu,
        row("server busy (cores)", "server_busy"),
        row("callers busy (cores)", "loader_busy"),
        row("others busy (cores)", "others_busy"),
    ]


def rpc_workload(clients: int, seconds: float, rounds: int) -> list[Row]:
    """JSON-RPC ``echo`` on the hub against a websockets server echoing every message."""
    with hub_server() as hub_at, baseline_server("echo") as echo_at:
        hub, echo = best_rpc(rounds, (hub_at, "jsonrpc"), (echo_at, "plain"), clients, seconds)
    # Issue 18's targets: 0.85x the echo server's calls/s, at most 1.2x its CPU per call.
    met = hub["rate"] >= 0.85 * echo["rate"]
    cpu_met = hub["server_cpu_us"] <= 1.2 * echo["server_cpu_us"]
    name = f"RPC round trip, {clients} clients"
    return rpc_rows(name, hub, echo, "websockets echo", ">= 0.85x", met, ("<= 1.20x", cpu_met))
