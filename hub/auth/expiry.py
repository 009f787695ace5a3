"""Close a session when its identity expires, unless it was refreshed in time.

One timer per session, re-armed whenever the session's identity changes (a
protocol login, a refresh, a WAMP GOODBYE back to the handshake identity).
When it fires, the protocol handler may say goodbye in its own terms
(:meth:`~hub.handler.SubprotocolHandler.on_identity_expired`), then the
connection is closed with 3000, IANA's "Unauthorized" WebSocket close code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from hub.close_codes import CloseCode
from hub.handler import Identity, SubprotocolHandler
from hub.session import BoundedSession

logger = logging.getLogger(__name__)

TOKEN_EXPIRED_REASON: Final = "token expired"

# Asked when an identity expires (the backend's [proxy.refresh]): a new identity
# with a later expiry keeps the session, None closes it.
Refresher = Callable[[BoundedSession], Awaitable[Identity | None]]


class ExpiryWatch:
    """Closes one session once its identity's ``expires_at`` has passed."""

    # One per connection: no instance dict.
    __slots__ = ("_closed", "_handler", "_loop", "_refresh", "_session", "_task", "_timer")

    def __init__(
        self,
        session: BoundedSession,
        handler: SubprotocolHandler,
        refresh: Refresher | None = None,
    ) -> None:
        self._session = session
        self._handler = handler
        self._refresh = refresh
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def attach(
        cls,
        session: BoundedSession,
        handler: SubprotocolHandler,
        refresh: Refresher | None = None,
    ) -> ExpiryWatch:
        """Watch the session's identity now and whenever it changes."""
        watch = cls(session, handler, refresh)
        session.on_identity_change = watch.watch
        watch.watch(session.identity)
        return watch

    def watch(self, identity: Identity | None) -> None:
        """Follow ``identity`` from now on (None, or no expiry: nothing to close)."""
        self._cancel_timer()
        expires_at = identity.expires_at if identity is not None else None
        if expires_at is None or self._closed or self._task is not None:
            return
        # expires_at is Unix time, as in the token; the loop's clock is not.
        delay = max(0.0, expires_at - time.time())
        self._timer = self._loop.call_later(delay, self._fire)

    def close(self) -> None:
        """The session ended: no timer may fire for it any more."""
        self._closed = True
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._task = self._loop.create_task(self._expire())

    async def _expire(self) -> None:
        if self._refresh is not None and await self._refreshed():
            return
        try:
            await self._handler.on_identity_expired()
        except Exception:
            logger.exception("session %s: goodbye before expiry failed", self._session.id)
        await self._session.close(CloseCode.TOKEN_EXPIRED, TOKEN_EXPIRED_REASON)

    async def _refreshed(self) -> bool:
        """Whether the refresher extended the session (the timer then re-arms)."""
        assert self._refresh is not None
        try:
            identity = await self._refresh(self._session)
        except Exception:
            logger.exception("session %s: refresh failed", self._session.id)
            identity = None
        expires_at = identity.expires_at if identity is not None else None
        if (
            identity is None
            or self._closed
            or (expires_at is not None and expires_at <= time.time())
        ):
            return False
        self._task = None
        self._session.identity = identity
        return True
