"""WebSocket options from the config: permessage-deflate on by default, and switchable."""

from __future__ import annotations

import pytest

from hub import Hub


def negotiated_extensions(ws) -> str:
    return str(ws.response.headers.get("Sec-WebSocket-Extensions", ""))


async def test_compression_is_on_by_default(hub: Hub, jsonrpc) -> None:
    """A client offering permessage-deflate gets it, with the configured window bits."""

    @hub.rpc("blob")
    async def blob() -> str:
        return "abc" * 10_000

    peer = await jsonrpc(hub)
    extensions = negotiated_extensions(peer.ws)
    assert "permessage-deflate" in extensions
    assert "server_max_window_bits=10" in extensions
    assert await peer.call("blob") == "abc" * 10_000


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_compression_can_be_disabled(make_hub, jsonrpc, compression) -> None:
    """``websocket.compression = false`` declines permessage-deflate; clients still work."""
    hub = await make_hub({"websocket": {"compression": False}})

    @hub.rpc("ping")
    async def ping() -> str:
        return "pong"

    peer = await jsonrpc(hub, compression=compression)
    assert negotiated_extensions(peer.ws) == ""
    assert await peer.call("ping") == "pong"
