"""``channels.v1``: pub/sub, presence, history and recovery over JSON-RPC 2.0."""

from hub.handler import ProtocolSpec
from protocols.channels.handler import ChannelsHandler

PROTOCOL = ProtocolSpec(name="channels.v1", factory=ChannelsHandler)

__all__ = ["PROTOCOL", "ChannelsHandler"]
