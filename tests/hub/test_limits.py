"""Connection limits (total, per IP), the handshake timeout and per-protocol message sizes."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub import CallContext, Hub
from hub.errors import PermissionDenied
from hub.limits import ConnectionSlots, SlotRefused, address_key
from tests.hub._raw import RawClient


def sample(hub: Hub, name: str, **labels: str) -> float:
    return hub.metrics.registry.get_sample_value(name, labels or None) or 0.0


async def sample_becomes(
    hub: Hub, expected: float, name: str, timeout: float = 5.0, **labels: str
) -> None:
    """Wait until a metric reads ``expected`` (the server finishes after the client)."""
    async with asyncio.timeout(timeout):
        while True:
            if sample(hub, name, **labels) == expected:
                return
            await asyncio.sleep(0.01)


async def slots_drop_to(hub: Hub, expected: float) -> None:
    """Wait until the hub counts ``expected`` connections against its limits."""
    await sample_becomes(hub, expected, "wshub_connection_slots")


def upgrade_request(port: int, extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the abrupt end of a vanished client."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def open_tcp(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 4096)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


# -- the bookkeeping ---------------------------------------------------------


def test_slots_count_total_and_per_address() -> None:
    """Slots are refused past either limit and come back when released."""
    slots = ConnectionSlots(max_total=3, max_per_address=2)
    assert slots.acquire("a") is None
    assert slots.acquire("a") is None
    assert slots.acquire("a") is SlotRefused.PER_IP
    assert slots.acquire("b") is None
    assert slots.acquire("c") is SlotRefused.MAX_CONNECTIONS
    slots.release("a")
    assert slots.acquire("c") is None
    for key in ("a", "b", "c"):
        slots.release(key)
    assert (slots.in_use, slots.held_by("a")) == (0, 0)
    with pytest.raises(RuntimeError):
        slots.release("a")


def test_address_key_groups_ipv6_by_64() -> None:
    """IPv4 counts per address, IPv6 per /64, IPv4-mapped IPv6 as its IPv4 address."""
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("fe80::1%eth0") == address_key("fe80::2")


# -- at the handshake ----------------------------------------------------------


async def test_total_limit_refuses_with_503_and_retry_after(make_hub, connect) -> None:
    """Past max_connections a handshake gets 503 naming the limit, with Retry-After; counted."""
    hub = await make_hub({"limits": {"max_connections": 2}})
    first = await connect(hub)
    await connect(hub)
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub)
    response = refused.value.response
    assert response.status_code == 503
    assert b"max_connections" in response.body
    assert response.headers["Retry-After"].isdigit()
    assert sample(hub, "wshub_handshakes_refused_total", reason="max_connections") == 1
    # Plain HTTP does not take a slot: /healthz still answers.
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 200")
    writer.close()
    await first.close()
    await slots_drop_to(hub, 1)
    await connect(hub)


async def test_per_ip_limit_counts_each_address(make_hub, connect) -> None:
    """Past max_connections_per_ip one address is refused (503, per_ip); another gets in."""
    hub = await make_hub({"limits": {"max_connections": 100, "max_connections_per_ip": 2}})
    await connect(hub)
    await connect(hub)
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub)
    assert refused.value.response.status_code == 503
    assert b"max_connections_per_ip" in refused.value.response.body
    assert sample(hub, "wshub_handshakes_refused_total", reason="per_ip") == 1
    # 127.0.0.2 is loopback too, but another client address.
    other = await connect(hub, local_addr=("127.0.0.2", 0))
    assert other.remote_address[0] == "127.0.0.1"
    assert sample(hub, "wshub_connection_slots") == 3


async def test_no_slot_leaks_on_any_disconnect_path(make_hub, connect, jsonrpc) -> None:
    """Refused, aborted, hook-refused, oversize and clean endings all give their slot back."""
    limit = 3
    hub = await make_hub(
        {
            "limits": {"max_connections": limit, "max_connections_per_ip": limit},
            "websocket": {"max_message_size": 1024, "close_timeout": 0.5},
        }
    )

    @hub.on_connect
    async def refuse_some(ctx: CallContext) -> None:
        if ctx.subprotocol == "channels.v1":
            raise PermissionDenied("not today")

    for _ in range(limit + 1):
        # An unknown subprotocol: refused (400) after the slot was taken.
        with pytest.raises(InvalidStatus):
            await connect(hub, "nope.v1")
        # The connect hook refuses: 1008 after the handshake.
        refused = await connect(hub, "channels.v1")
        with pytest.raises(ConnectionClosed):
            await refused.recv()
        # A message over the size limit: 1009.
        big = await jsonrpc(hub)
        await big.ws.send("x" * 2048)
        with pytest.raises(ConnectionClosed):
            await big.ws.recv()
        # The full request, then a reset before reading the response.
        sock = await open_tcp(hub.port)
        await asyncio.get_running_loop().sock_sendall(sock, upgrade_request(hub.port))
        reset(sock)
        # Open, then reset without a close frame.
        raw = await RawClient.connect(hub)
        reset(raw.sock)
        # A clean close.
        clean = await connect(hub)
        await clean.close()
    await slots_drop_to(hub, 0)
    assert sample(hub, "wshub_handshakes_refused_total", reason="max_connections") == 0
    # Every slot is free again: the full count opens.
    peers = [await jsonrpc(hub) for _ in range(limit)]
    with pytest.raises(InvalidStatus):
        await connect(hub)
    for peer in peers:
        await peer.ws.close()
    await slots_drop_to(hub, 0)


async def test_handshake_timeout_drops_silent_and_slow_clients(make_hub) -> None:
    """A client that sends no request, or half of one, is dropped after open_timeout; counted."""
    hub = await make_hub({"websocket": {"open_timeout": 0.5}})
    silent = await open_tcp(hub.port)
    slow = await open_tcp(hub.port)
    half = upgrade_request(hub.port)[:40]
    await asyncio.get_running_loop().sock_sendall(slow, half)
    started = time.monotonic()
    try:
        assert await read_until_eof(silent, timeout=10) == b""
        assert await read_until_eof(slow, timeout=10) == b""
        elapsed = time.monotonic() - started
    finally:
        silent.close()
        slow.close()
    assert 0.4 <= elapsed < 8
    assert sample(hub, "wshub_connection_slots") == 0
    await sample_becomes(hub, 2, "wshub_handshakes_incomplete_total")


# -- message size ----------------------------------------------------------------


async def test_max_message_size_per_protocol(make_hub, connect, jsonrpc) -> None:
    """Each protocol gets its own limit after negotiation (1009 over it); others keep the global."""
    hub = await make_hub(
        {
            "websocket": {"max_message_size": 2048},
            # "jsonrpc" is an alias of jsonrpc.2.0; channels.v1 may go above the global.
            "limits": {"max_message_size": {"jsonrpc": 1024, "channels.v1": 8192}},
        }
    )

    @hub.rpc("size")
    async def size(text: str) -> int:
        return len(text)

    small = await jsonrpc(hub)
    assert await small.call("size", ["a" * 900]) == 900
    await small.send({"jsonrpc": "2.0", "id": 2, "method": "size", "params": ["a" * 1500]})
    with pytest.raises(ConnectionClosed):
        await small.recv()
    assert small.ws.close_code == 1009

    roomy = await jsonrpc(hub, "channels.v1")
    assert await roomy.call("size", ["b" * 5000]) == 5000
    await roomy.send({"jsonrpc": "2.0", "id": 2, "method": "size", "params": ["b" * 9000]})
    with pytest.raises(ConnectionClosed):
        await roomy.recv()
    assert roomy.ws.close_code == 1009

    # WAMP is not named: websocket.max_message_size applies.
    wamp = await connect(hub, "wamp.2.json")
    await wamp.send('[1, "realm1", {"roles": {"caller": {}}, "pad": "' + "c" * 3000 + '"}]')
    with pytest.raises(ConnectionClosed):
        await wamp.recv()
    assert wamp.close_code == 1009

    for protocol in ("jsonrpc.2.0", "channels.v1", "wamp.2.json"):
        await sample_becomes(hub, 1, "wshub_oversize_closes_total", subprotocol=protocol)


async def test_a_failing_connect_hook_closes_1011_and_leaves_no_session(make_hub, connect) -> None:
    """A connect hook's bug (not PermissionDenied) ends that session only, and it is forgotten."""
    hub = await make_hub({})

    @hub.on_connect
    async def broken(ctx: CallContext) -> None:
        raise RuntimeError("hook bug")

    client = await connect(hub, "channels.v1")
    with pytest.raises(ConnectionClosed):
        await client.recv()
    assert client.close_code == 1011
    await sample_becomes(hub, 0, "wshub_connections_active", subprotocol="channels.v1")
    assert hub.session_ids == []
    assert sample(hub, "wshub_handler_errors_total", subprotocol="channels.v1") == 1
