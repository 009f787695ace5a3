"""Keys, tokens, password hashes and handshake probes for the authentication tests.

Keys are generated in the test run with ``cryptography``; tokens are signed
with PyJWT, the way an identity provider would, never by wshub's code.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from hub import Hub

SECRET = secrets.token_urlsafe(48)

# Cheap parameters: the hub verifies with whatever the hash names, and tests
# should not spend a fifth of a second per login. Production hashes come from
# `wshub hash-password` (argon2-cffi's defaults).
_FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def fast_hash(password: str) -> str:
    return _FAST_HASHER.hash(password)


def hs_auth(**jwt_options: Any) -> dict[str, Any]:
    """An [auth] section checking HS256 tokens signed with SECRET."""
    return {"jwt": {"secret": SECRET, **jwt_options}}


def mint(
    sub: str | None = "ada",
    *,
    key: Any = SECRET,
    alg: str = "HS256",
    ttl: float | None = 60,
    headers: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed token for ``sub`` that expires ``ttl`` seconds from now (None: never)."""
    payload: dict[str, Any] = dict(claims)
    if sub is not None:
        payload["sub"] = sub
    if ttl is not None:
        payload["exp"] = int(time.time() + ttl)
    return jwt.encode(payload, key, algorithm=alg, headers=dict(headers) if headers else None)


@dataclass(frozen=True)
class KeyPair:
    private: Any
    alg: str

    @classmethod
    def rsa(cls, alg: str = "RS256") -> KeyPair:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)

    @classmethod
    def ec(cls) -> KeyPair:
        return cls(ec.generate_private_key(ec.SECP256R1()), "ES256")

    @classmethod
    def ed25519(cls) -> KeyPair:
        return cls(ed25519.Ed25519PrivateKey.generate(), "EdDSA")

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def write_pem(self, path: Path) -> Path:
        path.write_bytes(self.public_pem())
        return path

    def jwk(self, kid: str) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": kid, "use": "sig", "alg": self.alg}

    def mint(self, sub: str = "ada", **options: Any) -> str:
        return mint(sub, key=self.private, alg=self.alg, **options)


def write_jwks(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused(
    hub: Hub,
    *,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    subprotocol: str = "jsonrpc.2.0",
) -> InvalidStatus:
    """Open a WebSocket that the hub must refuse; the InvalidStatus (response inside)."""
    try:
        client = await ws_connect(
            hub.url.rstrip("/") + path,
            subprotocols=[Subprotocol(subprotocol)],
            additional_headers=dict(headers or {}),
            open_timeout=5,
        )
    except InvalidStatus as exc:
        return exc
    await client.close()
    raise AssertionError("the handshake was accepted")
