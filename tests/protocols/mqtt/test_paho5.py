"""paho-mqtt speaking MQTT 5.0 to the hub over WebSocket: CONNACK, properties, options, expiry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import Hub
from tests.auth_helpers import hs_auth, mint
from tests.conftest import HubFactory, JsonRpcPeer, PeerFactory

from .conftest import PahoPeer, hub_address


@dataclass(frozen=True, slots=True)
class Message5:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any]


class Paho5(PahoPeer):
    """PahoPeer speaking 5.0: CONNECT properties, the CONNACK's, messages with properties."""

    def __init__(self, client_id: str, **options: Any) -> None:
        super().__init__(client_id, protocol=MQTTProtocolVersion.MQTTv5, **options)
        self.connack_properties: dict[str, Any] = {}
        self.messages5: asyncio.Queue[Message5] = asyncio.Queue()
        self.disconnect_reason: asyncio.Future[int] = self.loop.create_future()
        self.disconnect_properties: dict[str, Any] = {}

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack_properties = props.json() if props is not None else {}
        super()._on_connect(client, userdata, flags, reason, props)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        props = message.properties.json() if message.properties is not None else {}
        received = Message5(
            message.topic, bytes(message.payload), message.qos, bool(message.retain), props
        )
        self._soon(self.messages5.put_nowait, received)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        def settle() -> None:
            if not self.disconnect_reason.done():
                self.disconnect_properties = props.json() if props is not None else {}
                self.disconnect_reason.set_result(int(reason.value))

        self._soon(settle)
        super()._on_disconnect(client, userdata, flags, reason, props)

    async def connect5(
        self,
        hub: Hub,
        *,
        clean_start: bool = True,
        keepalive: int = 60,
        **properties: Any,
    ) -> tuple[bool, int]:
        """Connect with CONNECT properties (paho names: SessionExpiryInterval=...)."""
        props = PahoProperties(PacketTypes.CONNECT)
        for name, value in properties.items():
            setattr(props, name, value)
        host, port = hub_address(hub)
        await asyncio.to_thread(
            self.client.connect,
            host,
            port,
            keepalive,
            clean_start=clean_start,
            properties=props if properties else None,
        )
        self.client.loop_start()
        async with asyncio.timeout(5):
            return await self.connack

    async def subscribe5(
        self, topic: str, options: SubscribeOptions, identifier: int | None = None
    ) -> list[int]:
        props = None
        if identifier is not None:
            props = PahoProperties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = identifier
        result, mid = self.client.subscribe(topic, options=options, properties=props)
        assert result == 0
        assert mid is not None
        done = self._subacks.setdefault(mid, self.loop.create_future())
        async with asyncio.timeout(5):
            return await done

    async def publish5(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, **properties: Any
    ) -> int:
        """Publish with PUBLISH properties; return the acknowledgement's reason code (QoS 1)."""
        props = PahoProperties(PacketTypes.PUBLISH)
        for name, value in properties.items():
            setattr(props, name, value)
        info = self.client.publish(topic, payload, qos, retain, properties=props)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published()
        return 0

    async def message5(self, timeout: float = 5.0) -> Message5:
        async with asyncio.timeout(timeout):
            return await self.messages5.get()


@pytest.fixture
async def paho5() -> Any:
    peers: list[Paho5] = []

    def make(client_id: str, **options: Any) -> Paho5:
        peer = Paho5(client_id, **options)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


async def test_paho5_connects_and_reads_the_connack_properties(hub: Hub, paho5: Any) -> None:
    """paho MQTTv5 gets CONNACK 0 with the hub's limits and features, and an assigned id."""
    client: Paho5 = paho5("")
    assert await client.connect5(hub, SessionExpiryInterval=30) == (False, 0)
    props = client.connack_properties
    assert props["ReceiveMaximum"] == 20
    assert props["TopicAliasMaximum"] == 10
    assert props["RetainAvailable"] == 1
    assert props["SubscriptionIdentifierAvailable"] == 1
    assert props["AssignedClientIdentifier"].startswith("wshub-")


async def test_paho5_request_response_properties_pass_through(hub: Hub, paho5: Any) -> None:
    """Response topic, correlation data, content type and user properties arrive unchanged."""
    responder: Paho5 = paho5("responder")
    await responder.connect5(hub)
    assert await responder.subscribe5("rpc/req", SubscribeOptions(qos=1), identifier=7) == [1]
    requester: Paho5 = paho5("requester")
    await requester.connect5(hub)
    await requester.publish5(
        "rpc/req",
        b'{"n":1}',
        ResponseTopic="rpc/resp/requester",
        CorrelationData=b"\x01\x02",
        ContentType="application/json",
        PayloadFormatIndicator=1,
        UserProperty=[("a", "1"), ("b", "2")],
    )
    message = await responder.message5()
    assert message.payload == b'{"n":1}'
    assert message.properties["ResponseTopic"] == "rpc/resp/requester"
    assert message.properties["CorrelationData"] == "0102"
    assert message.properties["ContentType"] == "application/json"
    assert message.properties["PayloadFormatIndicator"] == 1
    assert message.properties["UserProperty"] == [("a", "1"), ("b", "2")]
    assert message.properties["SubscriptionIdentifier"] == [7]


async def test_paho5_no_local_and_retain_as_published(hub: Hub, paho5: Any) -> None:
    """SUBSCRIBE options: no local keeps own messages away; RAP keeps RETAIN on live ones."""
    client: Paho5 = paho5("opts")
    await client.connect5(hub)
    await client.subscribe5("own", SubscribeOptions(qos=1, noLocal=True))
    await client.subscribe5("kept", SubscribeOptions(qos=1, retainAsPublished=True))
    await client.publish5("own", b"mine")
    await client.publish5("kept", b"r", retain=True)
    message = await client.message5()
    assert (message.topic, message.retain) == ("kept", True)
    with pytest.raises(TimeoutError):
        await client.message5(timeout=0.3)


async def test_paho5_message_expiry_with_a_real_clock(hub: Hub, paho5: Any) -> None:
    """A queued message past its Message Expiry Interval is not delivered on reconnect."""
    sub: Paho5 = paho5("expiring")
    await sub.connect5(hub, SessionExpiryInterval=60)
    await sub.subscribe5("exp/#", SubscribeOptions(qos=1))
    await sub.vanish()
    pub: Paho5 = paho5("pub")
    await pub.connect5(hub)
    await pub.publish5("exp/short", b"s", MessageExpiryInterval=1)
    await pub.publish5("exp/long", b"l", MessageExpiryInterval=120)
    await asyncio.sleep(1.3)
    back: Paho5 = paho5("expiring")
    assert await back.connect5(hub, clean_start=False, SessionExpiryInterval=60) == (True, 0)
    message = await back.message5()
    assert message.topic == "exp/long"
    assert 118 <= message.properties["MessageExpiryInterval"] <= 120
    with pytest.raises(TimeoutError):
        await back.message5(timeout=0.3)


async def test_paho5_topic_alias_from_the_client(hub: Hub, paho5: Any) -> None:
    """A topic alias set by paho stands for its topic in the next PUBLISH."""
    sub: Paho5 = paho5("alias-sub")
    await sub.connect5(hub)
    await sub.subscribe5("long/topic/name", SubscribeOptions(qos=1))
    pub: Paho5 = paho5("alias-pub")
    await pub.connect5(hub)
    await pub.publish5("long/topic/name", b"1", TopicAlias=1)
    await pub.publish5("", b"2", TopicAlias=1)
    assert [(await sub.message5()).payload for _ in range(2)] == [b"1", b"2"]


async def test_paho5_session_taken_over_gets_reason_0x8e(hub: Hub, paho5: Any) -> None:
    """The first connection of a client id gets DISCONNECT 0x8E when another takes it."""
    first: Paho5 = paho5("twin")
    await first.connect5(hub)
    second: Paho5 = paho5("twin")
    await second.connect5(hub)
    async with asyncio.timeout(5):
        assert await first.disconnect_reason == 0x8E


async def test_paho5_whose_jwt_expires_gets_reason_0xa0_maximum_connect_time(
    make_hub: HubFactory, paho5: Any
) -> None:
    """At the token's exp a 5.0 client hears DISCONNECT 0xA0 Maximum connect time, with a
    reason string naming the expiry, before the hub closes the connection."""
    hub = await make_hub({"auth": {"allow_anonymous": False, **hs_auth()}})
    client: Paho5 = paho5("expiring")
    client.client.username_pw_set("ada", mint("ada", ttl=2))
    assert await client.connect5(hub) == (False, 0)
    async with asyncio.timeout(8):
        assert await client.disconnect_reason == 0xA0
    assert "token expired" in client.disconnect_properties["ReasonString"]


async def test_paho5_and_paho311_and_channels_share_a_topic(
    hub: Hub, paho5: Any, paho_peer: Any, jsonrpc: PeerFactory
) -> None:
    """3.1.1 and 5.0 clients and a channels.v1 client meet on one topic."""
    watcher: JsonRpcPeer = await jsonrpc(hub, "channels.v1")
    await watcher.call("subscribe", {"channel": "mixed"})
    new: Paho5 = paho5("new")
    await new.connect5(hub)
    await new.subscribe5("mixed", SubscribeOptions(qos=1))
    old: PahoPeer = paho_peer("old")
    await old.connect(*hub_address(hub))
    await old.subscribe("mixed", 1)
    await old.publish("mixed", b"from 3.1.1", 1)
    await new.publish5("mixed", b"from 5", ContentType="text/plain")
    assert [(await new.message5()).payload for _ in range(2)] == [b"from 3.1.1", b"from 5"]
    assert [(await old.message()).payload for _ in range(2)] == [b"from 3.1.1", b"from 5"]
    seen = [(await watcher.recv())["params"]["channel"] for _ in range(2)]
    assert seen == ["mixed", "mixed"]
