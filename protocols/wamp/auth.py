"""WAMP authentication: anonymous, ticket and WAMP-CRA (docs/wamp.md, "Authentication").

The router tries the methods in the order the client lists them in
``HELLO.Details.authmethods`` (just ``anonymous`` when it lists none), skipping
those ``[wamp] auth_methods`` does not enable or nothing can check:

* ``anonymous``: a client the WebSocket handshake identified (a JWT, HTTP
  Basic, the ``on_handshake`` hook) joins as that identity, whether or not
  ``anonymous`` is enabled; others join anonymously only when both
  ``[wamp] auth_methods`` and ``[auth] allow_anonymous`` allow it.
* ``ticket``: the ``AUTHENTICATE`` signature is a password, checked like an MQTT
  password (the ``[auth.basic]`` user table, then as a JWT, then the
  ``@hub.on_authenticate`` hook), so both protocols share a user base.
* ``wampcra``: the secret is needed to verify the HMAC, so it comes from
  ``[wamp.wampcra_users]`` or a lookup registered with
  ``wamp_router(hub).on_wampcra``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from hub.auth import AuthenticationFailed, Credentials
from hub.awaitables import maybe_await
from hub.errors import PermissionDenied
from hub.handler import Identity, Session
from protocols.wamp.config import WampConfig, WampCraUser
from protocols.wamp.errors import (
    AUTHENTICATION_FAILED,
    NO_AUTH_METHOD,
    NOT_AUTHORIZED,
    ProtocolViolation,
    WampAbort,
)
from protocols.wamp.messages import Challenge

if TYPE_CHECKING:
    from hub.auth import Authenticator

logger = logging.getLogger(__name__)

CraLookup = Callable[[str, str], "WampCraUser | Awaitable[WampCraUser | None] | None"]
"""``(authid, realm) -> WampCraUser | None``, sync or async."""

# GOODBYE reason when the session's identity expires (a JWT's exp) unrefreshed.
TOKEN_EXPIRED: Final = "wshub.close.token_expired"

ANONYMOUS: Final = "anonymous"
TICKET: Final = "ticket"
WAMPCRA: Final = "wampcra"


@dataclass(frozen=True, slots=True)
class Welcomed:
    """Who the session is, for WELCOME.Details and the hub's Identity."""

    authid: str
    authrole: str
    authmethod: str
    authprovider: str
    identity: Identity | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A CHALLENGE sent; the AUTHENTICATE that answers it is checked against this."""

    method: str
    authid: str
    challenge: Challenge
    user: WampCraUser | None = None


class WampAuthenticator:
    def __init__(self, config: WampConfig, auth: Authenticator) -> None:
        self._config = config
        self._auth = auth
        self.cra_lookup: CraLookup | None = None
        # Keys the decoy salts of unknown WAMP-CRA users: the same authid gets
        # the same salt on every try, as a real user does.
        self._decoy_key = secrets.token_bytes(32)

    async def hello(
        self,
        realm: str,
        session_id: int,
        details: Mapping[str, Any],
        handshake: Identity | None = None,
    ) -> Welcomed | Pending:
        """Pick a method; WELCOME at once (Welcomed) or CHALLENGE first (Pending).

        ``handshake`` is the identity the WebSocket handshake established, if any.
        """
        methods = details.get("authmethods", [ANONYMOUS])
        authid = details.get("authid")
        if not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
            raise ProtocolViolation("HELLO.Details.authmethods must be a list of strings")
        if authid is not None and not isinstance(authid, str):
            raise ProtocolViolation("HELLO.Details.authid must be a string")
        enabled = self._config.auth_methods
        # The authid of a WAMP-CRA user nobody knows, if one was asked for.
        unknown_user: str | None = None
        for method in methods:
            if method == ANONYMOUS and handshake is not None:
                # Identified at the handshake: no in-band credentials needed.
                return _handshake_welcome(handshake)
            if method not in enabled:
                continue
            if method == ANONYMOUS:
                if not self._auth.allow_anonymous:
                    continue
                return Welcomed(secrets.token_urlsafe(12), ANONYMOUS, ANONYMOUS, "static")
            if method == TICKET and self._auth.configured:
                return Pending(TICKET, authid or "", Challenge(TICKET, {}))
            if method == WAMPCRA and authid:
                user = await self._cra_user(authid, realm)
                if user is None:
                    unknown_user = authid
                    continue
                return Pending(WAMPCRA, authid, _cra_challenge(authid, user, session_id), user)
        if unknown_user is not None:
            # A challenge no secret answers, shaped like a real user's: refusing
            # here would tell which authids exist (AUTHENTICATE then fails as a
            # wrong secret does).
            decoy = self._decoy_user(unknown_user)
            challenge = _cra_challenge(unknown_user, decoy, session_id)
            return Pending(WAMPCRA, unknown_user, challenge, decoy)
        offered = ", ".join(methods) or "none"
        raise WampAbort(NO_AUTH_METHOD, f"no acceptable authentication method (offered: {offered})")

    async def authenticate(
        self, pending: Pending, signature: str, session: Session, realm: str
    ) -> Welcomed:
        if pending.method == TICKET:
            return await self._ticket(pending.authid, signature, session)
        assert pending.user is not None
        expected = _cra_signature(pending.user.secret, pending.challenge.extra["challenge"])
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise WampAbort(AUTHENTICATION_FAILED, "WAMP-CRA signature is invalid")
        role = pending.user.role
        identity = Identity(
            pending.authid,
            {"authrole": role, "authmethod": WAMPCRA, "realm": realm},
            method=WAMPCRA,
        )
        return Welcomed(pending.authid, role, WAMPCRA, "static", identity)

    async def _ticket(self, authid: str, ticket: str, session: Session) -> Welcomed:
        credentials = Credentials(
            username=authid,
            password=ticket.encode(),
            protocol=session.subprotocol,
            session_id=session.id,
            remote_address=session.remote_address,
            client_id=authid,
        )
        try:
            identity = await self._auth.authenticate(credentials)
        except AuthenticationFailed:
            raise WampAbort(AUTHENTICATION_FAILED, "invalid ticket") from None
        except PermissionDenied as exc:
            raise WampAbort(NOT_AUTHORIZED, exc.message) from None
        except Exception:
            logger.exception("WAMP session %s: the authentication hook failed", session.id)
            raise WampAbort(AUTHENTICATION_FAILED, "authentication failed") from None
        return Welcomed(identity.user_id, _role(identity), TICKET, "hub", identity)

    def _decoy_user(self, authid: str) -> WampCraUser:
        """An unknown authid's stand-in: salted when most configured users are."""
        users = list(self._config.wampcra_users.values())
        salted = [user for user in users if user.salt is not None]
        secret = secrets.token_urlsafe(32)
        if not salted or len(salted) * 2 < len(users):
            return WampCraUser(secret=secret)
        model = salted[0]
        digest = hmac.new(self._decoy_key, authid.encode(), hashlib.sha256).digest()
        salt = base64.b64encode(digest).decode("ascii")[: len(model.salt or "") or 16]
        return WampCraUser(
            secret=secret, salt=salt, iterations=model.iterations, keylen=model.keylen
        )

    async def _cra_user(self, authid: str, realm: str) -> WampCraUser | None:
        user = self._config.wampcra_users.get(authid)
        if user is None and self.cra_lookup is not None:
            user = await maybe_await(self.cra_lookup(authid, realm))
        return user


def _role(identity: Identity) -> str:
    claims = identity.claims
    return str(claims.get("authrole") or claims.get("role") or "user")


def _handshake_welcome(identity: Identity) -> Welcomed:
    """WELCOME for the handshake's identity: authmethod says how it was established."""
    method = identity.method or "handshake"
    return Welcomed(identity.user_id, _role(identity), method, "handshake", identity)


def _cra_challenge(authid: str, user: WampCraUser, session_id: int) -> Challenge:
    now = datetime.now(UTC)
    challenge = {
        "authid": authid,
        "authrole": user.role,
        "authmethod": WAMPCRA,
        "authprovider": "static",
        "nonce": secrets.token_urlsafe(16),
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "session": session_id,
    }
    extra: dict[str, Any] = {"challenge": json.dumps(challenge)}
    if user.salt is not None:
        extra.update(salt=user.salt, iterations=user.iterations, keylen=user.keylen)
    return Challenge(WAMPCRA, extra)


def _cra_signature(secret: str, challenge: str) -> str:
    """HMAC-SHA256 of the challenge keyed with the secret (or derived key), base64."""
    digest = hmac.new(secret.encode(), challenge.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
