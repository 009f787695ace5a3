"""``channels.v1``: pub/sub, presence, history and recovery over JSON-RPC 2.0."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.handler import ProtocolSpec
from hub.lazy import lazy_exports

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.config import HubConfig
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

# Inbound messages: 128 KiB unless limits.max_message_size names channels.v1,
# or twice the largest max_payload_bytes when a namespace allows more.
# Requests are small (Centrifugo's client limit is 64 KB); the largest is a
# publish of max_payload_bytes (64 KiB) in its envelope. Larger ones close
# 1009 as they inflate: a 900 KB presence info is not parsed to be refused.
MAX_MESSAGE_SIZE = 128 * 1024


def max_message_size(config: HubConfig) -> int:
    """What a publish of the largest payload any namespace admits needs, at least 128 KiB."""
    channels = config.channels
    largest = max(
        [channels.default.max_payload_bytes]
        + [namespace.max_payload_bytes for namespace in channels.namespaces.values()]
    )
    # Twice: the envelope, and JSON escapes the payload's own measure may not count.
    return max(MAX_MESSAGE_SIZE, 2 * largest)


PROTOCOL = ProtocolSpec(
    name="channels.v1",
    factory=_handler,
    reserved_methods=METHODS,
    handler_modules=("protocols.channels.handler",),
    max_message_size=max_message_size,
)


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["PROTOCOL", "ChannelsHandler"]
