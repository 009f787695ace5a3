"""The admin page's routes on the server API's aiohttp app.

The page is static files read from the package (``hub/admin/static``); what it
shows comes from ``POST /admin/api/<method>``, which runs the server API's own
methods (the same code as ``/api/``), plus ``stats``: counters gathered from
every node, from which the page draws message rates.

Its own credentials: HTTP Basic against ``[admin] users`` (argon2 hashes, as
``[auth.basic]``). Browsers resend Basic credentials to any page that posts to
the site, so every ``/admin/api/`` request must be JSON (a cross-site form
cannot send that without a CORS preflight, which is never granted) and, when it
carries an Origin, come from the admin page's own origin.
"""

from __future__ import annotations

import base64
import binascii
import logging
from http import HTTPStatus
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from hub.api.errors import ApiError
from hub.auth.passwords import UserTable

if TYPE_CHECKING:
    from hub.api.cluster import ClusterControl
    from hub.api.methods import ApiMethods
    from hub.app import Hub

logger = logging.getLogger(__name__)

# The server API methods the page uses; nothing else is reachable from it.
API_METHODS = frozenset(
    {"info", "channels", "presence", "presence_stats", "history", "publish", "disconnect"}
)
STATS = "admin.stats"
# The page's files: name -> content type.
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}
MAX_BODY = 64 * 1024
# The page is ours alone: no framing (clickjacking), no foreign scripts.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _json(status: HTTPStatus, body: Any) -> web.Response:
    return web.Response(
        status=status.value,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=SECURITY_HEADERS,
    )


class AdminSite:
    """Adds ``/admin`` to the server API's app."""

    def __init__(self, hub: Hub, methods: ApiMethods, control: ClusterControl) -> None:
        self._hub = hub
        self._methods = methods
        self._control = control
        self._users = UserTable(hub.config.admin)
        self._realm = hub.config.admin.realm
        control.on_gather(STATS, self._local_stats)
        if hub.config.admin.users_file is not None:
            hub.add_reloader(f"admin users {hub.config.admin.users_file}", self._users.reload)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/admin", self._page)
        router.add_get("/admin/", self._page)
        router.add_get("/admin/{name}", self._static)
        router.add_post("/admin/api/{method}", self._call)

    # -- credentials ---------------------------------------------------------------

    async def _authenticate(self, request: web.Request) -> None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, sep, password = base64.b64decode(encoded, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                sep = b""
            if sep and await self._users.check(user.decode("utf-8", "replace"), password):
                return
        self._hub.metrics.auth_failures.labels("admin").inc()
        raise web.HTTPUnauthorized(
            text="admin credentials required\n",
            headers={"WWW-Authenticate": f'Basic realm="{self._realm}", charset="UTF-8"'},
        )

    # -- the page ------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return await self._file(request, "index.html")

    async def _static(self, request: web.Request) -> web.Response:
        return await self._file(request, request.match_info["name"])

    async def _file(self, request: web.Request, name: str) -> web.Response:
        await self._authenticate(request)
        content_type = STATIC.get(name)
        if content_type is None:
            raise web.HTTPNotFound(text="not found\n")
        body = files("hub.admin").joinpath("static", name).read_bytes()
        return web.Response(body=body, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    # -- its methods ---------------------------------------------------------------

    async def _call(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        refusal = self._same_origin_json(request)
        if refusal is not None:
            return refusal
        name = request.match_info["method"]
        if name not in API_METHODS and name != "stats":
            return _json(HTTPStatus.NOT_FOUND, {"error": {"message": f"no method {name!r}"}})
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": {"message": "too large"}})
        try:
            params = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": {"message": f"not JSON: {exc}"}})
        try:
            if name == "stats":
                result = await self._stats()
            else:
                result = await self._methods.call(name, params)
        except ApiError as exc:
            return _json(exc.status, exc.body())
        except Exception:
            logger.exception("admin: method %r failed", name)
            return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": {"message": "internal"}})
        return _json(HTTPStatus.OK, {"result": result})

    def _same_origin_json(self, request: web.Request) -> web.Response | None:
        if request.content_type != "application/json":
            return _json(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": {"message": "send Content-Type: application/json"}},
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _json(HTTPStatus.FORBIDDEN, {"error": {"message": "cross-origin request"}})
        return None

    async def _stats(self) -> dict[str, Any]:
        answers, partial = await self._control.gather(STATS, {})
        nodes = sorted(
            (answer for answer in answers.values() if isinstance(answer, dict)),
            key=lambda node: str(node.get("node")),
        )
        return {"nodes": nodes, "partial": partial}

    async def _local_stats(self, body: dict[str, Any]) -> dict[str, Any]:
        """This node's counters since it started; the page turns them into rates."""
        metrics = self._hub.metrics
        return {
            "node": self._hub.node_id,
            "publications": metrics.publications.value,
            "deliveries": metrics.deliveries.value,
            "received": sum(c.value for c in metrics.messages_received.children.values()),
            "fallback": {
                transport: gauge.value
                for transport, gauge in metrics.fallback_sessions_active.children.items()
            },
        }
