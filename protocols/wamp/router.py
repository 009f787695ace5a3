"""The WAMP router of a hub: its realms, session ids and authenticator.

A hub service (``hub.services``, name :data:`SERVICE_NAME`) registered when the
hub is built, so realms outlive connections and every connection of the hub
meets the same brokers and dealers. ``wamp_router(hub)`` returns it::

    @wamp_router(hub).on_wampcra
    async def wampcra_user(authid: str, realm: str) -> WampCraUser | None: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

from protocols.wamp.auth import CraLookup, WampAuthenticator
from protocols.wamp.cluster import wamp_cluster
from protocols.wamp.config import WampConfig
from protocols.wamp.peer import random_id
from protocols.wamp.realm import Realm

if TYPE_CHECKING:
    from hub.app import Hub

SERVICE_NAME: Final = "wamp.router"

L = TypeVar("L", bound=CraLookup)


class WampRouter:
    def __init__(self, hub: Hub) -> None:
        config = hub.config.section(WampConfig)
        self.config = config
        self.realms = {realm.name: Realm(realm, hub) for realm in config.realms}
        # With the Redis engine: calls reach callees connected to other nodes.
        self.cluster = wamp_cluster(hub, self)
        for realm in self.realms.values():
            realm.dealer.cluster = self.cluster
        self.authenticator = WampAuthenticator(config, hub.auth)
        self._session_ids: set[int] = set()

    def on_wampcra(self, lookup: L) -> L:
        """Register the WAMP-CRA user lookup: ``(authid, realm) -> WampCraUser | None``."""
        if self.authenticator.cra_lookup is not None:
            raise ValueError("a WAMP-CRA lookup is already registered")
        self.authenticator.cra_lookup = lookup
        return lookup

    def new_session_id(self) -> int:
        """A random id in [1, 2^53] no live session of this hub holds."""
        session_id = random_id()
        while session_id in self._session_ids:
            session_id = random_id()
        self._session_ids.add(session_id)
        return session_id

    def release_session_id(self, session_id: int) -> None:
        self._session_ids.discard(session_id)

    async def start(self) -> None:
        """Realms are plain state; the cluster side (Redis engine) announces registrations."""
        if self.cluster is not None:
            await self.cluster.start()

    async def stop(self) -> None:
        """Sessions leave as their connections close; calls to other nodes are failed."""
        if self.cluster is not None:
            await self.cluster.stop()


def wamp_router(hub: Hub) -> WampRouter:
    """The WAMP router serving ``hub`` (registered by the WAMP protocol's setup)."""
    return hub.services.get(SERVICE_NAME, WampRouter)
