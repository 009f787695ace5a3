"""MQTT 5 content type, user properties and payload format, to and from channels.v1 and WAMP.

They travel in ``extras["meta"]`` (hub.meta): channels.v1 shows them as the
message's ``meta``, WAMP as ``EVENT.Details._meta``, and what those protocols'
publishers set there reaches MQTT 5 subscribers as PUBLISH properties.
Bounded: a channels.v1 or WAMP publisher over them is refused, an MQTT 5
one's metadata carries only what fits.
"""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import Hub
from hub.meta import MAX_META_BYTES, MAX_USER_PROPERTIES, InvalidMeta, parse_meta
from tests.conftest import JsonRpcPeer, PeerFactory
from tests.protocols.mqtt.test_paho5 import Paho5
from tests.protocols.wamp.conftest import RawFactory, RawWamp, raw_wamp  # noqa: F401

META = {
    "content_type": "application/json",
    "user_properties": [["unit", "celsius"], ["site", "hall"], ["unit", "again"]],
    "payload_format": 1,
}
PAHO = {
    "ContentType": "application/json",
    "UserProperty": [("unit", "celsius"), ("site", "hall"), ("unit", "again")],
    "PayloadFormatIndicator": 1,
}
SUBSCRIBE, SUBSCRIBED, PUBLISH, PUBLISHED, EVENT, ERROR = 32, 33, 16, 17, 36, 8


@pytest.fixture
async def paho5() -> Any:
    peers: list[Paho5] = []

    def make(client_id: str) -> Paho5:
        peer = Paho5(client_id)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


async def channels_on(jsonrpc: PeerFactory, hub: Hub, channel: str) -> JsonRpcPeer:
    peer = await jsonrpc(hub, "channels.v1")
    await peer.call("subscribe", {"channel": channel})
    return peer


async def wamp_on(opener: RawFactory, hub: Hub, topic: str) -> tuple[RawWamp, int]:
    client = await opener(hub, "json", join=True)
    reply = await client.request([SUBSCRIBE, 1, {}, topic])
    assert reply[0] == SUBSCRIBED, reply
    return client, reply[2]


async def mqtt5_on(paho5: Any, hub: Hub, topic: str) -> Paho5:
    client: Paho5 = paho5(f"sub-{topic.replace('/', '-')}")
    await client.connect5(hub)
    assert await client.subscribe5(topic, SubscribeOptions(qos=1)) == [1]
    return client


async def message_params(peer: JsonRpcPeer) -> dict[str, Any]:
    note = await peer.recv()
    assert note["method"] == "message", note
    return dict(note["params"])


def paho_meta(properties: dict[str, Any]) -> dict[str, Any]:
    return {name: properties.get(name) for name in PAHO}


async def test_mqtt5_properties_reach_channels_and_wamp_subscribers(
    hub: Hub,
    jsonrpc: PeerFactory,
    raw_wamp: RawFactory,  # noqa: F811
    paho5: Any,
) -> None:
    """paho MQTTv5 sets them; channels.v1 gets ``meta``, WAMP ``Details._meta``, in order."""
    browser = await channels_on(jsonrpc, hub, "sensors/hall/temp")
    wamp, subscription = await wamp_on(raw_wamp, hub, "sensors.hall.temp")
    device: Paho5 = paho5("device")
    await device.connect5(hub)
    await device.publish5("sensors/hall/temp", b'{"t":21}', **PAHO)

    params = await message_params(browser)
    assert params["data"] == {"t": 21}
    assert params["meta"] == META
    event = await wamp.recv()
    assert event[:2] == [EVENT, subscription]
    assert event[3]["_meta"] == META
    assert event[4] == [{"t": 21}]
    # Kept in history with the message.
    history = await browser.call("history", {"channel": "sensors/hall/temp"})
    assert history["publications"][0]["meta"] == META


async def test_channels_meta_reaches_mqtt5_subscribers_as_properties(
    hub: Hub,
    jsonrpc: PeerFactory,
    raw_wamp: RawFactory,  # noqa: F811
    paho5: Any,
) -> None:
    """A channels.v1 publish with ``meta``: MQTT 5 gets the properties, WAMP ``_meta``."""
    device = await mqtt5_on(paho5, hub, "cmd/lamp")
    wamp, _ = await wamp_on(raw_wamp, hub, "cmd.lamp")
    browser = await jsonrpc(hub, "channels.v1")
    await browser.call("publish", {"channel": "cmd/lamp", "data": {"on": True}, "meta": META})

    message = await device.message5()
    assert message.payload == b'{"on":true}'
    assert paho_meta(message.properties) == PAHO
    assert (await wamp.recv())[3]["_meta"] == META


async def test_wamp_meta_reaches_mqtt5_and_channels_subscribers(
    hub: Hub,
    jsonrpc: PeerFactory,
    raw_wamp: RawFactory,  # noqa: F811
    paho5: Any,
) -> None:
    """PUBLISH.Options._meta: MQTT 5 gets the properties, channels.v1 ``meta``."""
    device = await mqtt5_on(paho5, hub, "cmd/pump")
    browser = await channels_on(jsonrpc, hub, "cmd/pump")
    wamp = await raw_wamp(hub, "json", join=True)
    options = {"acknowledge": True, "_meta": META}
    assert (await wamp.request([PUBLISH, 7, options, "cmd.pump", ["go"]]))[0] == PUBLISHED

    message = await device.message5()
    assert message.payload == b'"go"'
    assert paho_meta(message.properties) == PAHO
    assert (await message_params(browser))["meta"] == META


async def test_without_meta_nothing_is_added(hub: Hub, jsonrpc: PeerFactory, paho5: Any) -> None:
    """No properties, no ``meta``: MQTT 5 subscribers get none from a plain channels.v1 publish."""
    device = await mqtt5_on(paho5, hub, "plain")
    browser = await channels_on(jsonrpc, hub, "plain")
    publisher = await jsonrpc(hub, "channels.v1")
    await publisher.call("publish", {"channel": "plain", "data": 1})
    assert "meta" not in await message_params(browser)
    message = await device.message5()
    assert not {"ContentType", "UserProperty", "PayloadFormatIndicator"} & set(message.properties)


async def test_mqtt5_user_properties_over_the_bounds_reach_other_protocols_cut(
    hub: Hub, jsonrpc: PeerFactory, paho5: Any
) -> None:
    """40 user properties: MQTT 5 subscribers get all 40, channels.v1 the first 32."""
    pairs = [(f"k{n}", f"v{n}") for n in range(40)]
    browser = await channels_on(jsonrpc, hub, "many")
    listener = await mqtt5_on(paho5, hub, "many")
    device: Paho5 = paho5("device")
    await device.connect5(hub)
    await device.publish5("many", b"x", UserProperty=pairs)

    meta = (await message_params(browser))["meta"]
    assert meta == {"user_properties": [list(p) for p in pairs[:MAX_USER_PROPERTIES]]}
    assert (await listener.message5()).properties["UserProperty"] == pairs


@pytest.mark.parametrize(
    ("meta", "data", "why"),
    [
        ([], 1, "must be an object"),
        ({"color": "red"}, 1, "unknown key"),
        ({"content_type": 5}, 1, "must be a string"),
        ({"content_type": "a\u0000b"}, 1, "U\\+0000"),
        ({"content_type": "\ud800"}, 1, "not valid UTF-8"),
        ({"user_properties": [["a"]]}, 1, "pairs"),
        ({"user_properties": [["a", 1]]}, 1, "must be a string"),
        ({"user_properties": [["k", "v"]] * 33}, 1, "more than 32 pairs"),
        ({"user_properties": [["k", "v" * 3000], ["k", "v" * 2000]]}, 1, "bytes of strings"),
        ({"payload_format": 2}, 1, "0 or 1"),
        ({"payload_format": True}, 1, "0 or 1"),
        ({"payload_format": 1}, {"$binary": "/w=="}, "not UTF-8"),
    ],
)
def test_parse_meta_refuses(meta: Any, data: Any, why: str) -> None:
    """Malformed or oversized metadata from a client is refused, saying why."""
    with pytest.raises(InvalidMeta, match=why):
        parse_meta(meta, data)


def test_parse_meta_keeps_what_is_valid() -> None:
    """Within the bounds, the object comes back as given (empty lists left out)."""
    assert parse_meta(META, {"t": 1}) == META
    assert parse_meta({"user_properties": []}, 1) == {}
    full = {"user_properties": [["k", "v" * 100]] * MAX_USER_PROPERTIES}
    assert sum(len(v) + 1 for _, v in full["user_properties"]) <= MAX_META_BYTES
    assert parse_meta(full, 1) == full


async def test_channels_publish_with_bad_meta_is_refused(hub: Hub, jsonrpc: PeerFactory) -> None:
    """-32602, and nothing is published."""
    browser = await channels_on(jsonrpc, hub, "guarded")
    error = await browser.error(
        "publish", {"channel": "guarded", "data": 1, "meta": {"user_properties": [["k"]] * 99}}
    )
    assert error["code"] == -32602
    assert await browser.silent_for(0.2)


async def test_wamp_publish_with_bad_meta_is_refused(
    hub: Hub,
    jsonrpc: PeerFactory,
    raw_wamp: RawFactory,  # noqa: F811
) -> None:
    """ERROR wamp.error.invalid_argument, and nothing is published."""
    browser = await channels_on(jsonrpc, hub, "guarded")
    wamp = await raw_wamp(hub, "json", join=True)
    options = {"acknowledge": True, "_meta": {"payload_format": 7}}
    error = await wamp.request([PUBLISH, 3, options, "guarded", [1]])
    assert error[:3] == [ERROR, PUBLISH, 3]
    assert error[4] == "wamp.error.invalid_argument"
    assert await browser.silent_for(0.2)
