"""The server API's publish with ``meta``: MQTT 5 properties from a backend, over real HTTP.

The same object channels.v1 and WAMP publishers send (hub.meta), the same
bounds, refused with HTTP 400 and parse_meta's message.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub import Hub
from hub.client import ApiClient, ApiRequestError, SyncApiClient
from hub.meta import MAX_USER_PROPERTIES, InvalidMeta
from tests.api.conftest import KEY, call, result
from tests.protocols.channels.conftest import PeerFactory as ChannelsFactory
from tests.protocols.mqtt.test_meta_across_protocols import (  # noqa: F401
    META,
    PAHO,
    mqtt5_on,
    paho5,
    paho_meta,
)


async def test_publish_meta_reaches_mqtt5_and_channels(
    api_hub: Hub,
    paho5: Any,  # noqa: F811
    channels: ChannelsFactory,
) -> None:
    """POST /api/publish with meta: MQTT 5 gets the properties, channels.v1 and history meta."""
    device = await mqtt5_on(paho5, api_hub, "cmd/lamp")
    browser = await channels(api_hub)
    await browser.subscribe("cmd/lamp")
    params = {"channel": "cmd/lamp", "data": {"on": True}, "meta": META}
    assert (await result(api_hub, "publish", params))["offset"] == 1

    message = await device.message5()
    assert message.payload == b'{"on":true}'
    assert paho_meta(message.properties) == PAHO
    (note,) = await browser.messages(1)
    assert note["meta"] == META
    history = await result(api_hub, "history", {"channel": "cmd/lamp"})
    assert history["publications"][0]["meta"] == META


async def test_publish_without_meta_adds_none(
    api_hub: Hub,
    paho5: Any,  # noqa: F811
) -> None:
    """No meta (or null): no properties, no meta in history."""
    device = await mqtt5_on(paho5, api_hub, "plain")
    await result(api_hub, "publish", {"channel": "plain", "data": 1, "meta": None})
    message = await device.message5()
    assert paho_meta(message.properties) == dict.fromkeys(PAHO)
    history = await result(api_hub, "history", {"channel": "plain"})
    assert "meta" not in history["publications"][0]


@pytest.mark.parametrize(
    ("meta", "says"),
    [
        ("text/plain", "meta must be an object"),
        ({"qos": 1}, "unknown key(s) ['qos']"),
        ({"content_type": 5}, "meta.content_type must be a string"),
        ({"content_type": "a\u0000b"}, "meta.content_type holds U+0000"),
        ({"payload_format": 2}, "meta.payload_format must be 0 or 1"),
        ({"user_properties": [["a"]]}, "a list of [name, value] pairs"),
        (
            {"user_properties": [["n", "v"]] * (MAX_USER_PROPERTIES + 1)},
            f"more than {MAX_USER_PROPERTIES} pairs",
        ),
        ({"content_type": "x" * 5000}, "more than 4096 bytes of strings"),
    ],
)
async def test_invalid_meta_is_400_and_nothing_published(
    api_hub: Hub, channels: ChannelsFactory, meta: Any, says: str
) -> None:
    """Invalid meta: HTTP 400 with parse_meta's message, and no publication."""
    browser = await channels(api_hub)
    await browser.subscribe("guarded")
    status, body = await call(api_hub, "publish", {"channel": "guarded", "data": 1, "meta": meta})
    assert status == 400, body
    assert body["error"]["code"] == 1000
    assert says in body["error"]["message"]
    with pytest.raises(InvalidMeta, match=r".") as raised:
        await api_hub.publish("guarded", 1, meta=meta)
    assert says in str(raised.value)
    assert await browser.quiet_for(0.2)
    assert (await result(api_hub, "history", {"channel": "guarded"}))["offset"] == 0


async def test_broadcast_with_meta(
    api_hub: Hub,
    paho5: Any,  # noqa: F811
) -> None:
    """broadcast carries one meta to every channel; invalid meta refuses the whole request."""
    first = await mqtt5_on(paho5, api_hub, "user/ada")
    second = await mqtt5_on(paho5, api_hub, "user/bob")
    params = {"channels": ["user/ada", "user/bob"], "data": "ping", "meta": META}
    replies = await result(api_hub, "broadcast", params)
    assert [reply["result"]["offset"] for reply in replies["responses"]] == [1, 1]
    for device in (first, second):
        assert paho_meta((await device.message5()).properties) == PAHO
    status, body = await call(api_hub, "broadcast", {**params, "meta": {"payload_format": 7}})
    assert (status, body["error"]["message"]) == (400, "meta.payload_format must be 0 or 1")


async def test_hub_publish_with_meta(
    api_hub: Hub,
    paho5: Any,  # noqa: F811
) -> None:
    """hub.publish(meta=...) from Python: MQTT 5 subscribers get the properties."""
    device = await mqtt5_on(paho5, api_hub, "py/out")
    publication = await api_hub.publish("py/out", {"v": 1}, meta=META)
    assert publication.extras["meta"] == META
    assert paho_meta((await device.message5()).properties) == PAHO


async def test_python_api_clients_send_meta(
    api_hub: Hub,
    paho5: Any,  # noqa: F811
) -> None:
    """ApiClient and SyncApiClient publish(meta=...); a bad meta raises ApiRequestError 400."""
    assert api_hub.api is not None
    url = api_hub.api.url
    device = await mqtt5_on(paho5, api_hub, "clients/#")
    async with ApiClient(url, KEY) as api:
        await api.publish("clients/async", "a", meta=META)
        await api.broadcast(["clients/b1"], "b", meta={"content_type": "text/plain"})
        with pytest.raises(ApiRequestError) as refused:
            await api.publish("clients/async", "a", meta={"colour": "red"})
    assert (refused.value.status, refused.value.code) == (400, 1000)
    sync = SyncApiClient(url, KEY)
    # Blocking: in a thread, so the hub on this loop can answer.
    meta = {"user_properties": [["k", "v"]]}
    await asyncio.to_thread(sync.publish, "clients/sync", "s", meta=meta)

    got = [await device.message5() for _ in range(3)]
    assert [m.topic for m in got] == ["clients/async", "clients/b1", "clients/sync"]
    assert paho_meta(got[0].properties) == PAHO
    assert got[1].properties.get("ContentType") == "text/plain"
    assert got[2].properties.get("UserProperty") == [("k", "v")]
