"""JWT at the WebSocket handshake: keys, algorithms, where the token travels, and refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub import CallContext, ConfigError, Hub, HubConfig
from hub.config import parse_config
from tests.auth_helpers import SECRET, KeyPair, bearer, hs_auth, mint, refused, write_jwks
from tests.conftest import HubFactory, PeerFactory


def serve_whoami(hub: Hub) -> None:
    @hub.rpc("whoami")
    def whoami(ctx: CallContext) -> dict[str, Any] | None:
        identity = ctx.identity
        if identity is None:
            return None
        return {
            "user": identity.user_id,
            "method": identity.method,
            "claims": dict(identity.claims),
            "expires_at": identity.expires_at,
        }


async def jwt_hub(make_hub: HubFactory, **jwt: Any) -> Hub:
    hub = await make_hub({"auth": {"jwt": jwt}})
    serve_whoami(hub)
    return hub


async def test_bearer_header_identifies_the_session(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """An HS256 token in Authorization: Bearer is the session's identity, with every claim."""
    hub = await make_hub({"auth": hs_auth()})
    serve_whoami(hub)
    token = mint("ada", ttl=120, role="admin")
    peer = await jsonrpc(hub, additional_headers=bearer(token))
    who = await peer.call("whoami")
    assert who["user"] == "ada"
    assert who["method"] == "jwt"
    assert who["claims"]["role"] == "admin"
    assert who["expires_at"] == who["claims"]["exp"]


async def test_token_in_query_parameter(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """Browsers cannot set headers: the token may ride in the configured query parameter."""
    hub = await make_hub({"auth": hs_auth(query_param="access_token")})
    serve_whoami(hub)
    peer = await jsonrpc(hub, path=f"/?access_token={mint('bea')}")
    assert (await peer.call("whoami"))["user"] == "bea"
    # The default name, "token", is not looked at once another is configured.
    anonymous = await jsonrpc(hub, path=f"/?token={mint('bea')}")
    assert await anonymous.call("whoami") is None


async def test_token_in_cookie(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """A token in the configured cookie identifies the session."""
    hub = await make_hub({"auth": hs_auth(cookie="session_jwt")})
    serve_whoami(hub)
    cookie = f"theme=dark; session_jwt={mint('cy')}; other=1"
    peer = await jsonrpc(hub, additional_headers={"Cookie": cookie})
    assert (await peer.call("whoami"))["user"] == "cy"


@pytest.mark.parametrize(
    "make_keys",
    [KeyPair.rsa, lambda: KeyPair.rsa("PS256"), KeyPair.ec, KeyPair.ed25519],
    ids=["RS256", "PS256", "ES256", "EdDSA"],
)
async def test_public_key_file(
    make_hub: HubFactory, jsonrpc: PeerFactory, tmp_path: Path, make_keys: Any
) -> None:
    """Asymmetric tokens verify against a PEM public key file; another key's are refused."""
    keys: KeyPair = make_keys()
    pem = keys.write_pem(tmp_path / "key.pem")
    hub = await jwt_hub(make_hub, algorithms=[keys.alg], public_key_file=str(pem))
    peer = await jsonrpc(hub, additional_headers=bearer(keys.mint("dee")))
    assert (await peer.call("whoami"))["user"] == "dee"
    stranger = KeyPair(make_keys().private, keys.alg)
    refusal = await refused(hub, headers=bearer(stranger.mint("dee")))
    assert refusal.response.status_code == 401
    assert b"signature is invalid" in refusal.response.body


async def test_jwks_file_picks_the_key_by_kid(
    make_hub: HubFactory, jsonrpc: PeerFactory, tmp_path: Path
) -> None:
    """A JWKS file of several keys: each token is checked with the key its kid names."""
    rsa_keys, ec_keys = KeyPair.rsa(), KeyPair.ec()
    jwks = write_jwks(tmp_path / "jwks.json", rsa_keys.jwk("r1"), ec_keys.jwk("e1"))
    hub = await jwt_hub(make_hub, algorithms=["RS256", "ES256"], jwks_file=str(jwks))
    for keys, kid in ((rsa_keys, "r1"), (ec_keys, "e1")):
        peer = await jsonrpc(hub, additional_headers=bearer(keys.mint(kid, headers={"kid": kid})))
        assert (await peer.call("whoami"))["user"] == kid
    unknown = await refused(hub, headers=bearer(rsa_keys.mint(headers={"kid": "r2"})))
    assert unknown.response.status_code == 401
    # A kid naming the other family's key is refused, not tried.
    swapped = await refused(hub, headers=bearer(rsa_keys.mint(headers={"kid": "e1"})))
    assert swapped.response.status_code == 401


def scoped(sub: str | None = "ada", **options: Any) -> str:
    """A token for the audience and issuer the next test's hub expects, unless overridden."""
    options.setdefault("aud", "my-app")
    options.setdefault("iss", "https://id.example")
    return mint(sub, **options)


@pytest.mark.parametrize(
    ("token", "reason"),
    # Minted when the test runs, not at collection: a long run would see them expired.
    [
        (lambda: scoped(key=SECRET + "x"), b"signature is invalid"),
        (lambda: scoped(ttl=-30), b"token expired"),
        (lambda: scoped(nbf=int(time.time()) + 300), b"not valid yet"),
        (lambda: scoped(aud="other-app"), b"audience"),
        (lambda: scoped(iss="https://evil.example"), b"issuer"),
        (lambda: scoped(ttl=None), b"'exp'"),
        (lambda: scoped(alg="HS384"), b"HS384"),
        (lambda: scoped(None), b"'sub'"),
        (lambda: "not-a-token", b"malformed"),
    ],
    ids=[
        "signature",
        "expired",
        "not-before",
        "audience",
        "issuer",
        "no-exp",
        "algorithm",
        "no-sub",
        "junk",
    ],
)
async def test_invalid_tokens_get_401_with_a_bearer_challenge(
    make_hub: HubFactory, token: Callable[[], str], reason: bytes
) -> None:
    """A token that does not verify is refused with 401 saying why, never let in anonymously."""
    hub = await make_hub({"auth": hs_auth(audience="my-app", issuer="https://id.example")})
    refusal = await refused(hub, headers=bearer(token()))
    response = refusal.response
    assert response.status_code == 401
    assert reason in response.body
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="wshub"')
    assert 'error="invalid_token"' in challenge


async def test_audience_and_issuer_accepted_when_they_match(
    make_hub: HubFactory, jsonrpc: PeerFactory
) -> None:
    """aud and iss equal to the configured ones are accepted."""
    hub = await make_hub({"auth": hs_auth(audience="my-app", issuer="https://id.example")})
    serve_whoami(hub)
    token = mint("eve", aud="my-app", iss="https://id.example")
    peer = await jsonrpc(hub, additional_headers=bearer(token))
    assert (await peer.call("whoami"))["user"] == "eve"


async def test_invalid_query_token_is_refused(make_hub: HubFactory) -> None:
    """A bad token in the query string is refused like one in the header."""
    hub = await make_hub({"auth": hs_auth()})
    refusal = await refused(hub, path=f"/?token={mint(ttl=-60)}")
    assert refusal.response.status_code == 401


async def test_leeway_and_optional_exp(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """leeway tolerates a recently passed exp; require_exp=false admits tokens without one."""
    hub = await make_hub({"auth": hs_auth(leeway=60, require_exp=False)})
    serve_whoami(hub)
    late = await jsonrpc(hub, additional_headers=bearer(mint("fay", ttl=-5)))
    who = await late.call("whoami")
    # The session then lasts until exp + leeway, when a new handshake would fail too.
    assert who["expires_at"] == who["claims"]["exp"] + 60
    forever = await jsonrpc(hub, additional_headers=bearer(mint("gus", ttl=None)))
    assert (await forever.call("whoami"))["expires_at"] is None


async def test_user_claim(make_hub: HubFactory, jsonrpc: PeerFactory) -> None:
    """user_claim names the claim that holds the user id."""
    hub = await make_hub({"auth": hs_auth(user_claim="email")})
    serve_whoami(hub)
    peer = await jsonrpc(hub, additional_headers=bearer(mint("id-1", email="hal@example.com")))
    assert (await peer.call("whoami"))["user"] == "hal@example.com"


async def test_public_key_is_never_an_hmac_secret(make_hub: HubFactory, tmp_path: Path) -> None:
    """Algorithm confusion: an HS256 token signed with the RS256 public key is refused."""
    keys = KeyPair.rsa()
    pem = keys.write_pem(tmp_path / "key.pem")
    hub = await jwt_hub(make_hub, algorithms=["RS256"], public_key_file=str(pem))
    # PyJWT will not sign this; an attacker does it by hand.
    forged = hs256_by_hand({"sub": "root", "exp": int(time.time()) + 60}, keys.public_pem())
    refusal = await refused(hub, headers=bearer(forged))
    assert refusal.response.status_code == 401
    assert b"HS256" in refusal.response.body


def hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def test_secret_file_and_reload(
    make_hub: HubFactory, jsonrpc: PeerFactory, tmp_path: Path
) -> None:
    """hub.reload() (SIGHUP) re-reads the key files; a broken file keeps the old key."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    hub = await jwt_hub(make_hub, secret_file=str(secret_file))
    peer = await jsonrpc(hub, additional_headers=bearer(mint("ida")))
    assert (await peer.call("whoami"))["user"] == "ida"

    new_secret = SECRET[::-1]
    secret_file.write_text(new_secret)
    assert hub.reload() == []
    assert (await refused(hub, headers=bearer(mint("ida")))).response.status_code == 401
    fresh = await jsonrpc(hub, additional_headers=bearer(mint("ida", key=new_secret)))
    assert (await fresh.call("whoami"))["user"] == "ida"

    secret_file.write_text("short")
    problems = hub.reload()
    assert len(problems) == 1
    assert "at least 32 bytes" in problems[0]
    still = await jsonrpc(hub, additional_headers=bearer(mint("ida", key=new_secret)))
    assert (await still.call("whoami"))["user"] == "ida"


async def test_jwks_reload_adds_a_key(
    make_hub: HubFactory, jsonrpc: PeerFactory, tmp_path: Path
) -> None:
    """A key rotated into the JWKS file is used after hub.reload()."""
    old, new = KeyPair.rsa(), KeyPair.rsa()
    jwks = write_jwks(tmp_path / "jwks.json", old.jwk("k1"))
    hub = await jwt_hub(make_hub, algorithms=["RS256"], jwks_file=str(jwks))
    token = new.mint("jo", headers={"kid": "k2"})
    assert (await refused(hub, headers=bearer(token))).response.status_code == 401
    write_jwks(jwks, old.jwk("k1"), new.jwk("k2"))
    assert hub.reload() == []
    peer = await jsonrpc(hub, additional_headers=bearer(token))
    assert (await peer.call("whoami"))["user"] == "jo"


def test_config_needs_a_key_for_each_algorithm_family() -> None:
    """[auth.jwt] without the key its algorithms need fails at load, naming the key."""
    with pytest.raises(ConfigError, match="need secret or secret_file"):
        parse_config({"auth": {"jwt": {"algorithms": ["HS256"]}}})
    with pytest.raises(ConfigError, match="need public_key_file or jwks_file"):
        parse_config({"auth": {"jwt": {"algorithms": ["RS256"]}}})


def test_short_secret_and_missing_file_are_refused_at_start(tmp_path: Path) -> None:
    """A secret shorter than the hash, or a key file that is not there, stops the hub at start."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Hub(HubConfig.model_validate({"auth": {"jwt": {"secret": "too-short"}}}))
    missing = tmp_path / "nope.pem"
    config = {"auth": {"jwt": {"algorithms": ["RS256"], "public_key_file": str(missing)}}}
    with pytest.raises(ValueError, match="cannot read key file"):
        Hub(HubConfig.model_validate(config))


async def test_refusals_are_counted(make_hub: HubFactory) -> None:
    """/metrics counts refused handshakes (reason auth) and failures by method."""
    hub = await make_hub({"auth": hs_auth()})
    await refused(hub, headers=bearer(mint(ttl=-10)))
    text = hub.metrics.render().decode()
    assert 'wshub_handshakes_refused_total{reason="auth"} 1.0' in text
    assert 'wshub_auth_failures_total{method="jwt"} 1.0' in text
