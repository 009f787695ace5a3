"""``channels.v1``: JSON-RPC 2.0 plus pub/sub, presence, history and recovery."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from hub.channels import client_info
from hub.engine import Kind, Publication, StreamPosition
from hub.engine.topics import is_pattern
from hub.errors import AlreadySubscribed, FeatureDisabled, LimitExceeded, NotSubscribed
from hub.handler import Session
from protocols.channels.codec import (
    WIRE_NAME,
    ChannelParams,
    HistoryParams,
    PublishParams,
    SubscribeParams,
    encode_publication,
    fit_publications,
    publication_dict,
    publish_extras,
)
from protocols.channels.codec import parse_params as _parse
from protocols.jsonrpc.handler import AfterReply, JsonRpcHandler

if TYPE_CHECKING:
    from hub.app import Hub

__all__ = ["WIRE_NAME", "ChannelsHandler", "encode_publication", "publication_dict"]


class _Subscription:
    """Live deliveries are held back while the subscribe reply is being built."""

    __slots__ = ("covered", "held", "presence", "ready")

    def __init__(self) -> None:
        self.held: list[Publication] | None = []
        self.presence = False
        # False until the subscribe has its result; unsubscribing before is refused.
        self.ready = False
        # Messages up to this offset were in the subscribe result (or before it).
        # A broker may hand one over after the result went out (Redis does): skip it.
        self.covered = 0


class ChannelsHandler(JsonRpcHandler):
    builtins: ClassVar[dict[str, str]] = {
        **JsonRpcHandler.builtins,
        "subscribe": "_subscribe",
        "unsubscribe": "_unsubscribe",
        "publish": "_publish",
        "presence": "_presence",
        "presence_stats": "_presence_stats",
        "history": "_history",
        # The same as rpc.refresh, under channels.v1's plain names.
        "refresh": "_refresh",
    }

    def __init__(self, session: Session, hub: Hub) -> None:
        super().__init__(session, hub)
        self.service = hub.channels
        self._subscriptions: dict[str, _Subscription] = {}

    # -- delivery (the engine calls this, it must not block) --------------

    def deliver(self, publication: Publication, subscription: str) -> None:
        state = self._subscriptions.get(subscription)
        if state is None:
            return
        if state.held is not None:
            state.held.append(publication)
            return
        if publication.kind is Kind.MESSAGE and 0 < publication.offset <= state.covered:
            return
        self.session.send(encode_publication(publication, subscription), text=True)

    # -- built-in methods --------------------------------------------------

    async def _subscribe(self, params: Any) -> AfterReply:
        request = _parse(SubscribeParams, params)
        channel = request.channel
        if channel in self._subscriptions:
            raise AlreadySubscribed(f"already subscribed to {channel!r}")
        if len(self._subscriptions) >= self.service.config.max_subscriptions:
            raise LimitExceeded(
                f"at most {self.service.config.max_subscriptions} subscriptions per connection"
            )
        # Reserved before the first await: requests pipelined behind this one
        # (a duplicate, one over the limit) see it.
        state = self._subscriptions[channel] = _Subscription()
        try:
            namespace = await self.service.authorize_subscribe(self.context, channel)
            pattern = is_pattern(channel)
            if request.presence and (pattern or not namespace.presence):
                raise FeatureDisabled(f"presence is off for {channel!r}")
            # Subscribe first, read history second: a publication racing the
            # subscribe is then held back or recovered, never lost.
            await self.service.subscribe(self, channel)
            result: dict[str, Any] = {"channel": channel}
            last_offset = 0
            if pattern:
                result.update(offset=0, epoch="")
            elif request.since is not None:
                since = StreamPosition(request.since.offset, request.since.epoch)
                room = self._history_room()
                recovery = await self.service.recover(self.context, channel, since, max_bytes=room)
                # What does not fit the reply budget is not recovered: the
                # client reads history itself (docs/channels.md, "Recovery").
                kept, cut = fit_publications(recovery.publications, room)
                complete = recovery.complete and not cut and not recovery.truncated
                result.update(
                    offset=recovery.position.offset,
                    epoch=recovery.position.epoch,
                    recovered=complete,
                    publications=kept if complete else [],
                )
                # Complete: every publication recovered is in the reply.
                last_offset = recovery.position.offset
                if complete:
                    last_offset = recovery.publications[-1].offset if kept else since.offset
            else:
                position = await self.service.position(channel)
                result.update(offset=position.offset, epoch=position.epoch)
                last_offset = position.offset
            if request.presence:
                # Marked before joining, so a drop while the join (or its hook)
                # is still running removes the member instead of leaking it.
                state.presence = True
                await self.service.join(channel, client_info(self.context, request.info))
        except BaseException:
            await self._drop(channel)
            raise
        state.ready = True
        return AfterReply(
            result, lambda: self._release(channel, last_offset), undo=lambda: self._drop(channel)
        )

    def _release(self, channel: str, last_offset: int) -> None:
        """Send what arrived during the subscribe, skipping what the reply held."""
        state = self._subscriptions.get(channel)
        if state is None or state.held is None:
            return
        held, state.held = state.held, None
        state.covered = last_offset
        for publication in held:
            if publication.kind is Kind.MESSAGE and 0 < publication.offset <= last_offset:
                continue
            self.session.send(encode_publication(publication, channel), text=True)

    # -- server-side subscriptions (server API subscribe/unsubscribe) ------------

    async def server_subscribe(self, channel: str) -> bool:
        """Subscribe for the server, then tell the client with a ``subscribed`` notification.

        No namespace rule or hook applies (the server decided); the per-connection
        limit does. Already subscribed: nothing changes.
        """
        if channel in self._subscriptions:
            return True
        if len(self._subscriptions) >= self.service.config.max_subscriptions:
            return False
        state = self._subscriptions[channel] = _Subscription()
        try:
            await self.service.subscribe(self, channel)
            if is_pattern(channel):
                position = StreamPosition(0, "")
            else:
                position = await self.service.position(channel)
        except BaseException:
            await self._drop(channel)
            raise
        state.ready = True
        self.notify(
            "subscribed",
            {"channel": channel, "offset": position.offset, "epoch": position.epoch},
        )
        self._release(channel, position.offset)
        return True

    async def server_unsubscribe(self, channel: str) -> bool:
        """End a subscription for the server; the client gets an ``unsubscribed`` notification."""
        state = self._subscriptions.get(channel)
        if state is None or not state.ready:
            return False
        await self._drop(channel)
        self.notify("unsubscribed", {"channel": channel})
        return True

    async def _unsubscribe(self, params: Any) -> dict[str, Any]:
        channel = _parse(ChannelParams, params).channel
        state = self._subscriptions.get(channel)
        if state is None or not state.ready:
            raise NotSubscribed(f"not subscribed to {channel!r}")
        await self._drop(channel)
        return {}

    async def _drop(self, channel: str) -> None:
        state = self._subscriptions.pop(channel, None)
        if state is None:
            return
        await self.service.unsubscribe(self, channel)
        if state.presence:
            await self.service.leave(channel, self.session.id)

    async def _publish(self, params: Any) -> dict[str, Any]:
        request = _parse(PublishParams, params)
        publication = await self.service.publish_from_client(
            self.context, request.channel, request.data, extras=publish_extras(request)
        )
        return {"offset": publication.offset, "epoch": publication.epoch}

    async def _presence(self, params: Any) -> dict[str, Any]:
        channel = _parse(ChannelParams, params).channel
        return {"members": await self.service.presence(self.context, channel)}

    async def _presence_stats(self, params: Any) -> dict[str, int]:
        channel = _parse(ChannelParams, params).channel
        return await self.service.presence_stats(self.context, channel)

    async def _history(self, params: Any) -> dict[str, Any]:
        request = _parse(HistoryParams, params)
        since = (
            StreamPosition(request.since.offset, request.since.epoch)
            if request.since is not None
            else None
        )
        room = self._history_room()
        # The store reads no more than the reply may carry.
        result = await self.service.history(
            self.context, request.channel, since=since, limit=request.limit, max_bytes=room
        )
        # Sized before it is built: a recovery keeps the oldest that fit (the
        # client continues from there), a plain read the newest.
        kept, cut = fit_publications(result.publications, room, newest=since is None)
        cut = cut or result.truncated
        out: dict[str, Any] = {
            "publications": kept,
            "offset": result.position.offset,
            "epoch": result.position.epoch,
        }
        if since is not None:
            out["recovered"] = result.complete and not cut
        if cut:
            out["truncated"] = True
        return out

    def _history_room(self) -> int:
        """Bytes of publications a reply may carry now (history, recovery)."""
        return min(self.service.config.max_history_reply_bytes, self.reply_room())

    # -- closing -------------------------------------------------------------

    async def on_close(self, code: int | None) -> None:
        # Requests still running (a subscribe waiting on a hook) finish or unwind
        # first; otherwise one could add a subscription after the drops below.
        running = [task for task in self._tasks or () if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for channel in list(self._subscriptions):
            await self._drop(channel)
        await super().on_close(code)
