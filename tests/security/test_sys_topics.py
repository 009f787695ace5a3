"""``$SYS/...`` is the server's: publishing there over channels.v1 or WAMP is refused.

MQTT clients may not publish to ``$`` topics (MQTT 4.7.2; the MQTT handler
acknowledges and drops such a PUBLISH); without the same rule on the other
protocols, a channels.v1 or WAMP client could forge broker statistics for every
MQTT ``$SYS/#`` subscriber.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions

from hub import Hub
from tests.protocols.channels.conftest import PeerFactory
from tests.protocols.mqtt.conftest import PahoPeer, hub_address
from tests.protocols.wamp.conftest import WampFactory, wait_for


async def sys_subscriber(hub: Hub, paho_peer: Callable[..., PahoPeer]) -> PahoPeer:
    watcher = paho_peer("sys-watcher")
    assert (await watcher.connect(*hub_address(hub)))[1] == 0
    assert await watcher.subscribe("$SYS/#", 0) == [0]
    return watcher


async def test_channels_publish_to_sys_refused(
    hub: Hub, channels: PeerFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """channels.v1 publish to $SYS/...: -32011 naming the reason, and MQTT sees nothing."""
    watcher = await sys_subscriber(hub, paho_peer)
    client = await channels(hub)
    error = await client.error("publish", {"channel": "$SYS/broker/version", "data": "forged"})
    assert error["code"] == -32011
    assert "'$'" in error["message"]
    assert await watcher.nothing_for(0.3)
    await hub.publish("$SYS/broker/version", "real")  # the server still may
    assert (await watcher.message()).payload == b'"real"'


async def test_wamp_publish_to_sys_refused(
    hub: Hub, wamp: WampFactory, paho_peer: Callable[..., PahoPeer]
) -> None:
    """An acknowledged WAMP PUBLISH to $SYS.broker.version: not_authorized, MQTT sees nothing."""
    watcher = await sys_subscriber(hub, paho_peer)
    session = await wamp(hub)
    with pytest.raises(ApplicationError) as caught:
        await wait_for(
            session.publish("$SYS.broker.version", "x", options=PublishOptions(acknowledge=True))
        )
    assert caught.value.error == "wamp.error.not_authorized"
    session.publish("$SYS.broker.version", "unacknowledged")
    assert await watcher.nothing_for(0.3)
