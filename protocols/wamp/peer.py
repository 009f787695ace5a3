"""How the broker and dealer see a joined WAMP session, and the router's id spaces."""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from hub.rpc import CallContext
from protocols.wamp.messages import MAX_ID, Message
from protocols.wamp.serializers import Serializer


def random_id() -> int:
    """A global-scope id (session, publication, subscription, registration): random in [1, 2^53]."""
    return secrets.randbelow(MAX_ID) + 1


class Peer(Protocol):
    """A joined session: what the broker and dealer need of a connection."""

    @property
    def session_id(self) -> int: ...

    @property
    def authid(self) -> str: ...

    @property
    def authrole(self) -> str: ...

    @property
    def serializer(self) -> Serializer: ...

    @property
    def context(self) -> CallContext:
        """The hub-side caller: ChannelService policy and RPC methods see the user."""

    def send(self, message: Message) -> bool:
        """Queue a message; False if this peer's serializer cannot carry its payload."""

    def send_frame(self, frame: bytes) -> None:
        """Queue a frame already encoded with this peer's serializer."""

    def supports(self, role: str, feature: str) -> bool:
        """Whether the peer announced ``roles.<role>.features.<feature>`` in HELLO."""

    def next_request_id(self) -> int:
        """The next session-scope id for a request the router sends (INVOCATION)."""

    def details(self) -> dict[str, Any]:
        """What ``wamp.session.on_join`` and ``wamp.session.get`` tell about it."""

    async def kill(self, reason: str, message: str | None) -> None:
        """End the session for another's ``wamp.session.kill*``: GOODBYE with ``reason``
        (and ``message``), the realm left, the transport closed after."""
