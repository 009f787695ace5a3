"""The HTTP side of the port: duplicate headers, guarded endpoints, DNS rebinding, idle sockets.

Raw requests over real sockets (the attacker writes what no client library
would), and a websockets client for the well-behaved side.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket

import pytest
from websockets.asyncio.client import connect as ws_connect

from hub import Hub
from hub.hosts import HostPolicy
from tests.auth_helpers import SECRET, hs_auth, mint
from tests.conftest import HubFactory


async def raw_request(
    hub: Hub, lines: list[str], *, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """Send the request lines as they are, from ``source``; the status, headers and body."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    try:
        await loop.sock_connect(sock, ("127.0.0.1", hub.port))
        await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        async with asyncio.timeout(5):
            while chunk := await loop.sock_recv(sock, 65536):
                data += chunk
                if data.startswith(b"HTTP/1.1 101 ") and b"\r\n\r\n" in data:
                    break  # upgraded: the connection stays open
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(status.split()[1]), headers, body


def upgrade(hub: Hub, *extra: str, host: str | None = None) -> list[str]:
    key = base64.b64encode(os.urandom(16)).decode()
    return [
        "GET / HTTP/1.1",
        f"Host: {host or f'127.0.0.1:{hub.port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]


def get(path: str, *extra: str, host: str = "localhost") -> list[str]:
    return [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close", *extra]


# -- two Origin or Host headers ----------------------------------------------------------


@pytest.mark.parametrize(
    "doubled",
    [
        ("Origin: http://127.0.0.1", "Origin: https://evil.example"),
        ("Host: 127.0.0.1", "Host: evil.example"),
        ("Authorization: Basic YTpi", "Authorization: Basic Yzpk"),
    ],
)
async def test_doubled_header_is_a_400_without_traceback(
    hub: Hub, caplog: pytest.LogCaptureFixture, doubled: tuple[str, str]
) -> None:
    """Two Origin / Host / Authorization headers: 400 naming it, nothing logged above INFO."""
    lines = [line for line in upgrade(hub) if not line.startswith(doubled[0].split(":")[0])]
    with caplog.at_level(logging.INFO):
        status, _, body = await raw_request(hub, [*lines, *doubled])
    assert status == 400
    assert doubled[0].split(":")[0].encode() in body
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


# -- /metrics and /openrpc.json ------------------------------------------------------------


async def test_defaults_expose_metrics_and_openrpc(hub: Hub) -> None:
    """On the default config (anonymous sessions allowed) both answer without credentials."""
    for path in ("/metrics", "/openrpc.json"):
        status, _, _ = await raw_request(hub, get(path))
        assert status == 200, path


async def test_closed_hub_guards_metrics_and_openrpc(make_hub: HubFactory) -> None:
    """With allow_anonymous off: 401 with a Bearer challenge, 200 with a valid token."""
    hub = await make_hub({"auth": {"allow_anonymous": False, **hs_auth()}})
    token = mint("ada")
    for path in ("/metrics", "/openrpc.json"):
        status, headers, _ = await raw_request(hub, get(path))
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Bearer")
        status, _, _ = await raw_request(hub, get(path, f"Authorization: Bearer {token}"))
        assert status == 200, path
        status, _, _ = await raw_request(hub, get(path, "Authorization: Bearer forged"))
        assert status == 401, path
    status, _, _ = await raw_request(hub, get("/healthz"))
    assert status == 200


async def test_metrics_access_rule(make_hub: HubFactory) -> None:
    """server.metrics_access admits by claims: another user's token gets 403."""
    hub = await make_hub(
        {
            "auth": {"jwt": {"secret": SECRET}},
            "server": {"metrics_access": {"claims": {"roles": "ops"}}},
        }
    )
    ops, other = mint("ada", roles=["ops"]), mint("bob")
    assert (await raw_request(hub, get("/metrics")))[0] == 401
    assert (await raw_request(hub, get("/metrics", f"Authorization: Bearer {other}")))[0] == 403
    assert (await raw_request(hub, get("/metrics", f"Authorization: Bearer {ops}")))[0] == 200


# -- DNS rebinding -------------------------------------------------------------------------


async def test_loopback_hub_refuses_a_foreign_host(hub: Hub) -> None:
    """A same-origin upgrade from a rebound name (Origin and Host agree) gets 421."""
    foreign = f"rebind.attacker.example:{hub.port}"
    status, _, body = await raw_request(
        hub, upgrade(hub, f"Origin: http://{foreign}", host=foreign)
    )
    assert status == 421
    assert b"allowed_hosts" in body
    assert (await raw_request(hub, get("/metrics", host=foreign)))[0] == 421
    assert (await raw_request(hub, get("/openrpc.json", host=foreign)))[0] == 421


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "app.localhost"]
)
async def test_loopback_names_pass(hub: Hub, host: str) -> None:
    """localhost, 127.0.0.1 and [::1], with any port, are a loopback hub's own names."""
    name = host.format(port=hub.port)
    status, _, _ = await raw_request(hub, upgrade(hub, f"Origin: http://{name}", host=name))
    assert status == 101


async def test_allowed_hosts_admits_listed_names(make_hub: HubFactory) -> None:
    """server.allowed_hosts lists names a loopback hub answers too (a tunnel, a dev proxy)."""
    hub = await make_hub({"server": {"allowed_hosts": ["*.dev.example"]}})
    assert (await raw_request(hub, get("/metrics", host="hub.dev.example:8443")))[0] == 200
    assert (await raw_request(hub, get("/metrics", host="dev.example.evil")))[0] == 421


def test_host_policy_by_bind_address() -> None:
    """Empty allowed_hosts checks loopback binds only; "*" turns the check off."""
    assert not HostPolicy([], "127.0.0.1").allows("evil.example")
    assert not HostPolicy([], "::1").allows("evil.example")
    assert not HostPolicy([], "localhost").allows("evil.example:80")
    assert HostPolicy([], "0.0.0.0").allows("evil.example")
    assert HostPolicy(["*"], "127.0.0.1").allows("evil.example")
    assert not HostPolicy(["hub.example.com"], "0.0.0.0").allows("evil.example")
    assert HostPolicy(["hub.example.com"], "0.0.0.0").allows("HUB.example.com:443")
    assert not HostPolicy([], "127.0.0.1").allows("[::1")  # malformed
    assert HostPolicy([], "127.0.0.1").allows(None)  # no Host: not a browser


# -- idle sockets -------------------------------------------------------------------------


async def test_idle_sockets_are_counted_and_dropped(make_hub: HubFactory) -> None:
    """Sockets that never send a request take slots (over the per-IP limit: 503 at once),
    are closed after websocket.open_timeout, and a real client still connects meanwhile."""
    hub = await make_hub(
        {"limits": {"max_connections_per_ip": 5}, "websocket": {"open_timeout": 1.0}}
    )

    @hub.rpc("ping")
    def ping() -> str:
        return "pong"

    loop = asyncio.get_running_loop()
    idle: list[socket.socket] = []
    for _ in range(15):  # the attacker, from another loopback address
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.2", 0))
        await loop.sock_connect(sock, ("127.0.0.1", hub.port))
        idle.append(sock)
    try:
        refused = 0
        for sock in idle[5:]:
            async with asyncio.timeout(5):
                answer = await loop.sock_recv(sock, 4096)
            refused += answer.startswith(b"HTTP/1.1 503") and b"max_connections_per_ip" in answer
        assert refused == 10
        async with ws_connect(hub.url, open_timeout=5) as client:
            await client.send('{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
            assert "pong" in str(await client.recv())
        # The five that got a slot are dropped once open_timeout passes.
        for sock in idle[:5]:
            async with asyncio.timeout(5):
                assert await loop.sock_recv(sock, 4096) == b""
    finally:
        for sock in idle:
            sock.close()


async def test_fallback_listener_refuses_a_foreign_host(make_hub: HubFactory) -> None:
    """The HTTP fallback's streams (SSE, NDJSON, sessions) refuse a rebound name too."""
    hub = await make_hub({"fallback": {"enabled": True, "port": 0}})
    assert hub.fallback is not None
    port = int(hub.fallback.url.rsplit(":", 1)[1])
    foreign = f"rebind.attacker.example:{port}"
    for path in ("/events?channel=news", "/stream?channel=news", "/session"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {foreign}\r\nOrigin: http://{foreign}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(request.encode())
        async with asyncio.timeout(5):
            status_line = await reader.readline()
        writer.close()
        assert status_line.split()[1] == b"421", (path, status_line)
