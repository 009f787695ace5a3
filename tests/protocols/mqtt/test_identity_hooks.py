"""The identity an MQTT login establishes is what the hub's session hooks see."""

from __future__ import annotations

import asyncio

from hub import CallContext, Hub, Identity
from hub.auth import Credentials
from protocols.mqtt.codec import Disconnect
from tests.conftest import HubFactory
from tests.protocols.mqtt.conftest import RawFactory


async def test_disconnect_hook_sees_the_mqtt_user(
    make_hub: HubFactory, raw_mqtt: RawFactory
) -> None:
    """on_disconnect gets the Identity set by CONNECT's username, not the anonymous handshake."""
    hub: Hub = await make_hub({"mqtt": {"allow_anonymous": False}})
    seen: asyncio.Future[Identity | None] = asyncio.get_running_loop().create_future()

    @hub.on_authenticate
    def check(credentials: Credentials) -> Identity | None:
        return Identity("ada") if credentials.password == b"secret" else None

    @hub.on_disconnect
    def record(ctx: CallContext) -> None:
        if not seen.done():
            seen.set_result(ctx.identity)

    client = await raw_mqtt(hub)
    connack = await client.connect("dev-1", username="ada", password=b"secret")
    assert connack.return_code == 0
    await client.send(Disconnect())
    async with asyncio.timeout(5):
        identity = await seen
    assert identity is not None
    assert identity.user_id == "ada"
