"""The fallback listener (aiohttp on ``[fallback] host``/``port``), docs/fallback.md.

Bidirectional, for the browser client when WebSocket cannot open:

* ``GET /session`` opens a channels.v1 session and streams what the hub sends
  as Server-Sent Events; its first event (``session``) carries the token that
  names it.
* ``POST /session/send?session=<token>`` carries channels.v1 messages, one per
  line, in order; the answers come on the stream. A POST that reaches another
  node is forwarded over the node bus to the session's node.
* ``POST /session/close?session=<token>`` ends it at once.

Unidirectional, for clients without an SDK: ``GET /events`` (SSE) and
``GET /stream`` (NDJSON) subscribe to the ``channel`` parameters and stream
their publications, resuming from ``Last-Event-ID`` (or ``?since=``).

Every stream is authenticated as a WebSocket handshake (the same
authenticator: JWT in the header, query or cookie, Basic, the handshake hook),
its origin checked by ``server.allowed_origins``, and counted against the
hub's connection limits and ``[fallback] max_sessions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from http import HTTPStatus
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from websockets.datastructures import Headers

from hub.auth import HandshakeRefused, HandshakeRequest
from hub.auth.handshake import parse_cookies
from hub.close_codes import CloseCode
from hub.engine import StreamPosition
from hub.engine.bus import NodeGone
from hub.errors import EngineUnavailable
from hub.fallback.driver import drive
from hub.fallback.session import IDLE_REASON, StreamSession
from hub.fallback.unidirectional import Subscriptions, UnidirectionalRefused
from hub.fallback.wire import (
    NDJSON_CONTENT_TYPE,
    NDJSON_PING,
    SSE_CONTENT_TYPE,
    SSE_PING,
    BadPosition,
    SessionToken,
    close_body,
    decode_positions,
    sse_event,
)
from hub.hosts import HostPolicy
from hub.limits import SlotRefused, address_key
from hub.proxies import TrustedProxies

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

PROTOCOL = "channels.v1"
_FORWARD = "fallback.post"
RETRY_AFTER = 5
SLOT_TEXT = {
    SlotRefused.MAX_CONNECTIONS: "server full: too many connections (limits.max_connections)",
    SlotRefused.PER_IP: "too many connections from your address (limits.max_connections_per_ip)",
}
RATE_TEXT = "too many new connections from your address (limits.connection_rate_per_ip)"
# Seconds a session open over the connection rate is held before its 429 (as
# a WebSocket upgrade is): answered at once, a reconnect loop would spin.
RATE_HOLD = 1.0


def _text(status: HTTPStatus, message: str) -> web.Response:
    return web.Response(status=status.value, text=message + "\n")


class FallbackServer:
    """A hub service: the fallback transports' listener, and their sessions on this node."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._config = hub.config.fallback
        # DNS rebinding: a loopback listener answers loopback names only (hub.hosts).
        self._hosts = HostPolicy(hub.config.server.allowed_hosts, self._config.host)
        self._sessions: dict[str, StreamSession] = {}
        self._runner: web.AppRunner | None = None
        self._forwarding = False
        # Behind a trusted proxy the client is who X-Forwarded-For names, as for a WebSocket.
        self._proxies = TrustedProxies(hub.config.server.trusted_proxies)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """http:// URL of the listener, the address really bound."""
        addresses = list(self._runner.addresses) if self._runner is not None else []
        if not addresses:
            raise RuntimeError("the fallback listener is not running")
        host, port = addresses[0][:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        if not self._forwarding:
            self._hub.engine.bus.on_request(_FORWARD, self._on_forwarded)
            self._forwarding = True
        # Bodies are channels.v1 messages: the protocol's size bound, per message, per POST.
        limit = self._max_message_size() * self._config.max_post_messages
        app = web.Application(client_max_size=limit)
        app.router.add_get("/session", self._open_session)
        app.router.add_post("/session/send", self._send)
        app.router.add_post("/session/close", self._close)
        app.router.add_get("/events", self._events)
        app.router.add_get("/stream", self._ndjson)
        app.router.add_route("OPTIONS", "/{tail:.*}", self._preflight)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # A client that leaves cancels its stream handler: the session closes at once.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._config.host, self._config.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        logger.info("HTTP fallback listening on %s/", self.url)

    async def stop(self) -> None:
        for session in list(self._sessions.values()):
            await session.close(CloseCode.GOING_AWAY, "server shutting down")
        if self._runner is not None:
            # Streams see their sessions closing and end; cleanup waits for them.
            await self._runner.shutdown()
            await self._runner.cleanup()
        self._runner = None

    def _max_message_size(self) -> int:
        config = self._hub.config
        spec = self._hub.server.registry.get(PROTOCOL)
        if spec is None:
            return config.limits.max_message_size.get(PROTOCOL, config.websocket.max_message_size)
        return spec.message_size(config.limits.max_message_size, config)

    # -- the checks every stream passes ----------------------------------------------

    def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and self._origin_allowed(request):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Vary"] = "Origin"

    def _origin_allowed(self, request: web.Request) -> bool:
        """``server.allowed_origins``; with none listed, pages of this host on the
        hub's own port (which serves the page) or on this listener's port."""
        policy = self._hub.server.origins
        origin = request.headers.get("Origin")
        host = request.headers.get("Host")
        if policy.allows(origin, host):
            return True
        if host is None or not policy.same_origin_only:
            return False
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        try:
            hub_port = self._hub.port
        except RuntimeError:
            return False
        return policy.allows(origin, f"{name}:{hub_port}")

    async def _admit(self, request: web.Request) -> tuple[Any, Callable[[], None]]:
        """Origin, limits and credentials, as a WebSocket handshake: the identity and
        the release of the slot taken; web.HTTPException (a response) when refused."""
        metrics = self._hub.metrics
        if not self._hosts.allows(request.headers.get("Host")):
            metrics.handshakes_refused.labels("host").inc()
            raise self._refusal(
                request, HTTPStatus.MISDIRECTED_REQUEST, "host not allowed (server.allowed_hosts)"
            )
        if not self._origin_allowed(request):
            metrics.handshakes_refused.labels("origin").inc()
            raise self._refusal(request, HTTPStatus.FORBIDDEN, "origin not allowed")
        key = address_key(self._client_host(request))
        await self._check_rate(request, key)
        if len(self._sessions) >= self._config.max_sessions:
            metrics.handshakes_refused.labels("max_connections").inc()
            raise self._refusal(
                request,
                HTTPStatus.SERVICE_UNAVAILABLE,
                "server full: too many fallback sessions (fallback.max_sessions)",
                retry=True,
            )
        slots = self._hub.server.slots
        refused = slots.acquire(key)
        if refused is not None:
            metrics.handshakes_refused.labels(refused.value).inc()
            raise self._refusal(
                request, HTTPStatus.SERVICE_UNAVAILABLE, SLOT_TEXT[refused], retry=True
            )
        metrics.connection_slots.inc()

        def release() -> None:
            slots.release(key)
            metrics.connection_slots.dec()

        try:
            identity = await self._hub.auth.handshake(
                _handshake_request(request, self._client_address(request))
            )
            if identity is None and not self._hub.auth.allow_anonymous:
                raise self._hub.auth.anonymous_refused()
        except HandshakeRefused as exc:
            release()
            metrics.handshakes_refused.labels("auth").inc()
            response = self._refusal(request, exc.status, exc.message)
            for challenge in exc.challenges:
                response.headers.add("WWW-Authenticate", challenge)
            raise response from None
        except BaseException:
            release()
            raise
        return identity, release

    async def _check_rate(self, request: web.Request, key: str) -> None:
        """Raise a 429 for a session over its address's limits.connection_rate_per_ip,
        after holding it RATE_HOLD seconds with a pending slot of its address."""
        wait = self._hub.server.connection_rate.take(key)
        if wait is None:
            return
        self._hub.metrics.handshakes_refused.labels("connection_rate").inc()
        slots = self._hub.server.slots
        if slots.acquire(key, pending=True) is None:
            try:
                await asyncio.sleep(RATE_HOLD)
            finally:
                slots.release(key, pending=True)
        error = self._refusal(request, HTTPStatus.TOO_MANY_REQUESTS, RATE_TEXT)
        error.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        raise error

    def _refusal(
        self, request: web.Request, status: HTTPStatus, message: str, *, retry: bool = False
    ) -> web.HTTPException:
        error = web.HTTPException(text=message + "\n")
        error.set_status(status.value)
        if retry:
            error.headers["Retry-After"] = str(RETRY_AFTER)
        self._cors(request, error)
        return error

    def _forwarded(self, request: web.Request) -> str | None:
        if not self._proxies:
            return None
        headers = Headers([(name, value) for name, value in request.headers.items()])
        return self._proxies.forwarded_client(request.remote or "", headers)

    def _client_host(self, request: web.Request) -> str:
        """The address the connection limits count the client under."""
        return self._forwarded(request) or request.remote or ""

    def _client_address(self, request: web.Request) -> str:
        """What the session reports: the forwarded client, else the peer's ip:port."""
        return self._forwarded(request) or _remote(request)

    def _new_session(self, transport: str, identity: Any, request: web.Request) -> StreamSession:
        config = self._config
        metrics = self._hub.metrics
        session = StreamSession(
            PROTOCOL,
            transport,
            identity=identity,
            remote_address=self._client_address(request),
            max_outbound_bytes=self._hub.config.limits.max_outbound_bytes,
            max_outbound_messages=config.max_queue_messages,
            max_inbound_messages=config.max_inbound_messages,
            on_slow_consumer=metrics.slow_consumers_closed.inc,
        )
        session.forwarded_headers = {
            name: value
            for name in self._hub.server.forward_headers
            if (value := request.headers.get(name)) is not None
        }
        self._sessions[session.id] = session
        metrics.fallback_sessions_opened.labels(transport).inc()
        metrics.fallback_sessions_active.labels(transport).inc()
        return session

    def _forget(self, session: StreamSession) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._hub.metrics.fallback_sessions_active.labels(session.transport).dec()

    async def _stream_response(self, request: web.Request, content_type: str) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type + "; charset=utf-8",
                "Cache-Control": "no-cache, no-store",
                # nginx and friends: do not buffer a stream.
                "X-Accel-Buffering": "no",
            }
        )
        self._cors(request, response)
        await response.prepare(request)
        return response

    # -- bidirectional: GET /session, POST /session/send, /session/close ----------------

    async def _open_session(self, request: web.Request) -> web.StreamResponse:
        spec = self._hub.server.registry.get(PROTOCOL)
        if spec is None:
            raise self._refusal(request, HTTPStatus.NOT_FOUND, f"{PROTOCOL} is not served here")
        identity, release = await self._admit(request)
        session = self._new_session("sse", identity, request)
        driver: asyncio.Task[None] | None = None
        try:
            response = await self._stream_response(request, SSE_CONTENT_TYPE)
            token = SessionToken(self._hub.node_id, session.id, session.secret)
            hello = {
                "session": str(token),
                "idle_timeout": self._config.idle_timeout,
                "ping_interval": self._config.ping_interval,
            }
            await response.write(sse_event(orjson.dumps(hello), event="session"))
            driver = asyncio.get_running_loop().create_task(
                drive(self._hub, spec, session, self._client_host(request))
            )
            await self._pump(session, response, lambda m: sse_event(m), SSE_PING, idle=True)
            return response
        finally:
            await self._end(session, driver, release)

    async def _pump(
        self,
        session: StreamSession,
        response: web.StreamResponse,
        encode: Callable[[bytes], bytes | None],
        ping: bytes,
        *,
        idle: bool,
    ) -> None:
        """Write the session's messages until it closes; its close as the last event."""
        config = self._config
        while True:
            messages = await session.outbound(config.ping_interval)
            chunks = [chunk for m in messages if (chunk := encode(m)) is not None]
            if chunks:
                await response.write(b"".join(chunks))
            elif session.closing is None:
                await response.write(ping)
            if session.closing is not None:
                code, reason = session.closing
                body = orjson.dumps(close_body(code, reason))
                with contextlib.suppress(ConnectionError):
                    if ping == SSE_PING:
                        await response.write(sse_event(body, event="close"))
                    else:
                        await response.write(
                            orjson.dumps({"event": "close", **close_body(code, reason)}) + b"\n"
                        )
                    await response.write_eof()
                return
            if idle and session.idle_for() > config.idle_timeout:
                await session.close(CloseCode.GOING_AWAY, IDLE_REASON)

    async def _end(
        self,
        session: StreamSession,
        driver: asyncio.Task[None] | None,
        release: Callable[[], None],
    ) -> None:
        """The stream ended (closed, broken, or the client left): close the session."""
        # Shielded: a departing client cancels this handler, and the handler's
        # on_close (presence leave, unsubscribes) must still run to the end.
        await asyncio.shield(self._finish(session, driver, release))

    async def _finish(
        self,
        session: StreamSession,
        driver: asyncio.Task[None] | None,
        release: Callable[[], None],
    ) -> None:
        # A stream that broke without a close, as WebSocket's 1006.
        await session.close(CloseCode.ABNORMAL_CLOSURE, "stream ended")
        try:
            if driver is not None:
                await driver
        finally:
            self._forget(session)
            release()

    async def _send(self, request: web.Request) -> web.Response:
        token = self._token(request)
        raw = await request.read()
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return self._answer(request, HTTPStatus.BAD_REQUEST, "the body is not UTF-8")
        messages = [line for line in text.split("\n") if line.strip()]
        if len(messages) > self._config.max_post_messages:
            return self._answer(
                request,
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"at most {self._config.max_post_messages} messages per POST "
                "(fallback.max_post_messages)",
            )
        size = self._max_message_size()
        if any(len(m.encode()) > size for m in messages):
            return self._answer(
                request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a message is over {size} bytes"
            )
        return await self._deliver(request, token, messages, close=False)

    async def _close(self, request: web.Request) -> web.Response:
        return await self._deliver(request, self._token(request), [], close=True)

    def _token(self, request: web.Request) -> SessionToken:
        token = SessionToken.parse(request.query.get("session", ""))
        if token is None:
            raise self._refusal(
                request,
                HTTPStatus.BAD_REQUEST,
                "?session=<token> from the session event is required",
            )
        return token

    async def _deliver(
        self, request: web.Request, token: SessionToken, messages: list[str], *, close: bool
    ) -> web.Response:
        if token.node == self._hub.node_id:
            outcome = await self._apply(token, messages, close)
        else:
            body = {
                "session": token.session,
                "secret": token.secret,
                "messages": messages,
                "close": close,
            }
            try:
                outcome = await self._hub.engine.bus.request(
                    token.node, _FORWARD, body, timeout=self._config.forward_timeout
                )
            except NodeGone:
                outcome = "unknown"
            except EngineUnavailable:
                return self._answer(
                    request, HTTPStatus.SERVICE_UNAVAILABLE, "the session's node is unreachable"
                )
        if outcome == "unknown":
            return self._answer(request, HTTPStatus.NOT_FOUND, "no such session (it ended)")
        if outcome == "full":
            return self._answer(
                request,
                HTTPStatus.TOO_MANY_REQUESTS,
                "too many messages waiting (fallback.max_inbound_messages)",
            )
        return self._answer(request, HTTPStatus.ACCEPTED, "")

    async def _apply(self, token: SessionToken, messages: list[str], close: bool) -> str:
        session = self._sessions.get(token.session)
        if session is None or session.transport != "sse" or not session.owns(token.secret):
            return "unknown"
        if close:
            await session.close(CloseCode.NORMAL_CLOSURE, "closed by the client")
            return "ok"
        return "ok" if session.receive(messages) else "full"

    async def _on_forwarded(self, sender: str, body: Any) -> str:
        if not isinstance(body, dict):
            return "unknown"
        session, secret, messages = body.get("session"), body.get("secret"), body.get("messages")
        if not (
            isinstance(session, str) and isinstance(secret, str) and isinstance(messages, list)
        ):
            return "unknown"
        token = SessionToken(self._hub.node_id, session, secret)
        text = [m for m in messages if isinstance(m, str)]
        return await self._apply(token, text, bool(body.get("close")))

    def _answer(self, request: web.Request, status: HTTPStatus, message: str) -> web.Response:
        response = _text(status, message) if message else web.Response(status=status.value)
        self._cors(request, response)
        return response

    # -- unidirectional: GET /events (SSE), GET /stream (NDJSON) ---------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await self._subscribe(request, ndjson=False)

    async def _ndjson(self, request: web.Request) -> web.StreamResponse:
        return await self._subscribe(request, ndjson=True)

    async def _subscribe(self, request: web.Request, *, ndjson: bool) -> web.StreamResponse:
        spec = self._hub.server.registry.get(PROTOCOL)
        if spec is None:
            raise self._refusal(request, HTTPStatus.NOT_FOUND, f"{PROTOCOL} is not served here")
        channels = request.query.getall("channel", [])
        if not channels:
            raise self._refusal(request, HTTPStatus.BAD_REQUEST, "name at least one ?channel=")
        if len(set(channels)) != len(channels):
            raise self._refusal(request, HTTPStatus.BAD_REQUEST, "a channel is named twice")
        limit = self._hub.config.channels.max_subscriptions
        if len(channels) > limit:
            raise self._refusal(
                request,
                HTTPStatus.BAD_REQUEST,
                f"at most {limit} channels (channels.max_subscriptions)",
            )
        try:
            since = self._since(request, channels)
        except BadPosition as exc:
            raise self._refusal(
                request, HTTPStatus.BAD_REQUEST, f"bad Last-Event-ID or since: {exc}"
            ) from None
        identity, release = await self._admit(request)
        session = self._new_session("ndjson" if ndjson else "events", identity, request)
        subscriptions = Subscriptions(channels, since, ndjson=ndjson)
        session.receive(subscriptions.requests())
        driver = asyncio.get_running_loop().create_task(
            drive(self._hub, spec, session, self._client_host(request))
        )
        try:
            try:
                first = await subscriptions.start(session)
            except UnidirectionalRefused as refused:
                raise self._refusal(request, refused.status, refused.message) from None
            response = await self._stream_response(
                request, NDJSON_CONTENT_TYPE if ndjson else SSE_CONTENT_TYPE
            )
            if first:
                await response.write(first)
            await self._pump(
                session,
                response,
                subscriptions.encode,
                NDJSON_PING if ndjson else SSE_PING,
                idle=False,
            )
            return response
        finally:
            await self._end(session, driver, release)

    def _since(self, request: web.Request, channels: list[str]) -> dict[str, StreamPosition]:
        """Where to resume: Last-Event-ID (what EventSource sends), ``?since=`` (same
        form), or ``?offset=&epoch=`` for a single channel."""
        text = request.headers.get("Last-Event-ID") or request.query.get("since")
        if text:
            positions = decode_positions(text)
            return {c: p for c, p in positions.items() if c in channels}
        offset = request.query.get("offset")
        if offset is None:
            return {}
        if len(channels) != 1:
            raise BadPosition("offset and epoch name the position of a single channel")
        if not offset.isdigit():
            raise BadPosition("offset is not a number")
        return {channels[0]: StreamPosition(int(offset), request.query.get("epoch", ""))}

    # -- the rest ----------------------------------------------------------------

    async def _preflight(self, request: web.Request) -> web.Response:
        if not self._origin_allowed(request):
            return _text(HTTPStatus.FORBIDDEN, "origin not allowed")
        response = web.Response(status=HTTPStatus.NO_CONTENT.value)
        self._cors(request, response)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = (
            "Authorization, Content-Type, Last-Event-ID"
        )
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._answer(
            request,
            HTTPStatus.NOT_FOUND,
            "not found: GET /session, POST /session/send, GET /events, GET /stream",
        )


def _remote(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return request.remote or ""


def _handshake_request(request: web.Request, remote_address: str) -> HandshakeRequest:
    """The request as the authenticator (and the on_handshake hook) sees a handshake."""
    query: dict[str, str] = {}
    for name, value in request.query.items():
        query.setdefault(name, value)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    cookies: dict[str, str] = {}
    for header in request.headers.getall("Cookie", []):
        cookies.update(parse_cookies(header))
    return HandshakeRequest(
        path=request.path,
        query=MappingProxyType(query),
        headers=MappingProxyType(headers),
        cookies=MappingProxyType(cookies),
        remote_address=remote_address,
        origin=request.headers.get("Origin"),
        identity=None,
    )
