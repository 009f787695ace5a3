"""Plain HTTP GETs served on the WebSocket port: health, metrics, OpenRPC, static files."""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from hub.access import Rule
from hub.assets import CLIENT_FILES, client_dir, demo_dir
from hub.config_section import AccessRule
from hub.handler import Identity

if TYPE_CHECKING:
    from hub.app import Hub

# The JS client is public code (it is also the npm package): any page may
# import it, whatever server.allowed_origins says. That list guards the
# WebSocket handshake, where a user's data and credentials flow; see
# docs/security.md, "The static client and CORS".
CLIENT_CORS = {"Access-Control-Allow-Origin": "*"}


def response(
    status: HTTPStatus, body: bytes, content_type: str, *, extra: dict[str, str] | None = None
) -> Response:
    headers = Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-cache"
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status.value, status.phrase, headers, body)


def text_response(status: HTTPStatus, text: str) -> Response:
    return response(status, text.encode(), "text/plain; charset=utf-8")


def json_response(status: HTTPStatus, value: object) -> Response:
    return response(status, orjson.dumps(value), "application/json")


class HttpRoutes:
    """Explicit routes first, then static files; anything else is a 404.

    ``/metrics`` and ``/openrpc.json`` are guarded: the server establishes the
    request's identity (``guarded``) before asking for them, and they answer
    401 without one where one is needed, 403 when the rule refuses it.
    """

    GUARDED: Final = frozenset({"/metrics", "/openrpc.json"})

    def __init__(self, hub: Hub, static_dir: Path | None) -> None:
        self._hub = hub
        self._static_dir = (static_dir or demo_dir()).resolve()
        self._routes: dict[str, Callable[[], Response]] = {"/healthz": self._healthz}
        self._guarded: dict[str, Callable[[Identity | None], Response]] = {
            "/metrics": self._metrics,
            "/openrpc.json": self._openrpc,
        }
        anonymous = hub.config.auth.allow_anonymous
        rule = hub.config.server.metrics_access
        if rule is None:
            rule = AccessRule(authenticated=not anonymous)
        self._metrics_rule = Rule(rule)
        # The client's files by exact path: nothing else of js-client/ is served.
        for name, content_type in CLIENT_FILES.items():
            self._routes["/" + name] = functools.partial(self._client_file, name, content_type)

    def add_route(self, path: str, route: Callable[[], Response]) -> None:
        self._routes[path] = route

    @staticmethod
    def path_of(request: Request) -> str:
        # Browsers percent-encode paths ("my%20page.html"); decode before routing.
        return unquote(request.path.split("?", 1)[0])

    def guarded(self, request: Request) -> bool:
        """Whether the answer depends on who asks (the caller authenticates first)."""
        return self.path_of(request) in self._guarded

    def handle(self, request: Request, identity: Identity | None = None) -> Response:
        path = self.path_of(request)
        guarded = self._guarded.get(path)
        if guarded is not None:
            return guarded(identity)
        route = self._routes.get(path)
        if route is not None:
            return route()
        return self._file(self._static_dir, path.lstrip("/") or "index.html")

    def _refused(self, identity: Identity | None, what: str, key: str) -> Response:
        if identity is None:
            refused = self._hub.auth.anonymous_refused()
            out = text_response(HTTPStatus.UNAUTHORIZED, f"{what} needs credentials ({key})\n")
            for challenge in refused.challenges:
                out.headers["WWW-Authenticate"] = challenge
            return out
        return text_response(HTTPStatus.FORBIDDEN, f"{what} is not open to you ({key})\n")

    def _healthz(self) -> Response:
        health = self._hub.health()
        status = HTTPStatus.OK if health["status"] != "down" else HTTPStatus.SERVICE_UNAVAILABLE
        return json_response(status, health)

    def _metrics(self, identity: Identity | None) -> Response:
        if not self._metrics_rule.admits(identity):
            return self._refused(identity, "/metrics", "server.metrics_access")
        metrics = self._hub.metrics
        return response(HTTPStatus.OK, metrics.render(), metrics.content_type)

    def _openrpc(self, identity: Identity | None) -> Response:
        # The same document as rpc.discover, for the same callers: a hub that
        # refuses anonymous sessions does not show it to anonymous requests, and
        # [rpc.permissions] for rpc.discover applies to the request's identity.
        if identity is None and not self._hub.auth.allow_anonymous:
            return self._refused(None, "/openrpc.json", "auth.allow_anonymous")
        if not self._hub.rpc_permissions.admits("rpc.discover", identity):
            return self._refused(identity, "/openrpc.json", "rpc.permissions of rpc.discover")
        return json_response(HTTPStatus.OK, self._hub.methods.openrpc())

    def _client_file(self, name: str, content_type: str) -> Response:
        try:
            body = (client_dir() / name).read_bytes()
        except OSError:  # a wheel built without it, a checkout missing the generated .d.ts
            return text_response(HTTPStatus.NOT_FOUND, f"{name} is not installed\n")
        return response(HTTPStatus.OK, body, content_type, extra=CLIENT_CORS)

    def _file(self, root: Path, relative: str) -> Response:
        not_found = text_response(HTTPStatus.NOT_FOUND, "not found\n")
        try:
            candidate = (root / relative).resolve()
            # Refuse anything that escapes the root (.., symlinks out).
            if not candidate.is_relative_to(root):
                return not_found
            if candidate.is_dir():
                candidate = candidate / "index.html"
            if not candidate.is_file():
                return not_found
            body = candidate.read_bytes()
        except (OSError, ValueError):  # an embedded NUL, a name too long, unreadable
            return not_found
        content_type = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return response(HTTPStatus.OK, body, content_type)
