"""Python hooks around connections and channel operations.

Hooks are plain functions, sync or async. Those that may refuse raise
:class:`hub.errors.PermissionDenied`; ``on_publish`` may also return a new
payload to transform the publication. ``on_call`` hooks authorize RPC calls by
method name, after ``[rpc.permissions]`` (their patterns are method globs, the
others' channel patterns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.access import glob_matches
from hub.awaitables import maybe_await
from hub.engine.base import ClientInfo, Publication
from hub.engine.topics import matches, patterns_intersect
from hub.rpc import CallContext

ConnectHook = Callable[[CallContext], Any]
SubscribeHook = Callable[[CallContext, str], Any]
PublishHook = Callable[[CallContext, Publication], Any]
PresenceHook = Callable[[str, ClientInfo], Any]
CallHook = Callable[[CallContext, str], Any]


@dataclass
class Hooks:
    connect: list[ConnectHook] = field(default_factory=list)
    disconnect: list[ConnectHook] = field(default_factory=list)
    subscribe: list[tuple[str, SubscribeHook]] = field(default_factory=list)
    publish: list[tuple[str, PublishHook]] = field(default_factory=list)
    join: list[tuple[str, PresenceHook]] = field(default_factory=list)
    leave: list[tuple[str, PresenceHook]] = field(default_factory=list)
    call: list[tuple[str, CallHook]] = field(default_factory=list)

    async def run_connect(self, ctx: CallContext) -> None:
        for hook in self.connect:
            await maybe_await(hook(ctx))

    async def run_disconnect(self, ctx: CallContext) -> None:
        for hook in self.disconnect:
            await maybe_await(hook(ctx))

    async def run_subscribe(self, ctx: CallContext, channel: str) -> None:
        """Run every hook whose pattern could see what ``channel`` (maybe a pattern) gets."""
        for pattern, hook in self.subscribe:
            # A pattern subscription meets the hooks of every channel it may match.
            if patterns_intersect(pattern, channel):
                await maybe_await(hook(ctx, channel))

    async def run_publish(self, ctx: CallContext, publication: Publication) -> None:
        """Run matching hooks in order; a hook returning non-None replaces the data."""
        for pattern, hook in self.publish:
            if matches(pattern, publication.channel):
                replaced = await maybe_await(hook(ctx, publication))
                if replaced is not None:
                    publication.data = replaced

    async def run_presence(
        self, hooks: list[tuple[str, PresenceHook]], channel: str, member: ClientInfo
    ) -> None:
        for pattern, hook in hooks:
            if matches(pattern, channel):
                await maybe_await(hook(channel, member))

    async def run_call(self, ctx: CallContext, method: str) -> None:
        """Run every hook whose method glob matches ``method``; one may refuse."""
        for pattern, hook in self.call:
            if glob_matches(pattern, method):
                await maybe_await(hook(ctx, method))
