"""Authentication: who is on the other end of a session.

* At the WebSocket handshake: a JWT (``Authorization: Bearer``, a query
  parameter or a cookie; :mod:`hub.auth.tokens`), HTTP Basic against the
  ``[auth.basic]`` user table (:mod:`hub.auth.passwords`), and the
  ``@hub.on_handshake`` hook for anything else (:mod:`hub.auth.handshake`).
* At a protocol login (MQTT CONNECT, WAMP ticket): the same user table, the
  password as a JWT, then the ``@hub.on_authenticate`` hook.
* While connected: an identity with an expiry closes its session with 3000
  when it passes, unless refreshed (:mod:`hub.auth.expiry`).

The :class:`Authenticator` (``hub.auth``) ties them together; docs/security.md
describes the behaviour and the configuration.
"""

from hub.auth.authenticator import Authenticator
from hub.auth.expiry import TOKEN_EXPIRED_REASON, ExpiryWatch
from hub.auth.handshake import HandshakeRefused, handshake_request
from hub.auth.hooks import (
    AuthenticateHook,
    AuthenticationFailed,
    Credentials,
    HandshakeHook,
    HandshakeRequest,
)
from hub.auth.passwords import hash_password
from hub.auth.tokens import InvalidToken

__all__ = [
    "TOKEN_EXPIRED_REASON",
    "AuthenticateHook",
    "AuthenticationFailed",
    "Authenticator",
    "Credentials",
    "ExpiryWatch",
    "HandshakeHook",
    "HandshakeRefused",
    "HandshakeRequest",
    "InvalidToken",
    "handshake_request",
    "hash_password",
]
