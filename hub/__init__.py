"""wshub: one WebSocket port, many standard subprotocols.

The server's names are imported on first use, so a pure module (a protocol's
codec, ``hub.payloads``) imports without loading the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.lazy import lazy_exports

# Eager: ``hub.rpc`` is also a submodule, and the decorator must win the name.
from hub.rpc import CallContext, RpcError, rpc

if TYPE_CHECKING:
    from hub.app import Hub, SessionNotFound
    from hub.config import ConfigError, HubConfig, load_config
    from hub.errors import HubError, PermissionDenied
    from hub.handler import Identity, ProtocolSpec, Session, SubprotocolHandler

# Exported name -> the module defining it.
_EXPORTS = {
    "ConfigError": "hub.config",
    "Hub": "hub.app",
    "HubConfig": "hub.config",
    "HubError": "hub.errors",
    "Identity": "hub.handler",
    "PermissionDenied": "hub.errors",
    "ProtocolSpec": "hub.handler",
    "Session": "hub.handler",
    "SessionNotFound": "hub.app",
    "SubprotocolHandler": "hub.handler",
    "load_config": "hub.config",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "CallContext",
    "ConfigError",
    "Hub",
    "HubConfig",
    "HubError",
    "Identity",
    "PermissionDenied",
    "ProtocolSpec",
    "RpcError",
    "Session",
    "SessionNotFound",
    "SubprotocolHandler",
    "load_config",
    "rpc",
]
