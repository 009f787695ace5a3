"""New connections per address: limits.connection_rate_per_ip / connection_burst_per_ip.

The "store growth" attack of bench/hostile.py reconnects in a loop from one
address, each connection small and normal-looking: no per-connection limit
binds. Here an address over its rate of new connections is held a second,
then refused (WebSocket and fallback: HTTP 429; MQTT TCP: CONNACK 0x9F / 3),
while another address is still served. Real sockets throughout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from hub import Hub, HubConfig
from hub.limits import ConnectionRate, ConnectionSlots
from protocols.mqtt.codec import Connack, Connect, PacketReader, encode
from protocols.mqtt.listener import SERVICE_NAME, MqttListeners
from protocols.mqtt.packets import ConnackCode
from protocols.mqtt.reasons import ReasonCode
from tests.conftest import HubFactory
from tests.fallback.conftest import fallback_config, fallback_url
from tests.protocols.mqtt.test_tcp_listener import Pki

# Three new connections, then (almost) nothing: the fourth is over the rate.
TIGHT = {"connection_rate_per_ip": 0.001, "connection_burst_per_ip": 3}


def refusals(hub: Hub) -> float:
    sample = hub.metrics.registry.get_sample_value(
        "wshub_handshakes_refused_total", {"reason": "connection_rate"}
    )
    return sample or 0.0


async def upgrade(hub: Hub, source: str = "127.0.0.1", forwarded: str | None = None) -> bytes:
    """The hub's answer (head, and body if refused) to a WebSocket upgrade sent
    from ``source``, for ``forwarded`` (X-Forwarded-For) if given."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: channels.v1\r\n"
            + (f"X-Forwarded-For: {forwarded}\r\n" if forwarded else "")
            + "\r\n"
        ).encode()
    )
    try:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                head += await reader.read()  # the body, up to the close
    finally:
        writer.close()
    return head


async def test_an_upgrade_over_the_rate_is_held_then_refused_with_429(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub({"limits": TIGHT})
    for _ in range(3):
        assert (await upgrade(hub)).startswith(b"HTTP/1.1 101")
    started = time.monotonic()
    refused = await upgrade(hub)
    held = time.monotonic() - started
    assert refused.startswith(b"HTTP/1.1 429"), refused
    assert b"\r\nRetry-After: " in refused
    assert b"limits.connection_rate_per_ip" in refused
    # Held before its answer, so a reconnect loop cannot spin on refusals.
    assert held >= 0.9
    assert refusals(hub) == 1
    # Another address has its own bucket.
    assert (await upgrade(hub, "127.0.0.2")).startswith(b"HTTP/1.1 101")


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_bucket(
    make_hub: HubFactory,
) -> None:
    limits = {"connection_rate_per_ip": 0.001, "connection_burst_per_ip": 1}
    hub = await make_hub({"limits": limits, "server": {"trusted_proxies": ["127.0.0.1"]}})
    assert (await upgrade(hub, forwarded="198.51.100.1")).startswith(b"HTTP/1.1 101")
    assert (await upgrade(hub, forwarded="198.51.100.1")).startswith(b"HTTP/1.1 429")
    assert (await upgrade(hub, forwarded="198.51.100.2")).startswith(b"HTTP/1.1 101")


async def test_the_default_rate_lets_a_burst_of_reconnects_through(make_hub: HubFactory) -> None:
    """On by default, with room for a NAT's worth of clients reconnecting at once."""
    hub = await make_hub()
    limits = hub.config.limits
    assert (limits.connection_rate_per_ip, limits.connection_burst_per_ip) == (50.0, 200)
    answers = await asyncio.gather(*(upgrade(hub) for _ in range(150)))
    assert all(head.startswith(b"HTTP/1.1 101") for head in answers)
    assert refusals(hub) == 0


class RawMqtt:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, hub: Hub, level: int, source: str = "127.0.0.1") -> list[object]:
        """CONNECT at ``level`` from ``source``: the packets before the hub closes or answers."""
        host, port, _ = hub.services.get(SERVICE_NAME, MqttListeners).addresses[0]
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        codec = PacketReader(version=level)
        writer.write(encode(Connect(protocol_level=level, client_id=os.urandom(6).hex()), level))
        packets: list[object] = []
        try:
            async with asyncio.timeout(10):
                while not packets and (data := await reader.read(65536)):
                    packets += codec.feed(data)
        finally:
            writer.close()
        return packets


async def test_an_mqtt_connect_over_the_rate_gets_connack_0x9f(make_hub: HubFactory) -> None:
    hub = await make_hub({"mqtt": {"listeners": [{"port": 0}]}, "limits": TIGHT})
    for _ in range(3):
        (ok,) = await RawMqtt.connect(hub, 5)
        assert isinstance(ok, Connack)
        assert ok.return_code == ReasonCode.SUCCESS
    (v5,) = await RawMqtt.connect(hub, 5)
    assert isinstance(v5, Connack)
    assert v5.return_code == ReasonCode.CONNECTION_RATE_EXCEEDED
    assert "limits.connection_rate_per_ip" in (v5.properties.reason_string or "")
    (v4,) = await RawMqtt.connect(hub, 4)
    assert isinstance(v4, Connack)
    assert v4.return_code == ConnackCode.SERVER_UNAVAILABLE
    assert refusals(hub) == 2
    # Another address is served; WebSocket upgrades share the address's bucket.
    (neighbour,) = await RawMqtt.connect(hub, 5, "127.0.0.2")
    assert isinstance(neighbour, Connack)
    assert neighbour.return_code == ReasonCode.SUCCESS
    assert (await upgrade(hub)).startswith(b"HTTP/1.1 429")


async def test_a_fallback_session_over_the_rate_gets_429(make_hub: HubFactory) -> None:
    limits = {"connection_rate_per_ip": 0.001, "connection_burst_per_ip": 1}
    hub = await make_hub(fallback_config(limits=limits))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fallback_url(hub)}/session") as first:
            assert first.status == 200
        async with http.get(f"{fallback_url(hub)}/session") as second:
            assert second.status == 429
            assert int(second.headers["Retry-After"]) >= 1
            assert "limits.connection_rate_per_ip" in await second.text()
    assert refusals(hub) == 1


def test_the_table_is_bounded_and_forgets_idle_addresses() -> None:
    now = [0.0]
    rate = ConnectionRate(10.0, 20, max_entries=100, clock=lambda: now[0])
    for n in range(1000):
        assert rate.take(f"10.0.{n // 256}.{n % 256}") is None
    assert len(rate) == 100
    # Empty the bucket of one address: the next connection waits for a token.
    for _ in range(20):
        rate.take("192.0.2.1")
    wait = rate.take("192.0.2.1")
    assert wait is not None
    assert 0 < wait <= 0.1
    # Two seconds idle: every bucket is full again, and forgotten.
    now[0] = 2.0
    assert rate.take("192.0.2.1") is None
    assert len(rate) == 1


def test_a_rate_of_zero_is_off_and_negative_is_refused() -> None:
    rate = ConnectionRate(0, 1)
    assert all(rate.take("192.0.2.1") is None for _ in range(1000))
    assert len(rate) == 0
    with pytest.raises(ValidationError):
        HubConfig.model_validate({"limits": {"connection_rate_per_ip": -1}})
    with pytest.raises(ValidationError):
        HubConfig.model_validate({"limits": {"connection_burst_per_ip": 0}})


async def released_within(slots: ConnectionSlots, key: str, seconds: float) -> float:
    """Seconds until ``key`` holds no slot of ``slots``; fails after ``seconds``."""
    started = time.monotonic()
    while slots.held_by(key):
        assert time.monotonic() - started < seconds, f"{key} still holds a slot"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never came true")


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_held_upgrade_whose_client_leaves_is_freed_at_once(
    make_hub: HubFactory, how: str
) -> None:
    """The hold before a 429 ends when the client closes or resets: its socket and
    its address's slot are freed then, not a second later."""
    hub = await make_hub({"limits": TIGHT})
    for _ in range(3):
        assert (await upgrade(hub)).startswith(b"HTTP/1.1 101")
    _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await until(lambda: refusals(hub) == 1)  # held
    assert hub.server.slots.held_by("127.0.0.1") >= 1
    leave(writer, how)
    assert await released_within(hub.server.slots, "127.0.0.1", 0.5) < 0.5


def leave(writer: asyncio.StreamWriter, how: str) -> None:
    """Close the connection (FIN), or reset it (RST: SO_LINGER 0)."""
    if how == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_held_mqtt_connection_whose_client_leaves_is_freed_at_once(
    make_hub: HubFactory, how: str
) -> None:
    """Held unread before its CONNACK 0x9F: the client leaving ends the hold."""
    hub = await make_hub({"mqtt": {"listeners": [{"port": 0}]}, "limits": TIGHT})
    listeners = hub.services.get(SERVICE_NAME, MqttListeners)
    for _ in range(3):
        (ok,) = await RawMqtt.connect(hub, 5)
        assert isinstance(ok, Connack)
    host, port, _ = listeners.addresses[0]
    _, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Connect(protocol_level=5, client_id="held"), 5))
    await until(lambda: refusals(hub) == 1)  # held
    slots = listeners._slots
    assert slots.held_by("127.0.0.1") == 1
    leave(writer, how)
    assert await released_within(slots, "127.0.0.1", 0.5) < 0.5


async def test_a_held_flooder_whose_client_leaves_is_freed_at_once(make_hub: HubFactory) -> None:
    """A repeat flooder's socket is held unread until its penalty ends (10 s): when
    the client leaves, it is closed and its slot freed at once."""
    hub = await make_hub()
    for _ in range(2):
        hub.server.penalties.punish("127.0.0.1")  # flooded twice: a repeat offender
    _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    await until(lambda: hub.server.slots.held_by("127.0.0.1") == 1)
    writer.close()
    assert await released_within(hub.server.slots, "127.0.0.1", 0.5) < 0.5


async def test_a_held_fallback_open_whose_client_leaves_is_freed_at_once(
    make_hub: HubFactory,
) -> None:
    limits = {"connection_rate_per_ip": 0.001, "connection_burst_per_ip": 1}
    hub = await make_hub(fallback_config(limits=limits))
    async with aiohttp.ClientSession() as http, http.get(f"{fallback_url(hub)}/session") as first:
        assert first.status == 200
    async with aiohttp.ClientSession() as http:
        held = asyncio.create_task(http.get(f"{fallback_url(hub)}/session"))
        await until(lambda: refusals(hub) == 1)
        assert hub.server.slots.held_by("127.0.0.1") >= 1
        held.cancel()
    assert await released_within(hub.server.slots, "127.0.0.1", 0.5) < 0.5


async def http_status(
    hub: Hub, path: str, source: str = "127.0.0.1", forwarded: str | None = None
) -> int:
    """The status of a plain GET of ``path`` sent from ``source`` (one connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=(source, 0))
    extra = f"X-Forwarded-For: {forwarded}\r\n" if forwarded else ""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n")
    finally:
        writer.close()
    return int(head.split()[1])


async def test_plain_http_requests_count_for_the_connection_rate(make_hub: HubFactory) -> None:
    """Each plain request is a connection of its own: past the burst, the static
    client, /metrics and the rest get 429 after the hold, and so do the address's
    upgrades (one bucket); a loopback /healthz is always answered."""
    hub = await make_hub({"limits": TIGHT})
    for path in ("/wshub.js", "/openrpc.json", "/metrics"):
        assert await http_status(hub, path) == 200, path
    started = time.monotonic()
    assert await http_status(hub, "/wshub.js") == 429
    assert time.monotonic() - started >= 0.9  # held, as an upgrade is
    assert refusals(hub) == 1
    assert (await upgrade(hub)).startswith(b"HTTP/1.1 429")
    # An operator's probe from this host: never counted, never held.
    for _ in range(10):
        assert await http_status(hub, "/healthz") == 200
    assert refusals(hub) == 2
    # Another address has its own bucket.
    assert await http_status(hub, "/wshub.js", "127.0.0.2") == 200


async def test_healthz_for_a_forwarded_client_counts(make_hub: HubFactory) -> None:
    """Behind a trusted proxy the forwarded client is counted, on /healthz too; the
    proxy's own probe (no X-Forwarded-For) is not."""
    limits = {"connection_rate_per_ip": 0.001, "connection_burst_per_ip": 1}
    hub = await make_hub({"limits": limits, "server": {"trusted_proxies": ["127.0.0.1"]}})
    assert await http_status(hub, "/healthz", forwarded="198.51.100.1") == 200
    assert await http_status(hub, "/healthz", forwarded="198.51.100.1") == 429
    assert await http_status(hub, "/wshub.js", forwarded="198.51.100.2") == 200
    for _ in range(5):
        assert await http_status(hub, "/healthz") == 200


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client (its ClientHello), as it goes on the wire."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def test_a_tls_connection_over_the_rate_is_refused_before_its_handshake(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    """On an MQTT TLS listener the address is checked on plain TCP: over its rate,
    the socket is held, then closed without the hub answering the ClientHello (the
    handshake, the costly part, never starts); under it, TLS and MQTT go on."""
    pki = Pki(tmp_path)
    hub = await make_hub({"mqtt": {"listeners": [pki.listener()]}, "limits": TIGHT})
    host, port, tls = hub.services.get(SERVICE_NAME, MqttListeners).addresses[0]
    assert tls
    for n in range(3):
        reader, writer = await asyncio.open_connection(host, port, ssl=pki.client())
        writer.write(encode(Connect(protocol_level=5, client_id=f"ok{n}"), 5))
        async with asyncio.timeout(10):
            (connack,) = PacketReader(version=5).feed(await reader.read(65536))
        assert isinstance(connack, Connack)
        assert connack.return_code == ReasonCode.SUCCESS
        writer.close()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(client_hello(pki.client()))
    started = time.monotonic()
    answer = b""
    # Closed with the ClientHello unread: an end or a reset, and no byte before it.
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(10):
            answer = await reader.read(65536)
    writer.close()
    assert answer == b"", "the hub answered the ClientHello of an address over its rate"
    assert time.monotonic() - started >= 0.9  # held first, as a plain connection is
    assert refusals(hub) == 1
    # A real TLS client sees its handshake fail, with no CONNACK to read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        async with asyncio.timeout(10):
            await asyncio.open_connection(host, port, ssl=pki.client())
