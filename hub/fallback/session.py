"""A :class:`hub.handler.Session` whose messages travel over an HTTP stream.

The protocol handler cannot tell it from a WebSocket session: ``send`` queues
without blocking, ``close`` ends the stream with a code and a reason. What the
stream writer (hub.fallback.server) takes from the queue it writes as SSE
events or NDJSON lines; what the client POSTs arrives in the inbound queue.
Both queues are bounded: a full outbound queue closes the session as a slow
consumer (1008), a full inbound queue refuses the POST (429).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from hub.handler import Identity
from hub.session import (
    OVERSIZE_CODE,
    OVERSIZE_REASON,
    SLOW_CONSUMER_CODE,
    SLOW_CONSUMER_REASON,
    new_session_id,
)

logger = logging.getLogger(__name__)

# Close code of a stream that broke without a close (as WebSocket's 1006).
ABNORMAL_CLOSURE = 1006
GOING_AWAY = 1001
IDLE_CODE = 1001
IDLE_REASON = "idle: no request within fallback.idle_timeout"


class StreamSession:
    """One client's session on a fallback transport; ``transport`` names which."""

    def __init__(
        self,
        subprotocol: str,
        transport: str,
        *,
        identity: Identity | None,
        remote_address: str,
        max_outbound_bytes: int,
        max_outbound_messages: int,
        max_inbound_messages: int,
        on_slow_consumer: Callable[[], None] | None = None,
    ) -> None:
        self.id = new_session_id()
        self.subprotocol = subprotocol
        self.wire_name = subprotocol
        self.transport = transport
        # Proves a POST comes from the client that opened the stream.
        self.secret = secrets.token_urlsafe(18)
        self._identity = identity
        self._remote_address = remote_address
        self._max_bytes = max_outbound_bytes
        self._max_messages = max_outbound_messages
        self._max_inbound = max_inbound_messages
        self._on_slow_consumer = on_slow_consumer
        self._outbound: deque[bytes] = deque()
        self._outbound_bytes = 0
        self._inbound: deque[str | bytes] = deque()
        self._wakeup = asyncio.Event()
        self._inbound_ready = asyncio.Event()
        # (code, reason) once closing; the writer flushes the queue, then ends.
        self.closing: tuple[int, str] | None = None
        self.last_request = time.monotonic()
        self.on_identity_change: Callable[[Identity | None], None] | None = None
        # The request headers [proxy.*] endpoints pass on to the backend.
        self.forwarded_headers: dict[str, str] = {}
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    # -- the Session interface ---------------------------------------------------

    @property
    def identity(self) -> Identity | None:
        return self._identity

    @identity.setter
    def identity(self, identity: Identity | None) -> None:
        self._identity = identity
        if self.on_identity_change is not None:
            self.on_identity_change(identity)

    @property
    def remote_address(self) -> str:
        return self._remote_address

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        if self.closing is not None:
            return
        if threading.get_ident() != self._loop_thread:
            # Sync RPC methods run in threads: only the loop touches the queue.
            self._loop.call_soon_threadsafe(functools.partial(self.send, message, text=text))
            return
        data = message.encode() if isinstance(message, str) else message
        # Checked before queueing, as a WebSocket's buffer: what cannot fit is never kept.
        if len(data) > self._max_bytes:
            logger.warning(
                "session %s (%s): closing, a message of %d bytes exceeds "
                "limits.max_outbound_bytes (%d)",
                self.id,
                self.transport,
                len(data),
                self._max_bytes,
            )
            self._give_up(OVERSIZE_CODE, OVERSIZE_REASON)
            return
        if (
            self._outbound_bytes + len(data) > self._max_bytes
            or len(self._outbound) >= self._max_messages
        ):
            logger.warning(
                "session %s (%s): closing slow consumer, %d messages (%d bytes) waiting",
                self.id,
                self.transport,
                len(self._outbound),
                self._outbound_bytes,
            )
            if self._on_slow_consumer is not None:
                self._on_slow_consumer()
            self._give_up(SLOW_CONSUMER_CODE, SLOW_CONSUMER_REASON)
            return
        self._outbound.append(data)
        self._outbound_bytes += len(data)
        self._wakeup.set()

    def outbound_room(self) -> int:
        """Bytes that may still be queued before the session counts as a slow consumer."""
        return self._max_bytes - self._outbound_bytes

    def _give_up(self, code: int, reason: str) -> None:
        # What is queued is dropped: the client recovers it on its next session.
        self._outbound.clear()
        self._outbound_bytes = 0
        self.closing = (code, reason)
        self._wakeup.set()
        self._inbound_ready.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closing is None:
            self.closing = (code, reason)
        self._wakeup.set()
        self._inbound_ready.set()

    # -- the stream writer's side ----------------------------------------------

    def owns(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), self.secret.encode())

    async def outbound(self, timeout: float) -> list[bytes]:
        """What is queued now, waiting up to ``timeout`` for something ([]: nothing)."""
        if not self._outbound and self.closing is None:
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        self._wakeup.clear()
        taken = list(self._outbound)
        self._outbound.clear()
        self._outbound_bytes = 0
        return taken

    # -- the client's requests ---------------------------------------------------

    def receive(self, messages: list[str]) -> bool:
        """Queue POSTed messages for the handler; False when the inbound queue is full."""
        self.last_request = time.monotonic()
        if len(self._inbound) + len(messages) > self._max_inbound:
            return False
        self._inbound.extend(messages)
        if messages:
            self._inbound_ready.set()
        return True

    async def inbound(self) -> str | bytes | None:
        """The next POSTed message, in order; None once the session is closing."""
        while not self._inbound:
            if self.closing is not None:
                return None
            self._inbound_ready.clear()
            await self._inbound_ready.wait()
        if self.closing is not None:
            return None
        return self._inbound.popleft()

    def idle_for(self) -> float:
        return time.monotonic() - self.last_request
