"""MQTT over plain TCP and TLS ([[mqtt.listeners]]): paho as a device, the same hub behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from paho.mqtt.enums import MQTTProtocolVersion
from pydantic import ValidationError

from hub import Hub, HubConfig
from hub.errors import PermissionDenied
from protocols.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    PacketReader,
    Pingreq,
    Pingresp,
    Publish,
    Pubrel,
    Suback,
    Subscribe,
    encode,
)
from protocols.mqtt.listener import (
    FLOOD_REFUSED_TEXT,
    SERVICE_NAME,
    MqttListeners,
    connect_level,
)
from protocols.mqtt.packets import ConnackCode, Properties
from protocols.mqtt.reasons import ReasonCode
from tests.conftest import HubFactory, JsonRpcPeer, PeerFactory

from .conftest import PahoPeer, hub_address

PLAIN: dict[str, Any] = {"mqtt": {"listeners": [{"port": 0}]}}


def listener(hub: Hub, index: int = 0) -> tuple[str, int]:
    """The (host, port) a listener bound."""
    host, port, _ = hub.services.get(SERVICE_NAME, MqttListeners).addresses[index]
    return host, port


class RawTcp:
    """An MQTT client on a bare socket, speaking through the codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = PacketReader(version=5)
        self.version = 5
        self.pending: list[Any] = []

    async def send(self, *packets: Any) -> None:
        self.writer.write(b"".join(encode(p, self.version) for p in packets))
        await self.writer.drain()

    async def recv_all(self, timeout: float = 5.0) -> list[Any]:
        """Packets until the server closes the socket."""
        packets, self.pending = self.pending, []
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(65536):
                packets += self.codec.feed(data)
        return packets

    async def recv(self, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while not self.pending:
                data = await self.reader.read(65536)
                assert data, "closed"
                self.pending += self.codec.feed(data)
        return self.pending.pop(0)


RawFactory = Callable[..., Awaitable[RawTcp]]


@pytest.fixture
async def raw_tcp() -> AsyncIterator[RawFactory]:
    """Open RawTcp clients; closed after the test."""
    opened: list[RawTcp] = []

    async def open_raw(address: tuple[str, int], context: ssl.SSLContext | None = None) -> RawTcp:
        reader, writer = await asyncio.open_connection(*address, ssl=context)
        client = RawTcp(reader, writer)
        opened.append(client)
        return client

    yield open_raw
    for client in opened:
        client.writer.close()
        with contextlib.suppress(Exception):
            await client.writer.wait_closed()


async def test_paho_over_tcp_meets_websocket_and_channels_clients(
    make_hub: HubFactory, paho_peer: Any, jsonrpc: PeerFactory
) -> None:
    """A device on TCP and a paho client on WebSocket share topics; channels.v1 sees them."""
    hub = await make_hub(PLAIN)
    watcher: JsonRpcPeer = await jsonrpc(hub, "channels.v1")
    await watcher.call("subscribe", {"channel": "dev/#"})
    device: PahoPeer = paho_peer("device", websockets=False)
    assert await device.connect(*listener(hub)) == (False, 0)
    browser: PahoPeer = paho_peer("browser")
    await browser.connect(*hub_address(hub))
    await browser.subscribe("dev/#", 1)
    await device.subscribe("cmd/device", 1)
    await device.publish("dev/temp", b"21.5", 1)
    got = await browser.message()
    assert (got.topic, got.payload) == ("dev/temp", b"21.5")
    assert (await watcher.recv())["params"]["channel"] == "dev/temp"
    await browser.publish("cmd/device", b"reboot", 1)
    assert (await device.message()).payload == b"reboot"


async def test_paho_mqtt5_over_tcp(make_hub: HubFactory, paho_peer: Any) -> None:
    """paho MQTTv5 over TCP: CONNACK 0, retained and QoS 2 work as over WebSocket."""
    hub = await make_hub(PLAIN)
    client: PahoPeer = paho_peer("v5", websockets=False, protocol=MQTTProtocolVersion.MQTTv5)
    assert await client.connect(*listener(hub)) == (False, 0)
    await client.publish("kept", b"r", 2, retain=True)
    assert await client.subscribe("kept", 2) == [2]
    got = await client.message()
    assert (got.payload, got.retain) == (b"r", True)


@pytest.mark.parametrize(
    ("protocol", "refused"),
    [(MQTTProtocolVersion.MQTTv311, 0x80), (MQTTProtocolVersion.MQTTv5, 0x87)],
)
async def test_hook_refuses_one_filter_over_tcp(
    make_hub: HubFactory, paho_peer: Any, protocol: MQTTProtocolVersion, refused: int
) -> None:
    """3.9.3: a hook's refusal is 0x80 to 3.1.1 and 0x87 to 5.0; wildcards over it still pass.

    The interoperability suites' subscribe-failure setup: one filter refused,
    while ``#`` and ``+/+`` (which the hook also sees) are granted.
    """
    hub = await make_hub(PLAIN)

    @hub.on_subscribe("test/nosubscribe")
    def refuse(ctx: Any, channel: str) -> None:
        if channel == "test/nosubscribe":
            raise PermissionDenied("no subscriptions here")

    device: PahoPeer = paho_peer("refused", websockets=False, protocol=protocol)
    await device.connect(*listener(hub))
    assert await device.subscribe("test/nosubscribe", 2) == [refused]
    assert await device.subscribe("#", 1) == [1]
    assert await device.subscribe("+/+", 2) == [2]


async def test_same_authentication_as_websocket(make_hub: HubFactory, paho_peer: Any) -> None:
    """allow_anonymous = false applies on TCP too: CONNACK 5 without credentials."""
    hub = await make_hub({"mqtt": {"listeners": [{"port": 0}], "allow_anonymous": False}})
    device: PahoPeer = paho_peer("anon", websockets=False)
    # paho reports 3.1.1's CONNACK 5 as 0x87 Not authorized.
    assert await device.connect(*listener(hub)) == (False, 0x87)


async def test_malformed_bytes_get_disconnect_then_close(
    make_hub: HubFactory, raw_tcp: RawFactory
) -> None:
    """A 5.0 client sending a malformed packet gets DISCONNECT 0x81 and the socket closes."""
    hub = await make_hub(PLAIN)
    client = await raw_tcp(listener(hub))
    await client.send(Connect(protocol_level=5, client_id="raw"))
    connack = await client.recv()
    assert isinstance(connack, Connack)
    client.writer.write(bytes.fromhex("4005000100ff01"))
    [disconnect] = await client.recv_all()
    assert disconnect.reason_code == ReasonCode.MALFORMED_PACKET


async def test_packets_split_across_segments(make_hub: HubFactory, raw_tcp: RawFactory) -> None:
    """The codec reads the TCP stream as it reads frames: a packet cut in bytes is whole."""
    hub = await make_hub(PLAIN)
    client = await raw_tcp(listener(hub))
    data = encode(Connect(protocol_level=5, client_id="slow"), 5)
    for byte in data:
        client.writer.write(bytes([byte]))
        await client.writer.drain()
    assert isinstance(await client.recv(), Connack)


async def test_shutdown_says_server_shutting_down(
    make_hub: HubFactory, raw_tcp: RawFactory
) -> None:
    """On hub stop a 5.0 client on TCP gets DISCONNECT 0x8B before the close."""
    hub = await make_hub(PLAIN)
    client = await raw_tcp(listener(hub))
    await client.send(Connect(protocol_level=5, client_id="bye"))
    await client.recv()
    await hub.stop()
    assert await client.recv_all() == [Disconnect(ReasonCode.SERVER_SHUTTING_DOWN, _reason())]


def _reason() -> Any:
    from protocols.mqtt.packets import Properties

    return Properties(reason_string="server shutting down")


async def test_connection_limit_per_address(make_hub: HubFactory, raw_tcp: RawFactory) -> None:
    """limits.max_connections_per_ip applies to TCP listeners: the next socket is closed."""
    hub = await make_hub({**PLAIN, "limits": {"max_connections_per_ip": 1}})
    first = await raw_tcp(listener(hub))
    await first.send(Connect(protocol_level=5, client_id="one"))
    assert isinstance(await first.recv(), Connack)
    second = await raw_tcp(listener(hub))
    assert await second.recv_all() == []


async def _drop_a_subscriber_that_does_not_read(
    hub: Hub,
    raw_tcp: RawFactory,
    caplog: pytest.LogCaptureFixture,
    context: ssl.SSLContext | None,
) -> None:
    subscriber = await raw_tcp(listener(hub), context)
    await subscriber.send(Connect(protocol_level=5, client_id="sub"), Subscribe(1, (("t", 0),)))
    assert isinstance(await subscriber.recv(), Connack)
    assert isinstance(await subscriber.recv(), Suback)
    transport = subscriber.writer.transport
    assert isinstance(transport, asyncio.Transport)
    transport.pause_reading()  # it stops reading: the kernel buffers fill
    publisher = await raw_tcp(listener(hub), context)
    await publisher.send(Connect(protocol_level=5, client_id="pub"))
    assert isinstance(await publisher.recv(), Connack)
    burst = [Publish("t", bytes(16 * 1024))] * 16
    with caplog.at_level(logging.WARNING, logger="protocols.mqtt.listener"):
        async with asyncio.timeout(30):
            while not (dropped := [r for r in caplog.records if "slow consumer" in r.msg]):
                await publisher.send(*burst)
    # Dropped once past the budget, not before (a write adds one PUBLISH at most).
    [record] = dropped
    waiting = int(re.findall(r"(\d+) bytes waiting", record.getMessage())[0])
    assert 600 * 1024 < waiting <= 600 * 1024 + 16 * 1024 + 100
    # The publisher is still served; the subscriber's socket ends (a reset).
    await publisher.send(Pingreq())
    while not isinstance(await publisher.recv(), Pingresp):
        pass
    transport.resume_reading()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await subscriber.recv_all(timeout=10)


async def test_subscriber_that_does_not_read_is_dropped(
    make_hub: HubFactory, raw_tcp: RawFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """limits.max_outbound_bytes bounds what waits for a TCP subscriber: one that
    stops reading is dropped as a slow consumer, the publisher goes on."""
    hub = await make_hub({**PLAIN, "limits": {"max_outbound_bytes": 600 * 1024}})
    await _drop_a_subscriber_that_does_not_read(hub, raw_tcp, caplog, None)


@pytest.mark.parametrize("nodelay", [True, False])
async def test_nodelay_sets_the_client_socket(
    make_hub: HubFactory, raw_tcp: RawFactory, nodelay: bool
) -> None:
    """mqtt.listeners[].nodelay: TCP_NODELAY on the hub's socket (default), or Nagle kept."""
    config = {"mqtt": {"listeners": [{"port": 0, "nodelay": nodelay}]}}
    hub = await make_hub(config)
    client = await raw_tcp(listener(hub))
    await client.send(Connect(protocol_level=5, client_id="nagle"))
    assert isinstance(await client.recv(), Connack)
    [handler] = hub.services.get(SERVICE_NAME, MqttListeners)._handlers.values()
    sock = handler.session._transport.get_extra_info("socket")  # type: ignore[attr-defined]
    assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
    # Served the same either way.
    await client.send(Pingreq())
    assert isinstance(await client.recv(), Pingresp)


def test_nodelay_is_a_boolean() -> None:
    with pytest.raises(ValidationError, match="nodelay"):
        HubConfig.model_validate({"mqtt": {"listeners": [{"nodelay": "sometimes"}]}})


# --- TLS ---------------------------------------------------------------------------


class Pki:
    """A throwaway CA, the listener's certificate and a device certificate."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert_file = directory / "server.crt"
        self.key_file = directory / "server.key"
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
        self.key_file.write_bytes(server.private_key_pem.bytes())
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self.ca.cert_pem.bytes())
        self.device = self.ca.issue_cert("device-7", common_name="device-7")

    def listener(self, **extra: Any) -> dict[str, Any]:
        return {"port": 0, "cert_file": self.cert_file, "key_file": self.key_file, **extra}

    def client(self, *, with_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        if with_certificate:
            self.device.configure_cert(context)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def test_tls_listener_serves_mqtts(
    make_hub: HubFactory, pki: Pki, raw_tcp: RawFactory
) -> None:
    """A TLS listener speaks MQTT inside TLS; plain MQTT to it gets no CONNACK."""
    hub = await make_hub({"mqtt": {"listeners": [pki.listener()]}})
    client = await raw_tcp(listener(hub), pki.client())
    await client.send(Connect(protocol_level=5, client_id="tls"))
    assert isinstance(await client.recv(), Connack)
    plain = await raw_tcp(listener(hub))
    await plain.send(Connect(protocol_level=5, client_id="plain"))
    with pytest.raises((ConnectionError, AssertionError)):
        await plain.recv()


async def test_tls_subscriber_that_does_not_read_is_dropped(
    make_hub: HubFactory, pki: Pki, raw_tcp: RawFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The same bound over TLS (the TLS layer's buffer counts)."""
    limits = {"max_outbound_bytes": 600 * 1024}
    hub = await make_hub({"mqtt": {"listeners": [pki.listener()]}, "limits": limits})
    await _drop_a_subscriber_that_does_not_read(hub, raw_tcp, caplog, pki.client())


async def test_paho_over_tls(make_hub: HubFactory, pki: Pki, paho_peer: Any) -> None:
    """paho with tls_set connects to the mqtts listener."""
    hub = await make_hub({"mqtt": {"listeners": [pki.listener()]}})
    device: PahoPeer = paho_peer("tls-device", websockets=False)
    device.client.tls_set_context(pki.client())
    assert await device.connect(*listener(hub)) == (False, 0)


async def test_client_certificate_is_the_identity(
    make_hub: HubFactory, pki: Pki, raw_tcp: RawFactory
) -> None:
    """Mutual TLS: the certificate's common name logs the device in without a password."""
    config = {
        "auth": {"allow_anonymous": False},
        "mqtt": {"listeners": [pki.listener(ca_file=pki.ca_file)]},
    }
    hub = await make_hub(config)
    client = await raw_tcp(listener(hub), pki.client(with_certificate=True))
    await client.send(Connect(protocol_level=5, client_id="device-7"))
    connack = await client.recv()
    assert connack.return_code == 0
    [(session, _)] = hub.user_sessions("device-7")
    assert session.identity is not None
    assert session.identity.method == "tls"
    # Without a certificate the TLS handshake itself fails: no CONNACK comes.

    async def without_certificate() -> Any:
        anonymous = await raw_tcp(listener(hub), pki.client())
        await anonymous.send(Connect(protocol_level=5, client_id="x"))
        return await anonymous.recv()

    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
        await without_certificate()


def test_tls_needs_both_files() -> None:
    """A certificate without its key (or a CA without TLS) is a config error."""
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        HubConfig.model_validate({"mqtt": {"listeners": [{"cert_file": "a.pem"}]}})
    with pytest.raises(ValidationError, match="ca_file"):
        HubConfig.model_validate({"mqtt": {"listeners": [{"ca_file": "ca.pem"}]}})


async def test_missing_certificate_file_fails_at_start(tmp_path: Path) -> None:
    """A listener whose certificate file is missing stops the hub from starting."""
    from hub.tls import TlsError

    missing = tmp_path / "nope.pem"
    config = {"mqtt": {"listeners": [{"port": 0, "cert_file": missing, "key_file": missing}]}}
    with pytest.raises(TlsError, match="no such file"):
        Hub(HubConfig.model_validate(config))


async def test_publish_over_tcp_reaches_the_engine(
    make_hub: HubFactory, raw_tcp: RawFactory
) -> None:
    """Raw QoS 1 PUBLISH over TCP is acknowledged and published on the hub's engine."""
    hub = await make_hub(PLAIN)
    seen: list[str] = []

    @hub.on_publish("t/#")
    async def note(ctx: Any, publication: Any) -> None:
        seen.append(publication.channel)

    client = await raw_tcp(listener(hub))
    client.version = 4
    client.codec = PacketReader()
    await client.send(Connect(client_id="p"), Publish("t/1", b"x", 1, packet_id=1))
    assert isinstance(await client.recv(), Connack)
    await client.recv()
    assert seen == ["t/1"]


async def test_disconnect_is_read_before_the_socket_ends(
    make_hub: HubFactory, raw_tcp: RawFactory
) -> None:
    """The hub half-closes and keeps reading: a client still sending reads the DISCONNECT."""
    hub = await make_hub({"mqtt": {"listeners": [{"port": 0}], "max_inflight": 2}})
    client = await raw_tcp(listener(hub))
    await client.send(Connect(protocol_level=5, client_id="flood"))
    assert isinstance(await client.recv(), Connack)
    await client.send(*(Publish("t", b"x", 2, packet_id=n) for n in (1, 2, 3)))
    for packet_id in (1, 2):
        assert (await client.recv()).packet_id == packet_id
        await client.send(Pubrel(packet_id))  # after the hub closed: no reset for it
    rest = await client.recv_all()
    assert isinstance(rest[-1], Disconnect)
    assert rest[-1].reason_code == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


async def test_jwt_login_over_tcp_ends_at_the_token_expiry(
    make_hub: HubFactory, raw_tcp: RawFactory
) -> None:
    """As on WebSocket (close 3000), a TCP session logged in with a JWT ends at its exp:
    a 5.0 client reads DISCONNECT 0xA0 Maximum connect time first, a 3.1.1 client
    (no server DISCONNECT in 3.1.1) only the socket's end."""
    from tests.auth_helpers import hs_auth, mint

    hub = await make_hub({**PLAIN, "auth": {"allow_anonymous": True, **hs_auth()}})
    v5 = await raw_tcp(listener(hub))
    v4 = await raw_tcp(listener(hub))
    v4.version, v4.codec = 4, PacketReader()
    token = mint("ada", ttl=2).encode()
    await v5.send(Connect(protocol_level=5, client_id="exp5", username="ada", password=token))
    await v4.send(Connect(client_id="exp4", username="ada", password=token))
    for client in (v5, v4):
        connack = await client.recv()
        assert isinstance(connack, Connack)
        assert connack.return_code == 0
    opened = time.monotonic()
    # Nothing until the token has expired, not before.
    got5, got4 = await asyncio.gather(v5.recv_all(timeout=8), v4.recv_all(timeout=8))
    assert time.monotonic() - opened > 0.5
    assert got5 == [
        Disconnect(
            ReasonCode.MAXIMUM_CONNECT_TIME,
            Properties(reason_string="token expired: connect again with a new one"),
        )
    ]
    assert got4 == []
    for client in (v5, v4):
        client.writer.close()
    async with asyncio.timeout(5):
        while hub.session_ids:  # noqa: ASYNC110 - the listener detaches it, no event to await
            await asyncio.sleep(0.05)


async def test_reconnecting_over_tcp_after_a_flood_close_buys_no_new_burst(
    make_hub: HubFactory, raw_tcp: RawFactory
) -> None:
    """As on WebSocket: after a flood close, the address starts with an empty bucket,
    so its next connection is closed at its first refusal, not after a burst."""
    slow = {"message_rate": 0.001, "message_burst": 5}
    hub = await make_hub({**PLAIN, "limits": slow})
    flooder = await raw_tcp(listener(hub))
    await flooder.send(Connect(protocol_level=5, client_id="flood"))
    assert isinstance(await flooder.recv(), Connack)
    await flooder.send(*[Publish("t", b"x", 0) for _ in range(50)])
    await flooder.recv_all()  # closed for its rate
    again = await raw_tcp(listener(hub))
    # Four packets: within a full burst of five, over an empty bucket.
    await again.send(Connect(protocol_level=5, client_id="again"))
    await again.send(*[Publish("t", b"x", 0) for _ in range(3)])
    packets = await again.recv_all()  # closed (TimeoutError if it stays open)
    assert all(isinstance(p, Connack | Disconnect) for p in packets)


async def _flood_closed(address: tuple[str, int], client_id: str, publishes: int) -> None:
    """A 5.0 session from 127.0.0.1 closed for its message rate."""
    flooder = RawTcp(*await asyncio.open_connection(*address))
    await flooder.send(Connect(protocol_level=5, client_id=client_id))
    await flooder.send(*[Publish("t", b"x", 0) for _ in range(publishes)])
    packets = await flooder.recv_all()  # closed (TimeoutError if it stays open)
    flooder.writer.close()
    # A session connected before its flood hears DISCONNECT 0x96 before the end.
    rate = ReasonCode.MESSAGE_RATE_TOO_HIGH
    assert all(
        isinstance(p, Connack) or (isinstance(p, Disconnect) and p.reason_code == rate)
        for p in packets
    ), packets


async def test_a_repeat_flooder_over_tcp_is_held_then_refused_with_a_connack(
    make_hub: HubFactory,
) -> None:
    """As its WebSocket upgrades (held, then 429): an address closed for flooding twice
    within its penalty has its next sockets held unanswered until the penalty ends,
    then refused with CONNACK 0x9F Connection rate exceeded (5.0) or 3 Server
    unavailable (3.1.1); another address is served meanwhile."""
    hub = await make_hub({**PLAIN, "limits": {"message_rate": 0.001, "message_burst": 5}})
    address = listener(hub)
    await _flood_closed(address, "first", 50)
    await _flood_closed(address, "again", 3)  # under its penalty: a repeat offender
    started = time.monotonic()
    v5 = RawTcp(*await asyncio.open_connection(*address))
    v4 = RawTcp(*await asyncio.open_connection(*address))
    v4.version, v4.codec = 4, PacketReader()
    await v5.send(Connect(protocol_level=5, client_id="held5"))
    await v4.send(Connect(client_id="held4"))
    answers = asyncio.gather(v5.recv_all(timeout=15), v4.recv_all(timeout=15))
    await asyncio.sleep(1.0)
    assert not answers.done(), "a repeat flooder's CONNECT was answered at once"
    neighbour = RawTcp(*await asyncio.open_connection(*address, local_addr=("127.0.0.2", 0)))
    await neighbour.send(Connect(protocol_level=5, client_id="neighbour"))
    assert (await neighbour.recv()).return_code == ReasonCode.SUCCESS
    neighbour.writer.close()
    got5, got4 = await answers
    waited = time.monotonic() - started
    for client in (v5, v4):
        client.writer.close()
    assert got5 == [
        Connack(
            False,
            ReasonCode.CONNECTION_RATE_EXCEEDED,
            Properties(reason_string=FLOOD_REFUSED_TEXT),
        )
    ]
    assert got4 == [Connack(False, ConnackCode.SERVER_UNAVAILABLE)]
    assert 5 < waited < 12, f"answered after {waited:.1f}s, not at the penalty's end"
    assert hub.metrics.handshakes_refused.labels("flooding").value == 2


def test_connect_level_reads_the_protocol_level_from_a_connect_head() -> None:
    """3.1 (MQIsdp), 3.1.1 and 5.0 heads give their level; too short None; not a CONNECT 0."""
    v5 = encode(Connect(protocol_level=5, client_id="x"), 5)
    assert connect_level(v5) == 5
    assert connect_level(encode(Connect(client_id="x"))) == 4
    assert connect_level(encode(Connect(protocol_level=3, client_id="x"))) == 3
    assert connect_level(v5[:8]) is None
    assert connect_level(b"") is None
    assert connect_level(b"GET / HTTP/1.1\r\n") == 0
