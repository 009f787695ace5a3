"""Messages between the nodes (hub processes) of one cluster, and who is alive.

Channels carry what clients publish; the node bus carries what nodes tell each
other about the clients they hold: "release this MQTT session", "invoke this
WAMP procedure on your callee". A message goes to one node, by id, and is
handed to the handler registered for its ``kind``. :meth:`NodeBus.request`
adds a reply on top.

:class:`LocalBus` is the memory engine's: there is one node, so a message to
any other is a message to nobody. The Redis engine's bus
(:mod:`hub.engine.redis.bus`) travels over Redis pub/sub. Neither queues
messages for a node that is not listening: a node that died misses them, and
the sender learns it from :meth:`NodeBus.alive` or a request's timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hub.errors import HubError

logger = logging.getLogger(__name__)

Handler = Callable[[str, Any], None]
"""``handler(sender node, body)``: must not block."""

RequestHandler = Callable[[str, Any], Awaitable[Any]]
"""``await handler(sender node, body)``: the reply's body."""

_REPLY = "bus.reply"


class NodeGone(HubError):
    """The node addressed cannot be reached, or did not answer in time."""


class NodeBus(Protocol):
    node_id: str

    def on(self, kind: str, handler: Handler) -> None:
        """Hand messages of ``kind`` to ``handler`` (one handler per kind)."""

    def on_request(self, kind: str, handler: RequestHandler) -> None:
        """Answer requests of ``kind`` with what ``handler`` returns."""

    async def send(self, node: str, kind: str, body: Any) -> None:
        """Send a message; EngineUnavailable if it could not be sent."""

    async def request(self, node: str, kind: str, body: Any, *, timeout: float) -> Any:
        """Send a request and wait for its reply; NodeGone after ``timeout`` seconds."""

    async def alive(self, node: str) -> bool:
        """Whether ``node`` is up (it refreshed its heartbeat lately)."""

    async def close(self) -> None:
        """Fail the requests still waiting for a reply."""


class BusBase:
    """Handlers, dispatch and request/reply; subclasses move the frames."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._handlers: dict[str, Handler] = {_REPLY: self._on_reply}
        self._request_ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on(self, kind: str, handler: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self._handlers[kind] = handler

    def on_request(self, kind: str, handler: RequestHandler) -> None:
        self.on(kind, lambda sender, envelope: self._serve(sender, envelope, handler))

    async def send(self, node: str, kind: str, body: Any) -> None:
        await self._transmit(node, [kind, self.node_id, body])

    async def _transmit(self, node: str, message: list[Any]) -> None:
        raise NotImplementedError

    def dispatch(self, message: Any) -> None:
        """A message for this node arrived: hand it to its kind's handler."""
        try:
            kind, sender, body = message
            handler = self._handlers.get(kind)
        except (TypeError, ValueError):
            logger.warning("node bus: dropping a malformed message")
            return
        if handler is None:
            logger.warning("node bus: no handler for %r (from node %s)", kind, sender)
            return
        try:
            handler(sender, body)
        except Exception:
            logger.exception("node bus: handling %r from node %s failed", kind, sender)

    # -- request / reply -------------------------------------------------------

    async def request(self, node: str, kind: str, body: Any, *, timeout: float) -> Any:
        request_id = next(self._request_ids)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        try:
            await self.send(node, kind, [request_id, body])
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            raise NodeGone(f"node {node} did not answer {kind!r} in {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)

    def _serve(self, sender: str, envelope: Any, handler: RequestHandler) -> None:
        request_id, body = envelope
        answer = self._answer(sender, request_id, handler, body)
        task = asyncio.get_running_loop().create_task(answer)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, sender: str, request_id: int, handler: RequestHandler, body: Any
    ) -> None:
        try:
            reply = [request_id, True, await handler(sender, body)]
        except Exception as exc:
            logger.exception("node bus: a request from node %s failed", sender)
            reply = [request_id, False, str(exc)]
        try:
            await self.send(sender, _REPLY, reply)
        except Exception as exc:
            logger.warning("node bus: could not answer node %s: %r", sender, exc)

    def _on_reply(self, sender: str, reply: Any) -> None:
        request_id, ok, body = reply
        waiter = self._pending.get(request_id)
        if waiter is None or waiter.done():
            return
        if ok:
            waiter.set_result(body)
        else:
            waiter.set_exception(NodeGone(f"node {sender} failed the request: {body}"))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(NodeGone("the node bus closed"))


class LocalBus(BusBase):
    """One node alone: messages to itself are dispatched, to any other go nowhere."""

    async def _transmit(self, node: str, message: list[Any]) -> None:
        if node == self.node_id:
            asyncio.get_running_loop().call_soon(self.dispatch, message)

    async def alive(self, node: str) -> bool:
        return node == self.node_id
