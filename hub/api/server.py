"""The server API's listener: aiohttp on ``[api] host``/``port``.

Not on the hub's WebSocket port: websockets' server reads no request bodies, and
a hand-written HTTP parser is not a thing to maintain. aiohttp is maintained,
and gives the proxy and webhooks their client too.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from hub.api.errors import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
    ApiError,
)
from hub.api.keys import ApiKeys
from hub.api.methods import ApiMethods
from hub.api.openapi import openapi

if TYPE_CHECKING:
    from hub.admin import AdminSite
    from hub.app import Hub

logger = logging.getLogger(__name__)

SCHEME = "apikey"


def _json(status: HTTPStatus, body: Any) -> web.Response:
    return web.Response(
        status=status.value, body=orjson.dumps(body), content_type="application/json"
    )


class ApiServer:
    """A hub service: serves ``POST /api/<method>`` while the hub runs."""

    def __init__(
        self, hub: Hub, methods: ApiMethods, keys: ApiKeys, *, admin: AdminSite | None = None
    ) -> None:
        self._hub = hub
        # The admin page (hub.admin), served here when [admin] is enabled.
        self._admin = admin
        self._methods = methods
        self._keys = keys
        self._config = hub.config.api
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._openapi = orjson.dumps(openapi(methods.table))
        metrics = hub.metrics
        self._requests = metrics.api_requests

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        for address in self._addresses():
            return int(address[1])
        raise RuntimeError("the API is not running")

    @property
    def url(self) -> str:
        """http:// URL of the listener, the address really bound."""
        for address in self._addresses():
            host, port = address[:2]
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1" if host == "0.0.0.0" else "::1"
            if ":" in host:
                host = f"[{host}]"
            return f"http://{host}:{port}"
        raise RuntimeError("the API is not running")

    def _addresses(self) -> list[Any]:
        return list(self._runner.addresses) if self._runner is not None else []

    async def start(self) -> None:
        await self._methods.load_revocations()
        # aiohttp's own body limit is ours plus slack: we answer 413 in JSON first.
        app = web.Application(client_max_size=self._config.max_body_bytes + 1)
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/openapi.json", self._openapi_document)
        if self._admin is not None:
            self._admin.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(
            self._runner, self._config.host, self._config.port, reuse_address=True
        )
        try:
            await self._site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = self._site = None
            raise
        logger.info("server API listening on %s/api/", self.url)
        if self._admin is not None:
            logger.info("admin page on %s/admin", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._site = None

    # -- requests ----------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        error = ApiError(HTTPStatus.NOT_FOUND, NOT_FOUND, "not found: POST /api/<method>")
        return _json(error.status, error.body())

    async def _openapi_document(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        try:
            self._authenticate(request)
            params = await self._body(request)
            result = await self._methods.call(name, params)
        except ApiError as exc:
            self._requests.labels(str(exc.status.value)).inc()
            return _json(exc.status, exc.body())
        except Exception:
            logger.exception("server API: method %r failed", name)
            self._requests.labels("500").inc()
            error = ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL, "internal error")
            return _json(error.status, error.body())
        self._requests.labels("200").inc()
        return _json(HTTPStatus.OK, {"result": result})

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != SCHEME or not key.strip():
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                UNAUTHORIZED,
                'an API key is required: "Authorization: apikey <key>"',
            )
        if not self._keys.admits(key.strip()):
            raise ApiError(HTTPStatus.UNAUTHORIZED, UNAUTHORIZED, "unknown API key")

    async def _body(self, request: web.Request) -> Any:
        limit = self._config.max_body_bytes
        too_large = ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            TOO_LARGE,
            f"the body is over {limit} bytes ([api] max_body_bytes)",
        )
        # Refused before reading when the client says how much it sends.
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        try:
            raw = await request.content.read(limit + 1)
        except (ConnectionError, ValueError) as exc:
            message = f"cannot read the body: {exc}"
            raise ApiError(HTTPStatus.BAD_REQUEST, BAD_REQUEST, message) from None
        if len(raw) > limit:
            raise too_large
        if not raw.strip():
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, BAD_REQUEST, f"the body is not JSON: {exc}"
            ) from None
