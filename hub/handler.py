"""The interfaces between the hub's core and a wire protocol.

A protocol package provides a :class:`ProtocolSpec`: its wire names and a factory
that builds one :class:`SubprotocolHandler` per connection. The handler sees the
connection only as a :class:`Session` and the rest of the hub only through the
:class:`~hub.app.Hub` facade; it never touches the WebSocket library.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hub.close_codes import CloseCode
from hub.limits import UNMETERED, WorkMeter

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.config import HubConfig
    from hub.config_section import Section


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end, as established at the handshake or by protocol login."""

    user_id: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    # How it was established: "jwt", "basic", "hook", "password" (MQTT or WAMP
    # ticket against the user table), "wampcra"...; informative only.
    method: str = ""
    # Unix time after which the session must refresh or be closed (JWT "exp").
    expires_at: float | None = None


class Session(Protocol):
    """The connection as a protocol handler sees it."""

    @property
    def id(self) -> str: ...

    @property
    def subprotocol(self) -> str: ...

    @property
    def wire_name(self) -> str:
        """The name negotiated on the wire: ``subprotocol`` or one of its aliases.

        WAMP picks its serializer from it (``wamp.2.msgpack`` is an alias).
        """

    @property
    def identity(self) -> Identity | None: ...

    @identity.setter
    def identity(self, identity: Identity | None) -> None:
        """Protocol-level logins (MQTT CONNECT, WAMP HELLO) establish identity late."""

    @property
    def remote_address(self) -> str: ...

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        """Queue a message without blocking; a consumer too slow to drain is closed."""

    def send_parts(self, parts: Sequence[bytes], *, text: bool = True) -> None:
        """Send the concatenation of ``parts`` as one message, as ``send`` does.

        A large one may leave in fragments cut from the parts, never joined
        whole in one loop step (a JSON-RPC batch reply).
        """

    def outbound_room(self) -> int:
        """Bytes the connection's outbound budget still holds (limits.max_outbound_bytes).

        Handlers size replies to it before building them: what does not fit
        would close the connection as a slow consumer.
        """

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None: ...


class SubprotocolHandler(ABC):
    """The per-connection state machine of one wire protocol."""

    # Rate tokens for the protocol units a message holds beyond its first; the
    # server sets the connection's own (docs/security.md, "Work in protocol units").
    work: WorkMeter = UNMETERED

    async def on_open(self) -> None:
        """Called once the WebSocket handshake succeeded, before any message."""

    @abstractmethod
    async def on_message(self, message: str | bytes) -> None:
        """Called for every complete WebSocket message, in order."""

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Called instead of :meth:`on_message` for a message over the connection's rate.

        Answer with the protocol's error where it has one, so the client learns
        why; the default drops the message. Keep it cheap: a flooding client
        gets here up to ``limits.message_burst`` times before it is closed.
        """

    async def on_close(self, code: int | None) -> None:
        """Called once when the connection is gone; release everything here."""

    async def on_identity_expired(self) -> None:
        """The session's identity expired (and was not refreshed).

        The hub closes the connection with 3000 "token expired" right after;
        a protocol with its own goodbye (WAMP GOODBYE) says it here.
        """

    async def on_flooding(self) -> None:
        """The session is closed for its message rate (``limits.message_rate``) right after.

        Called by the server before its close (1008 on WebSocket), and by a
        handler that finds the flood among a message's protocol units: a
        protocol with a goodbye naming the reason (MQTT 5.0 DISCONNECT 0x96)
        says it here. Send only; the caller closes.
        """

    def last_words(self, code: int, reason: str) -> bytes | None:
        """A binary message to send before the close frame of a connection the WebSocket
        layer fails with ``code`` itself (1009: a frame over the inbound limit, refused
        at its header, before any handler sees it), or None (the default).

        For a protocol whose goodbye names the reason (MQTT 5.0 DISCONNECT 0x95).
        Synchronous, called from the frame parser: return the bytes, do not send.
        """
        return None

    async def on_shutdown(self) -> None:
        """The hub is stopping: every session is closed (1001 on WebSocket) right after.

        A protocol with a goodbye naming the reason (MQTT 5.0 DISCONNECT 0x8B)
        says it here. Send only; the hub closes the sessions together.
        """

    async def on_kicked(self, reason: str) -> None:
        """The server closes the session on request (server API ``disconnect``, with
        its code and ``reason``) right after.

        A protocol with a goodbye naming the reason (MQTT 5.0 DISCONNECT 0x98
        Administrative action, WAMP GOODBYE wamp.close.killed) says it here.
        Send only; the caller closes.
        """

    async def on_revoked(self, reason: str) -> None:
        """The session's credentials were withdrawn (server API ``revoke``): the server
        closes it with 3003 and ``reason`` right after, on every node.

        A protocol with a goodbye naming the reason (MQTT 5.0 DISCONNECT 0x87 Not
        authorized, WAMP GOODBYE wamp.close.killed) says it here. Send only; the
        caller closes.
        """

    async def server_subscribe(self, channel: str) -> bool:
        """Subscribe the client to ``channel`` for the server (server API ``subscribe``).

        No policy or hook applies: the server decided. False when the protocol
        cannot carry a subscription the client did not ask for (the default).
        """
        return False

    async def server_unsubscribe(self, channel: str) -> bool:
        """End a subscription for the server; False when the protocol cannot."""
        return False

    def notify(self, method: str, params: Any = None) -> None:
        """Push a server-to-client notification, where the protocol has them."""
        raise NotImplementedError(f"{type(self).__name__} has no server notifications")

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call a method the client exposes, where the protocol allows it."""
        raise NotImplementedError(f"{type(self).__name__} cannot call the client")


HandlerFactory = Callable[[Session, "Hub"], SubprotocolHandler]


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """What the registry knows about one wire protocol."""

    name: str
    factory: HandlerFactory
    aliases: tuple[str, ...] = ()
    # MQTT clients answer WebSocket pings badly (paho sends unmasked pongs) and
    # have their own keepalive, so a protocol may opt out of WebSocket pings.
    websocket_pings: bool = True
    # The protocol logs in after the handshake (MQTT CONNECT, WAMP HELLO): with
    # auth.allow_anonymous off, a handshake without credentials is still
    # accepted and the protocol refuses an anonymous login in its own terms.
    logs_in: bool = False
    # Called once by every Hub serving the protocol, to register its services
    # (hub.services) such as MQTT's session store and broker bridge.
    setup: Callable[[Hub], None] | None = None
    # The model of the protocol's own table of the config file, and the table's
    # name ([mqtt]): the hub validates it like its own sections (unknown keys,
    # types, file and key path in the error); the handler reads it with
    # hub.config.section(model).
    config: type[Section] | None = None
    config_section: str | None = None
    # RPC method names the protocol answers itself (channels.v1's subscribe...):
    # on a hub serving it, no RPC method may take them.
    reserved_methods: tuple[str, ...] = ()
    # Modules the factory imports on its first call (the handler's), imported
    # when a hub serving the protocol starts instead: at a first connection
    # the import (10-30 ms) stalls it and every other one. Not at the hub's
    # construction, so `wshub --check` and a codec's import stay light.
    handler_modules: tuple[str, ...] = ()
    # The protocol's own bound on an inbound message, from the config, where
    # its messages are known to be small (channels.v1): see message_size.
    max_message_size: Callable[[HubConfig], int] | None = None

    def __post_init__(self) -> None:
        if (self.config is None) != (self.config_section is None):
            raise ValueError(f"{self.name}: config and config_section go together")

    @property
    def wire_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def message_size(self, named: Mapping[str, int], config: HubConfig) -> int:
        """Largest inbound message: the size ``named`` for it (limits.max_message_size,
        by canonical name), else its own bound for ``config``, never above
        websocket.max_message_size."""
        size = named.get(self.name)
        if size is not None:
            return size
        websocket = config.websocket.max_message_size
        if self.max_message_size is not None:
            return min(self.max_message_size(config), websocket)
        return websocket
