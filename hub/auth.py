"""Username/password login for protocols that authenticate after the handshake.

MQTT's CONNECT (and WAMP's ticket auth) carry credentials inside the protocol.
One hook, registered with ``@hub.on_authenticate``, checks them for every
protocol: it returns the :class:`~hub.handler.Identity` of the user, or None
(or raises :class:`AuthenticationFailed`) for bad credentials, or raises
:class:`hub.errors.PermissionDenied` for a known user who may not connect.
Hooks may be sync or async; a sync hook runs on the event loop, so keep it fast
(or make it async and hand slow work such as password hashing to a thread).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hub.awaitables import maybe_await
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


class AuthenticationFailed(Exception):
    """Bad username or password (MQTT CONNACK 4)."""


AuthenticateHook = Callable[[Credentials], "Identity | Awaitable[Identity | None] | None"]


class Authenticator:
    """Holds the one authentication hook of a hub."""

    def __init__(self) -> None:
        self._hook: AuthenticateHook | None = None

    @property
    def configured(self) -> bool:
        return self._hook is not None

    def set_hook(self, hook: AuthenticateHook) -> None:
        # Two hooks would need a precedence rule nobody asked for; refuse instead.
        if self._hook is not None:
            raise ValueError("an authentication hook is already registered")
        self._hook = hook

    async def authenticate(self, credentials: Credentials) -> Identity:
        """The user's identity; AuthenticationFailed or PermissionDenied otherwise."""
        if self._hook is None:
            raise AuthenticationFailed("no authentication hook is configured")
        result = await maybe_await(self._hook(credentials))
        if result is None:
            raise AuthenticationFailed("bad username or password")
        if not isinstance(result, Identity):
            raise TypeError(f"the authentication hook returned {result!r}, not an Identity")
        return result
