"""A private ``redis-server`` on a free port, for the engine and multi-node suites.

Never the machine's Redis (6379 may be in use by something else): every test
Redis is started here, with persistence off unless a test asks for it, and
stopped by the test that started it (or at exit for the shared one).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.ports import free_port


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        # Not a skip: the Redis engine must be tested against a real server.
        raise RuntimeError("redis-server is not installed: run scripts/bootstrap")
    return found


class RedisServer:
    """``redis-server`` on 127.0.0.1; restartable on the same port.

    ``persistent=True`` keeps an append-only file in ``directory``, so data
    survives :meth:`restart`; otherwise a restart starts empty.
    """

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.port = free_port()
        self.directory = directory
        self.persistent = persistent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _argv(self) -> list[str]:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.directory), "--save", ""]
        argv += ["--appendonly", "yes" if self.persistent else "no"]
        argv += ["--logfile", str(self.directory / f"redis-{self.port}.log")]
        return argv

    def start_sync(self) -> None:
        self._process = subprocess.Popen(
            self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(500):
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.01)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    def stop_sync(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr is not None:
            process.stderr.close()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    def pause(self) -> None:
        """Stop the process (SIGSTOP): connections stay open and nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def client(self) -> Redis:
        return Redis.from_url(self.url)

    async def flush(self) -> None:
        client = self.client()
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def log(self) -> str:
        path = self.directory / f"redis-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class SentinelServer(RedisServer):
    """A Redis Sentinel monitoring ``master`` as "mymaster" (quorum 1)."""

    def __init__(self, directory: Path, master: RedisServer) -> None:
        super().__init__(directory)
        self.master = master
        self.config = directory / f"sentinel-{self.port}.conf"

    def _argv(self) -> list[str]:
        # Sentinel rewrites its config file, so it gets one of its own.
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"logfile {self.directory / f'redis-{self.port}.log'}\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
        )
        return [redis_binary(), str(self.config), "--sentinel"]


_shared: RedisServer | None = None


def shared_redis_server() -> RedisServer:
    """One server for a whole pytest run (the engine contract suite), stopped at exit."""
    global _shared
    if _shared is None or not _shared.running:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="wshub-redis-")))
        server.start_sync()
        atexit.register(server.stop_sync)
        _shared = server
    return _shared


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A private redis-server on a free port (persistence off), for this test only.

    Suites get it from their conftest (``tests/engine``, ``tests/multinode``) or
    import it by name.
    """
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    await server.stop()
