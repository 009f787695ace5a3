"""The browser Origin allow-list: exact origins, subdomain wildcards, same-origin by default."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from hub import Hub
from hub.origins import OriginPolicy

HOST = "hub.example.com:8765"


def refused_count(hub: Hub) -> float:
    value = hub.metrics.registry.get_sample_value(
        "wshub_handshakes_refused_total", {"reason": "origin"}
    )
    return value or 0.0


# -- the policy --------------------------------------------------------------


def test_exact_origins_match_scheme_host_and_port() -> None:
    """An exact entry admits that scheme, host and port only (default ports implied)."""
    policy = OriginPolicy(["https://app.example.com", "http://localhost:3000"])
    assert policy.allows("https://app.example.com", HOST)
    assert policy.allows("https://APP.example.com:443", HOST)
    assert policy.allows("http://localhost:3000", HOST)
    assert not policy.allows("http://app.example.com", HOST)
    assert not policy.allows("https://app.example.com:8443", HOST)
    assert not policy.allows("http://localhost:3001", HOST)
    assert not policy.allows("https://evil.example.com", HOST)
    assert not policy.allows("https://app.example.com.evil.net", HOST)


def test_wildcards_admit_subdomains_only() -> None:
    """``https://*.example.com`` admits any subdomain depth, not the bare domain or look-alikes."""
    policy = OriginPolicy(["https://*.example.com"])
    assert policy.allows("https://app.example.com", HOST)
    assert policy.allows("https://a.b.example.com", HOST)
    assert not policy.allows("https://example.com", HOST)
    assert not policy.allows("https://evilexample.com", HOST)
    assert not policy.allows("http://app.example.com", HOST)
    assert not policy.allows("https://app.example.com:8443", HOST)


def test_empty_list_means_same_origin() -> None:
    """With no list, only an Origin naming the Host the request was sent to passes."""
    policy = OriginPolicy([])
    assert policy.allows("http://hub.example.com:8765", HOST)
    assert policy.allows("https://hub.example.com", "hub.example.com")
    assert not policy.allows("https://hub.example.com", "hub.example.com:8765")
    assert not policy.allows("https://other.example.com:8765", HOST)
    assert not policy.allows("http://hub.example.com:8765", None)


def test_star_null_and_garbage() -> None:
    """``*`` admits all; "null" only when listed; unparsable origins are refused."""
    assert OriginPolicy(["*"]).allows("https://anything.test", HOST)
    assert not OriginPolicy(["https://a.test"]).allows("null", HOST)
    assert OriginPolicy(["null"]).allows("null", HOST)
    for garbage in ("", "not a url", "https://", "https://a.test/path", "https://a.test:99999"):
        assert not OriginPolicy(["https://a.test"]).allows(garbage, HOST)


def test_requests_without_origin_pass() -> None:
    """Non-browser clients send no Origin; the check is not theirs."""
    assert OriginPolicy(["https://app.example.com"]).allows(None, HOST)
    assert OriginPolicy([]).allows(None, None)


# -- at the handshake ----------------------------------------------------------


async def test_allowed_origin_connects_others_get_403(make_hub, connect, jsonrpc) -> None:
    """A listed origin and a client without Origin connect; another origin gets 403, counted."""
    hub = await make_hub({"server": {"allowed_origins": ["https://*.example.com"]}})

    @hub.rpc("ping")
    async def ping() -> str:
        return "pong"

    peer = await jsonrpc(hub, origin="https://app.example.com")
    assert await peer.call("ping") == "pong"
    assert await (await jsonrpc(hub)).call("ping") == "pong"
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub, origin="https://evil.test")
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"origin not allowed\n"
    assert refused_count(hub) == 1


async def test_default_allows_the_hubs_own_pages_only(hub: Hub, connect) -> None:
    """Default config: a page served by the hub itself connects, a cross-site page does not."""
    await connect(hub, origin=f"http://127.0.0.1:{hub.port}")
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub, origin="https://attacker.test")
    assert refused.value.response.status_code == 403
    assert refused_count(hub) == 1
