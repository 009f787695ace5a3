"""A WebSocket connection seen as a :class:`hub.handler.Session`.

:class:`BoundedSession` is what a session is on every transport (the
fallback's HTTP streams too): an id, the identity, sends handed to the loop
from worker threads, and the outbound budget (``limits.max_outbound_bytes``)
with its two ways to close, slow consumer and oversize message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from threading import get_ident
from types import MappingProxyType

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from hub.close_codes import CloseCode
from hub.handler import Identity
from hub.shared_frames import shared_frames
from hub.turns import yield_behind_io

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
# Read once: an enum member looked up on its class costs a descriptor call.
_OPEN = State.OPEN

logger = logging.getLogger(__name__)

# The reason for a consumer that cannot keep up, closed with 1008 (policy
# violation, understood by every client); the reason says which policy.
SLOW_CONSUMER_REASON = "slow consumer: outbound buffer full"
# A message that would not fit the outbound budget even with nothing waiting:
# 1009 (message too big), whichever direction; the reason names the setting.
OVERSIZE_REASON = "message larger than the outbound budget (limits.max_outbound_bytes)"


# Frames held in one loop iteration are written together up to this many
# bytes; a session sent more writes them at once (one syscall per 64 KiB).
FLUSH_BYTES = 65536

# On a compressed connection a message this large goes out in fragments of
# FRAGMENT_BYTES, one per loop iteration: deflating a 4 MiB batch reply in one
# call held the loop ~20 ms (issue 13). Messages sent meanwhile wait behind it.
# A message sent in parts (send_parts: a batch reply) goes so on any
# connection: joining and framing 4 MiB held the loop ~4 ms.
FRAGMENTED_FROM = 256 * 1024
FRAGMENT_BYTES = 64 * 1024
# Fragments of one message at most (fewer than the 4,096 websockets readers
# accept by default): a larger budget makes larger fragments.
MAX_FRAGMENTS = 1024


def wire_size(message: str | bytes) -> int:
    """Bytes ``message`` takes on the wire before compression (text is sent as UTF-8)."""
    # isascii() reads a flag of the string: the encode is paid only by non-ASCII text,
    # whose characters would otherwise count as one byte each (up to 4x under the budget).
    if isinstance(message, bytes) or message.isascii():
        return len(message)
    return len(message.encode())


def new_session_id() -> str:
    return secrets.token_urlsafe(12)


def _slices(parts: Sequence[bytes], size: int) -> Iterator[bytes]:
    """The concatenation of ``parts`` in pieces of ``size`` bytes (the last one shorter),
    each copied once: a part is cut, small ones are joined."""
    pending: list[memoryview] = []
    filled = 0
    for part in parts:
        view = memoryview(part)
        start = 0
        while start < len(view):
            taken = view[start : start + size - filled]
            pending.append(taken)
            filled += len(taken)
            start += len(taken)
            if filled == size:
                yield b"".join(pending)
                pending = []
                filled = 0
    if pending:
        yield b"".join(pending)


class _Coalescer:
    """Counts the loop's iterations for the sessions, and writes what they held.

    A session's first frame of an iteration is written at once (a reply, or
    one publication, costs what it cost without coalescing); the frames that
    follow it in the same iteration are held and written together when the
    next iteration starts. A session sent twenty publications in one iteration
    makes two writes instead of twenty. One callback per iteration serves
    every session of the loop.
    """

    __slots__ = ("_loop", "_scheduled", "_waiting", "iteration")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: list[WebSocketSession] = []
        self._scheduled = False
        # Advanced by the callback at the start of each iteration that follows a send.
        self.iteration = 0

    def wrote(self) -> None:
        """A session wrote in this iteration: the next one must be told apart."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._next)

    def hold(self, session: WebSocketSession) -> None:
        self.wrote()
        self._waiting.append(session)

    def _next(self) -> None:
        self._scheduled = False
        self.iteration += 1
        waiting, self._waiting = self._waiting, []
        for session in waiting:
            session.flush()


_coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Coalescer] = (
    weakref.WeakKeyDictionary()
)


def _coalescer(loop: asyncio.AbstractEventLoop) -> _Coalescer:
    found = _coalescers.get(loop)
    if found is None:
        found = _coalescers[loop] = _Coalescer(loop)
    return found


class BoundedSession:
    """The transport-neutral part of a session; a subclass holds the outbound queue.

    A subclass's ``send`` calls :meth:`_hand_to_loop` off the loop's thread, and
    :meth:`_over_budget` when a message does not fit what waits; it supplies
    :meth:`outbound_buffer_size` and :meth:`_give_up` (close with a code and
    reason, dropping what waits).
    """

    __slots__ = (
        "_identity",
        "_loop",
        "_loop_thread",
        "_max_outbound_bytes",
        "_on_slow_consumer",
        "id",
        "on_identity_change",
        "subprotocol",
        "wire_name",
    )

    def __init__(
        self,
        subprotocol: str,
        *,
        identity: Identity | None,
        max_outbound_bytes: int,
        on_slow_consumer: Callable[[], None] | None,
        wire_name: str | None,
    ) -> None:
        self.id = new_session_id()
        self.subprotocol = subprotocol
        self.wire_name = wire_name or subprotocol
        self._identity = identity
        self._max_outbound_bytes = max_outbound_bytes
        self._on_slow_consumer = on_slow_consumer
        # Told of every new identity (the server re-arms the expiry timer).
        self.on_identity_change: Callable[[Identity | None], None] | None = None
        # Sync RPC methods run in worker threads and may notify: their sends are
        # handed to the loop, the only thread allowed to touch the transport.
        self._loop = asyncio.get_running_loop()
        self._loop_thread = get_ident()

    @property
    def identity(self) -> Identity | None:
        return self._identity

    @identity.setter
    def identity(self, identity: Identity | None) -> None:
        # Protocol-level logins (MQTT CONNECT, WAMP HELLO) establish identity late.
        self._identity = identity
        if self.on_identity_change is not None:
            self.on_identity_change(identity)

    @property
    def remote_address(self) -> str:
        raise NotImplementedError

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        raise NotImplementedError

    def send_parts(self, parts: Sequence[bytes], *, text: bool = True) -> None:
        """Send the concatenation of ``parts`` as one message (here: joined)."""
        self.send(b"".join(parts), text=text)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        raise NotImplementedError

    def outbound_buffer_size(self) -> int:
        """Bytes waiting to reach the client."""
        raise NotImplementedError

    def outbound_room(self) -> int:
        """Bytes that may still be sent before the session counts as a slow consumer."""
        return self._max_outbound_bytes - self.outbound_buffer_size()

    def _hand_to_loop(self, message: str | bytes, text: bool | None) -> None:
        """A send from another thread (``get_ident() != self._loop_thread``), made on
        the loop's."""
        self._loop.call_soon_threadsafe(functools.partial(self.send, message, text=text))

    def _over_budget(self, size: int) -> None:
        """A ``size``-byte message does not fit with what waits: close the session."""
        if size > self._max_outbound_bytes:
            # It would not fit an empty queue either: the client is not slow,
            # the message is too big for the budget; say so.
            self._close_oversize(size)
        else:
            self._close_slow_consumer()

    def _given_up(self) -> bool:
        """Whether the session is already closing for its budget (or otherwise)."""
        raise NotImplementedError

    def _close_slow_consumer(self) -> None:
        if self._given_up():
            return
        logger.warning(
            "session %s (%s): closing slow consumer, %d bytes waiting",
            self.id,
            self.remote_address,
            self.outbound_buffer_size(),
        )
        if self._on_slow_consumer is not None:
            self._on_slow_consumer()
        self._give_up(CloseCode.POLICY_VIOLATION, SLOW_CONSUMER_REASON)

    def _close_oversize(self, size: int) -> None:
        if self._given_up():
            return
        # What was sent before fitted: it goes before the close.
        self._flush_before_close()
        if self._given_up():
            return
        logger.warning(
            "session %s (%s): closing, a message of %d bytes exceeds "
            "limits.max_outbound_bytes (%d)",
            self.id,
            self.remote_address,
            size,
            self._max_outbound_bytes,
        )
        self._give_up(CloseCode.MESSAGE_TOO_BIG, OVERSIZE_REASON)

    def _flush_before_close(self) -> None:
        """Hand over what waits, where the transport can before a close."""

    def _give_up(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason``, dropping what still waits."""
        raise NotImplementedError


class WebSocketSession(BoundedSession):
    """Writes go to the transport's buffer, which is the bounded queue.

    ``send`` never awaits: a publication fanned out to thousands of sessions costs
    one write each; the frames that follow a session's first in one loop
    iteration leave together, in one write at the start of the next
    (``flush``). A session whose frames waiting plus buffer grow past
    ``max_outbound_bytes`` is closed as a slow consumer instead of being
    allowed to grow memory.
    """

    __slots__ = (
        "_behind",
        "_close_task",
        "_coalescer",
        "_connection",
        "_fragmenting",
        "_framed_bytes",
        "_frames",
        "_held_bytes",
        "_remote_address",
        "_wrote_in",
        "forwarded_headers",
    )

    def __init__(
        self,
        connection: ServerConnection,
        subprotocol: str,
        *,
        identity: Identity | None = None,
        max_outbound_bytes: int,
        on_slow_consumer: Callable[[], None] | None = None,
        wire_name: str | None = None,
        remote_address: str | None = None,
    ) -> None:
        super().__init__(
            subprotocol,
            identity=identity,
            max_outbound_bytes=max_outbound_bytes,
            on_slow_consumer=on_slow_consumer,
            wire_name=wire_name,
        )
        self._connection = connection
        # Given by the server when a trusted proxy named the client (hub.proxies).
        self._remote_address = remote_address
        self._close_task: asyncio.Task[None] | None = None
        # The handshake headers [proxy.*] pass on to the backend (hub.api.proxy).
        self.forwarded_headers: Mapping[str, str] = _NO_HEADERS
        # Frames of this loop iteration, not yet written, and their size
        # (bounded with the transport's buffer by max_outbound_bytes).
        self._frames: list[bytes] | None = None
        self._framed_bytes = 0
        self._coalescer = _coalescer(self._loop)
        # The coalescer's iteration in which this session last wrote directly.
        self._wrote_in = -1
        # While a large message goes out in fragments: the messages sent since,
        # in order (None otherwise; a list: send_parts' parts); with what is
        # left of it, their bytes.
        self._behind: list[tuple[str | bytes | Sequence[bytes], bool | None]] | None = None
        self._held_bytes = 0
        self._fragmenting: asyncio.Task[None] | None = None

    @property
    def remote_address(self) -> str:
        if self._remote_address is not None:
            return self._remote_address
        address = self._connection.remote_address
        if isinstance(address, tuple) and len(address) >= 2:
            return f"{address[0]}:{address[1]}"
        return str(address)

    @property
    def request_path(self) -> str:
        request = self._connection.request
        return request.path if request is not None else "/"

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        # Once closing as a slow consumer, drop: the close task has not run yet
        # and the connection still looks open to a burst of sends.
        if self._close_task is not None:
            return
        if get_ident() != self._loop_thread:
            self._hand_to_loop(message, text)
            return
        connection = self._connection
        protocol = connection.protocol
        if protocol.state is not _OPEN:
            return
        transport = connection.transport
        waiting = transport.get_write_buffer_size() + self._framed_bytes + self._held_bytes
        # Checked before writing: a message that cannot fit is never buffered
        # (compressed, it might: the bound is on what the hub was asked to send).
        size = wire_size(message)
        if waiting + size > self._max_outbound_bytes:
            self._over_budget(size)
            return
        if self._behind is not None:
            self._behind.append((message, text))
            self._held_bytes += size
            return
        if protocol.extensions or protocol.debug or connection.send_in_progress is not None:
            # websockets writes these itself: what waits goes first, in order.
            self.flush()
            if protocol.extensions and size >= FRAGMENTED_FROM:
                data = message.encode() if isinstance(message, str) else message
                as_text = isinstance(message, str) if text is None else text
                self._send_fragmented((data,), len(data), as_text)
                return
            broadcast((connection,), message, text=text)
            if transport.get_write_buffer_size() > self._max_outbound_bytes:
                self._close_slow_consumer()
            return
        # No compression context of its own: the frame is the same bytes as
        # for every other subscriber of this fan-out (hub.shared_frames).
        frame = shared_frames.frame(message, text)
        frames = self._frames
        if frames is None:
            coalescer = self._coalescer
            if self._wrote_in != coalescer.iteration:
                # The first frame of this iteration: written now, as ever.
                self._wrote_in = coalescer.iteration
                coalescer.wrote()
                transport.write(frame)
                # The buffer grew by at most the frame: only near the budget
                # is it worth asking (one call less per delivery).
                if (
                    waiting + len(frame) > self._max_outbound_bytes
                    and transport.get_write_buffer_size() > self._max_outbound_bytes
                ):
                    self._close_slow_consumer()
                return
            self._frames = [frame]
            coalescer.hold(self)
        else:
            frames.append(frame)
        self._framed_bytes += len(frame)
        if self._framed_bytes >= FLUSH_BYTES:
            # Enough for one write: to the kernel now, as without coalescing.
            self.flush()

    def send_parts(self, parts: Sequence[bytes], *, text: bool = True) -> None:
        """Send the concatenation of ``parts`` as one message, never joined whole if large.

        A JSON-RPC batch reply is its elements' encoded replies: from
        FRAGMENTED_FROM bytes on they leave as fragments cut from the parts,
        one per loop iteration, compressed or not. Joined and framed, a 4 MiB
        reply was two copies of it in one loop step (~4 ms, issue 13). The
        whole is checked against the outbound budget before any is written.
        """
        size = sum(map(len, parts))
        if size < FRAGMENTED_FROM or get_ident() != self._loop_thread:
            self.send(b"".join(parts), text=text)
            return
        if self._close_task is not None or self._connection.protocol.state is not _OPEN:
            return
        if self.outbound_buffer_size() + size > self._max_outbound_bytes:
            self._over_budget(size)
            return
        if self._behind is not None:
            self._behind.append((parts, text))
            self._held_bytes += size
            return
        self.flush()  # what was sent before goes first
        self._send_fragmented(parts, size, text)

    def _send_fragmented(self, parts: Sequence[bytes], size: int, text: bool) -> None:
        """Send ``parts`` as one message, a fragment per loop iteration; later sends
        wait behind it."""
        self._behind = []
        self._held_bytes = size
        self._fragmenting = self._loop.create_task(self._fragments(parts, size, text))

    async def _fragments(self, parts: Sequence[bytes], total: int, text: bool) -> None:
        size = max(FRAGMENT_BYTES, -(-total // MAX_FRAGMENTS))

        async def fragments() -> AsyncIterator[bytes]:
            for index, fragment in enumerate(_slices(parts, size)):
                if index:
                    await yield_behind_io()  # the loop serves others between fragments
                self._held_bytes -= len(fragment)
                yield fragment

        try:
            await self._connection.send(fragments(), text=text)
        except ConnectionClosed:
            pass  # closing: what waits behind is not sent either
        finally:
            behind, self._behind = self._behind or [], None
            self._held_bytes = 0
        for message, message_text in behind:
            if isinstance(message, (str, bytes)):
                self.send(message, text=message_text)
            else:
                self.send_parts(message, text=bool(message_text))

    def flush(self) -> None:
        """Write the frames waiting for this loop iteration to end, in one write."""
        frames = self._frames
        if frames is None:
            return
        self._frames = None
        self._framed_bytes = 0
        connection = self._connection
        if self._close_task is not None or connection.protocol.state is not _OPEN:
            return
        transport = connection.transport
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        if transport.get_write_buffer_size() > self._max_outbound_bytes:
            self._close_slow_consumer()

    def outbound_buffer_size(self) -> int:
        transport = self._connection.transport
        return transport.get_write_buffer_size() + self._framed_bytes + self._held_bytes

    def outbound_room(self) -> int:
        # BoundedSession's, one call shorter: asked before every RPC reply.
        transport = self._connection.transport
        waiting = transport.get_write_buffer_size() + self._framed_bytes + self._held_bytes
        return self._max_outbound_bytes - waiting

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        # What was sent before closing is written before the close frame.
        self.flush()
        await self._connection.close(code, reason)

    def _given_up(self) -> bool:
        return self._close_task is not None

    def _flush_before_close(self) -> None:
        self.flush()

    def _give_up(self, code: int, reason: str) -> None:
        # Never written: the connection is being dropped.
        self._frames = None
        self._framed_bytes = 0
        self._close_task = asyncio.get_running_loop().create_task(self._close_stalled(code, reason))

    async def _close_stalled(self, code: int, reason: str) -> None:
        connection = self._connection
        # close() first waits for the buffer to drain, which a peer that stopped
        # reading never lets happen: give it close_timeout, then drop the TCP
        # connection so the buffer is freed.
        try:
            async with asyncio.timeout(connection.close_timeout):
                await connection.close(code, reason)
        except TimeoutError:
            connection.transport.abort()
