"""Bidirectional fallback sessions: channels.v1 over SSE (down) and POST (up)."""

from __future__ import annotations

from hub import Hub
from tests.fallback.conftest import FallbackHubFactory, PeerOpener, fallback_url


async def test_rpc_publish_and_subscribe(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A fallback client subscribes, publishes and receives its publication on the stream."""
    hub: Hub = await fallback_hub()
    peer = await fallback_peer(fallback_url(hub))
    result = await peer.call("subscribe", {"channel": "news"})
    assert result["channel"] == "news"
    await peer.call("publish", {"channel": "news", "data": {"n": 1}})
    message = await peer.notification()
    assert message["method"] == "message"
    assert message["params"]["data"] == {"n": 1}
