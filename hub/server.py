"""The WebSocket server: handshake, negotiation, HTTP on the same port, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hub.errors import PermissionDenied
from hub.handler import ProtocolSpec
from hub.http import HttpRoutes
from hub.registry import NegotiationRefused, ProtocolRegistry
from hub.rpc import CallContext
from hub.session import WebSocketSession

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

INTERNAL_ERROR_CODE = 1011
POLICY_VIOLATION = 1008


class HubConnection(ServerConnection):
    """A server connection that remembers which protocol it negotiated."""

    negotiated: ProtocolSpec | None = None
    wire_name: str = ""


class HubServer:
    """Runs one hub on one port; :class:`hub.app.Hub` owns it."""

    def __init__(self, hub: Hub, registry: ProtocolRegistry) -> None:
        self._hub = hub
        self._registry = registry
        config = hub.config
        # Pins are kept by canonical name; the config may use an alias.
        self._pins = {
            spec.name if (spec := registry.get(name)) is not None else name: path
            for name, path in config.server.paths.items()
        }
        self._pinned_paths = {path: name for name, path in self._pins.items()}
        self._http = HttpRoutes(hub, config.server.static_dir)
        self._server: Server | None = None

    def config_problems(self) -> list[str]:
        """Settings that name subprotocols this server does not speak."""
        speaks = ", ".join(self._registry.wire_names)
        problems = []
        default = self._hub.config.server.default_subprotocol
        if self._registry.get(default) is None:
            problems.append(
                f"server.default_subprotocol: {default!r} is not served "
                f"(clients offering no subprotocol would be refused); this server speaks {speaks}"
            )
        for name in self._hub.config.server.paths:
            if self._registry.get(name) is None:
                problems.append(
                    f"server.paths: {name!r} is not served; this server speaks {speaks}"
                )
        return problems

    @property
    def http(self) -> HttpRoutes:
        return self._http

    @property
    def registry(self) -> ProtocolRegistry:
        return self._registry

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        for problem in self.config_problems():
            logger.warning("%s", problem)
        config = self._hub.config
        ws = config.websocket
        extensions = None
        if ws.compression:
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=ws.compression_window_bits,
                    client_max_window_bits=ws.compression_window_bits,
                    compress_settings={"memLevel": ws.compression_memory_level},
                )
            ]
        self._server = await serve(
            self._handle,
            host if host is not None else config.server.host,
            port if port is not None else config.server.port,
            extensions=extensions,
            compression=None,
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            create_connection=HubConnection,
            open_timeout=ws.open_timeout,
            ping_interval=ws.ping_interval,
            ping_timeout=ws.ping_timeout,
            close_timeout=ws.close_timeout,
            max_size=ws.max_message_size,
            # Our own bound closes slow consumers; below it, websockets must not
            # pause writes, or keepalive pings wait on a drain that never comes
            # and a stalled reader is never dropped.
            write_limit=config.limits.max_outbound_bytes,
            logger=logging.getLogger("hub.websockets"),
        )

    @property
    def sockets(self) -> list[Any]:
        return list(self._server.sockets) if self._server is not None else []

    async def stop(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop accepting, close every client with ``code`` and wait for handlers."""
        if self._server is None:
            return
        self._server.close(close_connections=True, code=code, reason=reason)
        await self._server.wait_closed()
        self._server = None

    # -- handshake -------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        upgrade = request.headers.get("Upgrade", "")
        if upgrade.lower() != "websocket":
            return self._http.handle(request)
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        assert isinstance(connection, HubConnection)
        request = connection.request
        path = request.path.split("?", 1)[0] if request is not None else "/"
        pinned_here = self._pinned_paths.get(path)
        # A protocol pinned to another path is not spoken here.
        allowed = [
            name
            for name in self._registry.names
            if name not in self._pins or self._pins[name] == path
        ]
        try:
            chosen = self._registry.select(list(offered), allowed)
        except NegotiationRefused as exc:
            self._hub.metrics.handshakes_refused.labels("subprotocol").inc()
            raise NegotiationError(str(exc)) from None
        if chosen is not None:
            spec = self._registry.get(chosen)
        else:
            default = pinned_here or self._hub.config.server.default_subprotocol
            spec = self._registry.get(default)
            if spec is None or spec.name not in allowed:
                self._hub.metrics.handshakes_refused.labels("subprotocol").inc()
                raise NegotiationError(
                    f"no subprotocol offered and the default {default!r} is not served here; "
                    f"offer one of {', '.join(self._registry.wire_names)}"
                )
        assert spec is not None
        connection.negotiated = spec
        connection.wire_name = chosen or spec.name
        if not spec.websocket_pings:
            connection.ping_interval = None
        return Subprotocol(chosen) if chosen is not None else None

    # -- connections -----------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, HubConnection)
        spec = connection.negotiated
        if spec is None:  # pragma: no cover - negotiation always sets it
            await connection.close(1011, "no protocol negotiated")
            return
        hub = self._hub
        metrics = hub.metrics
        session = WebSocketSession(
            connection,
            spec.name,
            max_outbound_bytes=hub.config.limits.max_outbound_bytes,
            on_slow_consumer=metrics.slow_consumers_closed.inc,
            wire_name=connection.wire_name,
        )
        handler = spec.factory(session, hub)
        received = metrics.messages_received.labels(spec.name)
        active = metrics.connections_active.labels(spec.name)
        metrics.connections_opened.labels(spec.name).inc()
        active.inc()
        context = CallContext(hub, session.id, spec.name, session.identity)
        try:
            await hub.hooks.run_connect(context)
        except PermissionDenied as exc:
            active.dec()
            await connection.close(POLICY_VIOLATION, exc.message[:120])
            return
        hub.attach(session, handler)
        try:
            await handler.on_open()
            async for message in connection:
                received.inc()
                await handler.on_message(message)
        except ConnectionClosed:
            pass
        except Exception:
            # One handler's bug closes its own connection only.
            metrics.handler_errors.labels(spec.name).inc()
            logger.exception("session %s (%s): handler failed", session.id, spec.name)
            await connection.close(INTERNAL_ERROR_CODE, "internal error")
        finally:
            active.dec()
            hub.detach(session.id)
            code = connection.close_code
            try:
                await handler.on_close(code)
                # Protocol logins (MQTT CONNECT, WAMP auth) set the identity late.
                context.identity = session.identity
                await hub.hooks.run_disconnect(context)
            except Exception:
                logger.exception("session %s (%s): on_close failed", session.id, spec.name)
