"""Users for the authorization tests, and how each protocol logs them in.

- ``channels.v1`` and ``jsonrpc.2.0`` take the user from ``?user=<id>`` in the
  URL: a test registry whose factories set the session's identity, standing in
  for handshake authentication so these tests exercise authorization alone.
- MQTT (CONNECT username/password) and WAMP (ticket) log in through the hub's
  ``@hub.on_authenticate`` hook, as real deployments do; the password of user
  ``u`` is ``pw-u``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hub import Hub, HubConfig
from hub.auth import Credentials
from hub.handler import HandlerFactory, Identity, Session, SubprotocolHandler
from hub.registry import ProtocolRegistry, default_registry
from tests.conftest import HubFactory

USERS: Mapping[str, Identity] = {
    "ada": Identity("ada", {"roles": ["staff", "editor"], "plan": "pro"}, method="test"),
    "bob": Identity("bob", {"roles": ["guest"], "plan": "free"}, method="test"),
    "cy": Identity("cy", {"roles": "staff", "plan": "free"}, method="test"),
}
URL_IDENTIFIED = ("channels.v1", "jsonrpc.2.0")


def password(user: str) -> str:
    return f"pw-{user}"


def _from_url(factory: HandlerFactory) -> HandlerFactory:
    def identified(session: Session, hub: Hub) -> SubprotocolHandler:
        request_path = getattr(session, "request_path", "/")
        users = parse_qs(urlsplit(request_path).query).get("user")
        if users:
            session.identity = USERS[users[0]]
        return factory(session, hub)

    return identified


def identified_registry() -> ProtocolRegistry:
    """Every protocol; channels.v1 and jsonrpc.2.0 know their user from ``?user=``."""
    registry = default_registry()
    specs = []
    for name in registry.names:
        spec = registry.get(name)
        assert spec is not None
        if name in URL_IDENTIFIED:
            spec = dataclasses.replace(spec, factory=_from_url(spec.factory))
        specs.append(spec)
    return ProtocolRegistry(specs)


def check_password(credentials: Credentials) -> Identity | None:
    identity = USERS.get(credentials.username)
    if identity is None or credentials.password != password(credentials.username).encode():
        return None
    return identity


async def authz_hub(make_hub: HubFactory, config: Mapping[str, Any] | HubConfig) -> Hub:
    """A started hub with ``config``, whose clients of every protocol can log in as USERS."""
    hub = await make_hub(config, registry=identified_registry())
    hub.on_authenticate(check_password)
    return hub


def as_user(user: str | None) -> str:
    """The URL path that makes a channels.v1 / jsonrpc.2.0 client ``user`` (None: anonymous)."""
    return f"/?user={user}" if user is not None else "/"
