"""One WAMP connection: the session state machine over the realm's broker and dealer.

What each phase accepts is one table (``_ROUTES``); anything it does not list is
a protocol violation: ``ABORT wamp.error.protocol_violation``, the session's
subscriptions and registrations dropped, the transport closed. The serializer
follows the negotiated wire name (``wamp.2.json``, ``wamp.2.msgpack``,
``wamp.2.cbor``) and a frame of the wrong type is a violation too.

Messages are handled one at a time, in order; only calls to the hub's Python
methods run on their own (:mod:`protocols.wamp.hubcalls`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from hub.auth import TOKEN_EXPIRED_REASON
from hub.close_codes import CloseCode
from hub.handler import Session, SubprotocolHandler
from hub.rpc import CallContext
from protocols.wamp.auth import TOKEN_EXPIRED, Pending, Welcomed
from protocols.wamp.codec import WampProtocolError
from protocols.wamp.errors import (
    GOODBYE_AND_OUT,
    KILLED,
    NETWORK_FAILURE,
    NO_SUCH_REALM,
    PROTOCOL_VIOLATION,
    SYSTEM_SHUTDOWN,
    ProtocolViolation,
    WampAbort,
    WampError,
)
from protocols.wamp.messages import (
    Abort,
    Authenticate,
    Call,
    Cancel,
    Error,
    Goodbye,
    Hello,
    Message,
    MessageType,
    Publish,
    Published,
    Register,
    Registered,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
)
from protocols.wamp.realm import Realm
from protocols.wamp.router import wamp_router
from protocols.wamp.serializers import JSON, Serializer, serializer_for_subprotocol

if TYPE_CHECKING:
    from hub.app import Hub

# WebSocket close codes after an ABORT.

# What the router implements, announced in WELCOME (docs/wamp.md).
ROUTER_ROLES: Final = {
    "broker": {
        "features": {
            "pattern_based_subscription": True,
            "publisher_exclusion": True,
            "publisher_identification": True,
            "subscriber_blackwhite_listing": True,
            "session_meta_api": True,
        }
    },
    "dealer": {
        "features": {
            "call_canceling": True,
            "call_timeout": True,
            "caller_identification": True,
            "pattern_based_registration": True,
            "progressive_call_results": True,
            "session_meta_api": True,
        }
    },
}

_ROUTER_TO_CLIENT: Final = frozenset(
    {
        MessageType.WELCOME,
        MessageType.CHALLENGE,
        MessageType.PUBLISHED,
        MessageType.SUBSCRIBED,
        MessageType.UNSUBSCRIBED,
        MessageType.EVENT,
        MessageType.RESULT,
        MessageType.REGISTERED,
        MessageType.UNREGISTERED,
        MessageType.INVOCATION,
        MessageType.INTERRUPT,
    }
)


_Request = Subscribe | Unsubscribe | Publish | Register | Unregister | Call

# The ERROR of a request over the connection's message rate (docs/wamp.md).
RATE_LIMITED: Final = "wshub.error.rate_limited"


class Phase(Enum):
    HELLO = "before HELLO"
    AUTHENTICATING = "during authentication"
    ESTABLISHED = "in a session"
    CLOSED = "after close"


def close_reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


class WampHandler(SubprotocolHandler):
    """A WAMP router endpoint; also the :class:`~protocols.wamp.peer.Peer` of its session."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session
        self.hub = hub
        self.router = wamp_router(hub)
        try:
            self._serializer: Serializer = serializer_for_subprotocol(session.wire_name)
        except KeyError:  # the default subprotocol for a client that offered none
            self._serializer = JSON
        self._text = not self._serializer.is_binary
        self.context = CallContext(hub, session.id, session.subprotocol, session.identity)
        # Who the WebSocket handshake identified: the session's identity again
        # after a GOODBYE, and who an anonymous HELLO joins as.
        self._handshake_identity = session.identity
        self.phase = Phase.HELLO
        self.realm: Realm | None = None
        self._session_id = 0
        self._who: Welcomed | None = None
        self._pending: Pending | None = None
        self._pending_realm: Realm | None = None
        self._roles: Mapping[str, Any] = {}
        self._request_ids = itertools.count(1)
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    # -- the Peer the broker and dealer see ------------------------------------

    @property
    def session_id(self) -> int:
        return self._session_id

    @property
    def authid(self) -> str:
        return self._who.authid if self._who is not None else ""

    @property
    def authrole(self) -> str:
        return self._who.authrole if self._who is not None else ""

    @property
    def serializer(self) -> Serializer:
        return self._serializer

    def send(self, message: Message) -> bool:
        try:
            frame = self._serializer.encode_bytes(message)
        except WampProtocolError:
            return False
        self.session.send(frame, text=self._text)
        return True

    def send_frame(self, frame: bytes) -> None:
        self.session.send(frame, text=self._text)

    def supports(self, role: str, feature: str) -> bool:
        announced = self._roles.get(role)
        features = announced.get("features") if isinstance(announced, dict) else None
        return isinstance(features, dict) and features.get(feature) is True

    def next_request_id(self) -> int:
        return next(self._request_ids)

    def details(self) -> dict[str, Any]:
        who = self._who
        return {
            "session": self._session_id,
            "authid": self.authid,
            "authrole": self.authrole,
            "authmethod": who.authmethod if who is not None else "",
            "authprovider": who.authprovider if who is not None else "",
            "transport": {
                "type": "websocket",
                "protocol": self.session.wire_name,
                "peer": self.session.remote_address,
            },
        }

    # -- connection events --------------------------------------------------------

    async def on_open(self) -> None:
        self._watch("no HELLO in time")

    @property
    def _max_depth(self) -> int:
        return self.hub.config.limits.max_json_depth

    async def on_message(self, message: str | bytes) -> None:
        if self.phase is Phase.CLOSED:
            return
        try:
            decoded = self._serializer.decode(message, max_depth=self._max_depth)
            route = _ROUTES[self.phase].get(type(decoded))
            if route is None:
                raise ProtocolViolation(_unexpected(decoded, self.phase))
            await route(self, decoded)
        except WampProtocolError as exc:
            await self._abort(PROTOCOL_VIOLATION, str(exc))
        except WampAbort as exc:
            await self._abort(exc.reason, exc.message)

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Over the message rate: requests get ``ERROR wshub.error.rate_limited``.

        An unacknowledged PUBLISH is dropped, as it is on any failure. Answers
        to the router (YIELD, ERROR), CANCEL and session ends (GOODBYE, ABORT)
        are still handled: refusing them would strand other sessions' calls or
        keep a leaving session alive. Before WELCOME everything is dropped; the
        HELLO timeout ends a client that never gets through.
        """
        if self.phase is not Phase.ESTABLISHED:
            return
        try:
            decoded = self._serializer.decode(message, max_depth=self._max_depth)
        except WampProtocolError:
            return
        if isinstance(decoded, Yield | Error | Cancel | Goodbye | Abort):
            await self.on_message(message)
        elif isinstance(decoded, Publish) and decoded.options.get("acknowledge") is not True:
            return
        elif isinstance(decoded, Subscribe | Unsubscribe | Publish | Register | Unregister | Call):
            self._error(decoded, WampError(RATE_LIMITED, "message rate exceeded"))

    async def on_close(self, code: int | None) -> None:
        self.phase = Phase.CLOSED
        self._cancel_timer()
        await self._end_session()

    async def on_identity_expired(self) -> None:
        # The hub closes the transport with 3000 next.
        await self._last_goodbye(TOKEN_EXPIRED, TOKEN_EXPIRED_REASON)

    async def on_shutdown(self) -> None:
        # Hub.stop closes the transport with 1001 next.
        await self._last_goodbye(SYSTEM_SHUTDOWN, "server shutting down")

    async def on_kicked(self, reason: str) -> None:
        # The server API's disconnect closes the transport next.
        await self._last_goodbye(KILLED, reason)

    async def on_revoked(self, reason: str) -> None:
        # The server API's revoke closes the transport with 3003 next. GOODBYE, not
        # ABORT: ABORT aborts a session's opening, this one is established. And
        # wamp.close.killed, the spec's word for a session ended by the router's
        # authority: wamp.error.authentication_failed means a technical failure
        # of authentication ("fail secure"), authentication_denied an answer to
        # credentials being presented; the message says what happened.
        await self._last_goodbye(KILLED, reason)

    async def kill(self, reason: str, message: str | None) -> None:
        """Another session's ``wamp.session.kill*``: GOODBYE with its reason (and
        message, when given), then the transport closes (1000) without waiting for
        the client's GOODBYE; its session has left the realm already."""
        if self.phase is not Phase.ESTABLISHED:
            return
        self.send(Goodbye({} if message is None else {"message": message}, reason))
        self.phase = Phase.CLOSED
        self._cancel_timer()
        await self._end_session()
        # Its own task: the killer's CALL is answered without waiting for a close handshake.
        coro = self.session.close(CloseCode.NORMAL_CLOSURE, "session killed")
        self._closing = self._loop.create_task(coro)

    async def _last_goodbye(self, reason: str, message: str) -> None:
        """The router ends the session and the hub closes the transport next: GOODBYE
        tells the client why in WAMP's terms first. Its reply is not awaited: the
        phase is CLOSED (nothing more is read) and the session left its realm."""
        if self.phase is Phase.ESTABLISHED:
            self.send(Goodbye({"message": message}, reason))
        self.phase = Phase.CLOSED
        self._cancel_timer()
        await self._end_session()

    # -- session lifecycle ----------------------------------------------------------

    async def _on_hello(self, hello: Hello) -> None:
        self._cancel_timer()
        roles = hello.details.get("roles")
        if not isinstance(roles, dict) or not roles:
            raise ProtocolViolation("HELLO.Details.roles must be a non-empty dict")
        realm = self.router.realms.get(hello.realm)
        if realm is None:
            raise WampAbort(NO_SUCH_REALM, f"no realm {hello.realm!r} on this router")
        self._roles = roles
        self._session_id = self.router.new_session_id()
        result = await self.router.authenticator.hello(
            realm.name, self._session_id, hello.details, self._handshake_identity
        )
        if isinstance(result, Pending):
            self._pending, self._pending_realm = result, realm
            self.phase = Phase.AUTHENTICATING
            self.send(result.challenge)
            self._watch("no AUTHENTICATE in time")
            return
        self._welcome(realm, result)

    async def _on_authenticate(self, message: Authenticate) -> None:
        self._cancel_timer()
        pending, realm = self._pending, self._pending_realm
        assert pending is not None
        assert realm is not None
        self._pending = self._pending_realm = None
        who = await self.router.authenticator.authenticate(
            pending, message.signature, self.session, realm.name
        )
        if self.phase is Phase.AUTHENTICATING:  # not closed while the hook ran
            self._welcome(realm, who)

    def _welcome(self, realm: Realm, who: Welcomed) -> None:
        self._who = who
        if who.identity is not None:
            # Channel permissions and hooks see the user from now on.
            self.session.identity = who.identity
            self.context = CallContext(
                self.hub, self.session.id, self.session.subprotocol, who.identity
            )
        self.realm = realm
        self.phase = Phase.ESTABLISHED
        details = {
            "realm": realm.name,
            "authid": who.authid,
            "authrole": who.authrole,
            "authmethod": who.authmethod,
            "authprovider": who.authprovider,
            "roles": ROUTER_ROLES,
        }
        self.send(Welcome(self._session_id, details))
        realm.join(self)

    async def _on_goodbye(self, message: Goodbye) -> None:
        self.send(Goodbye({}, GOODBYE_AND_OUT))
        await self._end_session()
        # The login ended with the session; the handshake's identity stays with
        # the transport. (Other ends close the transport: on_disconnect hooks
        # then still see who was logged in.)
        if self.session.identity is not self._handshake_identity:
            identity = self._handshake_identity
            self.session.identity = identity
            self.context = CallContext(
                self.hub, self.session.id, self.session.subprotocol, identity
            )
        # The transport may carry a new session; one that idles is closed.
        self.phase = Phase.HELLO
        self._watch("no HELLO in time")

    async def _on_abort(self, message: Abort) -> None:
        # ABORT is never answered: the session ends and so does the transport.
        await self._close(CloseCode.NORMAL_CLOSURE, "ABORT received")

    async def _end_session(self) -> None:
        realm, self.realm = self.realm, None
        if realm is not None:
            await realm.leave(self)
        if self._session_id:
            self.router.release_session_id(self._session_id)
        self._session_id = 0
        self._pending = self._pending_realm = None
        self._who = None

    async def _abort(self, reason: str, message: str) -> None:
        self.send(Abort({"message": message}, reason))
        code = (
            CloseCode.PROTOCOL_ERROR if reason == PROTOCOL_VIOLATION else CloseCode.NORMAL_CLOSURE
        )
        await self._close(code, message)

    async def _close(self, code: int, reason: str) -> None:
        self.phase = Phase.CLOSED
        self._cancel_timer()
        await self._end_session()
        await self.session.close(code, close_reason(reason))

    def _watch(self, reason: str) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(self.router.config.hello_timeout, self._expire, reason)

    def _expire(self, reason: str) -> None:
        self._timer = None
        if self.phase in (Phase.HELLO, Phase.AUTHENTICATING):
            self.phase = Phase.CLOSED
            coro = self.session.close(CloseCode.POLICY_VIOLATION, reason)
            self._closing = self._loop.create_task(coro)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- requests -------------------------------------------------------------------

    def _error(self, request: _Request, error: WampError) -> None:
        self.send(
            Error(
                request.TYPE,
                request.request,
                {},
                error.uri,
                error.payload_args,
                error.payload_kwargs,
            )
        )

    def _joined(self) -> Realm:
        assert self.realm is not None
        return self.realm

    async def _on_subscribe(self, request: Subscribe) -> None:
        def acknowledge(subscription_id: int) -> None:
            self.send(Subscribed(request.request, subscription_id))

        try:
            await self._joined().broker.subscribe(self, request, acknowledge)
        except WampError as exc:
            self._error(request, exc)

    async def _on_unsubscribe(self, request: Unsubscribe) -> None:
        try:
            await self._joined().broker.unsubscribe(self, request)
        except WampError as exc:
            self._error(request, exc)
            return
        self.send(Unsubscribed(request.request))

    async def _on_publish(self, request: Publish) -> None:
        acknowledge = request.options.get("acknowledge") is True
        try:
            publication_id = await self._joined().broker.publish(self, request)
        except WampError as exc:
            if acknowledge:  # unacknowledged publications fail silently
                self._error(request, exc)
            elif exc.uri == NETWORK_FAILURE:
                self.hub.metrics.publications_dropped.labels("engine_unavailable").inc()
            return
        if acknowledge:
            self.send(Published(request.request, publication_id))

    async def _on_register(self, request: Register) -> None:
        try:
            registration_id = await self._joined().dealer.register(self, request)
        except WampError as exc:
            self._error(request, exc)
            return
        self.send(Registered(request.request, registration_id))

    async def _on_unregister(self, request: Unregister) -> None:
        try:
            self._joined().dealer.unregister(self, request)
        except WampError as exc:
            self._error(request, exc)
            return
        self.send(Unregistered(request.request))

    async def _on_call(self, request: Call) -> None:
        try:
            await self._joined().dealer.call(self, request)
        except WampError as exc:
            self._error(request, exc)

    async def _on_cancel(self, request: Cancel) -> None:
        self._joined().dealer.cancel(self, request)

    async def _on_yield(self, message: Yield) -> None:
        self._joined().dealer.yield_(self, message)

    async def _on_error(self, message: Error) -> None:
        self._joined().dealer.error(self, message)


def _unexpected(message: Message, phase: Phase) -> str:
    name = MessageType(message.TYPE).name
    if isinstance(message, Hello):
        return "a second HELLO"
    if message.TYPE in _ROUTER_TO_CLIENT:
        return f"{name} is a router-to-client message"
    return f"{name} {phase.value}"


_Route = Callable[[WampHandler, Any], Awaitable[None]]

# The state machine: which messages each phase accepts, and what they do.
_ROUTES: Final[dict[Phase, dict[type, _Route]]] = {
    Phase.HELLO: {Hello: WampHandler._on_hello, Abort: WampHandler._on_abort},
    Phase.AUTHENTICATING: {
        Authenticate: WampHandler._on_authenticate,
        Abort: WampHandler._on_abort,
    },
    Phase.ESTABLISHED: {
        Subscribe: WampHandler._on_subscribe,
        Unsubscribe: WampHandler._on_unsubscribe,
        Publish: WampHandler._on_publish,
        Register: WampHandler._on_register,
        Unregister: WampHandler._on_unregister,
        Call: WampHandler._on_call,
        Cancel: WampHandler._on_cancel,
        Yield: WampHandler._on_yield,
        Error: WampHandler._on_error,
        Goodbye: WampHandler._on_goodbye,
        Abort: WampHandler._on_abort,
    },
    Phase.CLOSED: {},
}
