"""Graceful shutdown and handler failures, over all four protocols on real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from hub import Hub, Session
from hub.handler import ProtocolSpec, SubprotocolHandler
from hub.registry import ProtocolRegistry, default_registry
from tests.conftest import HubFactory
from tests.protocol_clients import ChannelsClient, JsonRpcClient, MqttClient, Peer, WampClient

WAMP_SERIALIZERS = ("json", "msgpack", "cbor")


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition the hub reaches on its own (a close being processed)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


PROTOCOLS = ("jsonrpc.2.0", "channels.v1", "mqtt", *(f"wamp.2.{s}" for s in WAMP_SERIALIZERS))


async def open_client(hub: Hub, protocol: str, channel: str) -> Peer:
    """A client of ``protocol``, subscribed to ``channel`` (with presence) if it can."""
    if protocol == "jsonrpc.2.0":
        rpc = await JsonRpcClient.open(hub.url)
        assert await rpc.call("echo", ["hi"]) == "hi"
        return rpc
    if protocol == "channels.v1":
        channels = await ChannelsClient.open(hub.url)
        await channels.subscribe(channel, presence=True)
        return channels
    if protocol == "mqtt":
        mqtt = await MqttClient.open(hub.url)
        assert (await mqtt.connect(f"device-{channel}")).return_code == 0
        await mqtt.subscribe(channel, 1)
        return mqtt
    wamp = await WampClient.open(hub.url, subprotocol=protocol)
    assert (await wamp.join())[0] == 2  # WELCOME
    await wamp.subscribe(channel)
    return wamp


async def open_every_protocol(hub: Hub, channel: str = "room") -> dict[str, Peer]:
    return {protocol: await open_client(hub, protocol, channel) for protocol in PROTOCOLS}


@pytest.fixture
async def echo_hub(make_hub: HubFactory) -> Hub:
    hub = await make_hub()

    @hub.rpc("echo")
    async def echo(text: str) -> str:
        return text

    return hub


async def test_stop_closes_every_protocol_with_1001(echo_hub: Hub) -> None:
    """hub.stop() closes clients of every protocol with 1001 and leaves no session behind."""
    hub = echo_hub
    peers = await open_every_protocol(hub)
    assert len(hub.session_ids) == len(peers)
    assert await hub.presence("room") != {}

    await hub.stop()

    for name, peer in peers.items():
        assert await peer.wait_closed() == (1001, "server shutting down"), name
    assert hub.session_ids == []
    assert hub.engine.local_subscription_count() == 0
    assert await hub.engine.members("room") == {}


async def test_hub_serves_again_after_stop_and_start(echo_hub: Hub) -> None:
    """The same Hub object stopped and started serves every protocol again."""
    hub = echo_hub
    await open_every_protocol(hub)
    await hub.stop()
    await hub.start(port=0)
    peers = await open_every_protocol(hub)
    assert len(hub.session_ids) == len(peers)
    channels, mqtt = peers["channels.v1"], peers["mqtt"]
    assert isinstance(channels, ChannelsClient)
    assert isinstance(mqtt, MqttClient)
    got: list[Any] = []
    channels.on_notification = lambda message: (
        got.append(message["params"]["data"]) if message["method"] == "message" else None
    )
    mqtt.on_publish = lambda packet: got.append(packet.payload)
    for name in PROTOCOLS[3:]:
        wamp = peers[name]
        assert isinstance(wamp, WampClient)
        wamp.on_event = lambda event: got.append(event[4][0])
    await hub.publish("room", {"n": 2})
    await until(lambda: len(got) == 5)
    assert got.count({"n": 2}) == 4
    assert b'{"n":2}' in got


# --- a handler failing -------------------------------------------------------------

MARKER = "CRASH-NOW"


class Faulty(SubprotocolHandler):
    """A protocol's real handler with one injected bug: a message holding MARKER raises."""

    def __init__(self, inner: SubprotocolHandler) -> None:
        self.inner = inner

    async def on_open(self) -> None:
        await self.inner.on_open()

    async def on_message(self, message: str | bytes) -> None:
        marker: str | bytes = MARKER.encode() if isinstance(message, bytes) else MARKER
        if marker in message:  # type: ignore[operator]
            raise RuntimeError("injected handler bug")
        await self.inner.on_message(message)

    async def on_rate_limited(self, message: str | bytes) -> None:
        await self.inner.on_rate_limited(message)

    async def on_close(self, code: int | None) -> None:
        await self.inner.on_close(code)

    async def on_identity_expired(self) -> None:
        await self.inner.on_identity_expired()

    def notify(self, method: str, params: Any = None) -> None:
        self.inner.notify(method, params)

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        return await self.inner.call(method, params, timeout=timeout)


def with_injected_bug(spec: ProtocolSpec) -> ProtocolSpec:
    def factory(session: Session, hub: Hub) -> SubprotocolHandler:
        return Faulty(spec.factory(session, hub))

    return dataclasses.replace(spec, factory=factory)


@pytest.fixture
async def faulty_hub(make_hub: HubFactory) -> Hub:
    registry = ProtocolRegistry(
        with_injected_bug(spec)
        for spec in (default_registry().get(name) for name in default_registry().names)
        if spec is not None
    )
    hub = await make_hub(registry=registry)

    @hub.rpc("echo")
    async def echo(text: str) -> str:
        return text

    return hub


async def _crash(peer: Peer) -> None:
    """Send a message that makes the handler raise."""
    if isinstance(peer, ChannelsClient):
        peer.start("publish", {"channel": "room", "data": MARKER})
    elif isinstance(peer, JsonRpcClient):
        peer.start("echo", [MARKER])
    elif isinstance(peer, MqttClient):
        await peer.publish("room", MARKER.encode())
    else:
        assert isinstance(peer, WampClient)
        await peer.publish("room", [MARKER], acknowledge=False)


async def _works(peer: Peer) -> None:
    """A round trip proving the connection still serves."""
    if isinstance(peer, JsonRpcClient):  # channels.v1 too
        assert await peer.call("echo", ["still here"]) == "still here"
    elif isinstance(peer, MqttClient):
        await peer.publish("room", b"fine", 1)
    else:
        assert isinstance(peer, WampClient)
        assert await peer.call("echo", ["still here"]) == ["still here"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_handler_exception_closes_only_that_connection_with_1011(
    faulty_hub: Hub, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler raising closes its client with 1011, logged with the session id; others go on."""
    hub = faulty_hub
    victim = await open_client(hub, protocol, "victims")
    [victim_id] = hub.session_ids
    others = await open_every_protocol(hub, "room")
    subscriptions = hub.engine.local_subscription_count()

    with caplog.at_level(logging.ERROR, logger="hub.server"):
        await _crash(victim)
        assert await victim.wait_closed() == (1011, "internal error")

    await until(lambda: victim_id not in hub.session_ids)
    [record] = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert re.search(rf"session {re.escape(victim_id)} \(", record.getMessage())
    assert record.exc_info is not None
    assert "injected handler bug" in str(record.exc_info[1])
    # What the victim held is released: its subscription to "victims" is gone.
    held = 0 if protocol == "jsonrpc.2.0" else 1
    assert hub.engine.local_subscription_count() == subscriptions - held
    assert await hub.engine.members("victims") == {}
    for peer in others.values():
        await _works(peer)
    assert len(hub.session_ids) == len(others)
