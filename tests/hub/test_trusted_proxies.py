"""server.trusted_proxies: the client's address from X-Forwarded-For, only from proxies we trust.

The hub listens on 127.0.0.1, so every test client is a peer at 127.0.0.1: the
"proxy" when 127.0.0.1 is trusted, a client like any other when it is not.
"""

from __future__ import annotations

from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from hub import CallContext, Hub
from hub.auth import HandshakeRequest
from hub.config import ConfigError, parse_config
from hub.handler import Identity
from hub.limits import address_key
from hub.proxies import TrustedProxies, parse_forwarded_address

LOOPBACK_PROXY = {"trusted_proxies": ["127.0.0.0/8"]}


def forwarded(chain: str) -> dict[str, Any]:
    return {"additional_headers": {"X-Forwarded-For": chain}}


def serve_remote_address(hub: Hub) -> None:
    @hub.rpc()
    def where(ctx: CallContext) -> str:
        return ctx.hub.session(ctx.session_id).remote_address


async def refused_status(connect, hub: Hub, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub, **kwargs)
    return refused.value.response.status_code


# -- the rule ----------------------------------------------------------------


def test_right_most_untrusted_entry_is_the_client() -> None:
    """Trusted proxies' entries are skipped from the right; what the client wrote is not read."""
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.1"])
    headers = Headers({"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3"})
    assert proxies.forwarded_client("192.0.2.1", headers) == "203.0.113.9"
    # Several header lines read as one list, in order.
    headers = Headers([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9")])
    assert proxies.forwarded_client("10.0.0.5", headers) == "203.0.113.9"
    # Every entry a trusted proxy: the left-most one is the client.
    headers = Headers({"X-Forwarded-For": "10.0.0.7, 10.0.0.8"})
    assert proxies.forwarded_client("10.0.0.5", headers) == "10.0.0.7"


def test_untrusted_peer_and_bad_headers_keep_the_peer_address() -> None:
    """None (use the peer) for an untrusted peer, no header, an empty or malformed entry."""
    proxies = TrustedProxies(["10.0.0.0/8"])
    good = Headers({"X-Forwarded-For": "203.0.113.9"})
    assert proxies.forwarded_client("198.51.100.1", good) is None
    assert proxies.forwarded_client("/run/hub.sock", good) is None
    assert proxies.forwarded_client("::ffff:10.0.0.1", good) == "203.0.113.9"
    for chain in ("", "garbage", "203.0.113.9,", "unknown, 10.0.0.2", "1.2.3.4.5", "[::1"):
        headers = Headers({"X-Forwarded-For": chain})
        assert proxies.forwarded_client("10.0.0.1", headers) is None, chain
    assert proxies.forwarded_client("10.0.0.1", Headers()) is None
    assert TrustedProxies([]).forwarded_client("10.0.0.1", good) is None


def test_entries_with_ports_and_brackets() -> None:
    """ip:port and [v6]:port entries parse to their address; a mapped IPv6 address to its IPv4."""
    assert str(parse_forwarded_address("203.0.113.9:4711")) == "203.0.113.9"
    assert str(parse_forwarded_address("[2001:db8::1]:4711")) == "2001:db8::1"
    assert str(parse_forwarded_address("[2001:db8::1]")) == "2001:db8::1"
    assert str(parse_forwarded_address(" 2001:db8::1 ")) == "2001:db8::1"
    assert str(parse_forwarded_address("::ffff:203.0.113.9")) == "203.0.113.9"
    assert parse_forwarded_address("[2001:db8::1]x") is None


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal", ""])
def test_bad_network_is_a_config_error(entry: str) -> None:
    """A trusted_proxies entry that is no address or network fails the config, naming the key."""
    with pytest.raises(ConfigError) as error:
        parse_config({"server": {"trusted_proxies": ["127.0.0.1", entry]}})
    assert "server.trusted_proxies" in str(error.value)


def test_addresses_and_networks_are_accepted() -> None:
    """IPv4 and IPv6 addresses and networks load as given."""
    entries = ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]
    config = parse_config({"server": {"trusted_proxies": entries}})
    assert config.server.trusted_proxies == entries


# -- over real sockets ---------------------------------------------------------


async def test_forwarded_clients_are_counted_separately(make_hub, connect) -> None:
    """Through a trusted proxy, each forwarded address gets its own per-IP slots."""
    hub = await make_hub({"server": LOOPBACK_PROXY, "limits": {"max_connections_per_ip": 1}})
    await connect(hub, **forwarded("203.0.113.1"))
    await connect(hub, **forwarded("203.0.113.2"))
    assert await refused_status(connect, hub, **forwarded("203.0.113.1")) == 503
    # Without a header the proxy's own address is the client, with a slot of its own.
    await connect(hub)


async def test_untrusted_peer_cannot_forward(make_hub, connect) -> None:
    """From an untrusted peer X-Forwarded-For is ignored: the peer's address is counted."""
    hub = await make_hub(
        {"server": {"trusted_proxies": ["10.0.0.0/8"]}, "limits": {"max_connections_per_ip": 1}}
    )
    await connect(hub, **forwarded("203.0.113.1"))
    assert await refused_status(connect, hub, **forwarded("203.0.113.2")) == 503


async def test_spoofed_left_entries_do_not_escape_the_limit(make_hub, connect) -> None:
    """A client that prepends made-up addresses still counts as the address the proxy appended."""
    hub = await make_hub({"server": LOOPBACK_PROXY, "limits": {"max_connections_per_ip": 2}})
    await connect(hub, **forwarded("6.6.6.1, 198.51.100.7"))
    await connect(hub, **forwarded("6.6.6.2, 198.51.100.7"))
    assert await refused_status(connect, hub, **forwarded("6.6.6.3, 198.51.100.7")) == 503
    assert await refused_status(connect, hub, **forwarded("garbage, 198.51.100.7")) == 503


async def test_malformed_header_falls_back_to_the_peer(make_hub, jsonrpc) -> None:
    """A trusted proxy's unreadable X-Forwarded-For is served, counted as the peer itself."""
    hub = await make_hub({"server": LOOPBACK_PROXY, "limits": {"max_connections_per_ip": 1}})
    serve_remote_address(hub)
    peer = await jsonrpc(hub, **forwarded("203.0.113.9, not-an-address"))
    assert (await peer.call("where")).startswith("127.0.0.1:")
    with pytest.raises(InvalidStatus) as refused:
        await jsonrpc(hub, **forwarded("[2001:db8::1"))
    assert refused.value.response.status_code == 503


async def test_hooks_and_sessions_see_the_forwarded_address(make_hub, jsonrpc) -> None:
    """on_handshake's request and the session's remote_address (on_connect on) name the client."""
    hub = await make_hub({"server": LOOPBACK_PROXY})
    serve_remote_address(hub)
    handshakes: list[str] = []
    connected: list[str] = []

    @hub.on_handshake
    def note(request: HandshakeRequest) -> Identity | None:
        handshakes.append(request.remote_address)
        return None

    @hub.on_connect
    def note_connect(ctx: CallContext) -> None:
        connected.append(ctx.session_id)

    peer = await jsonrpc(hub, **forwarded("203.0.113.9, 127.0.0.5"))
    assert await peer.call("where") == "203.0.113.9"
    assert handshakes == ["203.0.113.9"]
    assert [hub.session(session_id).remote_address for session_id in connected] == ["203.0.113.9"]


async def test_without_trusted_proxies_the_header_changes_nothing(make_hub, jsonrpc) -> None:
    """By default X-Forwarded-For is ignored: the session shows the TCP peer."""
    hub = await make_hub()
    serve_remote_address(hub)
    peer = await jsonrpc(hub, **forwarded("203.0.113.9"))
    assert (await peer.call("where")).startswith("127.0.0.1:")


async def test_forwarded_ipv6_clients_count_by_64(make_hub, connect) -> None:
    """Forwarded IPv6 addresses share a /64's slots, like direct IPv6 clients."""
    hub = await make_hub({"server": LOOPBACK_PROXY, "limits": {"max_connections_per_ip": 1}})
    await connect(hub, **forwarded("2001:db8:1:2::1"))
    assert await refused_status(connect, hub, **forwarded("2001:db8:1:2:ffff::9")) == 503
    await connect(hub, **forwarded("[2001:db8:1:3::1]:4711"))
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
