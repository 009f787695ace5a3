"""The server API's methods, over the hub's public interfaces (no HTTP here).

Every method acts as the server: no client access rule or hook applies. A
method takes its validated request model and returns its result model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from hub.api import models as m
from hub.api.cluster import ClusterControl
from hub.api.errors import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    ApiError,
    from_channel_error,
    from_rpc_error,
)
from hub.api.idempotency import IdempotencyStore
from hub.close_codes import CloseCode
from hub.engine import StreamPosition
from hub.engine.topics import InvalidChannel, matches, validate_pattern
from hub.errors import ChannelError, FeatureDisabled
from hub.meta import InvalidMeta, meta_extras, publication_meta
from hub.payloads import to_json_value
from hub.rpc import CallContext, RpcError, validation_detail

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

# The session id and protocol a hub RPC method sees when the API calls it.
API_SESSION = "api"
REVOKED_REASON = "token revoked"

Handler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    request: type[BaseModel]
    result: type[BaseModel] | None  # None: any JSON value (rpc)
    handler: Handler
    summary: str


class ApiMethods:
    def __init__(self, hub: Hub, control: ClusterControl) -> None:
        self._hub = hub
        self._channels = hub.channels
        self._control = control
        config = hub.config.api
        self._max_batch = config.max_batch
        self._idempotency = IdempotencyStore(
            window=config.idempotency_window, max_keys=config.idempotency_max_keys
        )
        # With a cluster's backend, keys and revocations hold on every node.
        self._shared_idempotency = hub.backend.idempotency(window=config.idempotency_window)
        self._shared_revocations = hub.backend.revocations(ttl=config.revocation_ttl)
        self._started = time.monotonic()
        self.table: dict[str, Method] = {}
        self._add(
            "publish",
            m.PublishRequest,
            m.PublishResult,
            self.publish,
            "Publish to a channel: every protocol's subscribers get it.",
        )
        self._add(
            "broadcast",
            m.BroadcastRequest,
            m.BroadcastResult,
            self.broadcast,
            "Publish the same data to several channels.",
        )
        self._add(
            "presence",
            m.ChannelRequest,
            m.PresenceResult,
            self.presence,
            "Who is in a channel, by user.",
        )
        self._add(
            "presence_stats",
            m.ChannelRequest,
            m.PresenceStatsResult,
            self.presence_stats,
            "How many clients and users are in a channel.",
        )
        self._add(
            "history",
            m.HistoryRequest,
            m.HistoryResult,
            self.history,
            "Recent publications of a channel.",
        )
        self._add(
            "history_remove",
            m.ChannelRequest,
            m.EmptyResult,
            self.history_remove,
            "Forget a channel's publications; its offset and epoch stay.",
        )
        self._add(
            "subscribe",
            m.UserChannelRequest,
            m.EmptyResult,
            self.subscribe,
            "Subscribe every connection of a user, on every node.",
        )
        self._add(
            "unsubscribe",
            m.UserChannelRequest,
            m.EmptyResult,
            self.unsubscribe,
            "Unsubscribe every connection of a user, on every node.",
        )
        self._add(
            "disconnect",
            m.DisconnectRequest,
            m.EmptyResult,
            self.disconnect,
            "Close every connection of a user, on every node.",
        )
        self._add(
            "revoke",
            m.RevokeRequest,
            m.EmptyResult,
            self.revoke,
            "Refuse a user's tokens issued before a time and close its sessions.",
        )
        self._add(
            "channels",
            m.ChannelsRequest,
            m.ChannelsResult,
            self.channels,
            "Active channels and their subscribers, over every node.",
        )
        self._add(
            "info",
            m.Empty,
            m.InfoResult,
            self.info,
            "Every node: connections, subscriptions, per-protocol counts.",
        )
        self._add(
            "rpc",
            m.RpcRequest,
            None,
            self.rpc,
            "Call a hub RPC method as the server; the result is the method's.",
        )
        self._add(
            "batch",
            m.BatchRequest,
            m.BatchResult,
            self.batch,
            "Run several commands in order; each has its own reply.",
        )
        control.on_action("subscribe", self._local_subscribe)
        control.on_action("unsubscribe", self._local_unsubscribe)
        control.on_action("disconnect", self._local_disconnect)
        control.on_action("revoke", self._local_revoke)
        control.on_gather("channels", self._local_channels)
        control.on_gather("info", self._local_info)

    def _add(
        self,
        name: str,
        request: type[BaseModel],
        result: type[BaseModel] | None,
        handler: Handler,
        summary: str,
    ) -> None:
        self.table[name] = Method(name, request, result, handler, summary)

    # -- dispatch --------------------------------------------------------------

    async def call(self, name: str, params: Any) -> Any:
        """The JSON result of method ``name``; ApiError when it fails."""
        method = self.table.get(name)
        if method is None:
            raise ApiError(HTTPStatus.NOT_FOUND, NOT_FOUND, f"unknown method {name!r}")
        if not isinstance(params, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, BAD_REQUEST, "the body must be a JSON object")
        try:
            request = method.request.model_validate(params)
        except ValidationError as exc:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, BAD_REQUEST, "invalid params", validation_detail(exc)
            ) from None
        try:
            result = await method.handler(request)
        except ChannelError as exc:
            raise from_channel_error(exc) from None
        except RpcError as exc:
            raise from_rpc_error(exc) from None
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json", exclude_unset=True)
        return result

    # -- channels --------------------------------------------------------------

    async def publish(self, request: m.PublishRequest) -> m.PublishResult:
        key = request.idempotency_key
        extras = _extras(request.meta, request.data)

        async def publish() -> m.PublishResult:
            publication = await self._channels.publish(request.channel, request.data, extras=extras)
            return m.PublishResult(offset=publication.offset, epoch=publication.epoch)

        if key is None:
            return await publish()
        # The key covers this channel only: the same key on two channels is two publishes.
        scoped = f"{request.channel}\x00{key}"
        if self._shared_idempotency is not None:

            async def publish_json() -> dict[str, Any]:
                return (await publish()).model_dump(mode="json")

            found = await self._shared_idempotency.run(scoped, publish_json)
            return m.PublishResult.model_validate(found)
        result: m.PublishResult = await self._idempotency.run(scoped, publish)
        return result

    async def broadcast(self, request: m.BroadcastRequest) -> m.BroadcastResult:
        extras = _extras(request.meta, request.data)
        responses = []
        for channel in request.channels:
            try:
                publication = await self._channels.publish(channel, request.data, extras=extras)
            except ChannelError as exc:
                error = from_channel_error(exc)
                body = m.ErrorBody(code=error.code, message=error.message)
                responses.append(m.BroadcastItem(error=body))
            else:
                result = m.PublishResult(offset=publication.offset, epoch=publication.epoch)
                responses.append(m.BroadcastItem(result=result))
        return m.BroadcastResult(responses=responses)

    async def presence(self, request: m.ChannelRequest) -> m.PresenceResult:
        members = await self._channels.presence(None, request.channel)
        return m.PresenceResult.model_validate({"members": members})

    async def presence_stats(self, request: m.ChannelRequest) -> m.PresenceStatsResult:
        return m.PresenceStatsResult.model_validate(
            await self._channels.presence_stats(None, request.channel)
        )

    async def history(self, request: m.HistoryRequest) -> m.HistoryResult:
        since = (
            StreamPosition(request.since.offset, request.since.epoch)
            if request.since is not None
            else None
        )
        # Newest first with a limit wants the newest ones: read them all (history
        # is bounded by the namespace's history_size), then cut.
        limit = None if request.reverse else request.limit
        result = await self._channels.history(None, request.channel, since=since, limit=limit)
        publications = result.publications
        if request.reverse:
            publications = publications[::-1]
            if request.limit is not None:
                publications = publications[: request.limit]
        items = []
        for p in publications:
            item = {"channel": p.channel, "data": to_json_value(p.data)}
            item.update(offset=p.offset, epoch=p.epoch)
            if p.publisher is not None:
                item["info"] = p.publisher.as_dict()
            meta = publication_meta(p.extras)
            if meta is not None:
                item["meta"] = meta
            items.append(m.HistoryPublication.model_validate(item))
        out: dict[str, Any] = {
            "publications": items,
            "offset": result.position.offset,
            "epoch": result.position.epoch,
        }
        if since is not None:
            out["recovered"] = result.complete
        return m.HistoryResult.model_validate(out)

    async def history_remove(self, request: m.ChannelRequest) -> m.EmptyResult:
        channel = self._channels.check_channel(request.channel)
        if not await self._hub.engine.remove_history(channel):
            raise FeatureDisabled("this engine cannot remove history")
        return m.EmptyResult()

    # -- users, on every node ----------------------------------------------------

    async def subscribe(self, request: m.UserChannelRequest) -> m.EmptyResult:
        channel = self._channels.check_subscription(request.channel)
        await self._control.run("subscribe", {"user": request.user, "channel": channel})
        return m.EmptyResult()

    async def unsubscribe(self, request: m.UserChannelRequest) -> m.EmptyResult:
        channel = self._channels.check_subscription(request.channel)
        await self._control.run("unsubscribe", {"user": request.user, "channel": channel})
        return m.EmptyResult()

    async def disconnect(self, request: m.DisconnectRequest) -> m.EmptyResult:
        await self._control.run("disconnect", request.model_dump())
        return m.EmptyResult()

    async def revoke(self, request: m.RevokeRequest) -> m.EmptyResult:
        before = request.before if request.before is not None else time.time()
        if self._shared_revocations is not None:
            # Kept first, so a node starting meanwhile reads it.
            await self._shared_revocations.revoke(request.user, before)
        await self._control.run("revoke", {"user": request.user, "before": before})
        return m.EmptyResult()

    async def load_revocations(self) -> None:
        """Learn the revocations made before this node started (shared backends only)."""
        if self._shared_revocations is None:
            return
        for user, before in (await self._shared_revocations.load()).items():
            self._hub.auth.revocations.revoke(user, before)

    async def _local_subscribe(self, body: dict[str, Any]) -> None:
        for _, handler in self._hub.user_sessions(str(body["user"])):
            await handler.server_subscribe(str(body["channel"]))

    async def _local_unsubscribe(self, body: dict[str, Any]) -> None:
        for _, handler in self._hub.user_sessions(str(body["user"])):
            await handler.server_unsubscribe(str(body["channel"]))

    async def _local_disconnect(self, body: dict[str, Any]) -> None:
        reason = str(body["reason"])
        for session, handler in self._hub.user_sessions(str(body["user"])):
            # The protocol's goodbye first (MQTT 5.0 DISCONNECT 0x98), then the close.
            try:
                await handler.on_kicked(reason)
            except Exception:
                logger.exception("session %s: on_kicked failed", session.id)
            await session.close(int(body["code"]), reason)

    async def _local_revoke(self, body: dict[str, Any]) -> None:
        user, before = str(body["user"]), float(body["before"])
        self._hub.auth.revocations.revoke(user, before)
        for session, handler in self._hub.user_sessions(user):
            identity = session.identity
            if identity is not None and self._hub.auth.revocations.revoked(identity):
                # The protocol's goodbye first (MQTT 5.0 DISCONNECT 0x87), then the close.
                try:
                    await handler.on_revoked(REVOKED_REASON)
                except Exception:
                    logger.exception("session %s: on_revoked failed", session.id)
                await session.close(CloseCode.TOKEN_REVOKED, REVOKED_REASON)

    # -- the cluster's figures ---------------------------------------------------

    async def channels(self, request: m.ChannelsRequest) -> m.ChannelsResult:
        if request.pattern is not None:
            try:
                validate_pattern(request.pattern, self._channels.config.max_channel_length)
            except InvalidChannel as exc:
                raise ApiError(HTTPStatus.BAD_REQUEST, -32010, str(exc)) from None
        answers, partial = await self._control.gather("channels", {"pattern": request.pattern})
        totals: dict[str, int] = {}
        for counts in answers.values():
            for channel, count in (counts or {}).items():
                totals[channel] = totals.get(channel, 0) + int(count)
        channels = {name: m.ChannelInfo(subscribers=n) for name, n in sorted(totals.items())}
        return m.ChannelsResult(channels=channels, partial=partial)

    async def _local_channels(self, body: dict[str, Any]) -> dict[str, int]:
        pattern = body.get("pattern")
        return {
            channel: count
            for channel, count in self._hub.engine.local_channels().items()
            if pattern is None or channel == pattern or matches(pattern, channel)
        }

    async def info(self, request: m.Empty) -> m.InfoResult:
        answers, partial = await self._control.gather("info", {})
        nodes = [m.NodeInfo.model_validate(answer) for answer in answers.values() if answer]
        nodes.sort(key=lambda node: node.node)
        return m.InfoResult(nodes=nodes, partial=partial)

    async def _local_info(self, body: dict[str, Any]) -> dict[str, Any]:
        hub = self._hub
        return {
            "node": hub.node_id,
            "connections": len(hub.session_ids),
            "subscriptions": hub.engine.local_subscription_count(),
            "protocols": hub.protocol_counts(),
            "uptime": round(time.monotonic() - self._started, 3),
        }

    # -- RPC and batches -----------------------------------------------------------

    async def rpc(self, request: m.RpcRequest) -> Any:
        hub = self._hub
        method = hub.methods.get(request.method)
        if method is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND, -32601, "Method not found", {"method": request.method}
            )
        context = CallContext(hub, API_SESSION, API_SESSION, None)
        return await method.invoke(request.params, context)

    async def batch(self, request: m.BatchRequest) -> dict[str, Any]:
        if len(request.commands) > self._max_batch:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                BAD_REQUEST,
                f"at most {self._max_batch} commands in a batch ([api] max_batch)",
            )
        replies: list[dict[str, Any]] = []
        for command in request.commands:
            if command.method == "batch":
                error = ApiError(HTTPStatus.BAD_REQUEST, BAD_REQUEST, "a batch cannot nest")
                replies.append(error.body())
                continue
            try:
                result = await self.call(command.method, command.params)
            except ApiError as exc:
                replies.append(exc.body())
            except Exception:
                logger.exception("server API: batch command %r failed", command.method)
                replies.append({"error": {"code": INTERNAL, "message": "internal error"}})
            else:
                replies.append({"result": result})
        return {"replies": replies}


def _extras(meta: Any, data: Any) -> dict[str, Any] | None:
    """A publish's ``extras`` for its ``meta``; HTTP 400 saying what is wrong with it."""
    try:
        return meta_extras(meta, data)
    except InvalidMeta as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, BAD_REQUEST, str(exc)) from None
