"""Proxy to the backend: the hub asks the user's backend over HTTP (docs/proxy.md).

``[proxy.connect]``, ``[proxy.subscribe]``, ``[proxy.publish]`` and
``[proxy.rpc]`` name endpoints the hub POSTs an event to, as JSON::

    {"event": "subscribe", "client": "<session id>", "protocol": "mqtt",
     "user": "ada" | null, "headers": {...}, "channel": "chat/1", ...}

The backend answers ``{"result": {...}}`` to allow (a publish's ``data`` in
it replaces the payload; an rpc's ``result`` is the method's result) or
``{"error": {"code", "message"}}`` to refuse. They are wired as the hub's own
hooks (connect, subscribe, publish) and as methods of its RPC table, so every
protocol meets the same decision: an MQTT SUBSCRIBE, a WAMP SUBSCRIBE and a
channels.v1 subscribe ask the same endpoint, each refused in its own terms.

A backend that does not answer in time, answers something else than JSON with
200, or cannot be reached gets the client a clear "backend unavailable"
(channels.v1 -32017, MQTT SUBACK 0x80, WAMP wamp.error.network_failure...).
Requests share one bounded pool of connections (``[proxy] max_connections``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from hub.access import glob_matches
from hub.config import ProxyConfig, ProxyEndpoint, RpcProxyEndpoint
from hub.engine import Publication
from hub.errors import EngineUnavailable, HubError, PermissionDenied
from hub.handler import Identity
from hub.payloads import to_json_value
from hub.rpc import INTERNAL_ERROR, CallContext, RpcError, RpcMethod

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.session import BoundedSession

logger = logging.getLogger(__name__)

# Proxied method objects kept for reuse (each costs a pydantic model to build).
MAX_PROXIED_METHODS = 1024

# The JSON-RPC code of an RPC whose backend is unavailable (as channels.v1's -32017).
BACKEND_UNAVAILABLE = -32017


# The backend did not answer in time, or not with JSON: nothing was decided.
# Raised as the engine's "try again later", which every protocol already maps
# to its own error (an exact type: the protocols' tables are by type).
BackendUnavailable = EngineUnavailable


class Refused(HubError):
    """The backend answered with an error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class BackendProxy:
    """A hub service: the HTTP client of every configured proxy endpoint."""

    def __init__(self, hub: Hub, config: ProxyConfig) -> None:
        self._hub = hub
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._requests = hub.metrics.proxy_requests
        # Proxied methods built so far, by name (most recently used last).
        self._methods: OrderedDict[str, ProxiedMethod] = OrderedDict()
        if config.connect is not None:
            hub.hooks.connect.append(self._on_connect)
        if config.subscribe is not None:
            hub.hooks.subscribe.append(("#", self._on_subscribe))
        if config.publish is not None:
            hub.hooks.publish.append(("#", self._on_publish))
        if config.rpc is not None:
            hub.methods.set_fallback(self._rpc_method)
        if config.refresh is not None:
            hub.refresher = self._refresh

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._config.max_connections),
            json_serialize=_dumps,
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the exchange -------------------------------------------------------------------

    async def ask(self, endpoint: ProxyEndpoint, ctx: CallContext, event: dict[str, Any]) -> Any:
        """POST the event; the backend's result, or Refused / BackendUnavailable."""
        if self._session is None:
            raise BackendUnavailable("backend unavailable: the hub is not running")
        body = {**self._who(ctx, endpoint), **event}
        kind = str(event["event"])
        try:
            async with self._session.post(
                endpoint.url, json=body, timeout=aiohttp.ClientTimeout(total=endpoint.timeout)
            ) as response:
                if response.status != 200:
                    raise BackendUnavailable(
                        f"backend unavailable: HTTP {response.status} from the {kind} proxy"
                    )
                answer = await response.json(content_type=None)
        except TimeoutError:
            self._requests.labels("timeout").inc()
            raise BackendUnavailable(
                f"backend unavailable: no answer from the {kind} proxy in {endpoint.timeout:g} s"
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:
            self._requests.labels("unavailable").inc()
            logger.warning("proxy: %s to %s failed: %r", kind, endpoint.url, exc)
            raise BackendUnavailable(
                f"backend unavailable: the {kind} proxy cannot be reached"
            ) from None
        except BackendUnavailable:
            self._requests.labels("unavailable").inc()
            raise
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            self._requests.labels("refused").inc()
            error = answer["error"]
            raise Refused(
                int(error.get("code", 0)) if isinstance(error.get("code"), int) else 0,
                str(error.get("message") or "refused by the backend"),
                error.get("data"),
            )
        if not isinstance(answer, dict) or "result" not in answer:
            self._requests.labels("unavailable").inc()
            raise BackendUnavailable(
                f"backend unavailable: the {kind} proxy answered neither result nor error"
            )
        self._requests.labels("allowed").inc()
        return answer["result"]

    def _who(self, ctx: CallContext, endpoint: ProxyEndpoint) -> dict[str, Any]:
        identity = ctx.identity
        who: dict[str, Any] = {
            "client": ctx.session_id,
            "protocol": ctx.subprotocol,
            "user": identity.user_id if identity is not None else None,
        }
        if endpoint.headers:
            who["headers"] = self._headers(ctx.session_id)
        return who

    def _headers(self, session_id: str) -> Mapping[str, str]:
        try:
            session = self._hub.session(session_id)
        except LookupError:
            return {}
        return dict(getattr(session, "forwarded_headers", {}))

    # -- as hooks -----------------------------------------------------------------------

    async def _on_connect(self, ctx: CallContext) -> None:
        assert self._config.connect is not None
        try:
            await self.ask(self._config.connect, ctx, {"event": "connect"})
        except Refused as exc:
            raise PermissionDenied(exc.message) from None
        except BackendUnavailable as exc:
            # The connect hook refuses with 1008 and this text.
            raise PermissionDenied(exc.message) from None

    async def _on_subscribe(self, ctx: CallContext, channel: str) -> None:
        assert self._config.subscribe is not None
        event = {"event": "subscribe", "channel": channel}
        try:
            await self.ask(self._config.subscribe, ctx, event)
        except Refused as exc:
            raise PermissionDenied(exc.message) from None

    async def _on_publish(self, ctx: CallContext, publication: Publication) -> Any:
        assert self._config.publish is not None
        event = {"event": "publish", "channel": publication.channel, "data": publication.data}
        try:
            result = await self.ask(self._config.publish, ctx, event)
        except Refused as exc:
            raise PermissionDenied(exc.message) from None
        # {"data": ...} in the result replaces the payload.
        if isinstance(result, dict) and "data" in result:
            return result["data"]
        return None

    async def _refresh(self, session: BoundedSession) -> Identity | None:
        """The backend's new expiry for an expiring session, or None to let it close."""
        endpoint = self._config.refresh
        identity = session.identity
        if endpoint is None or identity is None:
            return None
        ctx = CallContext(self._hub, session.id, session.subprotocol, identity)
        event = {"event": "refresh", "expires_at": identity.expires_at}
        try:
            result = await self.ask(endpoint, ctx, event)
        except (Refused, BackendUnavailable) as exc:
            logger.info("proxy: refresh of session %s not granted: %s", session.id, exc)
            return None
        expires_at = result.get("expires_at") if isinstance(result, dict) else None
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            logger.warning("proxy: the refresh answer has no numeric expires_at: %r", result)
            return None
        return dataclasses.replace(identity, expires_at=float(expires_at))

    # -- as RPC methods -----------------------------------------------------------------

    def _rpc_method(self, name: str) -> RpcMethod | None:
        endpoint = self._config.rpc
        assert endpoint is not None
        method = self._methods.get(name)
        if method is not None:
            self._methods.move_to_end(name)
            return method
        if not any(glob_matches(pattern, name) for pattern in endpoint.methods):
            return None
        method = self._methods[name] = ProxiedMethod(name, self, endpoint)
        # Bounded: names come from clients.
        while len(self._methods) > MAX_PROXIED_METHODS:
            self._methods.popitem(last=False)
        return method


async def _served_by_the_backend(ctx: CallContext) -> Any:
    """Stands in for the function a proxied method does not have (never called)."""
    raise NotImplementedError


class ProxiedMethod(RpcMethod):
    """A method the backend serves: the params go as received, the result comes back."""

    def __init__(self, name: str, proxy: BackendProxy, endpoint: RpcProxyEndpoint) -> None:
        # RpcMethod's own set-up, over a stand-in, so every attribute the
        # protocols read exists; the backend validates the params, not pydantic.
        super().__init__(
            name, _served_by_the_backend, description=f"served by the backend ({endpoint.url})"
        )
        # Every call awaits the backend.
        self.inline = False
        self._proxy = proxy
        self._endpoint = endpoint

    def bind(self, params: Any) -> dict[str, Any]:
        return {}

    async def invoke(self, params: Any, context: CallContext) -> Any:
        event = {"event": "rpc", "method": self.name, "params": params}
        try:
            return await self._proxy.ask(self._endpoint, context, event)
        except Refused as exc:
            raise RpcError(exc.code or INTERNAL_ERROR, exc.message, exc.data) from None
        except BackendUnavailable as exc:
            raise RpcError(BACKEND_UNAVAILABLE, exc.message) from None


def _dumps(value: Any) -> str:
    # MQTT payloads are bytes: JSON when they hold JSON, else the binary envelope.
    return orjson.dumps(value, default=to_json_value).decode()
