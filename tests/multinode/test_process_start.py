"""The test harness's hub process starts again on a new port when its port was taken."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.multinode.conftest import HubProcess
from tests.multinode.redis_server import RedisServer

pytestmark = pytest.mark.service


async def test_a_hub_whose_port_was_taken_starts_on_another(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Another process binds the picked port first: the hub exits "address already in
    use" and is started again on a new free port, healthy."""
    hub = HubProcess(tmp_path, "node1", redis_server.url)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        hub.port = taken
        try:
            await hub.start()
            assert hub.port != taken
            assert (await hub.health())["status"] == "ok"
            assert "address already in use" in hub.log().lower()
        finally:
            await hub.stop()
