"""RPC round trip: K clients, one call in flight each, calls/s and latency."""

from __future__ import annotations

from typing import Any

from bench.processes import Server, baseline_server, cpu_seconds, hub_server, run_load
from bench.report import Row


def measure_rpc(server: Server, protocol: str, clients: int, seconds: float) -> dict[str, Any]:
    cpu_before = cpu_seconds(server.pid)
    result = run_load("rpc", url=server.url, protocol=protocol, clients=clients, seconds=seconds)
    result["server_cpu_us"] = (cpu_seconds(server.pid) - cpu_before) / result["calls"] * 1e6
    return result


def rpc_rows(
    name: str, hub: dict[str, Any], base: dict[str, Any], baseline_name: str, target: str, met: bool
) -> list[Row]:
    return [
        Row(name, "calls/s", hub["rate"], base["rate"], baseline_name, target, met),
        Row(name, "p50 ms", hub["p50_ms"], base["p50_ms"], baseline_name),
        Row(name, "p99 ms", hub["p99_ms"], base["p99_ms"], baseline_name),
        Row(name, "server CPU µs/call", hub["server_cpu_us"], base["server_cpu_us"], baseline_name),
    ]


def rpc_workload(clients: int, seconds: float) -> list[Row]:
    """JSON-RPC ``echo`` on the hub against a websockets server echoing every message."""
    with hub_server() as server:
        hub = measure_rpc(server, "jsonrpc", clients, seconds)
    with baseline_server("echo") as server:
        echo = measure_rpc(server, "plain", clients, seconds)
    met = hub["rate"] >= 0.7 * echo["rate"]
    name = f"RPC round trip, {clients} clients"
    return rpc_rows(name, hub, echo, "websockets echo", ">= 0.70x", met)
