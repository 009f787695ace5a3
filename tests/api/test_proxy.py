"""Proxy to the backend: a real aiohttp backend decides connects, subscribes, publishes, RPC."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from hub import Hub
from hub.config import ConfigError, parse_config
from tests.api.backend import Backend
from tests.api.conftest import api_config, call
from tests.auth_helpers import hs_auth, mint
from tests.conftest import Connector, HubFactory
from tests.multinode.test_unavailable import eventually
from tests.ports import free_port
from tests.protocols.channels.conftest import WIRE_NAME, ChannelsPeer
from tests.protocols.channels.conftest import PeerFactory as ChannelsFactory
from tests.protocols.mqtt.conftest import PahoPeer, hub_address


def proxy(backend: Backend, *events: str, **options: Any) -> dict[str, Any]:
    return {
        "proxy": {event: {"url": backend.url(event), **options.get(event, {})} for event in events}
    }


def refuse_channel(channel: str) -> Any:
    def decide(event: dict[str, Any]) -> Any:
        if event.get("channel") == channel:
            return {"error": {"code": 403, "message": f"no access to {channel}"}}
        return {"result": {}}

    return decide


async def test_subscribe_asked_for_channels_v1(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """channels.v1 subscribes go to the backend: allowed ones work, refused ones get -32011."""
    hub = await make_hub(proxy(backend, "subscribe"))
    backend.decide = refuse_channel("secret")
    peer = await channels(hub)
    await peer.subscribe("open")
    error = await peer.error("subscribe", {"channel": "secret"})
    assert error["code"] == -32011
    assert "no access to secret" in error["message"]
    first = backend.events[0]
    assert first["event"] == "subscribe"
    assert first["channel"] == "open"
    assert first["protocol"] == "channels.v1"
    assert first["client"] in hub.session_ids


async def test_same_decision_for_mqtt_and_wamp(
    make_hub: HubFactory, backend: Backend, paho_peer: Any, wamp: Any
) -> None:
    """An MQTT SUBSCRIBE (SUBACK 0x80) and a WAMP SUBSCRIBE (an error) ask the same endpoint."""
    hub = await make_hub(proxy(backend, "subscribe"))
    backend.decide = refuse_channel("secret/x")
    device: PahoPeer = paho_peer("dev")
    await device.connect(*hub_address(hub))
    assert await device.subscribe("secret/x", 1) == [0x80]
    assert await device.subscribe("open/x", 1) == [1]
    session = await wamp(hub)
    with pytest.raises(ApplicationError) as refused:
        await session.subscribe(lambda *a: None, "secret.x")
    assert "not_authorized" in refused.value.error
    protocols = {event["protocol"] for event in backend.events}
    assert protocols == {"mqtt", "wamp.2.json"}


async def test_publish_transformed_or_refused(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """The backend may rewrite a publication's data, or refuse it (-32011)."""
    hub = await make_hub(proxy(backend, "publish"))

    def decide(event: dict[str, Any]) -> Any:
        if event["data"] == "bad":
            return {"error": {"code": 1, "message": "moderated"}}
        return {"result": {"data": {"text": str(event["data"]).upper()}}}

    backend.decide = decide
    subscriber = await channels(hub)
    await subscriber.subscribe("chat")
    publisher = await channels(hub)
    await publisher.publish("chat", "hello")
    (message,) = await subscriber.messages(1)
    assert message["data"] == {"text": "HELLO"}
    error = await publisher.error("publish", {"channel": "chat", "data": "bad"})
    assert error["code"] == -32011
    assert "moderated" in error["message"]
    assert await subscriber.quiet_for(0.1)


async def test_rpc_patterns(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """Methods matching [proxy.rpc] methods are the backend's; its error keeps its code."""
    config = proxy(backend, "rpc", rpc={"methods": ["billing.*"]})
    hub = await make_hub({**config, **api_config()})

    def decide(event: dict[str, Any]) -> Any:
        if event["method"] == "billing.fail":
            return {"error": {"code": 4002, "message": "card declined", "data": {"x": 1}}}
        return {"result": {"method": event["method"], "params": event["params"]}}

    backend.decide = decide
    peer = await channels(hub)
    answer = await peer.call("billing.invoice.get", {"id": 7})
    assert answer == {"method": "billing.invoice.get", "params": {"id": 7}}
    error = await peer.error("billing.fail", [])
    assert (error["code"], error["message"], error["data"]) == (4002, "card declined", {"x": 1})
    assert (await peer.error("other.method"))["code"] == -32601
    status, body = await call(hub, "rpc", {"method": "billing.total", "params": [1]})
    assert status == 200
    assert body["result"]["params"] == [1]


async def test_rpc_over_wamp(make_hub: HubFactory, backend: Backend, wamp: Any) -> None:
    """A WAMP caller reaches a proxied method like any hub procedure."""
    hub = await make_hub(proxy(backend, "rpc", rpc={"methods": ["billing.*"]}))
    backend.decide = lambda event: {"result": sum(event["params"])}
    session = await wamp(hub)
    assert await session.call("billing.sum", 1, 2, 3) == 6


async def test_connect_refused_and_headers_forwarded(
    make_hub: HubFactory, backend: Backend, connect: Connector
) -> None:
    """The connect proxy sees the forwarded headers; a refusal closes with 1008 and its text."""
    hub = await make_hub(proxy(backend, "connect", connect={"headers": ["X-Tenant"]}))
    backend.decide = lambda event: (
        {"result": {}}
        if event["headers"].get("X-Tenant") == "acme"
        else {"error": {"code": 1, "message": "unknown tenant"}}
    )
    allowed = ChannelsPeer(
        await connect(hub, WIRE_NAME, additional_headers={"X-Tenant": "acme", "X-Other": "no"})
    )
    assert await allowed.call("presence_stats", {"channel": "x"}) == {"clients": 0, "users": 0}
    assert backend.events[0]["headers"] == {"X-Tenant": "acme"}
    refused = ChannelsPeer(await connect(hub, WIRE_NAME, additional_headers={"X-Tenant": "evil"}))
    assert await refused.closed() == (1008, "unknown tenant")


async def test_backend_down_is_a_clear_error(
    make_hub: HubFactory, channels: ChannelsFactory
) -> None:
    """Nothing listening at the backend's URL: subscribe gets -32017 "backend unavailable"."""
    url = f"http://127.0.0.1:{free_port()}/subscribe"
    hub = await make_hub({"proxy": {"subscribe": {"url": url}}})
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "x"})
    assert error["code"] == -32017
    assert "backend unavailable" in error["message"]
    assert 'wshub_proxy_requests_total{outcome="unavailable"} 1.0' in hub.metrics.render().decode()


async def test_slow_backend_times_out(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """A backend slower than the timeout: -32017 naming the timeout; the hub serves on."""
    hub = await make_hub(proxy(backend, "publish", publish={"timeout": 0.2}))
    backend.decide = lambda event: 2.0
    peer = await channels(hub)
    error = await peer.error("publish", {"channel": "x", "data": 1})
    assert error["code"] == -32017
    assert "0.2 s" in error["message"]
    assert await peer.call("presence_stats", {"channel": "x"}) == {"clients": 0, "users": 0}


async def test_backend_http_error(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """A backend answering HTTP 500 refuses nothing silently: -32017 with the status."""
    hub = await make_hub(proxy(backend, "subscribe"))
    backend.decide = lambda event: 500
    peer = await channels(hub)
    error = await peer.error("subscribe", {"channel": "x"})
    assert error["code"] == -32017
    assert "HTTP 500" in error["message"]


async def test_pool_is_bounded(
    make_hub: HubFactory, backend: Backend, channels: ChannelsFactory
) -> None:
    """With max_connections = 2, at most two requests reach the backend at once."""
    config = proxy(backend, "publish")
    config["proxy"]["max_connections"] = 2
    hub = await make_hub(config)
    running = 0
    most = 0

    async def slow_count() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.1)
        running -= 1

    tasks: list[asyncio.Task[None]] = []
    backend.decide = lambda event: (tasks.append(asyncio.ensure_future(slow_count())), 0.1)[1]
    peers = [await channels(hub) for _ in range(5)]
    await asyncio.gather(*(p.publish("c", n) for n, p in enumerate(peers)))
    assert most <= 2
    assert len(backend.events) == 5


def test_proxy_config_refuses_bad_url() -> None:
    """A proxy url that is not http(s) stops the start with the key named."""
    with pytest.raises(ConfigError, match=r"proxy\.subscribe\.url"):
        parse_config({"proxy": {"subscribe": {"url": "ftp://x"}}})


async def test_no_proxy_by_default(hub: Hub) -> None:
    """Without [proxy], no proxy service runs."""
    assert "proxy" not in hub.services


async def test_refresh_extends_an_expiring_session(
    make_hub: HubFactory, backend: Backend, connect: Connector
) -> None:
    """At expiry the refresh proxy is asked; a later expires_at keeps the session open."""
    hub = await make_hub({**proxy(backend, "refresh"), "auth": hs_auth()})
    extended_to = time.time() + 60
    backend.decide = lambda event: {"result": {"expires_at": extended_to}}
    # exp is whole seconds: ttl 2 leaves at least one for the handshake.
    token = mint("ada", ttl=2)
    peer = ChannelsPeer(await connect(hub, WIRE_NAME, path=f"/?token={token}"))
    (session_id,) = hub.session_ids
    (event,) = await backend.wait_for(1, timeout=5)
    assert (event["event"], event["user"]) == ("refresh", "ada")

    async def expiry() -> float:
        identity = hub.session(session_id).identity
        assert identity is not None
        return identity.expires_at or 0.0

    assert await eventually(expiry, lambda value: value > time.time() + 30) == pytest.approx(
        extended_to
    )
    assert await peer.call("presence_stats", {"channel": "x"}) == {"clients": 0, "users": 0}


async def test_refresh_refused_closes_with_3000(
    make_hub: HubFactory, backend: Backend, connect: Connector
) -> None:
    """A refresh refused (or the backend down) closes the session as expired: 3000."""
    hub = await make_hub({**proxy(backend, "refresh"), "auth": hs_auth()})
    backend.decide = lambda event: {"error": {"code": 1, "message": "account suspended"}}
    token = mint("ada", ttl=2)
    peer = ChannelsPeer(await connect(hub, WIRE_NAME, path=f"/?token={token}"))
    assert await peer.closed(timeout=5) == (3000, "token expired")
    assert len(backend.events) == 1
