"""Serving one session: the steps every transport runs around a protocol handler.

A WebSocket connection (hub.server), a fallback HTTP stream (hub.fallback)
and an MQTT TCP/TLS socket (protocols.mqtt.listener) are served alike: the
handler is made, the session joins the hub's table (so the server API
reaches it) before the connect hooks run, its identity's expiry is watched,
each message is counted and held to the message rate, a session that floods
is closed (nothing more it sent is read, where its transport can stop
reading) and its address starts its next sessions with an empty bucket
(``RatePenalties``), a handler's failure closes its own session only, and
the disconnect hooks run last.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from time import perf_counter
from typing import TYPE_CHECKING

from hub.auth import ExpiryWatch
from hub.close_codes import CloseCode
from hub.errors import PermissionDenied
from hub.handler import ProtocolSpec, SubprotocolHandler
from hub.limits import MessageRateLimiter, OpeningPool, RatePenalties
from hub.rpc import CallContext
from hub.session import BoundedSession
from hub.turns import SESSION_STEP, WAITED, yield_behind_io

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

RATE_CLOSE_REASON = "message rate exceeded"


async def serve_session(
    hub: Hub,
    spec: ProtocolSpec,
    session: BoundedSession,
    messages: AsyncIterable[str | bytes],
    *,
    address: str,
    penalties: RatePenalties,
    pool: OpeningPool | None = None,
    closed: tuple[type[BaseException], ...],
    close_codes: Callable[[], tuple[int | None, int | None]],
    stop_reading: Callable[[], None] | None = None,
    bind: Callable[[SubprotocolHandler | None], None] | None = None,
) -> None:
    """Serve ``session`` until ``messages`` ends (or raises one of ``closed``).

    ``address`` is the client's key for the rate penalty and the ``pool`` of
    opening bursts its young connections share; ``close_codes``
    gives, once it ended, the code the hub sent (None: none) and the code the
    handler is told; ``stop_reading`` drops what a flooding client sent past
    the refusal that closes it (its close follows); ``bind`` gives the
    transport the handler (``SubprotocolHandler.last_words``), and None
    once the session ends (no cycle handler -> session -> transport -> handler).
    """
    metrics = hub.metrics
    handler = spec.factory(session, hub)
    if bind is not None:
        bind(handler)
    received = metrics.messages_received.labels(spec.name)
    active = metrics.connections_active.labels(spec.name)
    metrics.connections_opened.labels(spec.name).inc()
    active.inc()
    context = CallContext(hub, session.id, spec.name, session.identity)
    # Attached before the connect hooks, so they can find the session
    # (the backend's connect proxy reads its forwarded headers).
    hub.attach(session, handler)
    try:
        await hub.hooks.run_connect(context)
    except PermissionDenied as exc:
        hub.detach(session.id)
        active.dec()
        await session.close(CloseCode.POLICY_VIOLATION, exc.message[:120])
        return
    except Exception:
        # A hook's bug ends this session only, which must not stay in the table.
        hub.detach(session.id)
        active.dec()
        metrics.handler_errors.labels(spec.name).inc()
        logger.exception("session %s (%s): connect hook failed", session.id, spec.name)
        await session.close(CloseCode.INTERNAL_ERROR, "internal error")
        return
    # Closes the session with 3000 when its identity expires, unless refreshed.
    expiry = ExpiryWatch.attach(session, handler, hub.refresher)
    limits = hub.config.limits
    limiter = MessageRateLimiter(
        limits.message_rate,
        limits.message_burst,
        full=not penalties.active(address),
        opening=limits.opening_burst,
        pool=pool,
        key=address,
    )

    limiter.on_flood = _Flooded(penalties, address, stop_reading)
    handler.work = limiter
    allow = limiter.allow
    rate_limited = metrics.messages_rate_limited.labels(spec.name)
    # Handling time since the session last waited (hub.turns): messages
    # already received are handed out without a suspension in between. One
    # that came after a gap was waited for, the loop serving others
    # meanwhile: the count starts again, so a session answering one request
    # at a time never yields for nothing (a yield costs ~14 µs: taken every
    # 0.3 ms of 20 µs calls, ~4% of the RPC benchmark's CPU per call).
    spent = 0.0
    ended = 0.0
    try:
        await handler.on_open()
        async for message in messages:
            began = perf_counter()
            if began - ended > WAITED:
                spent = 0.0
            received.value += 1  # Counter.inc() without the call: every message
            if allow():
                await handler.on_message(message)
            else:
                rate_limited.inc()
                if limiter.flooding:
                    # Refused message_burst times and still sending: not a burst.
                    metrics.rate_limit_closes.labels(spec.name).inc()
                    logger.info(
                        "session %s (%s): closed for its message rate", session.id, spec.name
                    )
                    await handler.on_flooding()
                    await session.close(CloseCode.POLICY_VIOLATION, RATE_CLOSE_REASON)
                    break
                await handler.on_rate_limited(message)
            ended = perf_counter()
            spent += ended - began
            if spent >= SESSION_STEP:
                spent = 0.0
                await yield_behind_io()
                ended = perf_counter()
    except closed:
        pass
    except Exception:
        # One handler's bug closes its own session only.
        metrics.handler_errors.labels(spec.name).inc()
        logger.exception("session %s (%s): handler failed", session.id, spec.name)
        await session.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        if bind is not None:
            bind(None)
        expiry.close()
        active.dec()
        hub.detach(session.id)
        sent, code = close_codes()
        if sent == CloseCode.MESSAGE_TOO_BIG:
            metrics.oversize_closes.labels(spec.name).inc()
        try:
            await handler.on_close(code)
            # Protocol logins (MQTT CONNECT, WAMP auth) set the identity late.
            context.identity = session.identity
            await hub.hooks.run_disconnect(context)
        except Exception:
            logger.exception("session %s (%s): on_close failed", session.id, spec.name)


class _Flooded:
    """A session's flood callback: slotted, where a closure costs ~170 bytes more per
    connection (idle ones included)."""

    __slots__ = ("_address", "_penalties", "_stop_reading")

    def __init__(
        self, penalties: RatePenalties, address: str, stop_reading: Callable[[], None] | None
    ) -> None:
        self._penalties = penalties
        self._address = address
        self._stop_reading = stop_reading

    def __call__(self) -> None:
        # At the refusal that decides it, not once the close handshake is
        # over (up to close_timeout later): a client reconnecting at once
        # finds its penalty, and what it sent meanwhile is not inflated.
        self._penalties.punish(self._address)
        if self._stop_reading is not None:
            self._stop_reading()
