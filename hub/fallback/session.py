"""A :class:`hub.handler.Session` whose messages travel over an HTTP stream.

The protocol handler cannot tell it from a WebSocket session: ``send`` queues
without blocking, ``close`` ends the stream with a code and a reason. What the
stream writer (hub.fallback.server) takes from the queue it writes as SSE
events or NDJSON lines; what the client POSTs arrives in the inbound queue.
Both queues are bounded: a full outbound queue closes the session as a slow
consumer (1008), a full inbound queue refuses the POST (429). The outbound
bound, its two closes and the hand-off of sends from worker threads are
:class:`~hub.session.BoundedSession`'s, as for a WebSocket.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from hub.close_codes import CloseCode
from hub.handler import Identity
from hub.session import BoundedSession

IDLE_REASON = "idle: no request within fallback.idle_timeout"


class StreamSession(BoundedSession):
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
        super().__init__(
            subprotocol,
            identity=identity,
            max_outbound_bytes=max_outbound_bytes,
            on_slow_consumer=on_slow_consumer,
            wire_name=None,
        )
        self.transport = transport
        # Proves a POST comes from the client that opened the stream.
        self.secret = secrets.token_urlsafe(18)
        self._remote_address = remote_address
        self._max_messages = max_outbound_messages
        self._max_inbound = max_inbound_messages
        self._outbound: deque[bytes] = deque()
        self._outbound_bytes = 0
        self._inbound: deque[str | bytes] = deque()
        self._wakeup = asyncio.Event()
        self._inbound_ready = asyncio.Event()
        # (code, reason) once closing; the writer flushes the queue, then ends.
        self.closing: tuple[int, str] | None = None
        self.last_request = time.monotonic()
        # The request headers [proxy.*] endpoints pass on to the backend.
        self.forwarded_headers: dict[str, str] = {}

    # -- the Session interface ---------------------------------------------------

    @property
    def remote_address(self) -> str:
        return self._remote_address

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        if self.closing is not None:
            return
        if threading.get_ident() != self._loop_thread:
            # Sync RPC methods run in threads: only the loop touches the queue.
            self._hand_to_loop(message, text)
            return
        data = message.encode() if isinstance(message, str) else message
        # Checked before queueing, as a WebSocket's buffer: what cannot fit is never kept.
        if (
            self._outbound_bytes + len(data) > self._max_outbound_bytes
            or len(self._outbound) >= self._max_messages
        ):
            self._over_budget(len(data))
            return
        self._outbound.append(data)
        self._outbound_bytes += len(data)
        self._wakeup.set()

    def outbound_buffer_size(self) -> int:
        return self._outbound_bytes

    def _given_up(self) -> bool:
        return self.closing is not None

    def _give_up(self, code: int, reason: str) -> None:
        # What is queued is dropped: the client recovers it on its next session.
        self._outbound.clear()
        self._outbound_bytes = 0
        self.closing = (code, reason)
        self._wakeup.set()
        self._inbound_ready.set()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
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

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """The POSTed messages, as a WebSocket connection yields its messages."""
        return self

    async def __anext__(self) -> str | bytes:
        message = await self.inbound()
        if message is None:
            raise StopAsyncIteration
        return message

    def idle_for(self) -> float:
        return time.monotonic() - self.last_request
