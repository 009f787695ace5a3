"""mqtt.max_offline_sessions with the Redis engine: an expired session stops counting.

A hub on a private redis-server, paho MQTTv5 clients over WebSocket; the
cluster's count is the sorted set ``<prefix>mqtt:offline``, read back directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions
from redis.asyncio import Redis

from tests.conftest import HubFactory
from tests.multinode.redis_server import RedisServer
from tests.protocols.mqtt.test_paho5 import Paho5

pytestmark = pytest.mark.service


@pytest.fixture
async def paho5() -> AsyncIterator[Any]:
    peers: list[Paho5] = []

    def make(client_id: str) -> Paho5:
        peer = Paho5(client_id)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


async def test_a_session_expired_before_the_hubs_expiry_leaves_the_offline_count(
    make_hub: HubFactory, redis_server: RedisServer, paho5: Any
) -> None:
    """Cap 2: "kept" goes offline (the hub's expiry, a day), then "brief" with its own
    1 s Session Expiry Interval, which expires; "late" going offline then makes two
    live sessions, under the cap: none is dropped. Before, the expired "brief" still
    counted, and "kept", offline the longest, was dropped at once."""
    hub = await make_hub(
        {
            "engine": {"backend": "redis", "url": redis_server.url},
            "mqtt": {"max_offline_sessions": 2},
        }
    )
    for client_id, expiry in (("kept", 3600), ("brief", 1)):
        device: Paho5 = paho5(client_id)
        connected = await device.connect5(hub, clean_start=False, SessionExpiryInterval=expiry)
        assert connected == (False, 0)
        await device.subscribe5(f"cmd/{client_id}", SubscribeOptions(qos=1))
        await device.disconnect()
    await asyncio.sleep(1.5)  # "brief" expires
    late: Paho5 = paho5("late")
    assert await late.connect5(hub, clean_start=False, SessionExpiryInterval=3600) == (False, 0)
    await late.disconnect()
    redis = Redis.from_url(redis_server.url)
    try:
        async with asyncio.timeout(5):
            offline: list[bytes] = []
            while len(offline) < 2:
                offline = await redis.zrange("wshub:mqtt:offline", 0, -1)
                await asyncio.sleep(0.05)
        assert sorted(offline) == [b"kept", b"late"]
        # The expired session's keys went at its own expiry, not the hub's day.
        assert await redis.exists("wshub:mqtt:{brief}") == 0
        assert await redis.pttl("wshub:mqtt:{kept}") > 3_000_000
    finally:
        await redis.aclose()
    back: dict[str, Paho5] = {}
    for client_id, present in (("kept", True), ("late", True), ("brief", False)):
        back[client_id] = paho5(client_id)
        resumed = await back[client_id].connect5(hub, clean_start=False, SessionExpiryInterval=3600)
        assert resumed == (present, 0), client_id
    # The expired session's subscription went with it (not resumed from this node's memory).
    await back["late"].publish5("cmd/brief", b"lost", qos=1)
    await back["late"].publish5("cmd/kept", b"kept", qos=1)
    assert (await back["kept"].message5()).payload == b"kept"
    with pytest.raises(TimeoutError):
        await back["brief"].message5(timeout=0.5)
