"""Shared subscriptions $share/<group>/<filter> (MQTT 5.0 4.8.2), for 3.1.1 and 5.0 clients."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from hub import Hub, HubConfig
from protocols.mqtt.codec import Connect, Disconnect, Puback, Publish, Subscribe, Unsubscribe, Will
from protocols.mqtt.packets import NO_LOCAL
from protocols.mqtt.reasons import ReasonCode
from protocols.mqtt.shared import InvalidSharedFilter, parse_shared

from .conftest import PahoPeer, Pair, PairFactory, hub_address

V5: dict[str, Any] = {"protocol_level": 5}


def payloads(client: Pair) -> list[bytes]:
    return [p.payload for p in client.received() if isinstance(p, Publish)]


async def publisher(pair: PairFactory) -> Pair:
    client = await pair()
    await client.connect()
    return client


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a/b", None),
        ("$share/g/a/b", ("g", "a/b")),
        ("$share/g/#", ("g", "#")),
        ("$share/g/$SYS/x", ("g", "$SYS/x")),
    ],
)
def test_parse_shared(topic_filter: str, expected: tuple[str, str] | None) -> None:
    """4.8.2: $share/, a share name, /, then the topic filter."""
    assert parse_shared(topic_filter) == expected


@pytest.mark.parametrize("topic_filter", ["$share/g", "$share/g/", "$share//a", "$share/+/a"])
def test_parse_shared_refuses_malformed(topic_filter: str) -> None:
    """4.8.2: a share name is at least one character, without '/', '+' or '#', then a filter."""
    with pytest.raises(InvalidSharedFilter):
        parse_shared(topic_filter)


async def test_each_message_goes_to_one_member(pair: PairFactory) -> None:
    """4.8.2: members of a group take turns; an ordinary subscriber gets everything."""
    first, second, watcher = await pair(), await pair(), await pair()
    await first.connect()
    await second.connect(**V5)
    await watcher.connect()
    assert await first.subscribe(("$share/workers/jobs/#", 1)) == (1,)
    assert await second.subscribe(("$share/workers/jobs/#", 1)) == (1,)
    await watcher.subscribe(("jobs/#", 0))
    source = await publisher(pair)
    await source.send(*(Publish(f"jobs/{n}", str(n).encode()) for n in range(4)))
    got_first, got_second = payloads(first), payloads(second)
    assert sorted(got_first + got_second) == [b"0", b"1", b"2", b"3"]
    assert len(got_first) == len(got_second) == 2
    assert len(payloads(watcher)) == 4


async def test_two_groups_each_get_every_message(pair: PairFactory) -> None:
    """4.8.2: every group on a filter gets its own copy."""
    a, b = await pair(), await pair()
    await a.connect()
    await b.connect()
    await a.subscribe(("$share/one/t", 0))
    await b.subscribe(("$share/two/t", 0))
    source = await publisher(pair)
    await source.send(Publish("t", b"x"), Publish("t", b"y"))
    assert payloads(a) == payloads(b) == [b"x", b"y"]


async def test_connected_members_are_preferred(pair: PairFactory) -> None:
    """A member whose client is away gets nothing while another member is connected."""
    away = await pair()
    await away.connect(client_id="away", clean_session=False)
    await away.subscribe(("$share/g/q", 1))
    here = await pair()
    await here.connect()
    await here.subscribe(("$share/g/q", 1))
    await away.drop()
    source = await publisher(pair)
    await source.send(*(Publish("q", bytes([n]), 1, packet_id=n + 1) for n in range(3)))
    assert len(payloads(here)) == 3


async def test_offline_group_queues_in_a_persistent_member(pair: PairFactory) -> None:
    """With every member away, a persistent member's session keeps the QoS 1 message."""
    away = await pair()
    await away.connect(client_id="keeper", clean_session=False)
    await away.subscribe(("$share/g/q", 1))
    await away.drop()
    source = await publisher(pair)
    await source.send(Publish("q", b"kept", 1, packet_id=1))
    back = await pair()
    assert (await back.connect(client_id="keeper", clean_session=False)).session_present
    assert payloads(back) == [b"kept"]


async def test_member_leaving_hands_over_to_the_rest(pair: PairFactory) -> None:
    """After UNSUBSCRIBE or a clean disconnect, the remaining members get every message."""
    a, b, c = await pair(), await pair(), await pair()
    for client in (a, b, c):
        await client.connect()
        await client.subscribe(("$share/g/t", 0))
    await a.send(Unsubscribe(2, ("$share/g/t",)))
    a.received()
    await b.send(Disconnect())
    await b.finish()
    source = await publisher(pair)
    await source.send(Publish("t", b"1"), Publish("t", b"2"))
    assert payloads(a) == []
    assert payloads(c) == [b"1", b"2"]


async def test_no_retained_messages_for_shared_subscriptions(pair: PairFactory) -> None:
    """4.8.2: subscribing to a shared subscription sends no retained messages."""
    source = await publisher(pair)
    await source.send(Publish("kept", b"r", retain=True))
    client = await pair()
    await client.connect(**V5)
    await client.subscribe(("$share/g/kept", 0))
    assert client.after_suback == []


async def test_malformed_shared_filter_is_refused(pair: PairFactory) -> None:
    """A share name without a filter: SUBACK 0x8F (5.0) or 0x80 (3.1.1)."""
    new = await pair()
    await new.connect(**V5)
    assert await new.subscribe(("$share/g", 0)) == (ReasonCode.TOPIC_FILTER_INVALID,)
    old = await pair()
    await old.connect()
    assert await old.subscribe(("$share/g", 0)) == (0x80,)


async def test_no_local_on_a_shared_subscription_is_a_protocol_error(pair: PairFactory) -> None:
    """3.8.3-4: No Local on a shared subscription is a Protocol Error (DISCONNECT 0x82)."""
    client = await pair()
    await client.connect(**V5)
    await client.send(Subscribe(1, (("$share/g/t", NO_LOCAL),)))
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == ReasonCode.PROTOCOL_ERROR


async def test_access_rules_judge_the_inner_filter(pair: PairFactory) -> None:
    """The group's filter passes the hub's subscribe rules like an ordinary one."""
    config = {"namespaces": {"staff": {"subscribe_access": {"authenticated": True}}}}
    hub = Hub(HubConfig.model_validate({"channels": config}))
    client = await pair(hub)
    await client.connect()
    assert await client.subscribe(("$share/g/staff/x", 1), ("$share/g/open", 1)) == (0x80, 1)


async def test_shared_subscription_unsubscribe_reason(pair: PairFactory) -> None:
    """3.11.3: UNSUBACK 0x00 for a shared subscription that existed."""
    client = await pair()
    await client.connect(**V5)
    await client.subscribe(("$share/g/t", 0))
    await client.send(Unsubscribe(2, ("$share/g/t", "$share/g/u")))
    [unsuback] = client.received()
    assert unsuback.reason_codes == (0, ReasonCode.NO_SUBSCRIPTION_EXISTED)


async def test_paho_clients_share_work_over_websocket(hub: Hub, paho_peer: Any) -> None:
    """paho 3.1.1 and 5.0 workers in one group split the jobs between them."""
    workers: list[PahoPeer] = [
        paho_peer("w1"),
        paho_peer("w2", protocol=MQTTProtocolVersion.MQTTv5),
    ]
    for worker in workers:
        await worker.connect(*hub_address(hub))
        await worker.subscribe("$share/pool/jobs", 1)
    boss: PahoPeer = paho_peer("boss")
    await boss.connect(*hub_address(hub))
    for n in range(6):
        await boss.publish("jobs", str(n).encode(), 1)
    got = [(await workers[n % 2].message()).payload for n in range(6)]
    assert sorted(got) == [str(n).encode() for n in range(6)]
    assert await workers[0].nothing_for(0.2)


async def test_puback_for_publish_to_a_shared_group(pair: PairFactory) -> None:
    """A QoS 1 PUBLISH matched only by a group is acknowledged like any other."""
    member = await pair()
    await member.connect()
    await member.subscribe(("$share/g/t", 1))
    source = await pair()
    await source.connect(**V5)
    await source.send(Publish("t", b"x", 1, packet_id=9))
    assert source.received() == [Puback(9)]
    assert payloads(member) == [b"x"]


async def test_shared_filter_in_connect_will_is_not_special(pair: PairFactory) -> None:
    """A will on an ordinary topic still reaches a shared group."""
    member = await pair()
    await member.connect()
    await member.subscribe(("$share/g/wills/#", 0))
    dying = await pair()
    await dying.send(Connect(client_id="dying", will=Will("wills/dying", b"bye")))
    await dying.drop()
    assert payloads(member) == [b"bye"]
