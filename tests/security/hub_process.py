"""A real ``wshub`` process for the attack tests: its memory and its event loop
are its own, so what an attack costs shows in /proc and in other clients' round
trips, not in the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.ports import free_port

WSHUB = str(Path(sys.executable).with_name("wshub"))


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB: VmRSS now, VmHWM its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


@dataclass
class HubProcess:
    url: str
    pid: int

    def peak_rss(self) -> int:
        """Peak resident memory of the hub so far, in bytes."""
        return status_kib(self.pid, "VmHWM") * 1024

    def rss(self) -> int:
        return status_kib(self.pid, "VmRSS") * 1024

    def reset_peak(self) -> None:
        """Start VmHWM again from the current RSS (Linux: write 5 to clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        """CPU time the hub's threads have run so far, in seconds (ns resolution).

        Unlike wall-clock time, it does not grow while the hub waits for a CPU
        another process holds: what the hub did is measured, not the machine's load.
        """
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            # A thread that ended meanwhile has no schedstat any more.
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9


def toml(config: dict[str, Any]) -> str:
    """Sections of scalars and lists as TOML (all the tests need)."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def wshub(tmp_path: Path, config: dict[str, Any] | None = None) -> AsyncIterator[HubProcess]:
    """Run ``wshub`` with ``config`` on a free port of 127.0.0.1; stop it after."""
    port = free_port()
    path = tmp_path / "hub.toml"
    path.write_text(toml({"logging": {"level": "error"}} | (config or {})))
    process = await asyncio.create_subprocess_exec(
        WSHUB,
        "--config",
        str(path),
        "--port",
        str(port),
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await asyncio.to_thread(
                    urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", timeout=1
                )
                break
            except OSError:
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("wshub did not start") from None
                await asyncio.sleep(0.1)
        yield HubProcess(f"ws://127.0.0.1:{port}/", process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def open_ws(hub: HubProcess, subprotocol: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 1)
    return await connect(hub.url, subprotocols=[subprotocol], **kwargs)  # type: ignore[list-item]


class RoundTrips:
    """A well-behaved JSON-RPC client timing ``rpc.discover``-free pings: ``presence_stats``.

    Each round trip is timed twice: ``times`` in wall-clock seconds, and, given
    the hub process, ``hub_cpu``: the CPU time the hub ran between the request
    and its reply. On a loaded machine the wall-clock time also counts the
    hub waiting for a CPU; the hub's CPU time counts only the work it did
    before it answered, which a loop step that does not yield makes long.
    """

    def __init__(self, ws: ClientConnection, hub: HubProcess | None = None) -> None:
        self.ws = ws
        self.hub = hub
        self.times: list[float] = []
        self.hub_cpu: list[float] = []
        self._next = 0

    async def once(self) -> float:
        self._next += 1
        hub = self.hub
        cpu_started = hub.cpu_seconds() if hub is not None else 0.0
        started = time.perf_counter()
        await self.ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": self._next,
                    "method": "presence_stats",
                    "params": {"channel": "quiet"},
                }
            )
        )
        async with asyncio.timeout(30):
            while True:
                reply = json.loads(await self.ws.recv())
                if reply.get("id") == self._next:
                    break
        elapsed = time.perf_counter() - started
        if hub is not None:
            self.hub_cpu.append(hub.cpu_seconds() - cpu_started)
        self.times.append(elapsed)
        return elapsed

    async def run_until(self, done: asyncio.Event, pause: float = 0.01) -> None:
        while not done.is_set():
            await self.once()
            await asyncio.sleep(pause)
