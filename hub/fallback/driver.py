"""Runs a protocol handler over a :class:`~hub.fallback.session.StreamSession`.

The steps are a WebSocket connection's (:func:`hub.serving.serve_session`):
connect hooks, the hub's session table, token expiry, the message rate and
its penalty for the address, metrics, and disconnect hooks, in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.handler import ProtocolSpec
from hub.limits import address_key
from hub.serving import serve_session

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.fallback.session import StreamSession


async def drive(hub: Hub, spec: ProtocolSpec, session: StreamSession, host: str) -> None:
    """Serve the session until it closes; it is closed (with a code) when this returns.

    ``host`` is the client's address as the connection limits count it.
    """

    def close_codes() -> tuple[int | None, int | None]:
        # The stream's close is the hub's own: sent and told are the same code.
        code = session.closing[0] if session.closing is not None else None
        return code, code

    await serve_session(
        hub,
        spec,
        session,
        session,
        address=address_key(host),
        penalties=hub.server.penalties,
        pool=hub.server.opening_pool,
        closed=(),
        close_codes=close_codes,
    )
