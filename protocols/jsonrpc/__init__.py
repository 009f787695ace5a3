"""JSON-RPC 2.0 over WebSocket (subprotocol ``jsonrpc.2.0``, alias ``jsonrpc``)."""

from hub.handler import ProtocolSpec
from protocols.jsonrpc.handler import ClientCallError, JsonRpcHandler

PROTOCOL = ProtocolSpec(name="jsonrpc.2.0", aliases=("jsonrpc",), factory=JsonRpcHandler)

__all__ = ["PROTOCOL", "ClientCallError", "JsonRpcHandler"]
