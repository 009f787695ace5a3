"""The hub's authentication: the built-in checks, the two hooks, and token refresh."""

from __future__ import annotations

import dataclasses
import http
import logging
from collections.abc import Callable

from hub.auth.handshake import (
    BASIC,
    BEARER,
    HandshakeRefused,
    Presented,
    basic_credentials,
    challenges,
    presented_credentials,
)
from hub.auth.hooks import (
    AuthenticateHook,
    AuthenticationFailed,
    Credentials,
    HandshakeHook,
    HandshakeRequest,
)
from hub.auth.passwords import UserTable
from hub.auth.revocations import Revocations
from hub.auth.tokens import InvalidToken, JwtVerifier, looks_like_jwt
from hub.awaitables import maybe_await
from hub.config import AuthConfig
from hub.errors import PermissionDenied
from hub.handler import Identity

logger = logging.getLogger(__name__)


class Authenticator:
    """Who a client is: at the handshake, at a protocol login, and on refresh.

    ``on_failure(method)`` is told of every refused credential ("jwt",
    "basic", "password", "hook", "anonymous", "unchecked", "refresh"), for
    the metrics.
    """

    def __init__(
        self, config: AuthConfig | None = None, *, on_failure: Callable[[str], None] | None = None
    ) -> None:
        self.config = config or AuthConfig()
        self.jwt = JwtVerifier(self.config.jwt) if self.config.jwt is not None else None
        self.users = UserTable(self.config.basic) if self.config.basic is not None else None
        self._hook: AuthenticateHook | None = None
        self._handshake_hook: HandshakeHook | None = None
        self._on_failure = on_failure
        self.revocations = Revocations()

    @property
    def allow_anonymous(self) -> bool:
        return self.config.allow_anonymous

    @property
    def configured(self) -> bool:
        """Whether anything can check a username/password login."""
        return self._hook is not None or self.users is not None or self.jwt is not None

    def set_hook(self, hook: AuthenticateHook) -> None:
        # Two hooks would need a precedence rule nobody asked for; refuse instead.
        if self._hook is not None:
            raise ValueError("an authentication hook is already registered")
        self._hook = hook

    def set_handshake_hook(self, hook: HandshakeHook) -> None:
        if self._handshake_hook is not None:
            raise ValueError("a handshake hook is already registered")
        self._handshake_hook = hook

    def reloaders(self) -> list[tuple[str, Callable[[], None]]]:
        """What SIGHUP re-reads: the users file and the JWT key files."""
        out: list[tuple[str, Callable[[], None]]] = []
        if self.users is not None and self.config.basic and self.config.basic.users_file:
            out.append((f"users file {self.config.basic.users_file}", self.users.reload))
        if self.jwt is not None and self.jwt.files:
            names = ", ".join(str(path) for path in self.jwt.files)
            out.append((f"JWT keys {names}", self.jwt.reload))
        return out

    def _verify(self, token: str) -> Identity:
        """A JWT's identity, unless invalid or revoked (server API ``revoke``)."""
        assert self.jwt is not None
        identity = self.jwt.verify(token)
        if self.revocations.revoked(identity):
            raise InvalidToken("token revoked")
        return identity

    def _failed(self, method: str) -> None:
        if self._on_failure is not None:
            self._on_failure(method)

    # -- protocol logins (MQTT CONNECT, WAMP ticket) ---------------------------

    async def authenticate(self, credentials: Credentials) -> Identity:
        """The user's identity; AuthenticationFailed or PermissionDenied otherwise.

        Tried in order: the [auth.basic] user table (method "password"), the
        password as a JWT when it looks like one (method "jwt"), then the
        ``on_authenticate`` hook.
        """
        reason = "bad username or password"
        method = "password"
        password = credentials.password or b""
        users = self.users
        known = users is not None and credentials.username in users
        if known and users is not None and await users.check(credentials.username, password):
            return Identity(credentials.username, {}, method="password")
        token = _as_token(password)
        if self.jwt is not None and token is not None:
            method = "jwt"
            try:
                return self._verify(token)
            except InvalidToken as exc:
                reason = str(exc)
        if self._hook is not None:
            method = "hook"
            try:
                result = await maybe_await(self._hook(credentials))
            except AuthenticationFailed:
                result = None
            except PermissionDenied:
                self._failed("hook")
                raise
            if result is not None:
                if not isinstance(result, Identity):
                    raise TypeError(f"the authentication hook returned {result!r}, not an Identity")
                return result if result.method else dataclasses.replace(result, method="hook")
        if users is not None and not known:
            # A refusal costs one hash whether the user exists or not (a dummy
            # hash for unknown users), so response times do not tell who exists.
            await users.check(credentials.username, password)
        self._failed(method)
        raise AuthenticationFailed(reason)

    # -- the WebSocket handshake ---------------------------------------------------

    async def handshake(self, request: HandshakeRequest) -> Identity | None:
        """The identity of an upgrade request (None: anonymous); HandshakeRefused otherwise.

        Presented credentials that do not verify are refused with 401, never
        treated as anonymous. The ``on_handshake`` hook, if any, has the last word.
        """
        presented = presented_credentials(request, self.config)
        identity = await self._check(presented) if presented is not None else None
        if self._handshake_hook is None:
            return identity
        return await self._run_handshake_hook(dataclasses.replace(request, identity=identity))

    def anonymous_refused(self) -> HandshakeRefused:
        """The 401 for a handshake without credentials when anonymous sessions are off."""
        self._failed("anonymous")
        return HandshakeRefused(
            http.HTTPStatus.UNAUTHORIZED,
            "authentication required",
            challenges(self.config, None, ""),
        )

    async def _check(self, presented: Presented) -> Identity | None:
        try:
            if presented.scheme == BEARER and self.jwt is not None:
                return self._verify(presented.value)
            if presented.scheme == BASIC and self.users is not None:
                user, password = basic_credentials(presented.value)
                if await self.users.check(user, password):
                    return Identity(user, {}, method="basic")
                raise AuthenticationFailed("bad username or password")
        except AuthenticationFailed as exc:
            self._failed("jwt" if presented.scheme == BEARER else "basic")
            raise HandshakeRefused(
                http.HTTPStatus.UNAUTHORIZED, str(exc), challenges(self.config, presented, str(exc))
            ) from None
        if self._handshake_hook is not None:
            # Credentials no built-in is configured for are the hook's to judge.
            return None
        # Not the scheme itself: a client could mint label values at will.
        self._failed("unchecked")
        raise HandshakeRefused(
            http.HTTPStatus.UNAUTHORIZED,
            f"{presented.scheme.capitalize()} credentials cannot be checked by this hub",
            challenges(self.config, None, ""),
        )

    async def _run_handshake_hook(self, request: HandshakeRequest) -> Identity | None:
        assert self._handshake_hook is not None
        try:
            result = await maybe_await(self._handshake_hook(request))
        except AuthenticationFailed as exc:
            self._failed("hook")
            message = str(exc) or "authentication failed"
            raise HandshakeRefused(
                http.HTTPStatus.UNAUTHORIZED, message, challenges(self.config, None, "")
            ) from None
        except PermissionDenied as exc:
            self._failed("hook")
            raise HandshakeRefused(http.HTTPStatus.FORBIDDEN, exc.message) from None
        except Exception:
            logger.exception("the handshake hook failed for %s", request.remote_address)
            raise HandshakeRefused(
                http.HTTPStatus.INTERNAL_SERVER_ERROR, "authentication hook failed"
            ) from None
        if result is None:
            return None
        if not isinstance(result, Identity):
            logger.error("the handshake hook returned %r, not an Identity or None", result)
            raise HandshakeRefused(
                http.HTTPStatus.INTERNAL_SERVER_ERROR, "authentication hook failed"
            )
        return result if result.method else dataclasses.replace(result, method="hook")

    # -- refresh ---------------------------------------------------------------------

    def refresh(self, current: Identity | None, token: str) -> Identity:
        """The identity of a fresh token for the same user; AuthenticationFailed otherwise."""
        try:
            if self.jwt is None:
                raise AuthenticationFailed("this hub checks no tokens ([auth.jwt] is not set)")
            if current is None:
                raise AuthenticationFailed("an anonymous session has no token to refresh")
            identity = self._verify(token)
            if identity.user_id != current.user_id:
                raise AuthenticationFailed("the token names another user")
        except AuthenticationFailed:
            self._failed("refresh")
            raise
        return identity


def _as_token(password: bytes) -> str | None:
    try:
        text = password.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if looks_like_jwt(text) else None
