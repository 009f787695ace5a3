"""Run the benchmarks and print a table of hub vs baseline, measured in the same run.

    python -m bench                  # full run (several minutes)
    python -m bench --quick          # smaller counts, for a smoke test
    python -m bench --only fanout    # one workload (repeatable)
    python -m bench --profile        # and py-spy flame graphs of the hub
    python -m bench --python /path/to/python3.12   # hub and baselines on that Python

Servers and load generators (node, bench/node/load.mjs) are separate processes
on 127.0.0.1; every run is bounded in time and count and stops by itself.
Results: bench/results/latest.json. Method and figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from bench import processes, profiling
from bench.api import api_workload
from bench.connections import connections_workload
from bench.engines import engines_workload
from bench.fanout import burst_workload, fanout_workload
from bench.hostile import hostile_workload
from bench.interpreter import python_version, venv_python
from bench.mqtt import mqtt5_tcp_workload, mqtt_workload
from bench.report import Row, load_average, print_table, write_json
from bench.rpc import rpc_workload
from bench.socketio import socketio_workload
from bench.twonode import twonode_workload
from bench.wamp import wamp_pubsub_workload, wamp_rpc_workload


@dataclass(frozen=True)
class Scale:
    seconds: float
    # Hub and baseline measured this many times in alternation, best run kept.
    rounds: int
    fanouts: tuple[int, ...]
    idle_connections: int


FULL = Scale(seconds=5.0, rounds=3, fanouts=(100, 1000, 5000), idle_connections=10_000)
QUICK = Scale(seconds=2.0, rounds=1, fanouts=(100, 1000), idle_connections=1000)


def run_fanout(scale: Scale) -> list[Row]:
    return [row for n in scale.fanouts for row in fanout_workload(n, scale.seconds, scale.rounds)]


def run_wamp(scale: Scale) -> list[Row]:
    return wamp_rpc_workload(50, scale.seconds, scale.rounds) + wamp_pubsub_workload(
        1000, scale.seconds, scale.rounds
    )


# Name -> workload, in the order they run.
WORKLOADS: dict[str, Callable[[Scale], list[Row]]] = {
    "rpc": lambda scale: rpc_workload(50, scale.seconds, scale.rounds),
    "fanout": run_fanout,
    # 20 publishers on 10 channels to 1,000 subscribers: bursts coalesced per write.
    "burst": lambda scale: burst_workload(1000, scale.seconds, scale.rounds),
    # Two hubs on one Redis next to one hub (docs/scaling.md).
    "twonode": lambda scale: twonode_workload(1000, scale.seconds),
    "mqtt": lambda scale: mqtt_workload(1000, scale.seconds, scale.rounds),
    # MQTT 5 clients on the hub's TCP listener and on Mosquitto's.
    "mqtt-tcp": lambda scale: mqtt5_tcp_workload(1000, scale.seconds, scale.rounds),
    # The durable SQLite engine next to the memory engine (docs/engines.md).
    "engines": lambda scale: engines_workload(1000, scale.seconds, scale.rounds),
    "wamp": run_wamp,
    "connections": lambda scale: connections_workload(scale.idle_connections),
    # A backend publishing through the server API next to a channels.v1 publisher.
    "api": lambda scale: api_workload(100, scale.seconds, scale.rounds),
    # The Python peer: python-socketio on aiohttp, socket.io-client from node.
    "socketio": lambda scale: socketio_workload(
        1000, 50, scale.idle_connections // 5, scale.seconds, scale.rounds
    ),
    # Attacks from issue 13 on a default hub, next to the same probes on a quiet one.
    "hostile": lambda scale: hostile_workload(scale.rounds),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small counts, short runs")
    parser.add_argument("--only", choices=list(WORKLOADS), action="append")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy flame graphs of the hub (bench/results)"
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="run the hub and the baseline servers on this interpreter (own venv, first use)",
    )
    args = parser.parse_args()
    profiling.enabled = args.profile
    if args.python is not None:
        processes.PYTHON = venv_python(args.python)
    servers_on = python_version(processes.PYTHON)
    print(f"hub and baseline servers on Python {servers_on} ({processes.PYTHON})")
    scale = QUICK if args.quick else FULL
    started_load = load_average()
    rows: list[Row] = []
    failed: list[str] = []
    for name, workload in WORKLOADS.items():
        if args.only is None or name in args.only:
            # One workload's failure (a peer that would not start) must not
            # throw away the minutes of figures the others already took.
            try:
                new_rows = workload(scale)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                continue
            print_table(new_rows, flush=True)
            rows += new_rows
    print_table(rows)
    notes = [f"workload {name} failed (traceback above)" for name in failed]
    path = write_json(rows, started_load, notes=notes, servers_python=servers_on)
    print(f"\nload average before {started_load}, after {load_average()}")
    print(f"results written to {path}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
