"""Small asyncio clients of the four protocols, for the shutdown and soak tests.

Each is a plain websockets connection with a reader task, written from the
wire specs: JSON-RPC and channels.v1 as JSON objects, WAMP as lists through
orjson / msgpack / cbor2 (nothing of wshub), MQTT packets through the pure codec
(``protocols.mqtt.codec``, itself fuzzed and checked against paho and MQTT.js).
Hundreds fit in one process, unlike paho's thread per client. They can also
misbehave on purpose: ``stop_reading`` (a slow consumer) and ``abort`` (the TCP
connection dropped without a close frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Callable
from typing import Any, ClassVar, Self

import cbor2
import msgpack  # type: ignore[import-untyped]
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from protocols.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketReader,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Will,
    encode,
)


class Peer:
    """One WebSocket connection: a reader task feeding ``on_frame``, a writer queue."""

    subprotocol: ClassVar[str]

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        # Cleared by stop_reading(): websockets then stops reading the socket once
        # its own queue is full, and the kernel's buffers fill behind it.
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader = asyncio.create_task(self._read())
        self._writer = asyncio.create_task(self._write())

    @classmethod
    async def open(
        cls, url: str, *, subprotocol: str | None = None, recv_buffer: int | None = None
    ) -> Self:
        sock = None
        if recv_buffer is not None:
            # A small receive window: a peer that stops reading backs the server up soon.
            host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        ws = await ws_connect(
            url,
            sock=sock,
            subprotocols=[Subprotocol(subprotocol or cls.subprotocol)],
            open_timeout=20,
            close_timeout=2,
            ping_interval=None,
            max_size=None,
        )
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                await self._reading.wait()
                self.on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            # Nothing more can be sent either.
            self._writer.cancel()

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.send(await self._outbox.get())

    def on_frame(self, frame: str | bytes) -> None:
        raise NotImplementedError

    def send_frame(self, frame: str | bytes) -> None:
        """Queue a frame; frames leave in the order queued."""
        self._outbox.put_nowait(frame)

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """Wait until the connection is gone: the close code and reason the server sent."""
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
            await self.ws.wait_closed()
        self._writer.cancel()
        received = self.ws.protocol.close_rcvd
        return (received.code, received.reason) if received is not None else (None, "")

    @property
    def is_closed(self) -> bool:
        return self._reader.done()

    def stop_reading(self) -> None:
        """Read nothing more: the server's writes back up (a slow consumer)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def abort(self) -> None:
        """Drop the TCP connection: no close frame, no protocol goodbye."""
        self.ws.transport.abort()
        self._writer.cancel()

    async def close(self) -> None:
        """A clean WebSocket close (1000)."""
        self._writer.cancel()
        await self.ws.close()
        with contextlib.suppress(ConnectionClosed):
            await self._reader


class ReplyError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


class JsonRpcClient(Peer):
    """JSON-RPC 2.0: calls matched to replies by id; orphan replies and notifications kept."""

    subprotocol = "jsonrpc.2.0"

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # Replies no request waits for: errors with id null (parse errors).
        self.orphans: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.on_notification: Callable[[dict[str, Any]], None] = lambda message: None

    def on_frame(self, frame: str | bytes) -> None:
        value = orjson.loads(frame)
        for message in value if isinstance(value, list) else [value]:
            if "method" in message:
                self.on_notification(message)
                continue
            future = self._pending.pop(message.get("id"), None)
            if future is None:
                self.orphans.put_nowait(message)
            elif not future.done():
                future.set_result(message)

    def start(self, method: str, params: Any = None) -> asyncio.Future[dict[str, Any]]:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.send_frame(orjson.dumps(message).decode())
        return future

    def start_batch(self, calls: list[tuple[str, Any]]) -> list[asyncio.Future[dict[str, Any]]]:
        """Send requests as one batch; a future per reply, in request order."""
        loop = asyncio.get_running_loop()
        batch, futures = [], []
        for method, params in calls:
            request_id = next(self._ids)
            batch.append({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending[request_id] = future
            futures.append(future)
        self.send_frame(orjson.dumps(batch).decode())
        return futures

    async def request(self, method: str, params: Any = None, timeout: float = 20.0) -> Any:
        """The whole reply object."""
        async with asyncio.timeout(timeout):
            return await self.start(method, params)

    async def call(self, method: str, params: Any = None, timeout: float = 20.0) -> Any:
        """The result; ReplyError for an error reply."""
        reply = await self.request(method, params, timeout)
        if "error" in reply:
            raise ReplyError(reply["error"])
        return reply["result"]


class ChannelsClient(JsonRpcClient):
    """channels.v1: subscribe, publish, presence; ``on_notification`` sees messages."""

    subprotocol = "channels.v1"

    async def subscribe(self, channel: str, *, presence: bool = False) -> Any:
        params: dict[str, Any] = {"channel": channel}
        if presence:
            params.update(presence=True, info={"soak": True})
        return await self.call("subscribe", params)

    async def publish(self, channel: str, data: Any) -> Any:
        return await self.call("publish", {"channel": channel, "data": data})


class MqttClient(Peer):
    """MQTT 3.1.1: QoS 0/1/2 both ways, acknowledging what it receives."""

    subprotocol = "mqtt"

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self._reader_state = PacketReader()
        self._ids = itertools.count(1)
        self._acks: dict[tuple[type, int], asyncio.Future[Packet]] = {}
        self._connack: asyncio.Future[Connack] = asyncio.get_running_loop().create_future()
        self.on_publish: Callable[[Publish], None] = lambda packet: None
        # False: leave QoS 1/2 flows unacknowledged, as a client cut off mid-flow.
        self.acknowledge = True

    def send_packets(self, *packets: Packet) -> None:
        self.send_frame(b"".join(encode(packet) for packet in packets))

    def on_frame(self, frame: str | bytes) -> None:
        assert isinstance(frame, bytes), "MQTT frames are binary"
        for packet in self._reader_state.feed(frame):
            if isinstance(packet, Publish):
                if packet.qos and self.acknowledge:
                    assert packet.packet_id is not None
                    ack = Puback if packet.qos == 1 else Pubrec
                    self.send_packets(ack(packet.packet_id))
                self.on_publish(packet)
            elif isinstance(packet, Pubrel):
                if self.acknowledge:
                    self.send_packets(Pubcomp(packet.packet_id))
            elif isinstance(packet, Connack):
                if not self._connack.done():
                    self._connack.set_result(packet)
            elif isinstance(packet, Pubrec) and self.acknowledge:
                self.send_packets(Pubrel(packet.packet_id))
            if isinstance(packet, Suback | Puback | Pubrec | Pubcomp):
                future = self._acks.pop((type(packet), packet.packet_id), None)
                if future is not None and not future.done():
                    future.set_result(packet)

    def _next_id(self) -> int:
        return next(self._ids) % 0xFFFF + 1

    def _expect(self, kind: type, packet_id: int) -> asyncio.Future[Packet]:
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._acks[(kind, packet_id)] = future
        return future

    async def connect(
        self,
        client_id: str,
        *,
        clean_session: bool = True,
        will: Will | None = None,
        keepalive: int = 60,
        timeout: float = 20.0,
    ) -> Connack:
        self.send_packets(
            Connect(
                client_id=client_id, clean_session=clean_session, will=will, keepalive=keepalive
            )
        )
        async with asyncio.timeout(timeout):
            return await self._connack

    async def subscribe(self, topic_filter: str, qos: int = 0, timeout: float = 20.0) -> Suback:
        packet_id = self._next_id()
        waiting = self._expect(Suback, packet_id)
        self.send_packets(Subscribe(packet_id, ((topic_filter, qos),)))
        async with asyncio.timeout(timeout):
            suback = await waiting
        assert isinstance(suback, Suback)
        return suback

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, *, timeout: float = 20.0
    ) -> None:
        """Publish; for QoS 1 / 2 wait for PUBACK / PUBCOMP."""
        if qos == 0:
            self.send_packets(Publish(topic, payload))
            return
        packet_id = self._next_id()
        waiting = self._expect(Puback if qos == 1 else Pubcomp, packet_id)
        self.send_packets(Publish(topic, payload, qos, packet_id=packet_id))
        async with asyncio.timeout(timeout):
            await waiting

    def disconnect(self) -> None:
        self.send_packets(Disconnect())


# WAMP over any of its three serializations, with third-party libraries only.
_WAMP_CODECS: dict[str, tuple[Callable[[Any], str | bytes], Callable[[Any], Any]]] = {
    "json": (lambda items: orjson.dumps(items).decode(), orjson.loads),
    "msgpack": (lambda items: msgpack.packb(items, use_bin_type=True), msgpack.unpackb),
    "cbor": (cbor2.dumps, cbor2.loads),
}
WAMP_ROLES: dict[str, Any] = {
    "roles": {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}
}
HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, EVENT = 16, 17, 32, 33, 36
CALL, RESULT = 48, 50


class WampClient(Peer):
    """WAMP v2 basic profile, caller / publisher / subscriber roles."""

    subprotocol = "wamp.2.json"

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        serializer = (ws.subprotocol or "wamp.2.json").rsplit(".", 1)[1]
        self.serializer = serializer
        self._dumps, self._loads = _WAMP_CODECS[serializer]
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[list[Any]]] = {}
        self._welcome: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.session_id = 0
        # ABORT / GOODBYE the router sent, and ERRORs no request waits for.
        self.goodbyes: list[list[Any]] = []
        self.on_event: Callable[[list[Any]], None] = lambda event: None

    def send_message(self, *items: Any) -> None:
        self.send_frame(self._dumps(list(items)))

    def on_frame(self, frame: str | bytes) -> None:
        message = self._loads(frame)
        kind = message[0]
        if kind == EVENT:
            self.on_event(message)
        elif kind == WELCOME:
            self.session_id = message[1]
            self._welcome.set_result(message)
        elif kind in (ABORT, GOODBYE):
            self.goodbyes.append(message)
            if not self._welcome.done():
                self._welcome.set_result(message)
        elif kind in (PUBLISHED, SUBSCRIBED, RESULT):
            self._settle(message[1], message)
        elif kind == ERROR:
            self._settle(message[2], message)

    def _settle(self, request_id: int, message: list[Any]) -> None:
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(message)
        elif future is None:
            self.goodbyes.append(message)

    async def _request(self, timeout: float, kind: int, *items: Any) -> list[Any]:
        request_id = next(self._ids)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.send_message(kind, request_id, *items)
        async with asyncio.timeout(timeout):
            reply = await future
        if reply[0] == ERROR:
            raise ReplyError({"message": reply[4], "args": reply[5:]})
        return reply

    async def join(self, realm: str = "realm1", timeout: float = 20.0) -> list[Any]:
        """HELLO; the WELCOME (or ABORT) the router answered."""
        self.send_message(HELLO, realm, WAMP_ROLES)
        async with asyncio.timeout(timeout):
            return await self._welcome

    async def subscribe(self, topic: str, timeout: float = 20.0) -> int:
        reply = await self._request(timeout, SUBSCRIBE, {}, topic)
        return int(reply[2])

    async def publish(
        self, topic: str, args: list[Any], *, acknowledge: bool = True, timeout: float = 20.0
    ) -> None:
        if not acknowledge:
            self.send_message(PUBLISH, next(self._ids), {}, topic, args)
            return
        await self._request(timeout, PUBLISH, {"acknowledge": True}, topic, args)

    async def call(self, procedure: str, args: list[Any], timeout: float = 20.0) -> list[Any]:
        reply = await self._request(timeout, CALL, {}, procedure, args)
        return list(reply[3]) if len(reply) > 3 else []

    def leave(self) -> None:
        self.send_message(GOODBYE, {}, "wamp.close.close_realm")
