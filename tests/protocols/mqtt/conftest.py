"""MQTT test peers: a connection pair without a network, paho-mqtt, raw WebSocket, Mosquitto.

- :class:`Pair` joins an :class:`MqttHandler` to an in-memory session that
  records frames, so protocol rules are tested packet by packet.
- :class:`PahoPeer` is paho-mqtt's own client over WebSocket (or TCP, for the
  broker side of the bridge), its callbacks handed to the test's loop.
- :class:`RawMqtt` is a plain websockets client that writes any bytes.
- ``mosquitto`` starts a private broker on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub import Hub, HubConfig, Identity
from protocols.mqtt.codec import Connack, Connect, Packet, PacketReader, Suback, Subscribe, encode
from protocols.mqtt.handler import MqttHandler
from tests.conftest import Connector
from tests.ports import free_port

# --- a connection pair without a network ----------------------------------------


class FakeSession:
    """A Session that records what the handler sends and how it closes."""

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.subprotocol = "mqtt"
        self.identity: Identity | None = None
        self.remote_address = "127.0.0.1:50000"
        self.frames: list[bytes | str] = []
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        if self.close_code is None:
            self.frames.append(message)

    def send_parts(self, parts: Sequence[bytes], *, text: bool = True) -> None:
        self.send(b"".join(parts), text=text)

    def outbound_room(self) -> int:
        return 1 << 30

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason


class Pair:
    """A client end (the test, speaking packets) joined to a server-side handler."""

    def __init__(self, hub: Hub, session_id: str) -> None:
        self.session = FakeSession(session_id)
        self.handler = MqttHandler(self.session, hub)
        self._reader = PacketReader()
        self._seen = 0
        self._held: list[Packet] = []
        # The protocol level spoken: set by connect(protocol_level=5).
        self.version = 4
        self.finished = False
        # What followed the last SUBACK (retained messages).
        self.after_suback: list[Packet] = []

    async def send(self, *packets: Packet) -> None:
        """Send packets in one frame, encoded in the pair's version."""
        await self.handler.on_message(b"".join(encode(p, self.version) for p in packets))

    async def send_bytes(self, data: bytes | str) -> None:
        await self.handler.on_message(data)

    async def connect(self, **fields: Any) -> Connack:
        """CONNECT with the given fields; return the CONNACK."""
        fields.setdefault("client_id", self.session.id)
        if fields.get("protocol_level") == 5:
            self.version = 5
            self._reader = PacketReader(version=5)
        await self.send(Connect(**fields))
        packets = self.received()
        assert packets, "no CONNACK"
        assert isinstance(packets[0], Connack), packets
        # What follows the CONNACK (a resumed session's messages) stays to be received.
        self._held = packets[1:]
        return packets[0]

    async def subscribe(self, *filters: tuple[str, int], packet_id: int = 1) -> tuple[int, ...]:
        """SUBSCRIBE; return the SUBACK's codes and keep what followed in ``after_suback``."""
        await self.send(Subscribe(packet_id, filters))
        packets = self.received()
        assert packets, "no SUBACK"
        assert isinstance(packets[0], Suback), packets
        assert packets[0].packet_id == packet_id
        self.after_suback = packets[1:]
        return packets[0].return_codes

    def received(self) -> list[Packet]:
        """Packets the server sent since the last call."""
        new = self.session.frames[self._seen :]
        self._seen = len(self.session.frames)
        out, self._held = self._held, []
        for frame in new:
            assert isinstance(frame, bytes), "MQTT frames are binary"
            out += self._reader.feed(frame)
        return out

    @property
    def closed(self) -> int | None:
        return self.session.close_code

    async def finish(self, code: int | None = None) -> None:
        """The network connection is gone: what the server does when its socket ends."""
        if not self.finished:
            self.finished = True
            await self.handler.on_close(code if code is not None else self.session.close_code)

    async def drop(self) -> None:
        """The client vanishes without DISCONNECT (1006: no close frame)."""
        await self.finish(1006)


PairFactory = Callable[..., Awaitable[Pair]]


@pytest.fixture
def mqtt_hub() -> Hub:
    """A hub that is not serving: handlers, engine and services work without a socket."""
    return Hub()


@pytest.fixture
async def pair(mqtt_hub: Hub) -> AsyncIterator[PairFactory]:
    """Open connection pairs on ``mqtt_hub`` (or a given hub); finished after the test."""
    pairs: list[Pair] = []

    async def open_pair(hub: Hub | None = None, session_id: str | None = None) -> Pair:
        new = Pair(hub or mqtt_hub, session_id or f"s{len(pairs) + 1}")
        await new.handler.on_open()
        pairs.append(new)
        return new

    yield open_pair
    for opened in pairs:
        await opened.finish(1000)


# --- a raw WebSocket client --------------------------------------------------------


class RawMqtt:
    """A websockets client that speaks MQTT through the codec, or writes any bytes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._reader = PacketReader()
        self._buffer: list[Packet] = []

    async def send(self, *packets: Packet) -> None:
        await self.ws.send(b"".join(encode(packet) for packet in packets))

    async def recv(self, timeout: float = 5.0) -> Packet:
        async with asyncio.timeout(timeout):
            while not self._buffer:
                frame = await self.ws.recv()
                assert isinstance(frame, bytes), "MQTT frames are binary"
                self._buffer += self._reader.feed(frame)
        return self._buffer.pop(0)

    async def connect(self, client_id: str, **fields: Any) -> Connack:
        await self.send(Connect(client_id=client_id, **fields))
        connack = await self.recv()
        assert isinstance(connack, Connack), connack
        return connack

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait for the server to close; (code, reason). Packets before it are dropped."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.ws.recv()
        await self.ws.wait_closed()
        received = self.ws.protocol.close_rcvd
        return (received.code, received.reason) if received is not None else (None, "")


RawFactory = Callable[..., Awaitable[RawMqtt]]


@pytest.fixture
def raw_mqtt(connect: Connector) -> RawFactory:
    """Open a RawMqtt to a hub, offering the ``mqtt`` subprotocol."""

    async def open_raw(hub: Hub, subprotocol: str = "mqtt") -> RawMqtt:
        return RawMqtt(await connect(hub, subprotocol, path="/mqtt", max_size=None))

    return open_raw


# --- paho-mqtt ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool


class PahoPeer:
    """paho-mqtt's client on its own thread; callbacks arrive on the test's event loop.

    ``connect()`` blocks in paho, so it runs in a worker thread (issue 4).
    """

    def __init__(
        self,
        client_id: str,
        *,
        websockets: bool = True,
        clean_session: bool = True,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session if protocol != MQTTProtocolVersion.MQTTv5 else None,
            protocol=protocol,
            transport="websockets" if websockets else "tcp",
            reconnect_on_failure=False,
        )
        self.messages: asyncio.Queue[Received] = asyncio.Queue()
        self.connack: asyncio.Future[tuple[bool, int]] = self.loop.create_future()
        self.disconnected = asyncio.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}

    def _soon(self, callback: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback, *args)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        def settle() -> None:
            if not self.connack.done():
                self.connack.set_result((bool(flags.session_present), int(reason.value)))

        self._soon(settle)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        received = Received(
            message.topic, bytes(message.payload), message.qos, bool(message.retain), message.dup
        )
        self._soon(self.messages.put_nowait, received)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._soon(self.disconnected.set)

    async def connect(self, host: str, port: int, *, keepalive: int = 60) -> tuple[bool, int]:
        """Connect and wait for the CONNACK: (session present, return code)."""
        await asyncio.to_thread(self.client.connect, host, port, keepalive)
        self.client.loop_start()
        async with asyncio.timeout(5):
            return await self.connack

    async def subscribe(self, topic: str, qos: int = 0) -> list[int]:
        """Subscribe and wait for the SUBACK's granted QoS codes."""
        result, mid = self.client.subscribe(topic, qos)
        assert result == 0
        assert mid is not None
        # The SUBACK may be in before this line: both sides meet in _subacks, on the loop.
        done = self._subacks.setdefault(mid, self.loop.create_future())
        async with asyncio.timeout(5):
            return await done

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        values = [int(code.value) for code in codes]

        def settle() -> None:
            self._subacks.setdefault(mid, self.loop.create_future()).set_result(values)

        self._soon(settle)

    async def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish and wait until paho is done with it (PUBACK / PUBCOMP for QoS 1 / 2)."""
        info = self.client.publish(topic, payload, qos, retain)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published()

    async def message(self, timeout: float = 5.0) -> Received:
        async with asyncio.timeout(timeout):
            return await self.messages.get()

    async def nothing_for(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.messages.get()
        except TimeoutError:
            return True
        return False

    async def disconnect(self) -> None:
        """A clean DISCONNECT."""
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def vanish(self) -> None:
        """Stop paho and close the TCP socket under it: no DISCONNECT, no close frame."""
        sock = self.client.socket()
        await asyncio.to_thread(self.client.loop_stop)
        assert sock is not None
        sock.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


PahoFactory = Callable[..., Awaitable[PahoPeer]]


@pytest.fixture
async def paho_peer() -> AsyncIterator[Callable[..., PahoPeer]]:
    """Make PahoPeer clients (not yet connected); stopped after the test."""
    peers: list[PahoPeer] = []

    def make(client_id: str, **options: Any) -> PahoPeer:
        peer = PahoPeer(client_id, **options)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


def hub_address(hub: Hub) -> tuple[str, int]:
    return hub.config.server.host, hub.port


def mqtt_config(**mqtt: Any) -> HubConfig:
    return HubConfig.model_validate({"mqtt": mqtt})


# --- a private Mosquitto ---------------------------------------------------------------


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        # Not a skip: the bridge must be tested against a real broker.
        raise RuntimeError("mosquitto is not installed: run scripts/bootstrap")
    return found


class Mosquitto:
    """A private broker on 127.0.0.1 and a free port; restartable on the same port.

    Persistence is on, so a subscriber's clean_session=0 session survives a
    restart (stopped with SIGTERM, Mosquitto saves its database).
    """

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Run as root, Mosquitto would switch to user "mosquitto", who
            # cannot write the persistence file here.
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            f"log_dest file {directory}/mosquitto.log\n"
            "log_type all\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._process = subprocess.Popen(  # noqa: ASYNC220 - returns at once, the broker runs on
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        async with asyncio.timeout(10):
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self._process.stderr!r}")
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    await writer.wait_closed()
                    return
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
        if process.stderr is not None:
            process.stderr.close()

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    """A private Mosquitto started for the test (never the machine's 1883)."""
    broker = Mosquitto(tmp_path)
    await broker.start()
    yield broker
    await broker.stop()
