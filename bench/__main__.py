"""Run the benchmarks and print a table of hub vs baseline, measured in the same run.

    python -m bench            # full run (a few minutes)
    python -m bench --quick    # smaller counts, for a smoke test

Servers and load generators are separate processes on 127.0.0.1; every run is
bounded in time and count and stops by itself. Results: bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results"


@dataclass
class Row:
    workload: str
    metric: str
    hub: float
    baseline: float
    baseline_name: str
    target: str
    met: bool | None

    @property
    def ratio(self) -> float:
        return self.hub / self.baseline if self.baseline else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def hub_server(compression: bool = True) -> Iterator[tuple[str, int]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hub.toml"
        config.write_text(
            f"""
[server]
static_dir = "{tmp}"
[websocket]
compression = {str(compression).lower()}
ping_interval = 60
[limits]
max_outbound_bytes = 67108864
[rpc]
paths = ["{ROOT}"]
modules = ["bench.methods"]
[logging]
level = "warning"
"""
        )
        process = subprocess.Popen(
            [PYTHON, "-m", "hub", "--config", str(config), "--port", str(port)], cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("hub did not start") from None
                    time.sleep(0.1)
            yield f"ws://127.0.0.1:{port}/", process.pid
        finally:
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def baseline_server(kind: str, compression: bool = True) -> Iterator[tuple[str, int]]:
    port = free_port()
    args = [PYTHON, "-m", "bench.servers", kind, str(port)]
    if not compression:
        args.append("--no-compression")
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"baseline {kind} did not start")
        yield f"ws://127.0.0.1:{port}/", process.pid
    finally:
        process.terminate()
        process.wait(10)


def load(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, "-m", "bench.load", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if out.returncode != 0:
        raise RuntimeError(f"load {args[0]} failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def rpc_workload(clients: int, seconds: float) -> list[Row]:
    with hub_server() as (url, _):
        hub = load("rpc", url, str(clients), str(seconds), "hub")
    with baseline_server("echo") as (url, _):
        echo = load("rpc", url, str(clients), str(seconds), "echo")
    rate_ratio = hub["rate"] / echo["rate"]
    return [
        Row(
            f"RPC round trip, {clients} clients",
            "calls/s",
            hub["rate"],
            echo["rate"],
            "websockets echo",
            ">= 70% of baseline",
            rate_ratio >= 0.7,
        ),
        Row(
            f"RPC round trip, {clients} clients",
            "p50 ms",
            hub["p50_ms"],
            echo["p50_ms"],
            "websockets echo",
            "",
            None,
        ),
        Row(
            f"RPC round trip, {clients} clients",
            "p99 ms",
            hub["p99_ms"],
            echo["p99_ms"],
            "websockets echo",
            "",
            None,
        ),
    ]


def _fanout(url: str, subscribers: int, seconds: float, mode: str, size: int) -> dict[str, Any]:
    # Subscribers spread over two processes so one client loop is not the limit.
    groups = (
        [subscribers // 2, subscribers - subscribers // 2] if subscribers > 200 else [subscribers]
    )
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "bench.load", "subscribe", url, str(n), mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in groups
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("subscribers did not connect")
        published = load("publish", url, str(seconds), mode, str(size))
        time.sleep(1.0)  # let in-flight deliveries land
        results = []
        for proc in procs:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.close()
            results.append(json.loads(proc.stdout.read().strip().splitlines()[-1]))
            proc.wait(30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    received = sum(r["received"] for r in results)
    return {
        "deliveries_per_s": received / published["seconds"],
        "published": published["published"],
        "received": received,
        "expected": published["published"] * subscribers,
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
    }


def fanout_workload(subscribers: int, seconds: float, size: int) -> list[Row]:
    with hub_server() as (url, _):
        hub = _fanout(url, subscribers, seconds, "channels", size)
    with baseline_server("broadcast") as (url, _):
        base = _fanout(url, subscribers, seconds, "broadcast", size)
    name = f"Fan-out, {subscribers} subscribers"
    gate = subscribers == 1000
    throughput_ok = hub["deliveries_per_s"] >= 0.7 * base["deliveries_per_s"]
    latency_ok = hub["p99_ms"] < 2 * base["p99_ms"]
    return [
        Row(
            name,
            "deliveries/s",
            hub["deliveries_per_s"],
            base["deliveries_per_s"],
            "websockets.broadcast",
            ">= 70% of baseline" if gate else "",
            throughput_ok if gate else None,
        ),
        Row(name, "p50 ms", hub["p50_ms"], base["p50_ms"], "websockets.broadcast", "", None),
        Row(
            name,
            "p99 ms",
            hub["p99_ms"],
            base["p99_ms"],
            "websockets.broadcast",
            "< 2x baseline" if gate else "",
            latency_ok if gate else None,
        ),
        Row(
            name,
            "delivered / expected",
            hub["received"] / max(1, hub["expected"]),
            base["received"] / max(1, base["expected"]),
            "websockets.broadcast",
            "",
            None,
        ),
    ]


def _idle(url: str, pid: int, connections: int, mode: str) -> tuple[float, float]:
    time.sleep(0.5)
    before = rss_kib(pid)
    groups = [connections // 2, connections - connections // 2]
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "bench.load", "idle", url, str(n), mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in groups
    ]
    try:
        opened = []
        for proc in procs:
            assert proc.stdout is not None
            opened.append(json.loads(proc.stdout.readline()))
        time.sleep(1.0)
        after = rss_kib(pid)
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(60)
    per_connection = (after - before) / connections
    handshakes = connections / max(o["seconds"] for o in opened)
    return per_connection, handshakes


def connections_workload(connections: int) -> list[Row]:
    rows = []
    for compression in (True, False):
        with hub_server(compression) as (url, pid):
            hub_kib, hub_hs = _idle(url, pid, connections, "channels")
        with baseline_server("idle", compression) as (url, pid):
            base_kib, base_hs = _idle(url, pid, connections, "plain")
        label = "deflate on" if compression else "deflate off"
        limit = 32 if compression else 16
        rows.append(
            Row(
                f"Idle connections ({connections}), {label}",
                "KiB RSS / connection",
                hub_kib,
                base_kib,
                "websockets defaults",
                f"< {limit} KiB",
                hub_kib < limit,
            )
        )
        if compression:
            rows.append(
                Row(
                    f"Handshakes ({connections} connections)",
                    "handshakes/s",
                    hub_hs,
                    base_hs,
                    "websockets defaults",
                    "",
                    None,
                )
            )
    return rows


def print_table(rows: list[Row]) -> None:
    header = f"{'workload':<38} {'metric':<22} {'hub':>12} {'baseline':>12} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    for row in rows:
        verdict = "" if row.met is None else (" ok" if row.met else " MISSED")
        print(
            f"{row.workload:<38} {row.metric:<22} {row.hub:>12.2f} {row.baseline:>12.2f} "
            f"{row.ratio:>7.2f}  {row.target}{verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small counts, short runs")
    parser.add_argument("--only", choices=["rpc", "fanout", "connections"], action="append")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 5.0
    fanouts = [100, 1000] if args.quick else [100, 1000, 5000]
    idle_connections = 1000 if args.quick else 10_000
    only = set(args.only or ["rpc", "fanout", "connections"])
    rows: list[Row] = []
    if "rpc" in only:
        rows += rpc_workload(50, seconds)
    if "fanout" in only:
        for n in fanouts:
            rows += fanout_workload(n, seconds, 100)
    if "connections" in only:
        rows += connections_workload(idle_connections)
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2))
    print(f"\nresults written to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
