"""Channel operations with their policy: names, namespaces, permissions, hooks.

Every protocol handler (channels.v1, MQTT, WAMP) goes through this one service,
so a namespace rule, an access rule or a hook holds the same way whatever the
client speaks. Methods taking a ``ctx`` act for that client; ``ctx=None`` (or the
methods without one) act for the server, where no client rule applies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.access import NOBODY, OPEN, Rule
from hub.config import ChannelsConfig, NamespaceConfig
from hub.config_section import AccessRule
from hub.engine import ChannelEngine, ClientInfo, HistoryResult, Publication, StreamPosition
from hub.engine.core import Subscriber
from hub.engine.topics import (
    InvalidChannel,
    is_pattern,
    patterns_intersect,
    validate_channel,
    validate_pattern,
)
from hub.errors import FeatureDisabled, InvalidChannelName, PayloadTooLarge, PermissionDenied
from hub.handler import Identity
from hub.hooks import Hooks
from hub.payloads import MAX_DELIVERED_DEPTH, deeper_than, payload_size
from hub.rpc import CallContext


def client_info(ctx: CallContext, info: Any = None) -> ClientInfo:
    """How a session appears to others; anonymous sessions are their own user."""
    user = ctx.identity.user_id if ctx.identity is not None else ctx.session_id
    return ClientInfo(client=ctx.session_id, user=user, info=info)


@dataclass(frozen=True, slots=True)
class NamespaceAccess:
    """A namespace's access rules, compiled once."""

    subscribe: Rule
    publish: Rule
    presence: Rule
    history: Rule

    @classmethod
    def of(cls, namespace: NamespaceConfig) -> NamespaceAccess:
        """Unset rules follow ``subscribe_access``: reading a namespace's history or
        presence, or writing into it (retained messages and wills included), needs
        at least the right to subscribe to it unless a rule of its own says otherwise.
        Where ``allow_subscribe`` is off, unset reading rules admit no one (writing
        has ``allow_publish`` of its own).
        """
        subscribe = OPEN if namespace.subscribe_access is None else Rule(namespace.subscribe_access)
        read = subscribe if namespace.allow_subscribe else NOBODY

        def follow(rule: AccessRule | None, default: Rule) -> Rule:
            return default if rule is None else Rule(rule)

        return cls(
            subscribe,
            follow(namespace.publish_access, subscribe),
            follow(namespace.presence_access, read),
            follow(namespace.history_access, read),
        )

    def may_subscribe(self, namespace: NamespaceConfig, identity: Identity | None) -> bool:
        return namespace.allow_subscribe and self.subscribe.admits(identity)


class ChannelService:
    def __init__(self, engine: ChannelEngine, config: ChannelsConfig, hooks: Hooks) -> None:
        self.engine = engine
        self.config = config
        self.hooks = hooks
        # Longest prefix first, so the most specific namespace wins.
        self._prefixes = sorted(config.namespaces, key=len, reverse=True)
        self._default_access = NamespaceAccess.of(config.default)
        self._access = {
            prefix: NamespaceAccess.of(namespace) for prefix, namespace in config.namespaces.items()
        }
        self.namespace = functools.lru_cache(maxsize=4096)(self._resolve_namespace)
        self.access = functools.lru_cache(maxsize=4096)(self._resolve_access)
        engine.on_departed = self._departed
        # Told of every client publication once stored, with its offset (webhooks).
        self.after_publish: list[Callable[[CallContext, Publication], None]] = []

    def _resolve_namespace(self, channel: str) -> NamespaceConfig:
        prefix = self._prefix_of(channel)
        return self.config.default if prefix is None else self.config.namespaces[prefix]

    def _resolve_access(self, channel: str) -> NamespaceAccess:
        prefix = self._prefix_of(channel)
        return self._default_access if prefix is None else self._access[prefix]

    def _prefix_of(self, channel: str) -> str | None:
        for prefix in self._prefixes:
            if channel == prefix or channel.startswith(prefix + "/"):
                return prefix
        return None

    # -- names -----------------------------------------------------------

    def check_channel(self, channel: Any) -> str:
        if not isinstance(channel, str):
            raise InvalidChannelName("channel must be a string")
        try:
            validate_channel(channel, self.config.max_channel_length)
        except InvalidChannel as exc:
            raise InvalidChannelName(str(exc)) from None
        return channel

    def check_subscription(self, subscription: Any) -> str:
        if not isinstance(subscription, str):
            raise InvalidChannelName("channel must be a string")
        try:
            validate_pattern(subscription, self.config.max_channel_length)
        except InvalidChannel as exc:
            raise InvalidChannelName(str(exc)) from None
        return subscription

    # -- subscriptions ---------------------------------------------------

    async def authorize_subscribe(self, ctx: CallContext, subscription: str) -> NamespaceConfig:
        """Validate and run the policy; raise a ChannelError if refused."""
        self.check_subscription(subscription)
        identity = ctx.identity
        # A pattern takes the options of the namespace of its literal prefix...
        namespace = self.namespace(subscription)
        if not namespace.allow_subscribe:
            raise PermissionDenied(f"subscribing to {subscription!r} is not allowed")
        if not self.access(subscription).subscribe.admits(identity):
            raise PermissionDenied(f"subscribing to {subscription!r} is not authorized")
        if is_pattern(subscription):
            self._check_pattern_reach(subscription, identity)
        await self.hooks.run_subscribe(ctx, subscription)
        return namespace

    def _check_pattern_reach(self, pattern: str, identity: Identity | None) -> None:
        """...but may not reach into a more specific namespace closed to this subscriber."""
        own = self._prefix_of(pattern)
        for prefix in self._prefixes:
            if self._access[prefix].may_subscribe(self.config.namespaces[prefix], identity):
                continue
            # Every channel the pattern matches lies under its own prefix, and so
            # never resolves to an ancestor of that prefix.
            if own is not None and (own == prefix or own.startswith(prefix + "/")):
                continue
            if patterns_intersect(pattern, prefix + "/#"):
                raise PermissionDenied(
                    f"pattern {pattern!r} reaches {prefix!r}, where subscribing is not allowed"
                )

    async def subscribe(self, subscriber: Subscriber, subscription: str) -> None:
        await self.engine.subscribe(subscriber, subscription)

    async def unsubscribe(self, subscriber: Subscriber, subscription: str) -> None:
        await self.engine.unsubscribe(subscriber, subscription)

    # -- publishing ------------------------------------------------------

    async def publish_from_client(
        self,
        ctx: CallContext,
        channel: Any,
        data: Any,
        *,
        extras: dict[str, Any] | None = None,
    ) -> Publication:
        """A client's publication: checked, passed through hooks, then published."""
        channel = self.check_channel(channel)
        namespace = self.authorize_publish(ctx, channel)
        self._check_size(channel, data, namespace)
        publication = Publication(channel, data, extras=extras or {})
        if namespace.publisher_info:
            publication.publisher = client_info(ctx)
        await self.hooks.run_publish(ctx, publication)
        # A hook that rewrote the payload must not get around the limit.
        if publication.data is not data:
            self._check_size(channel, publication.data, namespace)
        await self._publish(publication, namespace)
        for listener in self.after_publish:
            listener(ctx, publication)
        return publication

    def authorize_publish(self, ctx: CallContext, channel: str) -> NamespaceConfig:
        """Whether this client may publish to ``channel`` (hooks aside); raise if not.

        Names starting with ``$`` are the server's (MQTT's ``$SYS/...``, 4.7.2):
        no client of any protocol may publish there.
        """
        if channel.startswith("$"):
            raise PermissionDenied(f"{channel!r}: names starting with '$' are the server's")
        namespace = self.namespace(channel)
        if not namespace.allow_publish:
            raise PermissionDenied(f"clients may not publish to {channel!r}")
        if not self.access(channel).publish.admits(ctx.identity):
            raise PermissionDenied(f"publishing to {channel!r} is not authorized")
        return namespace

    @staticmethod
    def _check_size(channel: str, data: Any, namespace: NamespaceConfig) -> None:
        if payload_size(data) > namespace.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload over {namespace.max_payload_bytes} bytes for {channel!r}"
            )

    async def publish(
        self, channel: str, data: Any, *, extras: dict[str, Any] | None = None, origin: str = ""
    ) -> Publication:
        """A server-side publication: no client permission or hook applies."""
        channel = self.check_channel(channel)
        publication = Publication(channel, data, extras=extras or {}, origin=origin)
        await self._publish(publication, self.namespace(channel))
        return publication

    async def _publish(self, publication: Publication, namespace: NamespaceConfig) -> None:
        # Whatever protocol it came from: a value the JSON replies that carry
        # it could not encode must never reach history (a "poison" message).
        data = publication.data
        if not isinstance(data, bytes | bytearray | memoryview) and deeper_than(
            data, MAX_DELIVERED_DEPTH
        ):
            raise PayloadTooLarge(
                f"payload nested deeper than {MAX_DELIVERED_DEPTH} levels "
                f"for {publication.channel!r}"
            )
        await self.engine.publish(
            publication, history_size=namespace.history_size, history_ttl=namespace.history_ttl
        )

    # -- presence --------------------------------------------------------

    def _presence_namespace(self, channel: Any) -> tuple[str, NamespaceConfig]:
        channel = self.check_channel(channel)
        namespace = self.namespace(channel)
        if not namespace.presence:
            raise FeatureDisabled(f"presence is off for {channel!r}")
        return channel, namespace

    def _authorize_presence(self, ctx: CallContext | None, channel: Any) -> str:
        name, _ = self._presence_namespace(channel)
        if ctx is not None and not self.access(name).presence.admits(ctx.identity):
            raise PermissionDenied(f"presence of {name!r} is not authorized")
        return name

    async def join(self, channel: str, member: ClientInfo) -> None:
        channel, namespace = self._presence_namespace(channel)
        # Every watcher gets the info with each join and leave: a big one multiplies.
        limit = self.config.max_presence_info_bytes
        if member.info is not None and payload_size(member.info) > limit:
            raise PayloadTooLarge(
                f"presence info over {limit} bytes (channels.max_presence_info_bytes)"
            )
        first = await self.engine.join(channel, member, announce=namespace.join_leave)
        if first:
            await self.hooks.run_presence(self.hooks.join, channel, member)

    async def leave(self, channel: str, client_id: str) -> None:
        namespace = self.namespace(channel)
        member = await self.engine.leave(channel, client_id, announce=namespace.join_leave)
        if member is not None:
            await self.hooks.run_presence(self.hooks.leave, channel, member)

    async def _departed(self, channel: str, member: ClientInfo) -> None:
        """A user's last connection left without a leave (its node died): as ``leave`` does."""
        if self.namespace(channel).join_leave:
            await self.engine.announce_leave(channel, member)
        await self.hooks.run_presence(self.hooks.leave, channel, member)

    async def presence(self, ctx: CallContext | None, channel: Any) -> dict[str, dict[str, Any]]:
        """Members merged by user: ``{user: {user, info, clients}}``."""
        channel = self._authorize_presence(ctx, channel)
        merged: dict[str, dict[str, Any]] = {}
        for member in (await self.engine.members(channel)).values():
            entry = merged.get(member.user)
            if entry is None:
                merged[member.user] = {"user": member.user, "info": member.info, "clients": 1}
            else:
                entry["clients"] += 1
        return merged

    async def presence_stats(self, ctx: CallContext | None, channel: Any) -> dict[str, int]:
        channel = self._authorize_presence(ctx, channel)
        members = await self.engine.members(channel)
        return {"clients": len(members), "users": len({m.user for m in members.values()})}

    # -- history ---------------------------------------------------------

    def _history_namespace(self, channel: Any) -> str:
        name = self.check_channel(channel)
        if self.namespace(name).history_size == 0:
            raise FeatureDisabled(f"history is off for {name!r}")
        return name

    async def history(
        self,
        ctx: CallContext | None,
        channel: Any,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
        max_bytes: int | None = None,
    ) -> HistoryResult:
        """``max_bytes``: what the reply may carry (the store need read no more)."""
        channel = self._history_namespace(channel)
        if ctx is not None and not self.access(channel).history.admits(ctx.identity):
            raise PermissionDenied(f"history of {channel!r} is not authorized")
        return await self.engine.read_history(
            channel, since=since, limit=limit, max_bytes=max_bytes
        )

    async def recover(
        self,
        ctx: CallContext,
        channel: str,
        since: StreamPosition,
        *,
        max_bytes: int | None = None,
    ) -> HistoryResult:
        """What a resubscribing client missed; ``complete`` False means a gap.

        Recovery reads history, so a client that history_access refuses gets the
        gap (``complete`` False), as if the namespace kept none: its subscription
        still works, and it cannot read history by resubscribing.
        """
        if (
            is_pattern(channel)
            or self.namespace(channel).history_size == 0
            or not self.access(channel).history.admits(ctx.identity)
        ):
            position = await self.engine.position(channel)
            return HistoryResult([], position, complete=since == position)
        return await self.engine.read_history(channel, since=since, max_bytes=max_bytes)

    async def position(self, channel: str) -> StreamPosition:
        return await self.engine.position(channel)
