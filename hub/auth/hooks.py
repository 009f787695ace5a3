"""What user hooks receive and raise: in-band credentials and handshake requests.

Two hooks, both sync or async (a sync hook runs on the event loop, so keep it
fast, or make it async and hand slow work to a thread):

* ``@hub.on_authenticate`` checks a username/password that a protocol carries
  after the handshake (MQTT CONNECT, WAMP ticket), once the built-in checks
  (the [auth.basic] user table, a JWT) did not accept it. It returns the
  :class:`~hub.handler.Identity`, or None (or raises
  :class:`AuthenticationFailed`) for bad credentials, or raises
  :class:`hub.errors.PermissionDenied` for a known user who may not connect.
* ``@hub.on_handshake`` sees every WebSocket upgrade as a
  :class:`HandshakeRequest` (with the identity the built-ins found) and returns
  the session's final identity, or None for an anonymous session. Raising
  :class:`AuthenticationFailed` answers HTTP 401, ``PermissionDenied`` 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from hub.errors import HubError
from hub.handler import Identity


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client presented, and where it came from."""

    username: str
    password: bytes | None
    protocol: str
    session_id: str
    remote_address: str
    # The protocol's own client name: the MQTT client id, the WAMP authid.
    client_id: str = ""


class AuthenticationFailed(HubError):
    """Bad or missing credentials: HTTP 401, MQTT CONNACK 4, WAMP authentication_failed."""


AuthenticateHook = Callable[[Credentials], "Identity | Awaitable[Identity | None] | None"]


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """A WebSocket upgrade as the ``on_handshake`` hook sees it (read-only)."""

    # The URL path without the query string.
    path: str
    # First value of each query parameter.
    query: Mapping[str, str]
    # Header names in lower case; a repeated header's values joined with ", ".
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    # "ip:port" of the peer; behind a trusted proxy, the forwarded client "ip"
    # (server.trusted_proxies).
    remote_address: str
    # The Origin header of a browser; None from other clients.
    origin: str | None
    # Who the built-in checks ([auth.jwt], [auth.basic]) found; None if nobody.
    identity: Identity | None


HandshakeHook = Callable[[HandshakeRequest], "Identity | Awaitable[Identity | None] | None"]
