"""Several real hub processes on one private Redis, and channels.v1 clients to them.

Each hub is ``python -m hub --config <toml> --port <free>`` started as a
subprocess, so a node can be killed with SIGKILL like a crashed server. Tests
use :func:`cluster` to start nodes and :class:`ChannelsPeer` (a plain websockets
client) to talk to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.multinode.redis_server import RedisServer
from tests.multinode.redis_server import redis_server as redis_server
from tests.ports import free_port
from tests.protocols.channels.conftest import ChannelsPeer

# The protocols' own real-client fixtures, for nodes in other processes: both
# take anything with ``url`` and ``port``, as a HubProcess has.
from tests.protocols.mqtt.conftest import paho_peer  # noqa: F401
from tests.protocols.wamp.conftest import wamp, wamp_session  # noqa: F401


class HubProcess:
    """One ``wshub`` node in its own process, configured for the Redis engine."""

    def __init__(
        self,
        directory: Path,
        name: str,
        redis_url: str,
        *,
        mqtt: dict[str, Any] | None = None,
        **engine: Any,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.directory = directory
        self.config = directory / f"{name}.toml"
        self.log_path = directory / f"{name}.log"
        settings = {"backend": "redis", "url": redis_url, "reconnect_max_delay": 0.5, **engine}
        lines = ["[engine]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        if mqtt:
            lines += ["[mqtt]"] + [f"{key} = {json.dumps(value)}" for key, value in mqtt.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self._process: asyncio.subprocess.Process | None = None
        self._started = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until it is healthy.

        The ports were picked free (tests.ports) but not held: another
        process may bind one first. At the first start, a hub that exits
        saying so is started again on new ports (a restart keeps its port:
        clients come back to the same URL).
        """
        for attempt in range(3):
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "hub",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            try:
                await self.wait_health("ok", timeout)
            except RuntimeError:
                lost_a_port = "address already in use" in self.log()[logged:].lower()
                if self._started or attempt == 2 or not lost_a_port:
                    raise
                self.pick_ports()
                continue
            self._started = True
            return

    def pick_ports(self) -> None:
        """New free ports for a start again (the last one lost a port to another process)."""
        self.port = free_port()

    async def http_get(self, path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    async def health(self) -> dict[str, Any]:
        status, body = await self.http_get("/healthz")
        assert status == 200, (status, body)
        return dict(json.loads(body))

    async def metric(self, name: str) -> float:
        _, body = await self.http_get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise LookupError(name)

    async def wait_health(self, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll /healthz until it reports ``status``; the report."""
        async with asyncio.timeout(timeout):
            while True:
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(f"hub {self.name} exited:\n{self.log()}")
                # Each poll bounded: another process on the port may never answer.
                with contextlib.suppress(OSError, ValueError, IndexError, TimeoutError):
                    async with asyncio.timeout(2):
                        report = await self.health()
                    if report["status"] == status:
                        return report
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the node dies without closing anything."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
        await process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


ClusterFactory = Callable[..., Awaitable[list[HubProcess]]]
PeerFactory = Callable[[HubProcess], Awaitable[ChannelsPeer]]


@pytest.fixture
async def cluster(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[ClusterFactory]:
    """``await cluster(3, presence_ttl=2)``: that many hub processes on the test's Redis
    (``mqtt={...}``: their [mqtt] table)."""
    hubs: list[HubProcess] = []

    async def start(count: int, **settings: Any) -> list[HubProcess]:
        started = [
            HubProcess(tmp_path, f"node{len(hubs) + n + 1}", redis_server.url, **settings)
            for n in range(count)
        ]
        hubs.extend(started)
        await asyncio.gather(*(hub.start() for hub in started))
        return started

    yield start
    await asyncio.gather(*(hub.stop() for hub in hubs))


@pytest.fixture
async def peer() -> AsyncIterator[PeerFactory]:
    """``await peer(hub)``: a channels.v1 client connected to one node; closed after."""
    peers: list[ChannelsPeer] = []

    async def open_peer(hub: HubProcess) -> ChannelsPeer:
        ws = await connect(
            hub.url,
            subprotocols=[Subprotocol("channels.v1")],
            open_timeout=5,
            close_timeout=1,
        )
        client = ChannelsPeer(ws)
        peers.append(client)
        return client

    yield open_peer
    for client in peers:
        with contextlib.suppress(Exception):
            await client.close()
