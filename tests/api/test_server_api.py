"""The server API over real HTTP (curl) against a real hub on the memory engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hub import Hub
from tests.api.conftest import KEY, OTHER_KEY, api_config, call, curl, result
from tests.conftest import HubFactory, PeerFactory
from tests.protocols.channels.conftest import PeerFactory as ChannelsFactory
from tests.protocols.mqtt.conftest import PahoPeer, hub_address


async def test_publish_reaches_a_channels_subscriber(
    api_hub: Hub, channels: ChannelsFactory
) -> None:
    """publish answers {offset, epoch} and the channels.v1 subscriber gets the data."""
    peer = await channels(api_hub)
    subscribed = await peer.subscribe("news")
    status, body = await call(api_hub, "publish", {"channel": "news", "data": {"n": 1}})
    assert status == 200, body
    assert body["result"] == {"offset": 1, "epoch": subscribed["epoch"]}
    (message,) = await peer.messages(1)
    assert message["data"] == {"n": 1}
    assert message["offset"] == 1


async def test_publish_reaches_mqtt_and_wamp(api_hub: Hub, paho_peer: object, wamp: object) -> None:
    """A publish from the API reaches an MQTT (paho) and a WAMP (Autobahn) subscriber."""
    assert callable(paho_peer)
    assert callable(wamp)
    mqtt: PahoPeer = paho_peer("dev1")
    await mqtt.connect(*hub_address(api_hub))
    await mqtt.subscribe("sensors/t", 0)
    session = await wamp(api_hub)
    events: asyncio.Queue[object] = asyncio.Queue()
    await session.subscribe(lambda *args, **kwargs: events.put_nowait(args), "sensors.t")
    await result(api_hub, "publish", {"channel": "sensors/t", "data": {"c": 21}})
    received = await mqtt.message()
    assert json.loads(received.payload) == {"c": 21}
    async with asyncio.timeout(5):
        assert await events.get() == ({"c": 21},)


async def test_idempotent_publish_publishes_once(api_hub: Hub, channels: ChannelsFactory) -> None:
    """A repeated idempotency_key gets the first result and no second message."""
    peer = await channels(api_hub)
    await peer.subscribe("orders")
    params = {"channel": "orders", "data": "x", "idempotency_key": "order-17"}
    first = await result(api_hub, "publish", params)
    second = await result(api_hub, "publish", params)
    assert first == second
    await peer.messages(1)
    assert await peer.quiet_for(0.2)
    other = await result(api_hub, "publish", {**params, "idempotency_key": "order-18"})
    assert other["offset"] == first["offset"] + 1


async def test_broadcast_answers_per_channel(api_hub: Hub, channels: ChannelsFactory) -> None:
    """broadcast publishes to each channel and reports a bad name without failing the rest."""
    peer = await channels(api_hub)
    await peer.subscribe("a")
    await peer.subscribe("b")
    body = await result(api_hub, "broadcast", {"channels": ["a", "b", "bad/#"], "data": 7})
    ok_a, ok_b, bad = body["responses"]
    assert ok_a["result"]["offset"] == 1
    assert ok_b["result"]["offset"] == 1
    assert bad["error"]["code"] == -32010
    assert [m["channel"] for m in await peer.messages(2)] == ["a", "b"]


async def test_presence_and_stats(api_hub: Hub, channels: ChannelsFactory) -> None:
    """presence lists members by user; presence_stats counts clients and users."""
    peer = await channels(api_hub)
    await peer.subscribe("room", presence=True, info={"nick": "x"})
    members = (await result(api_hub, "presence", {"channel": "room"}))["members"]
    assert len(members) == 1
    (member,) = members.values()
    assert member["info"] == {"nick": "x"}
    assert member["clients"] == 1
    stats = await result(api_hub, "presence_stats", {"channel": "room"})
    assert stats == {"clients": 1, "users": 1}


async def test_history_limit_since_reverse(api_hub: Hub) -> None:
    """history honours limit, since (with recovered) and reverse (newest first)."""
    for n in range(1, 6):
        await result(api_hub, "publish", {"channel": "log", "data": n})
    full = await result(api_hub, "history", {"channel": "log"})
    assert [p["data"] for p in full["publications"]] == [1, 2, 3, 4, 5]
    assert full["offset"] == 5
    assert "recovered" not in full
    newest = await result(api_hub, "history", {"channel": "log", "limit": 2, "reverse": True})
    assert [p["data"] for p in newest["publications"]] == [5, 4]
    since = {"offset": 3, "epoch": full["epoch"]}
    after = await result(api_hub, "history", {"channel": "log", "since": since})
    assert [p["data"] for p in after["publications"]] == [4, 5]
    assert after["recovered"] is True
    wrong = await result(
        api_hub, "history", {"channel": "log", "since": {"offset": 1, "epoch": "other"}}
    )
    assert wrong["recovered"] is False
    assert wrong["publications"] == []


async def test_rpc_calls_a_hub_method(make_hub: HubFactory) -> None:
    """rpc runs a hub method as the server and returns its result; errors keep their code."""
    hub = await make_hub(api_config())

    @hub.rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    assert await result(hub, "rpc", {"method": "math.add", "params": [2, 3]}) == 5
    status, body = await call(hub, "rpc", {"method": "math.add", "params": ["x"]})
    assert status == 400
    assert body["error"]["code"] == -32602
    status, body = await call(hub, "rpc", {"method": "nope"})
    assert status == 404
    assert body["error"]["code"] == -32601


async def test_batch_runs_in_order(api_hub: Hub, channels: ChannelsFactory) -> None:
    """batch runs its commands in order, each with its own reply, an error not stopping it."""
    peer = await channels(api_hub)
    await peer.subscribe("q")
    commands = [
        {"method": "publish", "params": {"channel": "q", "data": 1}},
        {"method": "nope", "params": {}},
        {"method": "publish", "params": {"channel": "q", "data": 2}},
        {"method": "history", "params": {"channel": "q"}},
    ]
    replies = (await result(api_hub, "batch", {"commands": commands}))["replies"]
    assert replies[0]["result"]["offset"] == 1
    assert replies[1]["error"]["code"] == 1004
    assert replies[2]["result"]["offset"] == 2
    assert [p["data"] for p in replies[3]["result"]["publications"]] == [1, 2]
    assert [m["data"] for m in await peer.messages(2)] == [1, 2]


async def test_batch_bounded(make_hub: HubFactory) -> None:
    """A batch over [api] max_batch is refused with 400, none of it run."""
    hub = await make_hub(api_config(max_batch=2))
    command = {"method": "publish", "params": {"channel": "c", "data": 1}}
    status, body = await call(hub, "batch", {"commands": [command] * 3})
    assert status == 400
    assert "max_batch" in body["error"]["message"]
    assert (await result(hub, "history", {"channel": "c"}))["publications"] == []


async def test_info_and_channels(api_hub: Hub, channels: ChannelsFactory) -> None:
    """info counts this node's connections by protocol; channels lists subscribed channels."""
    one = await channels(api_hub)
    two = await channels(api_hub)
    await one.subscribe("chat/a")
    await two.subscribe("chat/a")
    await two.subscribe("other")
    info = await result(api_hub, "info")
    (node,) = info["nodes"]
    assert node["node"] == api_hub.node_id
    assert node["connections"] == 2
    assert node["protocols"] == {"channels.v1": 2}
    listed = await result(api_hub, "channels", {"pattern": "chat/#"})
    assert listed == {"channels": {"chat/a": {"subscribers": 2}}, "partial": False}
    everything = await result(api_hub, "channels")
    assert set(everything["channels"]) == {"chat/a", "other"}


# -- errors ---------------------------------------------------------------------------


async def test_no_key_configured_means_no_api(hub: Hub) -> None:
    """Without [api] keys the API does not listen at all: never open."""
    assert hub.api is None


async def test_missing_and_wrong_key_401(api_hub: Hub) -> None:
    """No Authorization, another scheme or an unknown key: 401, nothing published."""
    params = {"channel": "x", "data": 1}
    for key in (None, OTHER_KEY):
        status, body = await call(api_hub, "publish", params, key=key)
        assert status == 401, body
        assert body["error"]["code"] == 1001
    status, body = await curl(
        f"{api_hub.api.url}/api/publish",  # type: ignore[union-attr]
        body=b'{"channel": "x", "data": 1}',
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert status == 401
    assert (await result(api_hub, "history", {"channel": "x"}))["publications"] == []


async def test_unknown_method_404(api_hub: Hub) -> None:
    """An unknown method is 404 with code 1004; an unknown path 404 too."""
    status, body = await call(api_hub, "nope", {})
    assert status == 404
    assert body["error"]["code"] == 1004
    status, body = await curl(f"{api_hub.api.url}/elsewhere", method="GET")  # type: ignore[union-attr]
    assert status == 404


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"channel": "x"}', "invalid params"),
        (b'{"channel": "x", "data": 1, "extra": true}', "invalid params"),
    ],
)
async def test_bad_body_400(api_hub: Hub, raw: bytes, detail: str) -> None:
    """A body that is not JSON, not an object, or not the method's params: 400 saying so."""
    status, body = await curl(
        f"{api_hub.api.url}/api/publish",  # type: ignore[union-attr]
        body=raw,
        headers={"Authorization": f"apikey {KEY}"},
    )
    assert status == 400
    assert body["error"]["code"] == 1000
    assert detail in body["error"]["message"]


async def test_invalid_channel_400(api_hub: Hub) -> None:
    """A wildcard in a publish channel: 400 with channels.v1's invalid channel code."""
    status, body = await call(api_hub, "publish", {"channel": "a/#", "data": 1})
    assert status == 400
    assert body["error"]["code"] == -32010


async def test_body_over_limit_413(make_hub: HubFactory) -> None:
    """A body over [api] max_body_bytes is refused with 413 before it is used."""
    hub = await make_hub(api_config(max_body_bytes=1000))
    status, body = await call(hub, "publish", {"channel": "big", "data": "x" * 2000})
    assert status == 413
    assert body["error"]["code"] == 1013
    assert (await result(hub, "history", {"channel": "big"}))["publications"] == []


async def test_feature_disabled_400(make_hub: HubFactory) -> None:
    """presence of a namespace with presence off: 400 with the channels code."""
    hub = await make_hub(
        {**api_config(), "channels": {"namespaces": {"quiet": {"presence": False}}}}
    )
    status, body = await call(hub, "presence", {"channel": "quiet/x"})
    assert (status, body["error"]["code"]) == (400, -32014)


async def test_keys_file_reloaded(make_hub: HubFactory, tmp_path: Path) -> None:
    """Keys from keys_file work; after a reload (SIGHUP), a removed key is refused."""
    keys = tmp_path / "keys"
    keys.write_text(f"# backend keys\n{OTHER_KEY}\n")
    hub = await make_hub({"api": {"keys_file": str(keys), "port": 0}})
    status, _ = await call(hub, "info", key=OTHER_KEY)
    assert status == 200
    keys.write_text(f"{KEY}\n")
    assert hub.reload() == []
    assert (await call(hub, "info", key=OTHER_KEY))[0] == 401
    assert (await call(hub, "info", key=KEY))[0] == 200


async def test_openapi_document(api_hub: Hub) -> None:
    """/api/openapi.json describes every method with its request schema."""
    status, document = await curl(f"{api_hub.api.url}/api/openapi.json", method="GET")  # type: ignore[union-attr]
    assert status == 200
    assert document["openapi"].startswith("3.")
    publish = document["paths"]["/api/publish"]["post"]
    ref = publish["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"channel", "data"}
    assert "/api/batch" in document["paths"]
    assert "/api/rpc" in document["paths"]


async def test_api_requests_counted(api_hub: Hub, jsonrpc: PeerFactory) -> None:
    """/metrics counts API requests by status."""
    await call(api_hub, "info")
    await call(api_hub, "info", key=None)
    text = api_hub.metrics.render().decode()
    assert 'wshub_api_requests_total{status="200"} 1.0' in text
    assert 'wshub_api_requests_total{status="401"} 1.0' in text


async def test_history_remove_keeps_the_position(api_hub: Hub) -> None:
    """history_remove forgets the publications; offset and epoch stay, recovery sees a gap."""
    for n in range(3):
        await result(api_hub, "publish", {"channel": "log", "data": n})
    before = await result(api_hub, "history", {"channel": "log"})
    assert await result(api_hub, "history_remove", {"channel": "log"}) == {}
    after = await result(api_hub, "history", {"channel": "log"})
    assert after["publications"] == []
    assert (after["offset"], after["epoch"]) == (3, before["epoch"])
    since = {"offset": 1, "epoch": before["epoch"]}
    gap = await result(api_hub, "history", {"channel": "log", "since": since})
    assert gap["recovered"] is False
    assert (await result(api_hub, "publish", {"channel": "log", "data": 9}))["offset"] == 4
