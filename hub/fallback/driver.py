"""Runs a protocol handler over a :class:`~hub.fallback.session.StreamSession`.

The same steps as a WebSocket connection's (hub.server): connect hooks, the
hub's session table (so the server API reaches it), token expiry, the message
rate, metrics, and disconnect hooks, in that order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from hub.auth import ExpiryWatch
from hub.errors import PermissionDenied
from hub.handler import ProtocolSpec
from hub.limits import MessageRateLimiter
from hub.rpc import CallContext
from hub.server import INTERNAL_ERROR_CODE, POLICY_VIOLATION, RATE_CLOSE_REASON

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.fallback.session import StreamSession
    from hub.session import WebSocketSession

logger = logging.getLogger(__name__)


async def drive(hub: Hub, spec: ProtocolSpec, session: StreamSession) -> None:
    """Serve the session until it closes; it is closed (with a code) when this returns."""
    metrics = hub.metrics
    handler = spec.factory(session, hub)
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
        await session.close(POLICY_VIOLATION, exc.message[:120])
        return
    # ExpiryWatch needs on_identity_change and close(), which this session has too.
    expiry = ExpiryWatch.attach(cast("WebSocketSession", session), handler, hub.refresher)
    limits = hub.config.limits
    limiter = MessageRateLimiter(limits.message_rate, limits.message_burst)
    handler.work = limiter
    rate_limited = metrics.messages_rate_limited.labels(spec.name)
    try:
        await handler.on_open()
        while (message := await session.inbound()) is not None:
            received.inc()
            if limiter.allow():
                await handler.on_message(message)
                continue
            rate_limited.inc()
            if limiter.flooding:
                # Refused message_burst times and still sending: not a burst.
                metrics.rate_limit_closes.labels(spec.name).inc()
                await session.close(POLICY_VIOLATION, RATE_CLOSE_REASON)
                break
            await handler.on_rate_limited(message)
    except Exception:
        metrics.handler_errors.labels(spec.name).inc()
        logger.exception("session %s (%s): handler failed", session.id, session.transport)
        await session.close(INTERNAL_ERROR_CODE, "internal error")
    finally:
        expiry.close()
        active.dec()
        hub.detach(session.id)
        closing = session.closing
        try:
            await handler.on_close(closing[0] if closing is not None else None)
            context.identity = session.identity
            await hub.hooks.run_disconnect(context)
        except Exception:
            logger.exception("session %s (%s): on_close failed", session.id, session.transport)
