"""hub.client's server API clients against a real hub's API."""

from __future__ import annotations

import asyncio

import pytest

from hub import Hub
from hub.client import ApiClient, ApiRequestError, ApiUnreachable, SyncApiClient
from tests.api.conftest import KEY, OTHER_KEY
from tests.ports import free_port
from tests.protocols.channels.conftest import PeerFactory


def url(hub: Hub) -> str:
    assert hub.api is not None
    return hub.api.url


async def test_async_publish_presence_history(api_hub: Hub, channels: PeerFactory) -> None:
    """await api.publish reaches a subscriber; presence and history answer."""
    peer = await channels(api_hub)
    await peer.subscribe("news", presence=True)
    await peer.notification("join")
    async with ApiClient(url(api_hub), KEY) as api:
        position = await api.publish("news", {"headline": "hello"})
        assert position["offset"] == 1
        assert (await peer.messages(1))[0]["data"] == {"headline": "hello"}
        assert (await api.presence_stats("news")) == {"clients": 1, "users": 1}
        history = await api.history("news", limit=1, reverse=True)
        assert [p["data"] for p in history["publications"]] == [{"headline": "hello"}]
        replies = await api.batch([{"method": "info", "params": {}}])
        assert replies["replies"][0]["result"]["nodes"][0]["connections"] == 1


async def test_async_error_raises(api_hub: Hub) -> None:
    """An error answer raises ApiRequestError with the status and code."""
    async with ApiClient(url(api_hub), OTHER_KEY) as api:
        with pytest.raises(ApiRequestError) as refused:
            await api.info()
    assert (refused.value.status, refused.value.code) == (401, 1001)
    async with ApiClient(url(api_hub), KEY) as api:
        with pytest.raises(ApiRequestError) as bad:
            await api.publish("a/#", 1)
    assert (bad.value.status, bad.value.code) == (400, -32010)


async def test_async_unreachable() -> None:
    """Nothing listening: ApiUnreachable, not a library's exception."""
    async with ApiClient(f"http://127.0.0.1:{free_port()}", KEY, timeout=2) as api:
        with pytest.raises(ApiUnreachable):
            await api.info()


async def test_sync_client(api_hub: Hub, channels: PeerFactory) -> None:
    """SyncApiClient (standard library) publishes and reads presence from a thread."""
    peer = await channels(api_hub)
    await peer.subscribe("jobs")
    api = SyncApiClient(url(api_hub), KEY)
    position = await asyncio.to_thread(api.publish, "jobs", [1, 2], idempotency_key="j1")
    again = await asyncio.to_thread(api.publish, "jobs", [1, 2], idempotency_key="j1")
    assert position == again
    assert (await peer.messages(1))[0]["data"] == [1, 2]
    assert await asyncio.to_thread(api.presence, "jobs") == {"members": {}}
    with pytest.raises(ApiRequestError) as unknown:
        await asyncio.to_thread(api.call, "nope", {})
    assert unknown.value.status == 404
    with pytest.raises(ApiUnreachable):
        await asyncio.to_thread(SyncApiClient(f"http://127.0.0.1:{free_port()}", KEY).info)
