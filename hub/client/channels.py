"""An asyncio client of ``channels.v1`` for Python workers.

::

    async with ChannelsClient("ws://127.0.0.1:8765/", token=jwt) as client:
        sub = await client.subscribe("chat/lobby", presence=True)
        await client.publish("chat/lobby", {"text": "hi"})
        async for message in sub:            # {channel, data, offset, epoch, ...}
            print(message["data"])

The client reconnects after a lost connection (full-jitter backoff) and
resubscribes with the last offset it saw, so the hub replays what it missed
(recovery); ``sub.recovered`` says whether nothing was lost. Each
subscription's queue is bounded: a worker that falls behind loses the oldest
messages, counted in ``sub.dropped``. Subscriptions the server makes for this
user (server API ``subscribe``) appear in ``client.subscriptions`` as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from hub.client.errors import CallError, Disconnected

logger = logging.getLogger(__name__)

WIRE_NAME = Subprotocol("channels.v1")
NotificationHandler = Callable[[str, dict[str, Any]], None]
Exposed = Callable[..., Awaitable[Any] | Any]


def full_jitter(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based), AWS "full jitter"."""
    return random.uniform(0, min(cap, base * 2.0 ** min(attempt, 64)))


class Subscription:
    """One channel (or pattern) this client receives; iterate it for messages."""

    def __init__(
        self, client: ChannelsClient, channel: str, *, presence: bool, info: Any, max_queue: int
    ) -> None:
        self._client = client
        self.channel = channel
        self.presence = presence
        self.info = info
        self.offset = 0
        self.epoch = ""
        # False after a resubscribe that could not replay everything missed.
        self.recovered = True
        self.dropped = 0
        self.active = True
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._max_queue = max_queue

    def _put(self, message: dict[str, Any]) -> None:
        offset = message.get("offset")
        if isinstance(offset, int) and offset > 0 and message.get("subscription") is None:
            self.offset = offset
        if self._queue.qsize() >= self._max_queue:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    def _end(self) -> None:
        self.active = False
        self._queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message's params; Disconnected once the subscription ended."""
        async with asyncio.timeout(timeout):
            message = await self._queue.get()
        if message is None:
            self._queue.put_nowait(None)  # later calls end too
            raise Disconnected(f"subscription to {self.channel!r} ended")
        return message

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self.get()
        except Disconnected:
            raise StopAsyncIteration from None

    async def unsubscribe(self) -> None:
        await self._client.unsubscribe(self.channel)


class ChannelsClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        reconnect: bool = True,
        min_delay: float = 0.2,
        max_delay: float = 10.0,
        request_timeout: float = 10.0,
        max_queue: int = 10_000,
        on_notification: NotificationHandler | None = None,
    ) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._reconnect = reconnect
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._timeout = request_timeout
        self._max_queue = max_queue
        self.on_notification = on_notification
        self.subscriptions: dict[str, Subscription] = {}
        self._exposed: dict[str, Exposed] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection (raises if the hub cannot be reached), then keep it up."""
        self._ws = await self._open()
        self._connected.set()
        self._runner = asyncio.get_running_loop().create_task(self._run(self._ws))

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for sub in self.subscriptions.values():
            sub._end()

    async def __aenter__(self) -> ChannelsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def expose(self, method: str, func: Exposed) -> None:
        """Answer the hub's calls of ``method`` (``hub.call``) with ``func(**params)``."""
        self._exposed[method] = func

    async def _open(self) -> ClientConnection:
        return await connect(
            self.url,
            subprotocols=[WIRE_NAME],
            additional_headers=self._headers,
            open_timeout=self._timeout,
        )

    async def _run(self, ws: ClientConnection) -> None:
        attempt = 0
        while True:
            await self._read(ws)
            self._connected.clear()
            self._fail_pending(Disconnected("the connection to the hub was lost"))
            if self._closing or not self._reconnect:
                for sub in self.subscriptions.values():
                    sub._end()
                return
            while True:
                await asyncio.sleep(full_jitter(attempt, base=self._min_delay, cap=self._max_delay))
                attempt += 1
                try:
                    ws = self._ws = await self._open()
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    logger.info("channels client: reconnect to %s failed: %r", self.url, exc)
                    continue
                break
            attempt = 0
            self._connected.set()
            self._spawn(self._resubscribe())

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except ConnectionClosed:
            pass

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            waiter = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if waiter is not None and not waiter.done():
                if "error" in message:
                    error = message["error"]
                    waiter.set_exception(
                        CallError(error.get("code", 0), error.get("message", ""), error.get("data"))
                    )
                else:
                    waiter.set_result(message.get("result"))
            return
        params = message.get("params") or {}
        if "id" in message:
            self._spawn(self._answer(message["id"], str(method), params))
            return
        if method == "message":
            sub = self.subscriptions.get(str(params.get("subscription") or params.get("channel")))
            if sub is not None:
                sub._put(params)
        elif method == "subscribed":
            channel = str(params.get("channel"))
            sub = self.subscriptions.get(channel)
            if sub is None:
                sub = self.subscriptions[channel] = self._new(channel, False, None)
            sub.offset, sub.epoch = int(params.get("offset", 0)), str(params.get("epoch", ""))
        elif method == "unsubscribed":
            sub = self.subscriptions.pop(str(params.get("channel")), None)
            if sub is not None:
                sub._end()
        if self.on_notification is not None:
            self.on_notification(str(method), params)

    async def _answer(self, call_id: Any, method: str, params: Any) -> None:
        func = self._exposed.get(method)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call_id}
        if func is None:
            reply["error"] = {"code": -32601, "message": "Method not found"}
        else:
            try:
                result = func(**params) if isinstance(params, dict) else func(*params)
                if asyncio.iscoroutine(result):
                    result = await result
                reply["result"] = result
            except Exception as exc:
                reply["error"] = {"code": -32603, "message": str(exc) or "Internal error"}
        with contextlib.suppress(ConnectionClosed):
            if self._ws is not None:
                await self._ws.send(json.dumps(reply))

    def _fail_pending(self, exc: Exception) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(exc)
        self._pending.clear()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests ------------------------------------------------------------------

    async def call(self, method: str, params: Any = None) -> Any:
        """One request; its result, or CallError (an error reply) / Disconnected."""
        if self._closing:
            raise Disconnected("the client is closed")
        async with asyncio.timeout(self._timeout):
            await self._connected.wait()
        ws = self._ws
        assert ws is not None
        request_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        try:
            await ws.send(json.dumps(request))
            async with asyncio.timeout(self._timeout):
                return await waiter
        except ConnectionClosed:
            raise Disconnected("the connection to the hub was lost") from None
        finally:
            self._pending.pop(request_id, None)

    async def publish(
        self, channel: str, data: Any, *, meta: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``{offset, epoch}`` of the publication; ``meta`` as in docs/channels.md."""
        params: dict[str, Any] = {"channel": channel, "data": data}
        if meta is not None:
            params["meta"] = meta
        return dict(await self.call("publish", params))

    async def presence(self, channel: str) -> dict[str, Any]:
        """Members by user: ``{user: {user, info, clients}}``."""
        return dict((await self.call("presence", {"channel": channel}))["members"])

    async def presence_stats(self, channel: str) -> dict[str, int]:
        return dict(await self.call("presence_stats", {"channel": channel}))

    async def history(
        self, channel: str, *, limit: int | None = None, since: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": channel}
        if limit is not None:
            params["limit"] = limit
        if since is not None:
            params["since"] = since
        return dict(await self.call("history", params))

    async def subscribe(
        self, channel: str, *, presence: bool = False, info: Any = None
    ) -> Subscription:
        """Subscribe; the subscription's position is the channel's now."""
        sub = self._new(channel, presence, info)
        result = await self.call("subscribe", self._subscribe_params(sub, since=False))
        sub.offset, sub.epoch = int(result.get("offset", 0)), str(result.get("epoch", ""))
        self.subscriptions[channel] = sub
        return sub

    async def unsubscribe(self, channel: str) -> None:
        sub = self.subscriptions.pop(channel, None)
        if sub is not None:
            sub._end()
        await self.call("unsubscribe", {"channel": channel})

    def _new(self, channel: str, presence: bool, info: Any) -> Subscription:
        return Subscription(self, channel, presence=presence, info=info, max_queue=self._max_queue)

    @staticmethod
    def _subscribe_params(sub: Subscription, *, since: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": sub.channel}
        if sub.presence:
            params["presence"] = True
            if sub.info is not None:
                params["info"] = sub.info
        if since and sub.epoch:
            params["since"] = {"offset": sub.offset, "epoch": sub.epoch}
        return params

    async def _resubscribe(self) -> None:
        """After a reconnect: every subscription again, from where it was (recovery)."""
        for sub in list(self.subscriptions.values()):
            try:
                result = await self.call("subscribe", self._subscribe_params(sub, since=True))
            except (CallError, Disconnected, TimeoutError) as exc:
                logger.warning("channels client: resubscribing %s failed: %r", sub.channel, exc)
                continue
            sub.recovered = bool(result.get("recovered", not sub.epoch))
            for publication in result.get("publications", []):
                sub._put(publication)
            sub.offset, sub.epoch = int(result.get("offset", 0)), str(result.get("epoch", ""))
