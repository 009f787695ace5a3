"""hub.client.ChannelsClient against a real hub: subscribe, presence, RPC, recovery."""

from __future__ import annotations

import asyncio

import pytest

from hub import Hub
from hub.client import CallError, ChannelsClient
from tests.api.conftest import api_config, result
from tests.conftest import HubFactory


async def test_subscribe_publish_presence(hub: Hub) -> None:
    """A worker subscribes with presence, publishes, and reads its message and presence."""
    async with ChannelsClient(hub.url) as client:
        sub = await client.subscribe("work", presence=True, info={"role": "worker"})
        await client.publish("work", {"job": 1})
        message = await sub.get(timeout=5)
        assert message["data"] == {"job": 1}
        assert sub.offset == 1
        members = await client.presence("work")
        assert [m["info"] for m in members.values()] == [{"role": "worker"}]
        assert await client.presence_stats("work") == {"clients": 1, "users": 1}
        history = await client.history("work")
        assert [p["data"] for p in history["publications"]] == [{"job": 1}]


async def test_publish_with_meta(hub: Hub) -> None:
    """publish(meta=...) carries MQTT 5 metadata; an invalid one raises CallError -32602."""
    meta = {"content_type": "text/plain", "user_properties": [["k", "v"]]}
    async with ChannelsClient(hub.url) as client:
        sub = await client.subscribe("tagged")
        await client.publish("tagged", "hello", meta=meta)
        assert (await sub.get(timeout=5))["meta"] == meta
        with pytest.raises(CallError) as refused:
            await client.publish("tagged", "x", meta={"payload_format": 3})
        assert refused.value.code == -32602


async def test_rpc_and_errors(hub: Hub) -> None:
    """call runs a hub method; an error reply raises CallError with its code."""

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    async with ChannelsClient(hub.url) as client:
        assert await client.call("math.add", [2, 3]) == 5
        with pytest.raises(CallError) as refused:
            await client.publish("bad/#", 1)
        assert refused.value.code == -32010


async def test_hub_calls_an_exposed_method(hub: Hub) -> None:
    """hub.call reaches a function the worker exposed."""
    async with ChannelsClient(hub.url) as client:
        client.expose("worker.echo", lambda text: text.upper())
        await client.subscribe("x")
        (session_id,) = hub.session_ids
        assert await hub.call(session_id, "worker.echo", {"text": "hi"}, timeout=5) == "HI"


async def test_reconnect_recovers_missed_messages(hub: Hub) -> None:
    """After the connection drops, the client reconnects and replays what it missed."""
    async with ChannelsClient(hub.url, min_delay=0.05, max_delay=0.1) as client:
        sub = await client.subscribe("feed")
        await hub.publish("feed", 1)
        assert (await sub.get(timeout=5))["data"] == 1
        (session_id,) = hub.session_ids
        await hub.session(session_id).close(4000, "test drop")
        await hub.publish("feed", 2)
        await hub.publish("feed", 3)
        assert [(await sub.get(timeout=5))["data"] for _ in range(2)] == [2, 3]
        assert sub.recovered is True
        await hub.publish("feed", 4)
        assert (await sub.get(timeout=5))["data"] == 4


async def test_server_side_subscription_appears(make_hub: HubFactory) -> None:
    """A server API subscribe for this client's user shows up in client.subscriptions."""
    hub = await make_hub(api_config())
    told = asyncio.Event()

    def notified(method: str, params: dict[str, object]) -> None:
        if method == "subscribed":
            told.set()

    async with ChannelsClient(hub.url, on_notification=notified) as client:
        await client.subscribe("me", presence=True)
        (user,) = (await client.presence("me")).keys()
        await result(hub, "subscribe", {"user": user, "channel": "pushed"})
        async with asyncio.timeout(5):
            await told.wait()
        await result(hub, "publish", {"channel": "pushed", "data": "hello"})
        assert (await client.subscriptions["pushed"].get(timeout=5))["data"] == "hello"
