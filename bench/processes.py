"""Processes of a benchmark run: servers under test, node load generators, and
what the kernel says about them (RSS, CPU time).

Everything binds 127.0.0.1 on a free port and is stopped when its ``with``
block ends, so a run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The interpreter of the hub and the baseline servers (both, always the same):
# this one unless ``--python`` chose another (bench/interpreter.py).
PYTHON = sys.executable
NODE_PROJECT = ROOT / "bench" / "node"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> None:
    """Lift the soft file-descriptor limit to the hard one (10,000 sockets need it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _descendants(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def runqueue_seconds(pid: int) -> float:
    """Time the process was runnable but waiting for a CPU (/proc/<pid>/schedstat).

    Latency on a busy machine is mostly this: a process that waits on the run
    queue half of each second delivers late whatever its own speed.
    """
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (Crossbar forks)."""
    total = 0.0
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{each}/stat").read_text()
            # Fields after the parenthesised command name; utime and stime are 14 and 15.
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


@dataclass
class Server:
    """A server under test: where to connect and which process to watch."""

    url: str
    pid: int
    # The hub's server API (hub_server(api=True)): its http:// URL.
    api_url: str = ""
    # An MQTT TCP listener (hub_server(mqtt_tcp=True), Mosquitto): mqtt://host:port.
    mqtt_url: str = ""


def wait_for_port(
    port: int, process: subprocess.Popen[Any], what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


@contextlib.contextmanager
def running(args: list[str], what: str, **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """A subprocess with a raised file limit, terminated (then killed) on exit."""
    process = subprocess.Popen(args, preexec_fn=raise_nofile, **popen)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


API_KEY = "bench-api-key-0123456789"

HUB_CONFIG = """
[server]
static_dir = "{tmp}"
[websocket]
compression = {compression}
ping_interval = 60
[limits]
max_outbound_bytes = 67108864
max_connections = 100000
max_connections_per_ip = 100000
# Every bench client comes from loopback, up to 10,000 at once (idle memory;
# bench/twonode.py too): the connection rate per address stays on, out of reach.
connection_rate_per_ip = 1000000000.0
connection_burst_per_ip = 1000000000
# The per-connection token bucket stays on (its cost is measured), set out of reach.
message_rate = 1000000000.0
message_burst = 1000000000
[rpc]
paths = ["{root}"]
modules = ["bench.methods"]
[logging]
level = "warning"
"""


@contextlib.contextmanager
def hub_server(
    compression: bool = True,
    api: bool = False,
    engine: str = "memory",
    mqtt_tcp: bool = False,
    commit_interval: float = 0.0,
    nodelay: bool = True,
) -> Iterator[Server]:
    """``python -m hub`` with the bench's RPC method and limits sized for a benchmark.

    ``api``: with the server API on a free port, key :data:`API_KEY`.
    ``mqtt_tcp``: with an MQTT TCP listener on a free loopback port; ``nodelay``
    is its ``nodelay`` key (``False`` keeps Nagle's algorithm).
    ``engine``: the backend; ``"sqlite"`` keeps its file in the run's temporary directory.
    """
    port = free_port()
    api_port = free_port()
    mqtt_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hub.toml"
        text = HUB_CONFIG.format(tmp=tmp, root=ROOT, compression=str(compression).lower())
        if api:
            text += f'[api]\nkeys = ["{API_KEY}"]\nport = {api_port}\n'
        if engine == "sqlite":
            text += f'[engine]\nbackend = "sqlite"\npath = "{Path(tmp) / "engine.sqlite3"}"\n'
            text += f"commit_interval = {commit_interval}\n"
        if mqtt_tcp:
            text += f'[[mqtt.listeners]]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
            text += f"nodelay = {str(nodelay).lower()}\n"
        config.write_text(text)
        args = [PYTHON, "-m", "hub", "--config", str(config), "--port", str(port)]
        with running(args, "hub", cwd=ROOT) as process:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("hub did not start") from None
                    time.sleep(0.1)
            api_url = f"http://127.0.0.1:{api_port}" if api else ""
            mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}" if mqtt_tcp else ""
            if mqtt_tcp:
                wait_for_port(mqtt_port, process, "hub mqtt listener")
            yield Server(f"ws://127.0.0.1:{port}/", process.pid, api_url, mqtt_url)


@contextlib.contextmanager
def baseline_server(kind: str, compression: bool = False) -> Iterator[Server]:
    """One of bench/servers.py: the limit of the websockets stack."""
    port = free_port()
    args = [PYTHON, "-m", "bench.servers", kind, str(port)]
    if not compression:
        args.append("--no-compression")
    with running(args, f"baseline {kind}", cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"baseline {kind} did not start")
        yield Server(f"ws://127.0.0.1:{port}/", process.pid)


# -- node load generators (bench/node/load.mjs) ------------------------------------


def node_binary() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_PROJECT / "node_modules" / "ws").is_dir():
        raise RuntimeError("node or the bench's node modules are missing: run scripts/bootstrap")
    return node


def _load_args(command: str, options: dict[str, Any]) -> list[str]:
    return [node_binary(), "load.mjs", command, json.dumps(options)]


def last_json(output: str) -> dict[str, Any]:
    return dict(json.loads(output.strip().splitlines()[-1]))


def run_load(command: str, timeout: float = 300, **options: Any) -> dict[str, Any]:
    """Run one load generator to completion and return its JSON result."""
    out = subprocess.run(
        _load_args(command, options | {"deadline": timeout}),
        cwd=NODE_PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        preexec_fn=raise_nofile,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load {command} failed: {out.stderr[-2000:]}")
    return last_json(out.stdout)


class HeldLoad:
    """A load generator that prints a first line when set up (subscribers, idle
    connections) and its result once its stdin is closed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None
        self.first_line = process.stdout.readline().strip()
        if not self.first_line:
            raise RuntimeError("load generator failed while setting up")

    def finish(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        result = last_json(self.process.stdout.read())
        self.process.wait(30)
        return result


@contextlib.contextmanager
def held_load(command: str, timeout: float = 600, **options: Any) -> Iterator[HeldLoad]:
    with running(
        _load_args(command, options | {"deadline": timeout}),
        f"load {command}",
        cwd=NODE_PROJECT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        yield HeldLoad(process)
