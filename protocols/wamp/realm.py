"""A realm: its joined sessions, broker and dealer, and its topic <-> channel mapping.

A realm whose ``channel_prefix`` is empty shares the hub's channels (topic
``a.b`` is channel ``a/b``) and its RPC table; a prefixed realm is isolated under
its prefix (``iot`` maps ``a.b`` to ``iot/a/b``) and keeps its procedures to itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from hub.access import Rule
from protocols.wamp.broker import Broker
from protocols.wamp.config import WampConfig, WampRealmConfig
from protocols.wamp.dealer import Dealer
from protocols.wamp.errors import INVALID_ARGUMENT, NO_SUCH_PROCEDURE, NO_SUCH_SESSION, WampError
from protocols.wamp.kill import PROCEDURES as KILL_PROCEDURES
from protocols.wamp.kill import kill_call
from protocols.wamp.peer import Peer
from protocols.wamp.uri import InvalidUriError, channel_to_topic, pattern_to_channel

if TYPE_CHECKING:
    from hub.app import Hub

ON_JOIN: Final = "wamp.session.on_join"
ON_LEAVE: Final = "wamp.session.on_leave"


class Realm:
    def __init__(self, config: WampRealmConfig, hub: Hub) -> None:
        self.name = config.name
        self.prefix = config.channel_prefix
        self.shares_hub = not self.prefix
        self.sessions: dict[int, Peer] = {}
        self.broker = Broker(
            self,
            hub.channels,
            max_subscriptions=hub.config.channels.max_subscriptions,
            disclose=hub.config.section(WampConfig).disclose_publisher,
        )
        self.dealer = Dealer(self, hub)
        rule = hub.config.section(WampConfig).session_details_access
        self._details_rule = Rule(rule) if rule is not None else None

    # -- names -----------------------------------------------------------------

    def channel_for(self, topic: str, match: str) -> str:
        """The engine channel (or pattern) of a topic; InvalidUriError if it has none."""
        channel = pattern_to_channel(topic, match)
        return f"{self.prefix}/{channel}" if self.prefix else channel

    def topic_for(self, channel: str) -> str | None:
        """The WAMP topic of a concrete channel in this realm; None if it has none."""
        if self.prefix:
            if not channel.startswith(self.prefix + "/"):
                return None
            channel = channel[len(self.prefix) + 1 :]
        try:
            return channel_to_topic(channel)
        except InvalidUriError:
            return None

    # -- sessions --------------------------------------------------------------

    def sees_details(self, viewer: Peer, peer: Peer) -> bool:
        """Whether ``viewer`` may see ``peer``'s authid, method and transport."""
        if viewer is peer:
            return True
        rule = self._details_rule
        return rule is not None and rule.admits(viewer.context.identity)

    def may_kill(self, caller: Peer) -> bool:
        """Whether ``caller`` may end other sessions (``wamp.session.kill*``): the
        viewers ``wamp.session_details_access`` admits, nobody when it is unset."""
        rule = self._details_rule
        return rule is not None and rule.admits(caller.context.identity)

    def details_for(self, viewer: Peer, peer: Peer) -> dict[str, Any]:
        """``peer`` as ``viewer`` may see it: everything, or its id and authrole."""
        if self.sees_details(viewer, peer):
            return peer.details()
        return {"session": peer.session_id, "authrole": peer.authrole}

    def join(self, peer: Peer) -> None:
        self.sessions[peer.session_id] = peer
        self.broker.publish_meta(
            ON_JOIN,
            peer,
            [peer.details()],
            [{"session": peer.session_id, "authrole": peer.authrole}],
        )

    async def leave(self, peer: Peer) -> None:
        if self.sessions.get(peer.session_id) is not peer:
            return
        del self.sessions[peer.session_id]
        await self.dealer.leave(peer)
        await self.broker.leave(peer)
        self.broker.publish_meta(
            ON_LEAVE,
            peer,
            [peer.session_id, peer.authid, peer.authrole],
            [peer.session_id, "", peer.authrole],
        )

    # -- session meta procedures -------------------------------------------------

    async def meta_call(
        self, caller: Peer, procedure: str, args: list[Any] | None, kwargs: dict[str, Any] | None
    ) -> list[Any] | None:
        """``wamp.session.count``, ``.list``, ``.get`` and the ``kill`` procedures
        (:mod:`protocols.wamp.kill`): the RESULT's args."""
        if procedure in KILL_PROCEDURES:
            return await kill_call(self, caller, procedure, args, kwargs)
        if procedure in ("wamp.session.count", "wamp.session.list"):
            roles = args[0] if args else None
            if roles is not None and not (
                isinstance(roles, list) and all(isinstance(r, str) for r in roles)
            ):
                raise WampError(INVALID_ARGUMENT, "filter_authroles must be a list of strings")
            ids = [
                session_id
                for session_id, peer in self.sessions.items()
                if roles is None or peer.authrole in roles
            ]
            return [len(ids)] if procedure.endswith("count") else [ids]
        if procedure == "wamp.session.get":
            session_id = args[0] if args else None
            peer = self.sessions.get(session_id) if isinstance(session_id, int) else None
            if peer is None:
                raise WampError(NO_SUCH_SESSION, f"no session {session_id!r}")
            return [self.details_for(caller, peer)]
        raise WampError(NO_SUCH_PROCEDURE, f"no procedure {procedure!r}")
