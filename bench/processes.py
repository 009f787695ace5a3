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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
# The interpreter of the hub and the baseline servers (both, always the same):
# this one unless ``--python`` chose another (bench/interpreter.py).
PYTHON = sys.executable
NODE_PROJECT = ROOT / "bench" / "node"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


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


class ExitedAtStart(RuntimeError):
    """A server exited while starting: perhaps its port was taken meanwhile."""


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or a child: Crossbar's router) listens on TCP ``port``.

    Not just "something answers there": when the port was taken before the
    server bound it, what answers may be another helper's server.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{each}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return True
    return False


def wait_for_port(
    port: int, process: subprocess.Popen[Any], what: str, timeout: float = 30
) -> None:
    """Until ``process`` listens on ``port`` and accepts a connection there."""

    def accepts() -> None:
        socket.create_connection(("127.0.0.1", port), 0.5).close()

    _wait_until_ready(port, process, what, accepts, timeout)


def wait_for_health(port: int, process: subprocess.Popen[Any], what: str) -> None:
    """Until the hub ``process`` listens on ``port`` and answers /healthz with 200
    there (503 while its Redis is not reached)."""

    def answers() -> None:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)

    _wait_until_ready(port, process, what, answers, 30)


def _wait_until_ready(
    port: int,
    process: subprocess.Popen[Any],
    what: str,
    ready: Callable[[], None],
    timeout: float,
) -> None:
    """Until ``process`` itself listens on ``port`` and ``ready`` returns (an
    OSError, an HTTP error status included, means not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        if listens_on(process.pid, port):
            with contextlib.suppress(OSError):
                ready()
                return
        if process.poll() is not None:
            raise ExitedAtStart(f"{what} exited while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


# Servers started again on other ports when one exits while starting.
START_ATTEMPTS = 5


@contextlib.contextmanager
def retry_start(launch: Callable[[], contextlib.AbstractContextManager[T]]) -> Iterator[T]:
    """``launch()``, again (on new free ports) while the server exits as it starts.

    free_port() lets its port go before the server binds it: meanwhile another
    process may take it (an outgoing connection's ephemeral port, another
    helper's bench), and the server exits with "address in use".
    """
    for attempt in range(START_ATTEMPTS):
        with contextlib.ExitStack() as stack:
            try:
                server = stack.enter_context(launch())
            except ExitedAtStart:
                if attempt == START_ATTEMPTS - 1:
                    raise
                continue
            yield server
            return


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


def hub_server(
    compression: bool = True,
    api: bool = False,
    engine: str = "memory",
    mqtt_tcp: bool = False,
    commit_interval: float = 0.0,
    nodelay: bool = True,
) -> contextlib.AbstractContextManager[Server]:
    """``python -m hub`` with the bench's RPC method and limits sized for a benchmark.

    ``api``: with the server API on a free port, key :data:`API_KEY`.
    ``mqtt_tcp``: with an MQTT TCP listener on a free loopback port; ``nodelay``
    is its ``nodelay`` key (``False`` keeps Nagle's algorithm).
    ``engine``: the backend; ``"sqlite"`` keeps its file in the run's temporary directory.
    """
    return retry_start(
        lambda: _hub_server(compression, api, engine, mqtt_tcp, commit_interval, nodelay)
    )


@contextlib.contextmanager
def _hub_server(
    compression: bool,
    api: bool,
    engine: str,
    mqtt_tcp: bool,
    commit_interval: float,
    nodelay: bool,
) -> Iterator[Server]:
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
            wait_for_health(port, process, "hub")
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
