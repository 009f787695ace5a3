"""``channels.v1``: pub/sub, presence, history and recovery over JSON-RPC 2.0."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.handler import ProtocolSpec
from hub.lazy import lazy_exports

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.handler import Session, SubprotocolHandler
    from protocols.channels.handler import ChannelsHandler

_LAZY = {"ChannelsHandler": "protocols.channels.handler"}


def _handler(session: Session, hub: Hub) -> SubprotocolHandler:
    from protocols.channels.handler import ChannelsHandler

    return ChannelsHandler(session, hub)


# The methods channels.v1 answers itself (ChannelsHandler's built-ins): on a hub
# serving it, no RPC method may take these names. "refresh" is rpc.refresh
# under channels.v1's plain names.
METHODS = (
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "refresh",
)

# Inbound messages: 128 KiB unless limits.max_message_size names channels.v1.
# Requests are small (Centrifugo's client limit is 64 KB); the largest is a
# publish of max_payload_bytes (64 KiB) in its envelope. Larger ones close
# 1009 as they inflate: a 900 KB presence info is not parsed to be refused.
MAX_MESSAGE_SIZE = 128 * 1024

PROTOCOL = ProtocolSpec(
    name="channels.v1",
    factory=_handler,
    reserved_methods=METHODS,
    handler_modules=("protocols.channels.handler",),
    max_message_size=MAX_MESSAGE_SIZE,
)


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["PROTOCOL", "ChannelsHandler"]
