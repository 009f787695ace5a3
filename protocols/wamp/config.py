"""``[wamp]``: the WAMP router's section of the config file (docs/wamp.md).

Its model travels with the protocol's spec (``PROTOCOL.config``), so the hub
validates ``[wamp]`` without knowing WAMP; the router reads it as
``hub.config.section(WampConfig)``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from hub.config_section import AccessRule, Section
from hub.engine.topics import InvalidChannel, validate_pattern
from protocols.wamp.uri import is_reserved_uri, is_valid_uri

SECTION = "wamp"


class WampRealmConfig(Section):
    """One WAMP realm: a routing domain of its own sessions and registrations."""

    name: str
    # Engine channel prefix of the realm's topics: "" shares the hub's channels
    # (and its RPC table) with every protocol; "iot" maps topic a.b to iot/a/b.
    channel_prefix: str = ""

    @field_validator("name")
    @classmethod
    def _realm_uri(cls, name: str) -> str:
        if not is_valid_uri(name) or is_reserved_uri(name):
            raise ValueError(f"realm must be a WAMP URI outside wamp.*, got {name!r}")
        return name

    @field_validator("channel_prefix")
    @classmethod
    def _plain_prefix(cls, prefix: str) -> str:
        if prefix:
            try:
                validate_pattern(prefix, max_length=255)
            except InvalidChannel as exc:
                raise ValueError(str(exc)) from None
            if "+" in prefix or "#" in prefix:
                raise ValueError(f"a prefix cannot hold wildcards, got {prefix!r}")
        return prefix


class WampCraUser(Section):
    """A WAMP-CRA user: the shared secret (or PBKDF2-derived key, with its salt)."""

    secret: str
    role: str = "user"
    # Set when ``secret`` is a key derived from the password (sent in the CHALLENGE).
    salt: str | None = None
    iterations: int = Field(1000, ge=1)
    keylen: int = Field(32, ge=1)


class WampConfig(Section):
    # Realms clients may join: names, or tables {name, channel_prefix}.
    realms: list[WampRealmConfig] = [WampRealmConfig(name="realm1")]
    # Methods accepted, tried in the client's order: "anonymous" admits clients
    # without credentials (when auth.allow_anonymous) and those the handshake
    # identified; "ticket" is checked like an MQTT password ([auth.basic], a
    # JWT, @hub.on_authenticate); "wampcra" by wampcra_users or a registered
    # lookup (docs/wamp.md).
    auth_methods: list[Literal["anonymous", "ticket", "wampcra"]] = [
        "anonymous",
        "ticket",
        "wampcra",
    ]
    wampcra_users: dict[str, WampCraUser] = {}
    # Disclose every publisher to subscribers / every caller to callees, as if
    # each had asked (disclose_me); Autobahn|Python clients can no longer ask.
    disclose_publisher: bool = False
    disclose_caller: bool = False
    # Who sees other sessions' authid, authmethod, authprovider and transport
    # (peer address) in the session meta API (wamp.session.on_join/on_leave,
    # wamp.session.get). Unset: nobody; others' sessions show their id and
    # authrole only. A session always sees all of its own details. The same
    # operators may end other sessions (wamp.session.kill*); nobody when unset.
    session_details_access: AccessRule | None = None
    # Seconds a client has to send HELLO after the WebSocket opens, and to
    # answer a CHALLENGE.
    hello_timeout: float = Field(10.0, gt=0)

    @field_validator("realms", mode="before")
    @classmethod
    def _realm_names(cls, realms: Any) -> Any:
        if isinstance(realms, list):
            return [{"name": realm} if isinstance(realm, str) else realm for realm in realms]
        return realms

    @field_validator("realms")
    @classmethod
    def _unique_realms(cls, realms: list[WampRealmConfig]) -> list[WampRealmConfig]:
        names = [realm.name for realm in realms]
        if len(set(names)) != len(names):
            raise ValueError("realm names must be unique")
        return realms
