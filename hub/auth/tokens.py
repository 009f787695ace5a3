"""JWT verification with PyJWT, keys from the ``[auth.jwt]`` config.

The key is chosen by the family of the token's ``alg`` and only that family's
configured algorithms are accepted with it, so a token can never make the hub
check an RS256 public key as an HMAC secret (RFC 8725, section 2.1). Key files
are read at start and again by :meth:`JwtVerifier.reload` (SIGHUP); a reload
that fails keeps the keys in use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms
from jwt.types import Options

from hub.auth.hooks import AuthenticationFailed
from hub.config import JwtConfig
from hub.errors import HubError
from hub.handler import Identity

# Three base64url parts: what a compact JWS looks like, before any decoding.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_MIN_RSA_BITS = 2048


class InvalidToken(AuthenticationFailed):
    """A token that does not verify; the message says why, for the client."""


class KeyFileError(HubError, ValueError):
    """A configured key file that cannot be used (at start, or on reload)."""


def looks_like_jwt(text: str) -> bool:
    """True for a string shaped like a compact JWT (MQTT passwords, WAMP tickets)."""
    return len(text) < 16_384 and _COMPACT_JWS.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class _Keys:
    secret: bytes | None
    public_key: Any
    # kid -> (key, the JWK's own "alg" or None)
    jwks: dict[str, tuple[Any, str | None]]


class JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._symmetric: list[str] = [alg for alg in config.algorithms if alg.startswith("HS")]
        self._asymmetric: list[str] = [a for a in config.algorithms if not a.startswith("HS")]
        self._keys = self._load()

    def reload(self) -> None:
        """Re-read the secret, public key and JWKS files; raises (keeping the old) on error."""
        self._keys = self._load()

    @property
    def files(self) -> list[Path]:
        config = self.config
        return [f for f in (config.secret_file, config.public_key_file, config.jwks_file) if f]

    def verify(self, token: str) -> Identity:
        """The token's identity; :class:`InvalidToken` saying why otherwise."""
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise InvalidToken(f"token algorithm {alg!r} is not accepted")
        key, algorithms = self._key_for(alg, header.get("kid"))
        options: Options = {
            "require": ["exp"] if config.require_exp else [],
            "enforce_minimum_key_length": True,
            # The subject is checked below as the user claim, whichever it is.
            "verify_sub": False,
        }
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                options=options,
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        user = claims.get(config.user_claim)
        if isinstance(user, bool) or not isinstance(user, str | int) or user == "":
            raise InvalidToken(f"token has no usable {config.user_claim!r} claim")
        exp = claims.get("exp")
        # The hub closes the session when a new handshake with this token
        # would be refused: at exp, plus the clock skew tolerated.
        expires_at = float(exp) + config.leeway if isinstance(exp, int | float) else None
        return Identity(str(user), claims, method="jwt", expires_at=expires_at)

    def _key_for(self, alg: str, kid: Any) -> tuple[Any, list[str]]:
        keys = self._keys
        if alg.startswith("HS"):
            return keys.secret, self._symmetric
        if kid is not None and keys.jwks:
            if not isinstance(kid, str) or kid not in keys.jwks:
                raise InvalidToken(f"no key with kid {kid!r}")
            key, jwk_alg = keys.jwks[kid]
            if jwk_alg is not None and jwk_alg != alg:
                raise InvalidToken(f"key {kid!r} is for {jwk_alg}, not {alg}")
            return key, self._asymmetric
        if keys.public_key is not None:
            return keys.public_key, self._asymmetric
        if len(keys.jwks) == 1:
            # A JWKS of one key needs no kid to pick it.
            [(key, jwk_alg)] = keys.jwks.values()
            if jwk_alg is not None and jwk_alg != alg:
                raise InvalidToken(f"the key is for {jwk_alg}, not {alg}")
            return key, self._asymmetric
        raise InvalidToken("token has no kid to pick a key")

    # -- loading ---------------------------------------------------------------

    def _load(self) -> _Keys:
        config = self.config
        secret = None
        if config.secret is not None:
            secret = config.secret.encode()
        elif config.secret_file is not None:
            # A trailing newline is an editor's, not part of the secret.
            secret = _read(config.secret_file).rstrip(b"\r\n")
        if secret is not None:
            for alg in self._symmetric:
                if len(secret) < _HMAC_MIN_BYTES[alg]:
                    raise KeyFileError(
                        f"auth.jwt: the {alg} secret must be at least "
                        f"{_HMAC_MIN_BYTES[alg]} bytes, it has {len(secret)}"
                    )
        public_key = None
        if config.public_key_file is not None:
            public_key = _load_public_key(config.public_key_file)
        jwks = _load_jwks(config.jwks_file) if config.jwks_file is not None else {}
        return _Keys(secret, public_key, jwks)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror}") from None


def _load_public_key(path: Path) -> Any:
    pem = _read(path)
    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise KeyFileError(f"{path}: RSA keys need {_MIN_RSA_BITS} bits, this has {key.key_size}")
    return key


def _load_jwks(path: Path) -> dict[str, tuple[Any, str | None]]:
    text = _read(path)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f'{path}: a JWKS needs a non-empty "keys" list')
    known_algorithms = get_default_algorithms()
    keys: dict[str, tuple[Any, str | None]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise KeyFileError(f"{path}: key {index} is not an object")
        if entry.get("use", "sig") != "sig":
            continue  # encryption keys have no place in verification
        kid = entry.get("kid", "" if len(entries) == 1 else None)
        if not isinstance(kid, str):
            raise KeyFileError(f'{path}: key {index} has no "kid" (needed with several keys)')
        alg = entry.get("alg")
        if alg is not None and alg not in known_algorithms:
            raise KeyFileError(f"{path}: key {kid!r} has an unknown alg {alg!r}")
        if entry.get("kty") == "oct":
            raise KeyFileError(f"{path}: key {kid!r} is symmetric; HS* use secret/secret_file")
        try:
            jwk = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError as exc:
            raise KeyFileError(f"{path}: key {kid!r} cannot be used: {exc}") from None
        keys[kid] = (jwk.key, alg)
    if not keys:
        raise KeyFileError(f"{path}: no signature key in the JWKS")
    return keys
