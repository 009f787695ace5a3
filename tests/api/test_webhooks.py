"""Webhooks delivered to a real aiohttp backend: signed, in order, retried, bounded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest

from hub.api.webhooks import signature
from hub.config import ConfigError, parse_config
from tests.api.backend import Backend
from tests.conftest import HubFactory
from tests.multinode.test_unavailable import eventually
from tests.ports import free_port
from tests.protocols.channels.conftest import PeerFactory as ChannelsFactory

SECRET = "webhook-secret-for-tests"


def webhooks(url: str, *events: str, **options: Any) -> dict[str, Any]:
    return {
        "webhooks": {
            "urls": [url],
            "events": list(events),
            "secret": SECRET,
            "retry_min_delay": 0.01,
            "retry_max_delay": 0.05,
            **options,
        }
    }


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


async def test_presence_events_in_order_and_signed(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """join, channel_occupied, leave, channel_vacated arrive in order, each correctly signed."""
    events = ("join", "leave", "channel_occupied", "channel_vacated")
    hub = await make_hub(webhooks(backend.url("hooks"), *events))
    peer = await channels(hub)
    await peer.subscribe("room", presence=True)
    await peer.call("unsubscribe", {"channel": "room"})
    received = await backend.wait_for(4)
    assert kinds(received) == ["join", "channel_occupied", "leave", "channel_vacated"]
    assert {event["channel"] for event in received} == {"room"}
    assert received[0]["user"] == received[0]["client"]
    for headers, event in zip(backend.headers, received, strict=True):
        header = headers["X-Wshub-Signature"]
        timestamp = int(header.split(",")[0].removeprefix("t="))
        body = json.dumps(event, separators=(",", ":")).encode()
        expected = hmac.new(
            SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        assert header == f"t={timestamp},v1={expected}"


def test_signature_is_hmac_sha256_of_time_and_body() -> None:
    """The signature is HMAC-SHA256 over "<t>.<body>", hex, with its time."""
    digest = hmac.new(b"k", b"17.{}", hashlib.sha256).hexdigest()
    assert signature(b"k", 17, b"{}") == f"t=17,v1={digest}"


async def test_connect_publish_disconnect(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """connect, publish (with its offset) and disconnect events of one client."""
    hub = await make_hub(webhooks(backend.url("hooks"), "connect", "disconnect", "publish"))
    peer = await channels(hub)
    await peer.publish("news", {"n": 1})
    await peer.close()
    received = await backend.wait_for(3)
    assert kinds(received) == ["connect", "publish", "disconnect"]
    publish = received[1]
    assert (publish["channel"], publish["data"], publish["offset"]) == ("news", {"n": 1}, 1)
    assert publish["protocol"] == "channels.v1"


async def test_retried_until_delivered_in_order(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """A failing backend gets the event again (backoff); the next waits behind it."""
    hub = await make_hub(webhooks(backend.url("hooks"), "publish", lanes=1))
    answers = iter([500, 503, {"ok": True}])
    backend.decide = lambda event: next(answers, {"ok": True})
    peer = await channels(hub)
    await peer.publish("c", 1)
    await peer.publish("c", 2)
    received = await backend.wait_for(4)
    assert [event["data"] for event in received] == [1, 1, 1, 2]
    text = hub.metrics.render().decode()
    assert "wshub_webhooks_retries_total 2.0" in text
    await asyncio.sleep(0.05)
    assert "wshub_webhooks_delivered_total 2.0" in hub.metrics.render().decode()


async def test_backend_down_drops_after_max_attempts(
    make_hub: HubFactory, channels: ChannelsFactory
) -> None:
    """Nothing listening: after max_attempts the event is dropped and counted."""
    url = f"http://127.0.0.1:{free_port()}/hooks"
    hub = await make_hub(webhooks(url, "publish", max_attempts=2))
    peer = await channels(hub)
    await peer.publish("c", 1)
    dropped = 'wshub_webhooks_dropped_total{reason="failed"} 1.0'

    async def metrics() -> float:
        return float(dropped in hub.metrics.render().decode())

    assert await eventually(metrics, bool) == 1.0


async def test_queue_bounded(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """A slow backend and a full queue: new events are dropped and counted, the hub serves on."""
    hub = await make_hub(webhooks(backend.url("hooks"), "publish", max_queue=2, lanes=1))
    backend.decide = lambda event: 0.3
    peer = await channels(hub)
    for n in range(5):
        await peer.publish("c", n)
    assert 'wshub_webhooks_dropped_total{reason="queue_full"} 3.0' in hub.metrics.render().decode()
    received = await backend.wait_for(2)
    assert [event["data"] for event in received] == [0, 1]


def test_webhooks_need_a_secret() -> None:
    """URLs without secret or secret_file stop the start."""
    with pytest.raises(ConfigError, match="secret"):
        parse_config({"webhooks": {"urls": ["http://127.0.0.1:1/"]}})
