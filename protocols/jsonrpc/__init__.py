"""JSON-RPC 2.0 over WebSocket (subprotocol ``jsonrpc.2.0``, alias ``jsonrpc``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hub.handler import ProtocolSpec

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


PROTOCOL = ProtocolSpec(name="jsonrpc.2.0", aliases=("jsonrpc",), factory=_handler)


def __getattr__(name: str) -> Any:
    # The handler (and all it needs) loads with the first connection, so the
    # codec imports alone.
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PROTOCOL", "ClientCallError", "JsonRpcHandler"]
