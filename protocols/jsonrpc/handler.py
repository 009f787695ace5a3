"""JSON-RPC 2.0 over WebSocket: the per-connection state machine."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.auth import AuthenticationFailed
from hub.errors import (
    AlreadySubscribed,
    ChannelError,
    EngineUnavailable,
    FeatureDisabled,
    InvalidChannelName,
    LimitExceeded,
    NotSubscribed,
    PayloadTooLarge,
    PermissionDenied,
)
from hub.handler import Session, SubprotocolHandler
from hub.rpc import PERMISSION_DENIED, CallContext, RpcError
from hub.tasks import start_task
from protocols.jsonrpc import codec
from protocols.jsonrpc.codec import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    EncodeError,
    ErrorObject,
    Invalid,
    JsonRpcDecodeError,
    Request,
    Response,
)

if TYPE_CHECKING:
    from hub.app import Hub

logger = logging.getLogger(__name__)

# rpc.refresh (and channels.v1's refresh) with a token that is not valid, or
# names another user (docs/jsonrpc.md, "Authentication").
UNAUTHORIZED = -32020

# A request over the connection's message rate (limits.message_rate, docs/jsonrpc.md).
RATE_LIMITED = -32029

# A built-in method: receives the raw params, returns the result or raises RpcError.
Builtin = Callable[[Any], Awaitable[Any]]

# hub.errors raised by channel operations, as JSON-RPC codes (docs/channels.md).
CHANNEL_ERROR_CODES: dict[type[ChannelError], int] = {
    InvalidChannelName: -32010,
    PermissionDenied: PERMISSION_DENIED,
    NotSubscribed: -32012,
    AlreadySubscribed: -32013,
    FeatureDisabled: -32014,
    PayloadTooLarge: -32015,
    LimitExceeded: -32016,
    EngineUnavailable: -32017,
}


@dataclass(frozen=True, slots=True)
class AfterReply:
    """A result plus work to run right after the reply is written (not before)."""

    result: Any
    then: Callable[[], None]


Answer = tuple[bytes | None, Callable[[], None] | None]


class ClientCallError(Exception):
    """The client answered our call with a JSON-RPC error."""

    def __init__(self, error: ErrorObject) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.code = error.code
        self.message = error.message
        self.data = error.data


class JsonRpcHandler(SubprotocolHandler):
    """Serves the hub's RPC table; subclasses add built-in methods (channels.v1)."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session
        self.hub = hub
        self.context = CallContext(hub, session.id, session.subprotocol, session.identity)
        self.builtins: dict[str, Builtin] = {
            "rpc.discover": self._discover,
            "rpc.refresh": self._refresh,
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(hub.config.limits.max_concurrent_requests)
        self._call_ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        metrics = hub.metrics
        self._calls_ok = metrics.rpc_calls.labels("ok")
        self._calls_error = metrics.rpc_calls.labels("error")
        self._calls_failed = metrics.rpc_calls.labels("internal_error")
        self._latency = metrics.rpc_latency

    # -- incoming --------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self._send(
                codec.encode_error(
                    None,
                    INVALID_REQUEST,
                    "Invalid Request",
                    "binary frames are not accepted; send JSON-RPC as text frames",
                )
            )
            return
        try:
            incoming = codec.decode(message)
        except JsonRpcDecodeError as exc:
            self._send(codec.encode_error(None, exc.code, exc.message, exc.data))
            return
        # Answers to our own calls never wait for a slot: the methods holding
        # every slot may be awaiting exactly these answers. They get no reply,
        # so a batch answers the same without them.
        messages: list[codec.Message] = []
        for item in incoming.messages:
            if isinstance(item, Response):
                self._resolve_call(item)
            else:
                messages.append(item)
        if not messages:
            return
        # Reading waits for a free slot: a client flooding requests is slowed by
        # TCP backpressure instead of growing our task set.
        await self._slots.acquire()
        if incoming.is_batch:
            self._spawn(self._run_batch(messages))
        else:
            self._spawn(self._run_single(messages[0]))

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Over the message rate: requests get RATE_LIMITED, notifications are dropped.

        Answers to the hub's own calls still resolve them: refusing those would
        strand a server-side ``hub.call`` until its timeout. Frames that do not
        decode are dropped unanswered, as is anything else cheap to ignore.
        """
        if isinstance(message, bytes):
            return
        try:
            incoming = codec.decode(message)
        except JsonRpcDecodeError:
            return
        data = {"message_rate": self.hub.config.limits.message_rate}
        refusals = []
        for item in incoming.messages:
            if isinstance(item, Response):
                self._resolve_call(item)
            elif isinstance(item, Request) and not item.is_notification:
                refusals.append(
                    codec.encode_error(item.id, RATE_LIMITED, "Rate limit exceeded", data)
                )
        if refusals:
            self._send(codec.encode_batch(refusals) if incoming.is_batch else refusals[0])

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # Eager on 3.12+: the request may already be answered (and the task
        # done) here; _task_done still runs, from the loop, and frees the slot.
        task = start_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _run_single(self, message: codec.Message) -> None:
        reply, then = await self._answer(message)
        if reply is not None:
            self._send(reply)
        if then is not None:
            then()

    async def _run_batch(self, messages: list[codec.Message]) -> None:
        answers = await asyncio.gather(*(self._answer(m) for m in messages))
        encoded = [reply for reply, _ in answers if reply is not None]
        # A batch of only notifications (and responses) gets no reply at all.
        if encoded:
            self._send(codec.encode_batch(encoded))
        for _, then in answers:
            if then is not None:
                then()

    async def _answer(self, message: codec.Message) -> Answer:
        if isinstance(message, Request):
            return await self._answer_request(message)
        if isinstance(message, Response):
            self._resolve_call(message)
            return None, None
        assert isinstance(message, Invalid)
        error = message.error
        return codec.encode_error(message.id, error.code, error.message, error.data), None

    async def _answer_request(self, request: Request) -> Answer:
        started = time.perf_counter()
        then = None
        try:
            result = await self.dispatch(request.method, request.params)
            if isinstance(result, AfterReply):
                result, then = result.result, result.then
            reply = None if request.is_notification else codec.encode_result(request.id, result)
        except RpcError as exc:
            self._calls_error.inc()
            if request.is_notification:
                return None, None
            return codec.encode_error(request.id, exc.code, exc.message, exc.data), None
        except ChannelError as exc:
            self._calls_error.inc()
            if request.is_notification:
                return None, None
            code = CHANNEL_ERROR_CODES.get(type(exc), PERMISSION_DENIED)
            return codec.encode_error(request.id, code, exc.message), None
        except (Exception, EncodeError):
            self._calls_failed.inc()
            # The traceback stays in the server log; the client learns only that
            # something failed, and where to look (the session id).
            logger.exception("session %s: method %r failed", self.session.id, request.method)
            if request.is_notification:
                return None, None
            return codec.encode_error(
                request.id, INTERNAL_ERROR, "Internal error", {"session": self.session.id}
            ), None
        self._calls_ok.inc()
        self._latency.observe(time.perf_counter() - started)
        return reply, then

    async def dispatch(self, name: str, params: Any) -> Any:
        """Run a built-in or a hub RPC method by name."""
        builtin = self.builtins.get(name)
        # Methods answer to [rpc.permissions], checked before the name is
        # looked up so a refusal tells nothing about which methods exist.
        # Built-ins do not (channel ones follow their namespace's rules, token
        # refresh is authentication), except rpc.discover, the method list.
        if builtin is None or name == "rpc.discover":
            await self._authorize(name)
        if builtin is not None:
            return await builtin(params)
        method = self.hub.methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found", {"method": name})
        return await method.invoke(params, self.context)

    async def _authorize(self, name: str) -> None:
        try:
            await self.hub.authorize_call(self.context, name)
        except PermissionDenied as exc:
            data = {"method": name, "reason": exc.message}
            raise RpcError(PERMISSION_DENIED, "permission denied", data) from None

    async def _discover(self, params: Any) -> Any:
        return self.hub.methods.openrpc()

    async def _refresh(self, params: Any) -> dict[str, Any]:
        """Replace the session's token before it expires: ``{"token": "<jwt>"}``."""
        token = None
        if isinstance(params, dict) and params.keys() == {"token"}:
            token = params["token"]
        elif isinstance(params, list) and len(params) == 1:
            token = params[0]
        if not isinstance(token, str):
            raise RpcError(INVALID_PARAMS, "Invalid params", 'params must be {"token": "<jwt>"}')
        try:
            identity = self.hub.auth.refresh(self.session.identity, token)
        except AuthenticationFailed as exc:
            # The session keeps its current token, and closes when that expires.
            raise RpcError(UNAUTHORIZED, "Unauthorized", str(exc)) from None
        self.session.identity = identity
        self.context.identity = identity
        return {"user": identity.user_id, "expires_at": identity.expires_at}

    # -- outgoing --------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        self.session.send(payload, text=True)

    def notify(self, method: str, params: Any = None) -> None:
        self._send(codec.encode_notification(method, params))

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call a method the client exposes; raise ClientCallError or TimeoutError."""
        call_id = next(self._call_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            self._send(codec.encode_request(call_id, method, params))
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(call_id, None)

    def _resolve_call(self, response: Response) -> None:
        future = self._pending.get(response.id)
        if future is None or future.done():
            logger.debug("session %s: response to unknown call %r", self.session.id, response.id)
            return
        if response.error is not None:
            future.set_exception(ClientCallError(response.error))
        else:
            future.set_result(response.result)

    # -- closing ---------------------------------------------------------

    async def on_close(self, code: int | None) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"session closed with code {code}"))
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
