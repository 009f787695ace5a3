"""The Redis engine finds its master through Sentinel (a private master and sentinel)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.engine import ClientInfo, Publication
from hub.engine.redis import RedisBroker, RedisEngineConfig, redis_engine
from tests.engine.conftest import Recorder
from tests.multinode.redis_server import RedisServer, SentinelServer

pytestmark = pytest.mark.service


@pytest.fixture
async def sentinel(tmp_path: Path) -> AsyncIterator[SentinelServer]:
    """A private master and a sentinel watching it as "mymaster"."""
    master = RedisServer(tmp_path)
    await master.start()
    watcher = SentinelServer(tmp_path, master)
    await watcher.start()
    yield watcher
    await watcher.stop()
    await master.stop()


async def test_nodes_share_channels_through_sentinel(sentinel: SentinelServer) -> None:
    """Two nodes configured with Sentinel only: pub/sub, history and presence work."""
    config = RedisEngineConfig(
        url="redis:///0", sentinel_master="mymaster", sentinels=[f"127.0.0.1:{sentinel.port}"]
    )
    a = redis_engine(config, "a")
    b = redis_engine(config, "b")
    try:
        for engine in (a, b):
            assert isinstance(engine.broker, RedisBroker)
            await engine.broker.start()
            health = engine.broker.health()
            assert health["status"] == "ok"
            assert health["url"] == f"sentinel://127.0.0.1:{sentinel.port}/mymaster"
        recorder = Recorder()
        await b.subscribe(recorder, "s/x")
        await a.publish(Publication("s/x", "via sentinel"), history_size=10, history_ttl=60)
        [(received, _)] = await recorder.wait_for(1)
        assert (received.data, received.offset) == ("via sentinel", 1)
        assert [p.data for p in (await b.read_history("s/x")).publications] == ["via sentinel"]
        assert await a.join("s/x", ClientInfo("c1", "ada"), announce=False)
        assert list(await b.members("s/x")) == ["c1"]
    finally:
        await a.close()
        await b.close()
