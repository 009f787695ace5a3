"""Server API commands on a user's connections: subscribe, unsubscribe, disconnect, revoke."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub import Hub
from tests.api.conftest import api_config, call, result
from tests.auth_helpers import hs_auth, mint
from tests.conftest import Connector, HubFactory
from tests.protocols.channels.conftest import WIRE_NAME, ChannelsPeer
from tests.protocols.mqtt.conftest import PahoPeer, hub_address


async def jwt_hub(make_hub: HubFactory) -> Hub:
    return await make_hub({**api_config(), "auth": hs_auth()})


async def as_user(hub: Hub, connect: Connector, user: str, **claims: object) -> ChannelsPeer:
    token = mint(user, **claims)
    return ChannelsPeer(await connect(hub, WIRE_NAME, path=f"/?token={token}"))


async def test_subscribe_every_connection_of_a_user(
    make_hub: HubFactory, connect: Connector
) -> None:
    """subscribe reaches both tabs of ada (told by 'subscribed'), not bob; messages follow."""
    hub = await jwt_hub(make_hub)
    tab1 = await as_user(hub, connect, "ada")
    tab2 = await as_user(hub, connect, "ada")
    bob = await as_user(hub, connect, "bob")
    await result(hub, "publish", {"channel": "alerts", "data": 0})
    assert await result(hub, "subscribe", {"user": "ada", "channel": "alerts"}) == {}
    for tab in (tab1, tab2):
        told = await tab.notification("subscribed")
        assert told == {"channel": "alerts", "offset": 1, "epoch": told["epoch"]}
    await result(hub, "publish", {"channel": "alerts", "data": 1})
    for tab in (tab1, tab2):
        (message,) = await tab.messages(1)
        assert message["data"] == 1
    assert await bob.quiet_for(0.2)
    # The client may end it like its own subscription.
    assert await tab1.call("unsubscribe", {"channel": "alerts"}) == {}


async def test_unsubscribe_every_connection_of_a_user(
    make_hub: HubFactory, connect: Connector
) -> None:
    """unsubscribe ends ada's own subscription (told by 'unsubscribed'); no more messages."""
    hub = await jwt_hub(make_hub)
    ada = await as_user(hub, connect, "ada")
    await ada.subscribe("news")
    await result(hub, "unsubscribe", {"user": "ada", "channel": "news"})
    assert await ada.notification("unsubscribed") == {"channel": "news"}
    await result(hub, "publish", {"channel": "news", "data": 1})
    assert await ada.quiet_for(0.2)
    error = await ada.error("unsubscribe", {"channel": "news"})
    assert error["code"] == -32012


async def test_subscribe_reaches_mqtt_session(make_hub: HubFactory, paho_peer: object) -> None:
    """An MQTT client logged in as ada gets PUBLISH packets of a server-side subscription."""
    hub = await make_hub({**api_config(), "auth": hs_auth()})
    assert callable(paho_peer)
    device: PahoPeer = paho_peer("dev-ada")
    device.client.username_pw_set("ada", mint("ada"))
    assert (await device.connect(*hub_address(hub)))[1] == 0
    await result(hub, "subscribe", {"user": "ada", "channel": "cmd/ada"})
    await result(hub, "publish", {"channel": "cmd/ada", "data": {"go": True}})
    message = await device.message()
    assert message.topic == "cmd/ada"
    assert message.payload == b'{"go":true}'
    await result(hub, "unsubscribe", {"user": "ada", "channel": "cmd/ada"})
    await result(hub, "publish", {"channel": "cmd/ada", "data": {"go": False}})
    assert await device.nothing_for(0.3)


async def test_subscribe_bad_channel_400(api_hub: Hub) -> None:
    """A server-side subscribe to an invalid pattern is refused with 400."""
    status, body = await call(api_hub, "subscribe", {"user": "ada", "channel": "a/#/b"})
    assert (status, body["error"]["code"]) == (400, -32010)


async def test_disconnect_closes_every_connection(make_hub: HubFactory, connect: Connector) -> None:
    """disconnect closes ada's connections with the code and reason given; bob stays."""
    hub = await jwt_hub(make_hub)
    tabs = [await as_user(hub, connect, "ada") for _ in range(2)]
    bob = await as_user(hub, connect, "bob")
    params = {"user": "ada", "code": 4100, "reason": "account closed"}
    await result(hub, "disconnect", params)
    for tab in tabs:
        assert await tab.closed() == (4100, "account closed")
    assert await bob.call("presence_stats", {"channel": "x"}) == {"clients": 0, "users": 0}


async def test_disconnect_code_out_of_range_400(api_hub: Hub) -> None:
    """A close code outside 3000-4999 is refused with 400."""
    status, _ = await call(api_hub, "disconnect", {"user": "ada", "code": 1000})
    assert status == 400


async def test_revoke_closes_sessions_and_refuses_old_tokens(
    make_hub: HubFactory, connect: Connector
) -> None:
    """revoke closes ada's sessions (3003) and refuses tokens issued before; newer ones work."""
    hub = await jwt_hub(make_hub)
    issued = int(time.time()) - 10
    ada = await as_user(hub, connect, "ada", iat=issued)
    await result(hub, "revoke", {"user": "ada", "before": issued + 5})
    assert await ada.closed() == (3003, "token revoked")
    with pytest.raises(InvalidStatus) as refused:
        await as_user(hub, connect, "ada", iat=issued)
    assert refused.value.response.status_code == 401
    assert b"token revoked" in refused.value.response.body
    fresh = await as_user(hub, connect, "ada", iat=issued + 6)
    assert await fresh.call("presence_stats", {"channel": "x"}) == {"clients": 0, "users": 0}


async def test_revoke_tells_jsonrpc_clients_by_the_close_alone(
    make_hub: HubFactory, connect: Connector
) -> None:
    """JSON-RPC has no goodbye of its own: a revoked session reads no message, only the
    close 3003 "token revoked" (MQTT 5.0 and WAMP say it in their own terms first)."""
    hub = await jwt_hub(make_hub)
    ws = await connect(hub, "jsonrpc.2.0", path=f"/?token={mint('ada')}")
    await result(hub, "revoke", {"user": "ada"})
    received: list[str | bytes] = []
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionClosed):
            while True:
                received.append(await ws.recv())
    assert received == []
    assert (ws.close_code, ws.close_reason) == (3003, "token revoked")
