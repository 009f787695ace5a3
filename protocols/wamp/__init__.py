"""WAMP v2 for wshub: the pure codec, and a router (broker + dealer) on the hub.

Pure: ``messages``, ``codec``, ``serializers``, ``uri``, ``payload``::

    serializer = serializer_for_subprotocol(session.wire_name)
    message = serializer.decode(frame)        # raises only WampProtocolError
    session.send(serializer.encode(reply))

The router: ``handler`` (one connection's state machine), ``router`` (the hub
service holding the realms), ``realm``, ``broker``, ``dealer``, ``auth``.
Negotiated as ``wamp.2.json`` (text frames), ``wamp.2.msgpack`` and
``wamp.2.cbor`` (binary frames): one protocol, the serializer picked by the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.handler import ProtocolSpec
from hub.lazy import lazy_exports
from protocols.wamp.codec import WampProtocolError, message_from_list, message_to_list
from protocols.wamp.config import SECTION, WampConfig, WampCraUser
from protocols.wamp.messages import (
    MAX_ID,
    Abort,
    Authenticate,
    Call,
    Cancel,
    Challenge,
    Error,
    Event,
    Goodbye,
    Hello,
    Interrupt,
    Invocation,
    Message,
    MessageType,
    Publish,
    Published,
    Register,
    Registered,
    Result,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
)
from protocols.wamp.serializers import (
    CBOR,
    JSON,
    MSGPACK,
    SUBPROTOCOLS,
    CborSerializer,
    JsonSerializer,
    MsgpackSerializer,
    Serializer,
    serializer_for_subprotocol,
)
from protocols.wamp.uri import (
    MATCH_POLICIES,
    InvalidUriError,
    channel_to_topic,
    is_reserved_uri,
    is_valid_uri,
    pattern_to_channel,
    topic_to_channel,
)

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.handler import Session, SubprotocolHandler
    from protocols.wamp.handler import WampHandler
    from protocols.wamp.router import WampRouter, wamp_router

# The router side loads with the first hub, so the codec imports alone.
_LAZY = {
    "WampHandler": "protocols.wamp.handler",
    "WampRouter": "protocols.wamp.router",
    "wamp_router": "protocols.wamp.router",
}


def setup(hub: Hub) -> None:
    """Register the router service: realms outlive the connections that join them."""
    from protocols.wamp.router import SERVICE_NAME, WampRouter

    hub.services.add(SERVICE_NAME, WampRouter(hub))


def _handler(session: Session, hub: Hub) -> SubprotocolHandler:
    from protocols.wamp.handler import WampHandler

    return WampHandler(session, hub)


__getattr__ = lazy_exports(__name__, _LAZY)


PROTOCOL = ProtocolSpec(
    name=JSON.subprotocol,
    aliases=(MSGPACK.subprotocol, CBOR.subprotocol),
    factory=_handler,
    logs_in=True,
    setup=setup,
    config=WampConfig,
    config_section=SECTION,
    handler_modules=("protocols.wamp.handler",),
)

__all__ = [
    "CBOR",
    "JSON",
    "MATCH_POLICIES",
    "MAX_ID",
    "MSGPACK",
    "PROTOCOL",
    "SUBPROTOCOLS",
    "Abort",
    "Authenticate",
    "Call",
    "Cancel",
    "CborSerializer",
    "Challenge",
    "Error",
    "Event",
    "Goodbye",
    "Hello",
    "Interrupt",
    "InvalidUriError",
    "Invocation",
    "JsonSerializer",
    "Message",
    "MessageType",
    "MsgpackSerializer",
    "Publish",
    "Published",
    "Register",
    "Registered",
    "Result",
    "Serializer",
    "Subscribe",
    "Subscribed",
    "Unregister",
    "Unregistered",
    "Unsubscribe",
    "Unsubscribed",
    "WampCraUser",
    "WampHandler",
    "WampProtocolError",
    "WampRouter",
    "Welcome",
    "Yield",
    "channel_to_topic",
    "is_reserved_uri",
    "is_valid_uri",
    "message_from_list",
    "message_to_list",
    "pattern_to_channel",
    "serializer_for_subprotocol",
    "setup",
    "topic_to_channel",
    "wamp_router",
]
