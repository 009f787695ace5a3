"""Every store is bounded in count and bytes, with expiry where it makes sense (issue 13).

Before: history on 110k distinct names grew the hub +176 MiB, retained messages
(93 bytes each on the wire with deflate) could reach ~5 GiB, offline MQTT
sessions were unbounded in number and kept forever, and a presence ``info`` of
900 KB was pushed to every watcher at each join and leave.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

from hub import Hub, HubConfig
from hub.engine import MemoryHistory
from protocols.mqtt.codec import Publish
from tests.conftest import Connector, HubFactory
from tests.protocol_clients import MqttClient

KIB = 1024


def request(request_id: int, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


async def recv_json(ws: Any) -> Any:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


def history_of(hub: Hub) -> MemoryHistory:
    history = hub.engine.history
    assert isinstance(history, MemoryHistory)
    return history


async def test_history_streams_are_bounded_in_number(
    make_hub: HubFactory, connect: Connector
) -> None:
    """history on 2,000 distinct names with history_max_channels 100: 100 streams kept."""
    hub = await make_hub({"engine": {"history_max_channels": 100}})
    ws = await connect(hub, "channels.v1")
    for start in range(0, 2000, 100):
        batch = [request(i, "history", {"channel": f"n/{i}"}) for i in range(start, start + 100)]
        await ws.send(json.dumps(batch))
        assert all("result" in r for r in await recv_json(ws))
    assert len(history_of(hub)) == 100


async def test_history_is_bounded_in_bytes(make_hub: HubFactory, connect: Connector) -> None:
    """20 x 60 KB on 10 channels with history_max_bytes 256 KiB: at most 256 KiB kept."""
    hub = await make_hub({"engine": {"history_max_bytes": 256 * KIB}})
    ws = await connect(hub, "channels.v1")
    for i in range(20):
        params = {"channel": f"b/{i % 10}", "data": "x" * 60_000}
        await ws.send(json.dumps(request(i, "publish", params)))
        assert "result" in await recv_json(ws)
    history = history_of(hub)
    assert 0 < history.bytes <= 256 * KIB
    # The newest stream still answers with what it kept.
    await ws.send(json.dumps(request(99, "history", {"channel": "b/9"})))
    assert len((await recv_json(ws))["result"]["publications"]) >= 1


def tracked_per_stream(history: MemoryHistory) -> list[int]:
    """Objects the garbage collector tracks in each stream: its own, and its containers'."""
    return [
        1
        + sum(gc.is_tracked(part) and part is not type(stream) for part in gc.get_referents(stream))
        for stream in history._streams.values()
    ]


async def test_an_empty_history_stream_is_one_object_for_the_collector(
    make_hub: HubFactory, connect: Connector
) -> None:
    """Names only read, and a stream whose entries expired: one tracked object each.

    Any name read creates a stream, up to history_max_channels (10,000); two
    deques apiece made each full collection walk 20,000 more objects, ~15 ms
    pauses under bench/hostile.py's store growth (issue 13).
    """
    hub = await make_hub({"channels": {"namespaces": {"short": {"history_ttl": 0.2}}}})
    ws = await connect(hub, "channels.v1")
    batch = [request(i, "history", {"channel": f"read/{i}"}) for i in range(100)]
    await ws.send(json.dumps(batch))
    assert all("result" in r for r in await recv_json(ws))
    await ws.send(json.dumps(request(200, "publish", {"channel": "short/x", "data": "kept"})))
    assert "result" in await recv_json(ws)
    history = history_of(hub)
    assert tracked_per_stream(history) == [1] * 100 + [2]  # the 101st holds a deque
    await asyncio.sleep(0.3)
    await ws.send(json.dumps(request(201, "history", {"channel": "short/x"})))
    assert (await recv_json(ws))["result"]["publications"] == []
    assert tracked_per_stream(history) == [1] * 101


async def retained_seen(hub: Hub, client_id: str) -> list[str]:
    """Topics whose retained message a new subscriber of '#' gets."""
    seen: list[str] = []
    client = await MqttClient.open(hub.url)
    client.on_publish = lambda packet: seen.append(packet.topic)
    await client.connect(client_id)
    await client.subscribe("#")
    await asyncio.sleep(0.2)
    await client.close()
    return seen


async def test_retained_messages_are_bounded_in_bytes(make_hub: HubFactory) -> None:
    """10 retained x 60 KB with max_retained_bytes 200 KiB: 3 kept, the rest refused."""
    hub = await make_hub({"mqtt": {"max_retained_bytes": 200 * KIB}})
    device = await MqttClient.open(hub.url)
    await device.connect("device")
    for i in range(10):
        device.send_packets(Publish(f"r/{i}", b"x" * 60_000, retain=True))
    await device.subscribe("sync")  # after every PUBLISH above
    assert sorted(await retained_seen(hub, "watcher")) == ["r/0", "r/1", "r/2"]
    assert await hub.retained.count() == 3
    await device.close()


async def test_retained_messages_expire(make_hub: HubFactory) -> None:
    """With retained_expiry 0.3 s, a retained message is gone after 0.5 s."""
    hub = await make_hub({"mqtt": {"retained_expiry": 0.3}})
    device = await MqttClient.open(hub.url)
    await device.connect("device")
    device.send_packets(Publish("r/old", b"1", retain=True))
    await device.subscribe("sync")
    assert await retained_seen(hub, "early") == ["r/old"]
    await asyncio.sleep(0.5)
    assert await retained_seen(hub, "late") == []
    await device.close()


async def offline_session(hub: Hub, client_id: str) -> None:
    client = await MqttClient.open(hub.url)
    await client.connect(client_id, clean_session=False)
    await client.subscribe(f"q/{client_id}", qos=1)
    client.disconnect()
    await client.wait_closed()


async def test_offline_sessions_are_bounded_in_number(make_hub: HubFactory) -> None:
    """5 persistent sessions offline with max_offline_sessions 3: the 2 oldest are gone."""
    hub = await make_hub({"mqtt": {"max_offline_sessions": 3}})
    for i in range(5):
        await offline_session(hub, f"s{i}")
    present = []
    # Newest first: each reconnect leaves a session offline again.
    for i in reversed(range(5)):
        client = await MqttClient.open(hub.url)
        present.append((await client.connect(f"s{i}", clean_session=False)).session_present)
        client.disconnect()
        await client.wait_closed()
    assert present == [True, True, True, False, False]


async def test_an_offline_queue_is_bounded_in_bytes(make_hub: HubFactory) -> None:
    """10 x 30 KB QoS 1 for an offline session with max_queued_bytes 100 KiB: the newest 3."""
    hub = await make_hub({"mqtt": {"max_queued_bytes": 100 * KIB}})
    await offline_session(hub, "away")
    publisher = await MqttClient.open(hub.url)
    await publisher.connect("pub")
    for i in range(10):
        await publisher.publish("q/away", bytes([i]) * 30_000, qos=1)
    got: list[int] = []
    client = await MqttClient.open(hub.url)
    client.on_publish = lambda packet: got.append(packet.payload[0])
    assert (await client.connect("away", clean_session=False)).session_present
    await asyncio.sleep(0.3)
    assert got == [7, 8, 9]
    await client.close()
    await publisher.close()


def test_offline_sessions_expire_after_a_day_by_default() -> None:
    """mqtt.session_expiry defaults to one day, not forever."""
    assert HubConfig().mqtt.session_expiry == 86_400


async def test_presence_info_is_capped_at_join(hub: Hub, connect: Connector) -> None:
    """A 5 KB info (limit 4 KiB): -32015 naming the limit, and no member left behind."""
    ws = await connect(hub, "channels.v1")
    params = {"channel": "room", "presence": True, "info": {"bio": "x" * 5000}}
    await ws.send(json.dumps(request(1, "subscribe", params)))
    error = (await recv_json(ws))["error"]
    assert error["code"] == -32015
    assert "channels.max_presence_info_bytes" in error["message"]
    await ws.send(json.dumps(request(2, "presence_stats", {"channel": "room"})))
    assert (await recv_json(ws))["result"] == {"clients": 0, "users": 0}
