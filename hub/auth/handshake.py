"""Credentials in a WebSocket upgrade request, and the HTTP answer that refuses one.

A client presents at most one credential, looked for in this order:
``Authorization: Bearer <jwt>`` or ``Authorization: Basic ...``, then the JWT
query parameter (``[auth.jwt] query_param``), then the JWT cookie
(``[auth.jwt] cookie``). The first one found is the one checked.
"""

from __future__ import annotations

import base64
import binascii
import http
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from hub.auth.hooks import AuthenticationFailed, HandshakeRequest
from hub.config import AuthConfig
from hub.errors import HubError

BEARER = "bearer"
BASIC = "basic"


@dataclass(frozen=True, slots=True)
class Presented:
    """One credential found in the request."""

    # "bearer", "basic", or whatever other scheme an Authorization header named.
    scheme: str
    value: str
    # "header", "query" or "cookie": where it was found.
    source: str


class HandshakeRefused(HubError):
    """Refuse the upgrade with an HTTP status, a short text body and challenges."""

    def __init__(
        self, status: http.HTTPStatus, message: str, challenges: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenges = tuple(challenges)

    def response(self, connection: ServerConnection) -> Response:
        response = connection.respond(self.status, self.message + "\n")
        for challenge in self.challenges:
            # Headers is a multi-dict: each assignment adds a header line.
            response.headers["WWW-Authenticate"] = challenge
        return response


def handshake_request(request: Request, remote_address: Any) -> HandshakeRequest:
    """The read-only view of ``request`` the ``on_handshake`` hook receives."""
    url = urlsplit(request.path)
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(name, value)
    headers: dict[str, str] = {}
    for name, value in request.headers.raw_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    cookies: dict[str, str] = {}
    for header in request.headers.get_all("Cookie"):
        cookies.update(parse_cookies(header))
    if isinstance(remote_address, tuple) and len(remote_address) >= 2:
        remote = f"{remote_address[0]}:{remote_address[1]}"
    else:
        remote = str(remote_address)
    return HandshakeRequest(
        path=url.path or "/",
        query=MappingProxyType(query),
        headers=MappingProxyType(headers),
        cookies=MappingProxyType(cookies),
        remote_address=remote,
        origin=request.headers.get("Origin"),
        identity=None,
    )


def parse_cookies(header: str) -> dict[str, str]:
    """``name=value; name2=value2``, leniently: a malformed pair is skipped, not fatal."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, equals, value = pair.strip().partition("=")
        if equals and name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cookies.setdefault(name, value)
    return cookies


def presented_credentials(request: HandshakeRequest, config: AuthConfig) -> Presented | None:
    """The credential the client presented, if any (see the module docstring)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        return Presented(scheme.lower(), value.strip(), "header")
    jwt = config.jwt
    if jwt is not None:
        if jwt.query_param is not None and jwt.query_param in request.query:
            return Presented(BEARER, request.query[jwt.query_param], "query")
        if jwt.cookie is not None and jwt.cookie in request.cookies:
            return Presented(BEARER, request.cookies[jwt.cookie], "cookie")
    return None


def basic_credentials(value: str) -> tuple[str, bytes]:
    """(user, password) of a Basic credential; AuthenticationFailed when malformed."""
    try:
        decoded = base64.b64decode(value, validate=True)
        user, colon, password = decoded.partition(b":")
        if not colon:
            raise ValueError("no colon")
        return user.decode("utf-8"), password
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("malformed Basic credentials") from None


def challenges(config: AuthConfig, failed: Presented | None, reason: str) -> list[str]:
    """WWW-Authenticate values: the failed scheme's, or every configured one."""
    realm = _quote(config.basic.realm if config.basic is not None else "wshub")
    out = []
    if config.jwt is not None and (failed is None or failed.scheme == BEARER):
        bearer = f"Bearer realm={realm}"
        if failed is not None:
            # RFC 6750 section 3.1: what was wrong with the token.
            bearer += f', error="invalid_token", error_description={_quote(reason)}'
        out.append(bearer)
    if config.basic is not None and (failed is None or failed.scheme == BASIC):
        out.append(f'Basic realm={realm}, charset="UTF-8"')
    return out


def _quote(text: str) -> str:
    cleaned = "".join(c for c in text if c.isprintable() and c not in '"\\')
    return f'"{cleaned}"'
