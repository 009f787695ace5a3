"""wshub: one WebSocket port, many standard subprotocols."""

from hub.app import Hub, SessionNotFound
from hub.config import ConfigError, HubConfig, load_config
from hub.errors import PermissionDenied
from hub.handler import Identity, ProtocolSpec, Session, SubprotocolHandler
from hub.rpc import CallContext, RpcError, rpc

__all__ = [
    "CallContext",
    "ConfigError",
    "Hub",
    "HubConfig",
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
