"""A real ``wshub`` process for tests: started on port 0, its log read, stopped with SIGINT."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The console script installed beside the interpreter running the tests (the venv's).
WSHUB = str(Path(sys.executable).parent / "wshub")
LISTENING = re.compile(r"wshub listening on (wss?://\S+?),")
HINT = re.compile(r"open (https?://\S+) in a browser .*; stop with Ctrl\+C")


@dataclass
class WshubProcess:
    process: asyncio.subprocess.Process
    url: str = ""
    page: str = ""
    log: list[str] = field(default_factory=list)

    async def read_until(self, pattern: re.Pattern[str], timeout: float = 20) -> re.Match[str]:
        """Read log lines until one matches ``pattern``."""
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stderr.readline()
                assert line, f"wshub exited early: {''.join(self.log)}"
                self.log.append(line.decode())
                if match := pattern.search(self.log[-1]):
                    return match

    async def stop(self) -> tuple[int, str]:
        """SIGINT (Ctrl+C), then the exit code and the rest of the log."""
        assert self.process.stderr is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            rest = await self.process.stderr.read()
            code = await self.process.wait()
        self.log.append(rest.decode())
        return code, "".join(self.log)


@asynccontextmanager
async def running_wshub(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = (WSHUB,),
) -> AsyncIterator[WshubProcess]:
    """``wshub ARGS --port 0`` until its start message; stopped (killed if stuck) after."""
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        "--port",
        "0",
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    hub = WshubProcess(process)
    try:
        hub.url = (await hub.read_until(LISTENING)).group(1)
        hub.page = (await hub.read_until(HINT)).group(1)
        yield hub
    finally:
        if process.returncode is None:
            try:
                await hub.stop()
            except TimeoutError:
                process.kill()
                await process.wait()


async def wshub_command(
    *args: str, timeout: float = 20, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        WSHUB,
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
