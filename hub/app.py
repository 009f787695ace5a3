"""The :class:`Hub`: what a user of wshub holds in Python."""

from __future__ import annotations

import asyncio
import importlib
import logging
import secrets
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from hub.access import RpcPermissions, Rule
from hub.auth import AuthenticateHook, Authenticator, HandshakeHook
from hub.channels import ChannelService
from hub.config import ConfigError, HubConfig
from hub.config_errors import module_load_error
from hub.engine import HistoryResult, Publication
from hub.engine.retained import RetainedStore
from hub.engine.select import open_backend
from hub.errors import HubError, PermissionDenied
from hub.handler import Session, SubprotocolHandler
from hub.hooks import CallHook, ConnectHook, Hooks, PresenceHook, PublishHook, SubscribeHook
from hub.meta import meta_extras
from hub.metrics import HubMetrics
from hub.registry import ProtocolRegistry, default_registry
from hub.rpc import CallContext, MethodTable, RpcMethod, collect_marked
from hub.server import HubServer
from hub.services import Services

if TYPE_CHECKING:
    from hub.api import ApiServer
    from hub.auth.expiry import Refresher
    from hub.fallback import FallbackServer

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def new_node_id() -> str:
    return secrets.token_hex(6)


class SessionNotFound(HubError, LookupError):
    """No open session has that id."""


class Hub:
    """One hub: its RPC methods, its sessions and its server.

    ::

        hub = Hub()

        @hub.rpc("math.add")
        async def add(a: int, b: int) -> int:
            return a + b

        await hub.start()
    """

    def __init__(
        self, config: HubConfig | None = None, *, registry: ProtocolRegistry | None = None
    ) -> None:
        self.config = config or HubConfig()
        self.metrics = HubMetrics()
        registry = registry or default_registry(self.config.server.subprotocols)
        if self.config.server.subprotocols:
            registry = registry.restrict(self.config.server.subprotocols)
        # Names the served protocols answer themselves (channels.v1's subscribe...).
        self.methods = MethodTable(reserved=registry.reserved_methods)
        # Who may call what, and who may provide methods (docs/security.md).
        self.rpc_permissions = RpcPermissions(self.config.rpc.permissions)
        self.register_access = Rule(self.config.rpc.register_access)
        self._server = HubServer(self, registry)
        self._sessions: dict[str, tuple[Session, SubprotocolHandler]] = {}
        self._stopped = asyncio.Event()
        self.node_id = new_node_id()
        self.hooks = Hooks()
        # The backend, chosen once from [engine], supplies every store.
        self.backend = open_backend(
            self.config.engine, self.node_id, registry=self.metrics.registry
        )
        self.engine = self.backend.engine
        self.engine.on_delivered = self.metrics.deliveries.inc
        self.engine.on_published = self.metrics.publications.inc
        self.channels = ChannelService(self.engine, self.config.channels, self.hooks)
        # Retained publications, opened by the protocol that keeps them (MQTT's setup).
        self._retained: RetainedStore | None = None
        auth_failures = self.metrics.auth_failures
        self.auth = Authenticator(
            self.config.auth, on_failure=lambda method: auth_failures.labels(method).inc()
        )
        self.services = Services()
        if self.backend.service is not None:
            # The backend's connections or files live with the hub (Redis: health in /healthz).
            self.services.add("engine", self.backend.service)
        self._stopping = False
        # Called in order by reload() (SIGHUP): TLS certificates, user tables, keys.
        self._reloaders: list[tuple[str, Callable[[], None]]] = []
        for name, reload in self.auth.reloaders():
            self.add_reloader(name, reload)
        for name in registry.names:
            spec = registry.get(name)
            if spec is not None and spec.setup is not None:
                spec.setup(self)
        self.api: ApiServer | None = None
        # Asked before an expired identity closes its session ([proxy.refresh]).
        self.refresher: Refresher | None = None
        self._setup_api()
        self.fallback: FallbackServer | None = None
        if self.config.fallback.enabled:
            from hub.fallback import FallbackServer

            self.fallback = FallbackServer(self)
            self.services.add("fallback", self.fallback)

    def open_retained(
        self, max_channels: int, *, max_bytes: int, expiry: float | None
    ) -> RetainedStore:
        """The hub's retained publications, opened once by the protocol that sizes them.

        Owned by the hub so they outlive connections, and kept where the backend
        keeps its stores (every node sees them with Redis). A second call gets
        the store the first one opened.
        """
        if self._retained is None:
            self._retained = self.backend.retained(max_channels, max_bytes=max_bytes, expiry=expiry)
        return self._retained

    @property
    def retained(self) -> RetainedStore:
        """The store :meth:`open_retained` opened; a hub serving no protocol that keeps
        retained publications has none."""
        if self._retained is None:
            raise LookupError("no protocol of this hub keeps retained publications")
        return self._retained

    def _setup_api(self) -> None:
        """Commands between nodes (always: any node may hold the user an API call names),
        and the server API's listener when a key is configured."""
        from hub.api import ApiKeys, ApiMethods, ApiServer, ClusterControl

        control = ClusterControl(self.engine, gather_timeout=self.config.api.gather_timeout)
        self.services.add("cluster", control)
        if self.config.proxy.enabled:
            from hub.api.proxy import BackendProxy

            self.services.add("proxy", BackendProxy(self, self.config.proxy))
        if self.config.webhooks.urls:
            from hub.api.webhooks import Webhooks

            webhooks = Webhooks(self, self.config.webhooks)
            self.services.add("webhooks", webhooks)
            if self.config.webhooks.secret_file is not None:
                self.add_reloader(
                    f"webhooks secret {self.config.webhooks.secret_file}", webhooks.reload
                )
        # The admin page lives on the API's listener: it listens for either.
        if not self.config.api.enabled and not self.config.admin.enabled:
            return
        keys = ApiKeys(self.config.api)
        if self.config.api.keys_file is not None:
            self.add_reloader(f"API keys {self.config.api.keys_file}", keys.reload)
        methods = ApiMethods(self, control)
        admin = None
        if self.config.admin.enabled:
            from hub.admin import AdminSite

            admin = AdminSite(self, methods, control)
        self.api = ApiServer(self, methods, keys, admin=admin)
        self.services.add("api", self.api)

    # -- hooks -----------------------------------------------------------

    def on_connect(self, hook: ConnectHook) -> ConnectHook:
        """Run for every new session; raise PermissionDenied to refuse it."""
        self.hooks.connect.append(hook)
        return hook

    def on_authenticate(self, hook: AuthenticateHook) -> AuthenticateHook:
        """Check a username/password login (MQTT CONNECT, WAMP ticket); see :mod:`hub.auth`."""
        self.auth.set_hook(hook)
        return hook

    def on_handshake(self, hook: HandshakeHook) -> HandshakeHook:
        """Decide the identity of every WebSocket upgrade; see :mod:`hub.auth.hooks`.

        The hook gets a :class:`~hub.auth.HandshakeRequest` and returns the
        Identity (or None: anonymous); AuthenticationFailed answers 401,
        PermissionDenied 403.
        """
        self.auth.set_handshake_hook(hook)
        return hook

    def on_disconnect(self, hook: ConnectHook) -> ConnectHook:
        self.hooks.disconnect.append(hook)
        return hook

    def on_subscribe(self, pattern: str = "#") -> Callable[[SubscribeHook], SubscribeHook]:
        """Run before a client subscribes to a matching channel; may refuse."""

        def register(hook: SubscribeHook) -> SubscribeHook:
            self.hooks.subscribe.append((pattern, hook))
            return hook

        return register

    def on_publish(self, pattern: str = "#") -> Callable[[PublishHook], PublishHook]:
        """Run before a client's publication; may refuse, or return new data."""

        def register(hook: PublishHook) -> PublishHook:
            self.hooks.publish.append((pattern, hook))
            return hook

        return register

    def on_call(self, pattern: str = "*") -> Callable[[CallHook], CallHook]:
        """Run before a client calls a method whose name matches the glob; may refuse.

        The hook gets ``(ctx, method)`` and raises PermissionDenied to refuse;
        it runs after ``[rpc.permissions]``, for every protocol's calls.
        """

        def register(hook: CallHook) -> CallHook:
            self.hooks.call.append((pattern, hook))
            return hook

        return register

    def on_join(self, pattern: str = "#") -> Callable[[PresenceHook], PresenceHook]:
        def register(hook: PresenceHook) -> PresenceHook:
            self.hooks.join.append((pattern, hook))
            return hook

        return register

    def on_leave(self, pattern: str = "#") -> Callable[[PresenceHook], PresenceHook]:
        def register(hook: PresenceHook) -> PresenceHook:
            self.hooks.leave.append((pattern, hook))
            return hook

        return register

    # -- channels --------------------------------------------------------

    async def publish(
        self, channel: str, data: Any, *, meta: Mapping[str, Any] | None = None
    ) -> Publication:
        """Publish from Python to every subscriber of every protocol.

        ``meta`` describes the message as MQTT 5 does (content type, user
        properties, payload format; :mod:`hub.meta`): MQTT 5 subscribers get
        it as PUBLISH properties. Invalid or over its bounds: InvalidMeta.
        """
        return await self.channels.publish(channel, data, extras=meta_extras(meta, data))

    async def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        """Who is in a channel, merged by user (server-side: no access rule applies)."""
        return await self.channels.presence(None, channel)

    async def history(self, channel: str, limit: int | None = None) -> HistoryResult:
        """Recent publications of a channel (server-side: no access rule applies)."""
        return await self.channels.history(None, channel, limit=limit)

    # -- RPC -------------------------------------------------------------

    def rpc(
        self,
        name: str | None = None,
        *,
        run_in_thread: bool | None = None,
        description: str | None = None,
    ) -> Callable[[F], F]:
        """Register a function as an RPC method, served over every protocol."""

        def register(func: F) -> F:
            self.methods.add(
                name or func.__name__, func, run_in_thread=run_in_thread, description=description
            )
            return func

        return register

    async def authorize_call(self, ctx: CallContext, method: str) -> None:
        """Raise PermissionDenied unless the client may call ``method``.

        The one check of every protocol's calls, hub methods and WAMP procedures
        alike: ``[rpc.permissions]``, then the ``on_call`` hooks. It depends on
        the name only, never on whether a method of that name exists.
        """
        if not self.rpc_permissions.admits(method, ctx.identity):
            raise PermissionDenied(f"calling {method!r} is not authorized")
        if self.hooks.call:
            await self.hooks.run_call(ctx, method)

    def authorize_register(self, ctx: CallContext, procedure: str, match: str = "exact") -> None:
        """Raise PermissionDenied unless the client may provide ``procedure`` (WAMP REGISTER).

        ``rpc.register_access``, and every ``[rpc.permissions]`` rule guarding a
        name the registration could receive: a callee gets the callers'
        arguments, so it needs at least the right to make those calls itself
        (no squatting on ``admin.*`` by those ``admin.*`` refuses).
        """
        if not self.register_access.admits(ctx.identity):
            raise PermissionDenied(f"registering {procedure!r} is not authorized")
        for key, rule in self.rpc_permissions.reaching(procedure, match):
            if not rule.admits(ctx.identity):
                raise PermissionDenied(
                    f"registering {procedure!r} is not authorized: "
                    f"[rpc.permissions] {key!r} refuses you"
                )

    def add_method(self, name: str, func: Callable[..., Any], **options: Any) -> RpcMethod:
        return self.methods.add(name, func, **options)

    def load_module(self, module_name: str) -> int:
        """Import a module and serve its ``@rpc`` functions; call its ``setup(hub)`` if any."""
        module = importlib.import_module(module_name)
        marked = collect_marked(vars(module))
        for options, func in marked:
            self.methods.add(
                options.name,
                func,
                run_in_thread=options.run_in_thread,
                description=options.description,
            )
        setup = getattr(module, "setup", None)
        if callable(setup):
            setup(self)
        return len(marked)

    def load_configured_modules(self) -> None:
        """Import ``rpc.modules`` from ``rpc.paths`` (then the interpreter's path).

        A module that cannot be loaded raises :class:`~hub.config.ConfigError`
        naming its key (``rpc.modules[0]``) and, when it was not found, the
        import roots tried.
        """
        for path in self.config.rpc.paths:
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
        for index, module_name in enumerate(self.config.rpc.modules):
            try:
                count = self.load_module(module_name)
            except Exception as exc:
                raise ConfigError(module_load_error(index, module_name, exc)) from exc
            logger.info("loaded %d RPC method(s) from %s", count, module_name)

    # -- sessions --------------------------------------------------------

    def attach(self, session: Session, handler: SubprotocolHandler) -> None:
        self._sessions[session.id] = (session, handler)

    def detach(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def session(self, session_id: str) -> Session:
        try:
            return self._sessions[session_id][0]
        except KeyError:
            raise SessionNotFound(session_id) from None

    @property
    def session_ids(self) -> list[str]:
        return list(self._sessions)

    def user_sessions(self, user: str) -> list[tuple[Session, SubprotocolHandler]]:
        """This node's sessions of ``user`` (an anonymous session is its own user)."""
        found = []
        for session, handler in self._sessions.values():
            identity = session.identity
            if (identity.user_id if identity is not None else session.id) == user:
                found.append((session, handler))
        return found

    def protocol_counts(self) -> dict[str, int]:
        """This node's sessions by protocol (canonical name)."""
        counts: dict[str, int] = {}
        for session, _ in self._sessions.values():
            counts[session.subprotocol] = counts.get(session.subprotocol, 0) + 1
        return counts

    def _handler(self, session_id: str) -> SubprotocolHandler:
        try:
            return self._sessions[session_id][1]
        except KeyError:
            raise SessionNotFound(session_id) from None

    def notify(self, session_id: str, method: str, params: Any = None) -> None:
        """Push a notification to one client (JSON-RPC and channels sessions)."""
        self._handler(session_id).notify(method, params)

    async def call(
        self, session_id: str, method: str, params: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Call a method exposed by a client; raises TimeoutError after ``timeout`` seconds."""
        handler = self._handler(session_id)
        return await handler.call(
            method, params, timeout=timeout if timeout is not None else self.config.rpc.call_timeout
        )

    # -- lifecycle -------------------------------------------------------

    @property
    def server(self) -> HubServer:
        return self._server

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("the hub is not running")

    @property
    def url(self) -> str:
        """ws:// (wss:// with TLS) URL of the first bound socket, the address really bound."""
        for sock in self._server.sockets:
            host, port = sock.getsockname()[:2]
            if host in ("0.0.0.0", "::"):
                # Bound to every interface: loopback reaches it from here.
                host = "127.0.0.1" if host == "0.0.0.0" else "::1"
            if ":" in host:
                host = f"[{host}]"
            return f"{self._server.scheme}://{host}:{port}/"
        raise RuntimeError("the hub is not running")

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        self._stopped.clear()
        self._stopping = False
        # Before any client: imported at a first connection, a handler stalls everyone.
        self._server.registry.import_handlers()
        await self.services.start()
        try:
            await self._server.start(host, port)
        except BaseException:
            await self.services.stop()
            raise

    async def stop(self) -> None:
        """Close every client with 1001 (going away) and stop."""
        self._stopping = True
        # Each protocol's goodbye first (MQTT 5.0 DISCONNECT 0x8B), whatever the
        # transport; the closes then run together.
        for session_id, (_, handler) in list(self._sessions.items()):
            try:
                await handler.on_shutdown()
            except Exception:
                logger.exception("session %s: on_shutdown failed", session_id)
        await self._server.stop()
        await self.services.stop()
        await self.backend.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def add_reloader(self, name: str, reload: Callable[[], None]) -> None:
        """Register something ``reload()`` (SIGHUP) re-reads from disk, such as key files."""
        self._reloaders.append((name, reload))

    def reload(self) -> list[str]:
        """Re-read every reloadable file; a failure keeps the old state and is returned.

        Returns one message per reloader that failed, so one bad file does not
        stop the others (nor the hub) from reloading.
        """
        problems = []
        for name, reload in self._reloaders:
            try:
                reload()
            except Exception as exc:
                # A HubError says what is wrong (a missing file, a bad key); anything
                # else is a bug in the reloader, whose traceback is worth having.
                logger.error(
                    "reload of %s failed, keeping the previous one: %s",
                    name,
                    exc,
                    exc_info=not isinstance(exc, HubError),
                )
                problems.append(f"{name}: {exc}")
            else:
                logger.info("reloaded %s", name)
        return problems

    @property
    def stopping(self) -> bool:
        """True once stop() began: handlers tell a shutdown from a client going away."""
        return self._stopping

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"status": "ok", "sessions": len(self._sessions)}
        services = self.services.health()
        if services:
            # The worst service's status: a bridge whose broker is away reports
            # "degraded" (the hub serves on, HTTP 200); "down" answers 503.
            health["status"] = self.services.status()
            health["services"] = services
        return health
