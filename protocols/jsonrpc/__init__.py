"""JSON-RPC 2.0 over WebSocket (subprotocol ``jsonrpc.2.0``, alias ``jsonrpc``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.handler import ProtocolSpec
from hub.lazy import lazy_exports

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.handler import Session, SubprotocolHandler
    from protocols.jsonrpc.handler import ClientCallError, JsonRpcHandler

_LAZY = {
    "ClientCallError": "protocols.jsonrpc.handler",
    "JsonRpcHandler": "protocols.jsonrpc.handler",
}


def _handler(session: Session, hub: Hub) -> SubprotocolHandler:
    from protocols.jsonrpc.handler import JsonRpcHandler

    return JsonRpcHandler(session, hub)


PROTOCOL = ProtocolSpec(
    name="jsonrpc.2.0",
    aliases=("jsonrpc",),
    factory=_handler,
    handler_modules=("protocols.jsonrpc.handler",),
)


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["PROTOCOL", "ClientCallError", "JsonRpcHandler"]
