"""Bidirectional fallback sessions: channels.v1 over SSE (down) and POST (up)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from hub import Hub
from hub.errors import PermissionDenied
from hub.rpc import CallContext
from tests.api.conftest import KEY, result
from tests.auth_helpers import SECRET, basic, fast_hash, hs_auth, mint
from tests.conftest import PeerFactory
from tests.fallback.conftest import (
    FallbackHubFactory,
    PeerOpener,
    SseReader,
    fallback_url,
)


async def get_status(url: str, **options: object) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, **options) as response:  # type: ignore[arg-type]
        return response.status, dict(response.headers), await response.text()


async def test_rpc_publish_and_subscribe(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A fallback client subscribes, publishes and receives its publication on the stream."""
    hub = await fallback_hub()
    peer = await fallback_peer(fallback_url(hub))
    result_ = await peer.call("subscribe", {"channel": "news"})
    assert result_["channel"] == "news"
    await peer.call("publish", {"channel": "news", "data": {"n": 1}})
    message = await peer.notification()
    assert message["method"] == "message"
    assert message["params"]["data"] == {"n": 1}


async def test_messages_of_one_post_are_handled_in_order(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """Several messages in one POST (one per line) are handled in order, each answered."""
    hub = await fallback_hub()
    peer = await fallback_peer(fallback_url(hub))
    await peer.call("subscribe", {"channel": "seq"})
    publishes = [
        {
            "jsonrpc": "2.0",
            "id": 100 + n,
            "method": "publish",
            "params": {"channel": "seq", "data": n},
        }
        for n in range(5)
    ]
    assert await peer.post(*publishes) == 202
    seen: list[int] = []
    replies = 0
    while len(seen) < 5 or replies < 5:
        message = await peer.recv()
        if message.get("method") == "message":
            seen.append(message["params"]["data"])
        elif "result" in message:
            replies += 1
    assert seen == [0, 1, 2, 3, 4]


async def test_the_identity_is_the_handshakes(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A JWT in the query, a cookie or Basic credentials identify the session as a WebSocket's."""
    hub = await fallback_hub(
        auth={
            "allow_anonymous": False,
            **hs_auth(cookie="jwt"),
            "basic": {"users": {"bob": fast_hash("bob-password-0123")}},
        }
    )
    base = fallback_url(hub)
    by_query = await fallback_peer(base, params={"token": mint("ada")})
    by_cookie = await fallback_peer(base, headers={"Cookie": f"jwt={mint('cy')}"})
    by_basic = await fallback_peer(
        base, headers={"Authorization": basic("bob", "bob-password-0123")}
    )
    for peer, info in ((by_query, "a"), (by_cookie, "c"), (by_basic, "b")):
        await peer.call("subscribe", {"channel": "room", "presence": True, "info": info})
    members = await hub.presence("room")
    assert set(members) == {"ada", "cy", "bob"}


async def test_bad_or_missing_credentials_are_refused(fallback_hub: FallbackHubFactory) -> None:
    """A bad token gets 401 with a challenge; no credentials with anonymous off gets 401."""
    hub = await fallback_hub(auth={"allow_anonymous": False, **hs_auth()})
    base = fallback_url(hub)
    status, headers, body = await get_status(
        f"{base}/session", params={"token": mint("ada", key=SECRET + "x")}
    )
    assert status == 401, body
    assert "WWW-Authenticate" in headers
    status, _, body = await get_status(f"{base}/session")
    assert status == 401
    assert "authentication required" in body
    status, _, body = await get_status(f"{base}/events", params={"channel": "news"})
    assert status == 401


async def test_origins_and_cors(fallback_hub: FallbackHubFactory) -> None:
    """A page of the hub's own port may open a session (CORS, credentials); others get 403."""
    hub = await fallback_hub()
    base = fallback_url(hub)
    page = f"http://127.0.0.1:{hub.port}"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/session", headers={"Origin": page}) as response,
    ):
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == page
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        first = await SseReader(response).next()
        assert first.event == "session"
    status, _, body = await get_status(
        f"{base}/session", headers={"Origin": "https://evil.example"}
    )
    assert status == 403
    assert "origin not allowed" in body


async def test_bad_posts(fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener) -> None:
    """POSTs without a token (400), with an unknown session or secret (404), too many messages
    (413) or a body that is not UTF-8 (400) get clear statuses."""
    hub = await fallback_hub(fallback={"max_post_messages": 3})
    base = fallback_url(hub)
    peer = await fallback_peer(base)
    node, session, secret = peer.token.split(".")
    async with aiohttp.ClientSession() as http:

        async def post(token: str | None, body: bytes = b"") -> tuple[int, str]:
            params = {"session": token} if token is not None else {}
            async with http.post(f"{base}/session/send", params=params, data=body) as response:
                return response.status, await response.text()

        assert (await post(None))[0] == 400
        assert (await post("not-a-token"))[0] == 400
        assert (await post(f"{node}.{session}.wrong-secret"))[0] == 404
        assert (await post(f"{node}.unknown.{secret}"))[0] == 404
        status, text = await post(peer.token, b"{}\n{}\n{}\n{}")
        assert status == 413
        assert "max_post_messages" in text
        assert (await post(peer.token, b"\xff\xfe"))[0] == 400
    # The session is still fine.
    assert (await peer.call("subscribe", {"channel": "ok"}))["channel"] == "ok"


async def test_invalid_json_is_answered_on_the_stream(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A POSTed line that is not JSON gets the protocol's parse error (-32700) on the stream."""
    hub = await fallback_hub()
    peer = await fallback_peer(fallback_url(hub))
    assert await peer.post("{not json") == 202
    reply = await peer.recv()
    assert reply["error"]["code"] == -32700


async def test_server_api_reaches_a_fallback_session(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """The server API's disconnect closes a fallback session with its code, as a WebSocket's."""
    hub = await fallback_hub(api={"keys": [KEY], "port": 0}, auth=hs_auth())
    peer = await fallback_peer(fallback_url(hub), params={"token": mint("ada")})
    await peer.call("subscribe", {"channel": "room"})
    assert (await result(hub, "info"))["nodes"][0]["protocols"] == {"channels.v1": 1}
    await result(hub, "disconnect", {"user": "ada", "code": 4100, "reason": "bye"})
    event = await peer.stream.next()
    assert event.event == "close"
    assert event.json() == {"code": 4100, "reason": "bye"}


async def test_leaving_releases_subscriptions_and_presence(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A client that drops its stream leaves presence and the hub forgets the session."""
    hub = await fallback_hub()
    peer = await fallback_peer(fallback_url(hub))
    await peer.call("subscribe", {"channel": "room", "presence": True})
    assert len(await hub.presence("room")) == 1
    peer.stream.response.close()
    async with asyncio.timeout(5):
        while await hub.presence("room") or hub.session_ids:  # noqa: ASYNC110 - cleanup task
            await asyncio.sleep(0.02)
    assert hub.fallback is not None
    assert hub.fallback.sessions == 0


async def test_close_post_ends_the_session(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """POST /session/close ends the session with 1000 at once."""
    hub = await fallback_hub()
    base = fallback_url(hub)
    peer = await fallback_peer(base)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/session/close", params={"session": peer.token}) as response,
    ):
        assert response.status == 202
    event = await peer.stream.next()
    assert event.event == "close"
    assert event.json()["code"] == 1000


async def test_idle_sessions_expire(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A session without a POST for idle_timeout is closed (1001); keep-alives are SSE comments."""
    hub = await fallback_hub(fallback={"idle_timeout": 0.6, "ping_interval": 0.1})
    peer = await fallback_peer(fallback_url(hub))
    assert peer.hello["idle_timeout"] == 0.6
    # An empty POST is a keep-alive: the session outlives one idle_timeout.
    for _ in range(4):
        await asyncio.sleep(0.3)
        assert await peer.post() == 202
    event = await peer.stream.next(timeout=5)
    assert event.event == "close"
    assert event.json()["code"] == 1001
    assert "idle" in event.json()["reason"]
    assert peer.stream.comments > 0


async def test_session_limits(fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener) -> None:
    """Past fallback.max_sessions a stream gets 503 with Retry-After."""
    hub = await fallback_hub(fallback={"max_sessions": 1})
    base = fallback_url(hub)
    await fallback_peer(base)
    status, headers, body = await get_status(f"{base}/session")
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert "max_sessions" in body


async def test_connection_limits_count_fallback_sessions(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """Fallback sessions count against limits.max_connections_per_ip, as WebSockets do."""
    hub = await fallback_hub(limits={"max_connections_per_ip": 1})
    base = fallback_url(hub)
    await fallback_peer(base)
    status, _, body = await get_status(f"{base}/events", params={"channel": "x"})
    assert status == 503
    assert "max_connections_per_ip" in body


async def test_connect_hook_refusal_closes_with_1008(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """An on_connect hook that refuses closes the session with 1008 and its reason."""
    hub = await fallback_hub()

    @hub.on_connect
    async def refuse(ctx: CallContext) -> None:
        raise PermissionDenied("not today")

    peer = await fallback_peer(fallback_url(hub))
    event = await peer.stream.next()
    assert event.event == "close"
    assert event.json() == {"code": 1008, "reason": "not today"}


async def test_slow_consumer_is_closed(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A client that stops reading is closed with 1008 once its queue passes the bound."""
    hub: Hub = await fallback_hub(fallback={"max_queue_messages": 20})
    peer = await fallback_peer(fallback_url(hub))
    await peer.call("subscribe", {"channel": "flood"})
    data = "x" * 65536
    for _ in range(400):
        await hub.publish("flood", data)
        if hub.metrics.slow_consumers_closed.value:
            break
    assert hub.metrics.slow_consumers_closed.value == 1
    # Whatever made it out, the stream ends with the close.
    while True:
        event = await peer.stream.next(timeout=10)
        if event.event == "close":
            assert json.loads(event.data)["code"] == 1008
            break


async def test_hub_stop_closes_sessions_with_1001(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """Stopping the hub ends every fallback stream with a 1001 close event."""
    hub = await fallback_hub()
    peer = await fallback_peer(fallback_url(hub))
    await hub.stop()
    event = await peer.stream.next()
    assert event.event == "close"
    assert event.json()["code"] == 1001


async def test_unknown_path_is_404(fallback_hub: FallbackHubFactory) -> None:
    """A path the fallback does not serve gets 404 naming the routes."""
    hub = await fallback_hub()
    status, _, body = await get_status(f"{fallback_url(hub)}/nope")
    assert status == 404
    assert "/session" in body


async def test_a_message_over_the_outbound_budget_closes_with_1009(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """A publication larger than limits.max_outbound_bytes closes the session 1009, naming it."""
    hub = await fallback_hub(limits={"max_outbound_bytes": 20_000})
    peer = await fallback_peer(fallback_url(hub))
    await peer.call("subscribe", {"channel": "big"})
    await hub.publish("big", "x" * 30_000)
    event = await peer.stream.next()
    assert event.event == "close"
    assert event.json()["code"] == 1009
    assert "max_outbound_bytes" in event.json()["reason"]


async def test_a_trusted_proxy_names_the_client(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener
) -> None:
    """Behind a trusted proxy, X-Forwarded-For is the address limits count (per-IP limit)."""
    hub = await fallback_hub(
        server={"trusted_proxies": ["127.0.0.1/32"]}, limits={"max_connections_per_ip": 1}
    )
    base = fallback_url(hub)
    await fallback_peer(base, headers={"X-Forwarded-For": "203.0.113.7"})
    await fallback_peer(base, headers={"X-Forwarded-For": "203.0.113.8"})
    status, _, body = await get_status(
        f"{base}/session", headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert status == 503
    assert "max_connections_per_ip" in body


async def test_flooding_closes_and_penalizes_the_address_on_every_transport(
    fallback_hub: FallbackHubFactory, fallback_peer: PeerOpener, jsonrpc: PeerFactory
) -> None:
    """A session that floods is closed with 1008, and its address's next sessions start
    without a burst: the next fallback session's and WebSocket's first request is refused."""
    hub = await fallback_hub(limits={"message_rate": 0.001, "message_burst": 3})

    @hub.rpc("echo")
    async def echo(x: int) -> int:
        return x

    base = fallback_url(hub)
    peer = await fallback_peer(base)
    for n in range(3):
        assert await peer.call("echo", {"x": n}) == n
    flood = [
        {"jsonrpc": "2.0", "id": 10 + n, "method": "echo", "params": {"x": n}} for n in range(4)
    ]
    assert await peer.post(*flood) == 202
    refused = []
    while True:
        event = await peer.stream.next()
        if event.event == "close":
            assert event.json() == {"code": 1008, "reason": "message rate exceeded"}
            break
        refused.append(event.json()["error"]["code"])
    assert refused == [-32029] * 3
    closes = hub.metrics.registry.get_sample_value(
        "wshub_rate_limit_closes_total", {"subprotocol": "channels.v1"}
    )
    assert closes == 1
    # The penalty: the address's next sessions start with an empty bucket and no
    # refusal to spare, on either transport: the first request closes them.
    again = await fallback_peer(base)
    assert (
        await again.post({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"x": 5}}) == 202
    )
    event = await again.stream.next()
    assert (event.event, event.json()) == (
        "close",
        {"code": 1008, "reason": "message rate exceeded"},
    )
    # Closed again under its penalty: a repeat offender, whose next connection,
    # on either transport (one port), is held unanswered until the penalty
    # ends (tests/security/test_flood_cycle.py covers the WebSocket penalty).
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await jsonrpc(hub)
