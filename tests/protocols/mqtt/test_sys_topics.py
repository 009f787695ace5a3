"""$SYS/broker/... statistics: published retained, counted per node, read under access rules."""

from __future__ import annotations

import asyncio
from typing import Any

from hub import Hub, HubConfig
from protocols.mqtt.codec import Publish
from protocols.mqtt.sys_topics import SERVICE_NAME, SysTopics
from tests.conftest import HubFactory

from .conftest import PahoPeer, PairFactory, hub_address


def sys_topics(hub: Hub) -> SysTopics:
    return hub.services.get(SERVICE_NAME, SysTopics)


async def test_values_count_clients_subscriptions_and_messages(pair: PairFactory) -> None:
    """Connected clients, sessions, subscriptions and PUBLISH packets in and out are counted."""
    hub = Hub()
    first = await pair(hub)
    await first.connect()
    await first.subscribe(("a/#", 0), ("$share/g/b", 0))
    second = await pair(hub)
    await second.connect(protocol_level=5)
    await second.send(Publish("a/1", b"x"), Publish("a/2", b"y"))
    values = sys_topics(hub).values()
    assert values["clients/total"] == "2"
    assert values["subscriptions/count"] == "2"
    assert values["messages/received"] == "2"
    assert values["messages/sent"] == "2"
    assert values["version"].startswith("wshub ")
    assert values["uptime"].endswith(" seconds")


async def test_published_retained_and_only_to_sys_subscribers(
    make_hub: HubFactory, paho_peer: Any
) -> None:
    """$SYS/# gets the values (retained); '#' does not match $ topics (MQTT-4.7.2-1)."""
    hub = await make_hub({"mqtt": {"sys_interval": 0.2}})
    everything: PahoPeer = paho_peer("all")
    await everything.connect(*hub_address(hub))
    await everything.subscribe("#", 0)
    await asyncio.sleep(0.5)
    watcher: PahoPeer = paho_peer("sys")
    await watcher.connect(*hub_address(hub))
    await watcher.subscribe("$SYS/broker/clients/connected", 0)
    message = await watcher.message()
    assert message.retain is True
    assert int(message.payload) >= 1
    assert await everything.nothing_for(0.5)


async def test_access_rules_decide_who_reads_sys(make_hub: HubFactory, paho_peer: Any) -> None:
    """A $SYS namespace closed to anonymous clients refuses their subscription (SUBACK 0x80)."""
    config = {
        "channels": {"namespaces": {"$SYS": {"subscribe_access": {"authenticated": True}}}},
        "mqtt": {"sys_interval": 0.2},
    }
    hub = await make_hub(HubConfig.model_validate(config))
    client: PahoPeer = paho_peer("nosy")
    await client.connect(*hub_address(hub))
    assert await client.subscribe("$SYS/#", 0) == [0x80]


async def test_clients_cannot_publish_to_sys(pair: PairFactory) -> None:
    """$SYS is the server's: a client's PUBLISH there is acknowledged and dropped."""
    hub = Hub()
    watcher = await pair(hub)
    await watcher.connect()
    await watcher.subscribe(("$SYS/#", 0))
    client = await pair(hub)
    await client.connect()
    await client.send(Publish("$SYS/broker/uptime", b"forged"))
    assert [p for p in watcher.received() if isinstance(p, Publish)] == []


async def test_interval_zero_publishes_nothing(make_hub: HubFactory, paho_peer: Any) -> None:
    """mqtt.sys_interval = 0 turns $SYS off."""
    hub = await make_hub({"mqtt": {"sys_interval": 0}})
    watcher: PahoPeer = paho_peer("sys")
    await watcher.connect(*hub_address(hub))
    await watcher.subscribe("$SYS/#", 0)
    assert await watcher.nothing_for(0.3)
