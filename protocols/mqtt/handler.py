"""The hub as an MQTT 3.1.1 and 5.0 server for one connection (WebSocket, spec section 6).

A 5.0 CONNECT makes the connection 5.0 (``self.version``): packets are
encoded in 5.0 form, acknowledgements carry reason codes, the server ends a
connection with a DISCONNECT naming the reason, and the rules of ``v5``
(properties, topic aliases, subscription options) apply. The session
machinery is the same for both versions.

Packets may span WebSocket frames and a frame may hold several (PacketReader).
What each packet may do depends on the phase, in one table (``_ROUTES``):
anything the table does not list is a protocol error that closes the
connection. The packets' handlers live in one module per concern: ``connect``
(CONNECT and credentials), ``ingress`` (the client's PUBLISHes), ``egress``
(acknowledgements of ours), ``subscribe`` and ``lifecycle`` (DISCONNECT,
wills, shutdown); the connection's state, sending and closing are
``connection``'s. Channels, permissions and hooks are the hub's
ChannelService; the session (subscriptions, QoS flows, queue) is a
SessionState kept by the hub's SessionStore, so it can outlive this connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, Final

from hub.close_codes import CloseCode
from hub.turns import yield_behind_io
from protocols.mqtt import connect, egress, ingress, lifecycle, subscribe
from protocols.mqtt.codec import (
    Auth,
    Connack,
    ConnackCode,
    Connect,
    Disconnect,
    MqttProtocolError,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Unsubscribe,
)
from protocols.mqtt.connection import MqttConnection, Phase, logger
from protocols.mqtt.packets import PROTOCOL_ERROR as PROTOCOL_ERROR_REASON
from protocols.mqtt.packets import Properties
from protocols.mqtt.v5 import CONNACK_REASON

# A WebSocket message is parsed this many bytes at a time (a large packet's
# rest at once), between yields to the event loop.
READ_CHUNK: Final = 1024
# The loop is yielded to once this long (s) has passed since the last yield,
# checked between chunks and after every packet: yielding after every chunk,
# a 600 KB message of a few large PUBLISH took ~600 trips through the loop
# (~9 ms of scheduling) to parse; after every 32 packets, 32 PINGREQ answered
# were steps of 0.4 to 0.9 ms. Not longer: others' round trips wait behind
# such steps, several per loop iteration under attack (0.5 ms: store-growth
# probe p99 ~6 ms, 0.2 with FEED_STEP 0.3: ~4.8 ms; docs/security.md).
CHUNK_SLICE: Final = 0.0002


class MqttHandler(MqttConnection):
    """One connection: CONNECT, then packets routed by ``_ROUTES`` until it closes."""

    async def on_open(self) -> None:
        self.watch(self.config.connect_timeout, "no CONNECT in time")

    async def on_message(self, message: str | bytes) -> None:
        await self._receive(message, _ROUTES)

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Over the message rate: PUBLISH dropped, SUBSCRIBE refused (SUBACK 0x80).

        The bytes still go through the packet reader, since a packet may span
        frames and skipping a frame would cut the stream mid-packet. MQTT 3.1.1
        has no negative acknowledgement for PUBLISH: a refused QoS 1/2 PUBLISH
        is left unacknowledged, so the client sends it again (DUP) when it
        reconnects. Acknowledgements, PINGREQ, UNSUBSCRIBE and DISCONNECT are
        handled as usual: refusing them would stall flows or keepalives.
        """
        await self._receive(message, _RATE_LIMITED_ROUTES)

    async def _receive(self, message: str | bytes, routes: _RouteTable) -> None:
        if self.phase is Phase.CLOSED:
            return
        if isinstance(message, str):
            logger.info("MQTT session %s closed: protocol error: a text frame", self.session.id)
            await self.close(
                CloseCode.UNSUPPORTED_DATA, "MQTT over WebSocket takes binary frames only"
            )
            return
        try:
            # Every packet is a unit of work: the server took the message's
            # token for the first, each further one takes its own, and the loop
            # is yielded to the other connections now and then, so one message
            # packed with tiny packets neither escapes the rate nor stalls anyone.
            view = memoryview(message)
            size = len(view)
            reader = self.reader
            units = 0
            slice_ends = perf_counter() + CHUNK_SLICE
            start = 0
            while start < size:
                if start and perf_counter() >= slice_ends:
                    await yield_behind_io()
                    slice_ends = perf_counter() + CHUNK_SLICE
                # The rest of a large packet at once: its bytes are only
                # buffered, and a KiB at a time cost a feed each.
                end = start + max(READ_CHUNK, reader.missing)
                chunk = view[start:end]
                start = end
                for packet in reader.feed(chunk):
                    if self.closed:
                        return
                    units += 1
                    table = routes
                    if units > 1:
                        if perf_counter() >= slice_ends:
                            await yield_behind_io()
                            slice_ends = perf_counter() + CHUNK_SLICE
                            if self.closed:
                                return
                        if not self.work.take():
                            if self.work.flooding:
                                lifecycle.flooding(self)
                                await self.close(CloseCode.POLICY_VIOLATION, lifecycle.RATE_TEXT)
                                return
                            table = _RATE_LIMITED_ROUTES
                    self.last_seen = self.loop.time()
                    route = table[self.phase].get(type(packet))
                    if route is None:
                        raise MqttProtocolError(
                            _unexpected(packet, self.phase), reason_code=PROTOCOL_ERROR_REASON
                        )
                    await route(self, packet)
        except MqttProtocolError as exc:
            if self.reader.version == 5:
                await self._protocol_error5(exc)
                return
            if self.phase is Phase.CONNECTING and exc.connack_code is not None:
                # A well-formed CONNECT the server refuses (protocol level,
                # client id) is a refusal with its CONNACK code, as for
                # credentials: 1008, not a protocol error.
                await connect.refuse_connect(self, exc.connack_code, str(exc))
                return
            logger.info("MQTT session %s closed: protocol error: %s", self.session.id, exc)
            await self.close(CloseCode.PROTOCOL_ERROR, f"MQTT protocol error: {exc}")

    async def _protocol_error5(self, exc: MqttProtocolError) -> None:
        """4.13: CONNACK (during CONNECT) or DISCONNECT with the reason code, then close."""
        reason = f"MQTT protocol error: {exc}"
        logger.info("MQTT session %s closed: protocol error: %s", self.session.id, exc)
        self.version = 5
        code = exc.reason_code
        if self.phase is Phase.CONNECTING:
            if exc.connack_code is not None:
                code = CONNACK_REASON.get(ConnackCode(exc.connack_code), code)
            self.send_packet(Connack(False, code, Properties(reason_string=str(exc)[:200])))
            if exc.connack_code is not None:
                await self.close(CloseCode.POLICY_VIOLATION, f"connection refused: {exc}")
                return
        elif self.phase is Phase.CONNECTED:
            self.disconnect(code, str(exc))
        await self.close(CloseCode.PROTOCOL_ERROR, reason)

    async def on_close(self, code: int | None) -> None:
        await lifecycle.connection_lost(self)

    async def shutdown(self) -> None:
        await lifecycle.shutdown(self)

    async def on_shutdown(self) -> None:
        lifecycle.going_away(self)

    async def on_flooding(self) -> None:
        lifecycle.flooding(self)

    async def on_kicked(self, reason: str) -> None:
        lifecycle.kicked(self, reason)

    async def on_revoked(self, reason: str) -> None:
        lifecycle.revoked(self, reason)

    def last_words(self, code: int, reason: str) -> bytes | None:
        return lifecycle.last_words(self, code, reason)

    async def on_identity_expired(self) -> None:
        lifecycle.identity_expired(self)

    async def server_subscribe(self, channel: str) -> bool:
        return await subscribe.server_subscribe(self, channel)

    async def server_unsubscribe(self, channel: str) -> bool:
        return await subscribe.server_unsubscribe(self, channel)


async def _on_pingreq(conn: MqttConnection, packet: Pingreq) -> None:
    conn.send_packet(Pingresp())


def _unexpected(packet: Packet, phase: Phase) -> str:
    name = type(packet).__name__.upper()
    if isinstance(packet, Connect):
        return "a second CONNECT"
    if phase is Phase.CONNECTING:
        return f"{name} before CONNECT"
    return f"{name} is a server-to-client packet"


_Route = Callable[[MqttConnection, Any], Awaitable[None]]
_RouteTable = dict[Phase, dict[type, _Route]]

# The state machine: which packets each phase accepts, and what they do.
_ROUTES: Final[_RouteTable] = {
    Phase.CONNECTING: {Connect: connect.on_connect},
    Phase.CONNECTED: {
        Publish: ingress.on_publish,
        Puback: egress.on_puback,
        Pubrec: egress.on_pubrec,
        Pubrel: ingress.on_pubrel,
        Pubcomp: egress.on_pubcomp,
        Subscribe: subscribe.on_subscribe,
        Unsubscribe: subscribe.on_unsubscribe,
        Pingreq: _on_pingreq,
        Disconnect: lifecycle.on_disconnect,
        Auth: connect.on_auth,
    },
    Phase.CLOSED: {},
}

# The same, for a connection over its message rate (limits.message_rate).
_RATE_LIMITED_ROUTES: Final[_RouteTable] = {
    **_ROUTES,
    Phase.CONNECTED: {
        **_ROUTES[Phase.CONNECTED],
        Publish: ingress.refuse_publish,
        Subscribe: subscribe.refuse_subscribe,
    },
}
