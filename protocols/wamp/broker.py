"""The broker of one realm: subscriptions on the hub's channel engine, and PUBLISH.

One :class:`Subscription` per (topic, match) is shared by every session that
subscribes to it, and it alone is the engine's subscriber: the engine hands it a
publication once, it encodes one EVENT per serializer and sends that frame to each
admitted session. Channel names, namespaces, permissions and hooks all go through
the hub's ChannelService, as for every other protocol.

Topics in the reserved ``wamp.`` namespace (session meta-events) never touch the
engine: only the router publishes there, to this realm's subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hub.channels import ChannelService
from hub.engine import Kind, Publication
from hub.engine.topics import matches
from hub.errors import ChannelError, LimitExceeded
from hub.meta import META_KEY, InvalidMeta, parse_meta
from protocols.wamp.errors import (
    INVALID_ARGUMENT,
    INVALID_PAYLOAD,
    INVALID_URI,
    NO_SUCH_SUBSCRIPTION,
    WampError,
)
from protocols.wamp.events import (
    META_OPTION,
    Receivers,
    event_frame,
    publish_extras,
    wamp_info,
)
from protocols.wamp.messages import Publish, Subscribe, Unsubscribe
from protocols.wamp.payload import to_data
from protocols.wamp.peer import Peer, random_id
from protocols.wamp.rpcmap import channel_error
from protocols.wamp.uri import MATCH_POLICIES, InvalidUriError, is_reserved_uri, is_valid_uri

if TYPE_CHECKING:
    from protocols.wamp.realm import Realm

_PEER_LISTS = ("exclude", "eligible")
_NAME_LISTS = ("exclude_authid", "exclude_authrole", "eligible_authid", "eligible_authrole")


class Subscription:
    """Every session subscribed to one (topic, match), as one engine subscriber."""

    __slots__ = ("channel", "id", "local", "match", "peers", "realm", "topic")

    def __init__(self, realm: Realm, topic: str, match: str, channel: str) -> None:
        self.id = random_id()
        self.realm = realm
        self.topic = topic
        self.match = match
        self.channel = channel
        # Meta-event subscriptions stay in the router; the engine never sees them.
        self.local = _is_meta(topic, match)
        self.peers: dict[Peer, None] = {}

    def deliver(
        self, publication: Publication, subscription: str, peers: tuple[Peer, ...] | None = None
    ) -> None:
        """Called by the engine (or the router, for meta-events, to some ``peers``)."""
        if publication.kind is not Kind.MESSAGE or not self.peers:
            return
        topic = None
        if self.match != "exact":
            topic = self.realm.topic_for(publication.channel)
            if topic is None:  # no WAMP spelling (an MQTT topic with dots, say)
                return
        # Only the router speaks in wamp.*: a channels or MQTT client publishing
        # to wamp/... must not reach a pattern subscriber as a meta-event.
        if topic is not None and not self.local and is_reserved_uri(topic):
            return
        info = wamp_info(publication)
        receivers = Receivers(info)
        disclose = info is not None and "publisher" in info
        for peer in tuple(self.peers) if peers is None else peers:
            if not receivers.admit(peer):
                continue
            frame = event_frame(publication, peer.serializer, self.id, topic, disclose)
            if frame is not None:
                peer.send_frame(frame)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.match} {self.topic!r}>"


def _is_meta(topic: str, match: str) -> bool:
    # A prefix "wamp" pattern lies wholly inside the reserved namespace too.
    return is_reserved_uri(topic) or (match == "prefix" and topic in ("wamp", "wamp."))


class Broker:
    def __init__(
        self,
        realm: Realm,
        channels: ChannelService,
        *,
        max_subscriptions: int,
        disclose: bool,
    ) -> None:
        self._realm = realm
        self._channels = channels
        self._max_subscriptions = max_subscriptions
        self._disclose = disclose
        self._by_key: dict[tuple[str, str], Subscription] = {}
        self._of_peer: dict[Peer, dict[int, Subscription]] = {}
        # Serializes engine subscribe/unsubscribe of shared subscriptions: a
        # session joining one that is being torn down must get a fresh one.
        self._lock = asyncio.Lock()

    # -- subscriptions ---------------------------------------------------------

    async def subscribe(
        self, peer: Peer, request: Subscribe, acknowledge: Callable[[int], None]
    ) -> None:
        """Subscribe ``peer``; ``acknowledge(id)`` runs before its first EVENT can."""
        topic, match = request.topic, request.options.get("match", "exact")
        if match not in MATCH_POLICIES:
            raise WampError(INVALID_ARGUMENT, f"unknown match policy {match!r}")
        try:
            channel = self._realm.channel_for(topic, match)
        except InvalidUriError as exc:
            raise WampError(INVALID_URI, str(exc)) from None
        mine = self._of_peer.setdefault(peer, {})
        existing = self._by_key.get((topic, match))
        if existing is not None and peer in existing.peers:
            acknowledge(existing.id)  # the same id again, as the spec asks
            return
        if len(mine) >= self._max_subscriptions:
            raise channel_error(
                LimitExceeded(f"at most {self._max_subscriptions} subscriptions per session")
            )
        # Meta topics too: the namespace of their channel (wamp/session/...) and
        # the subscribe hooks decide who may watch sessions come and go.
        try:
            await self._channels.authorize_subscribe(peer.context, channel)
        except ChannelError as exc:
            raise channel_error(exc) from None
        async with self._lock:
            subscription = self._by_key.get((topic, match))
            if subscription is None:
                subscription = Subscription(self._realm, topic, match, channel)
                if not subscription.local:
                    await self._channels.subscribe(subscription, channel)
                self._by_key[(topic, match)] = subscription
            # No await from here on: SUBSCRIBED goes out before any EVENT.
            acknowledge(subscription.id)
            subscription.peers[peer] = None
            mine[subscription.id] = subscription

    async def unsubscribe(self, peer: Peer, request: Unsubscribe) -> None:
        subscription = self._of_peer.get(peer, {}).pop(request.subscription, None)
        if subscription is None:
            raise WampError(NO_SUCH_SUBSCRIPTION, f"no subscription {request.subscription}")
        await self._release(peer, subscription)

    async def leave(self, peer: Peer) -> None:
        """Drop every subscription of a session that left."""
        for subscription in self._of_peer.pop(peer, {}).values():
            await self._release(peer, subscription)

    async def _release(self, peer: Peer, subscription: Subscription) -> None:
        subscription.peers.pop(peer, None)
        if subscription.peers:
            return
        async with self._lock:
            key = (subscription.topic, subscription.match)
            if subscription.peers or self._by_key.get(key) is not subscription:
                return
            del self._by_key[key]
            if not subscription.local:
                await self._channels.unsubscribe(subscription, subscription.channel)

    def subscription_count(self, peer: Peer) -> int:
        return len(self._of_peer.get(peer, ()))

    # -- publishing ------------------------------------------------------------

    async def publish(self, peer: Peer, request: Publish) -> int:
        """Publish through the ChannelService; the publication id, or WampError."""
        topic, options = request.topic, request.options
        if not is_valid_uri(topic):
            raise WampError(INVALID_URI, f"invalid topic {topic!r}")
        if is_reserved_uri(topic):
            raise WampError(INVALID_URI, f"topic {topic!r} is reserved for the router")
        try:
            channel = self._realm.channel_for(topic, "exact")
        except InvalidUriError as exc:
            raise WampError(INVALID_URI, str(exc)) from None
        _check_publish_options(options)
        try:
            data = to_data(request.args, request.kwargs)
        except RecursionError:
            raise WampError(INVALID_PAYLOAD, "payload nested too deeply") from None
        publication_id = random_id()
        extras = publish_extras(
            publication_id,
            peer,
            request.args,
            request.kwargs,
            options,
            disclose=options.get("disclose_me") is True or self._disclose,
        )
        if options.get(META_OPTION) is not None:
            # Content type, user properties, payload format (hub.meta), for every protocol.
            try:
                meta = parse_meta(options[META_OPTION], data)
            except InvalidMeta as exc:
                raise WampError(INVALID_ARGUMENT, f"PUBLISH.Options.{META_OPTION}: {exc}") from None
            if meta:
                extras[META_KEY] = meta
        try:
            await self._channels.publish_from_client(peer.context, channel, data, extras=extras)
        except ChannelError as exc:
            raise channel_error(exc) from None
        return publication_id

    def publish_meta(self, topic: str, about: Peer, args: list[Any], redacted: list[Any]) -> None:
        """A router event about a session (``wamp.session.on_join``...) to this realm's
        subscribers: ``args`` to those who may see its details, ``redacted`` to the others.
        """
        channel = self._realm.channel_for(topic, "exact")
        full = self._meta_publication(channel, args)
        short = self._meta_publication(channel, redacted)
        for subscription in list(self._by_key.values()):
            if subscription.local and matches(subscription.channel, channel):
                seeing: list[Peer] = []
                others: list[Peer] = []
                for peer in subscription.peers:
                    (seeing if self._realm.sees_details(peer, about) else others).append(peer)
                if seeing:
                    subscription.deliver(full, subscription.channel, tuple(seeing))
                if others:
                    subscription.deliver(short, subscription.channel, tuple(others))

    @staticmethod
    def _meta_publication(channel: str, args: list[Any]) -> Publication:
        extras = {"wamp": {"id": random_id(), "args": args, "kwargs": None}}
        return Publication(channel, to_data(args, None), extras=extras)


def _check_publish_options(options: Mapping[str, Any]) -> None:
    for flag in ("acknowledge", "exclude_me", "disclose_me"):
        if flag in options and not isinstance(options[flag], bool):
            raise WampError(INVALID_ARGUMENT, f"PUBLISH.Options.{flag} must be a boolean")
    for name in _PEER_LISTS:
        values = options.get(name)
        if values is not None and not (
            isinstance(values, list) and all(_is_session_id(v) for v in values)
        ):
            raise WampError(INVALID_ARGUMENT, f"PUBLISH.Options.{name} must be a list of ids")
    for name in _NAME_LISTS:
        values = options.get(name)
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            raise WampError(INVALID_ARGUMENT, f"PUBLISH.Options.{name} must be a list of strings")


def _is_session_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
