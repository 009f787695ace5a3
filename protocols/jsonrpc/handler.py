"""JSON-RPC 2.0 over WebSocket: the per-connection state machine."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

from hub.auth import AuthenticationFailed
from hub.close_codes import CloseCode
from hub.errors import (
    AlreadySubscribed,
    ChannelError,
    EngineUnavailable,
    FeatureDisabled,
    HubError,
    InvalidChannelName,
    LimitExceeded,
    NotSubscribed,
    PayloadTooLarge,
    PermissionDenied,
)
from hub.handler import Session, SubprotocolHandler
from hub.limits import InvalidBudget
from hub.rpc import PERMISSION_DENIED, CallContext, RpcError
from hub.tasks import EAGER, start_task
from hub.turns import yield_behind_io
from protocols.jsonrpc import codec
from protocols.jsonrpc.codec import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NO_ID,
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


# A reply that would not fit the connection's outbound budget (docs/jsonrpc.md).
REPLY_TOO_LARGE = -32016

# A batch yields to the event loop once its elements have run this long since
# the last yield: counting elements (16 a step) made steps of 2 to 14 ms when
# each built a large reply or created a history stream. Without eager tasks
# (Python 3.11) an element runs after it is started, so the batch yields after
# each: otherwise every element would run in one loop iteration, before any
# other connection is read.
BATCH_SLICE = 0.001 if EAGER else 0.0

# A message this long is parsed in one loop step and handled in the next: the
# parse of 1 MiB (the default size cap) and the scans that follow it (nesting,
# the handler's checks) took 2 to 8 ms as one step on a loaded machine.
SPLIT_FROM = 128 * 1024

# Reply bytes that cost one more token of the message rate, past the first
# KiB: a request that makes the hub build and send a megabyte costs a
# thousand small ones.
REPLY_BYTES_PER_TOKEN = 1024
# The close reason once a connection spent its invalid-message budget.
INVALID_CLOSE_REASON = "too many invalid messages"


@dataclass(frozen=True, slots=True)
class AfterReply:
    """A result plus work to run right after the reply is written (not before).

    ``undo`` runs instead when the reply cannot be sent (it does not encode, or
    does not fit the outbound budget): a subscribe is then rolled back, never
    left half-open.
    """

    result: Any
    then: Callable[[], None]
    undo: Callable[[], Awaitable[None]] | None = None


Answer = tuple[bytes | None, Callable[[], None] | None]


class _BatchReply:
    """Collects a batch's encoded replies; the array goes out when the last is in.

    Only encoded bytes are kept, and they count against the connection's
    outbound budget until sent, so later elements size their replies to what
    is left; so do the array's brackets and commas, a byte per element
    reserved when it starts (and one for the closing bracket), so the whole
    fits the budget before it is sent. A large array leaves in fragments cut
    from the replies, never joined whole (Session.send_parts).
    """

    __slots__ = ("_handler", "_pending", "_replies", "_sealed", "_thens", "bytes")

    def __init__(self, handler: JsonRpcHandler) -> None:
        self._handler = handler
        self._replies: list[bytes] = []
        self._thens: list[Callable[[], None]] = []
        self._pending = 0
        self._sealed = False
        self.bytes = 0
        self._reserve(1)  # "]"

    def _reserve(self, size: int) -> None:
        self.bytes += size
        self._handler.reserved += size

    def started(self) -> None:
        self._pending += 1
        self._reserve(1)  # "[" or ","

    def refused(self, reply: bytes) -> None:
        """An element answered without being started (over the rate)."""
        self._reserve(1)
        self.add(reply, None)

    def add(self, reply: bytes | None, then: Callable[[], None] | None) -> None:
        if reply is not None:
            self._replies.append(reply)
            self._reserve(len(reply))
        if then is not None:
            self._thens.append(then)

    def finished(self, reply: bytes | None, then: Callable[[], None] | None) -> None:
        self.add(reply, then)
        self._pending -= 1
        self._flush()

    def seal(self) -> None:
        """Every element is started or answered: send once the running ones finish."""
        self._sealed = True
        self._flush()

    def _flush(self) -> None:
        if not self._sealed or self._pending:
            return
        self._handler.reserved -= self.bytes
        # A batch of only notifications (and responses) gets no reply at all.
        if self._replies:
            self._handler.session.send_parts(codec.batch_parts(self._replies), text=True)
        for then in self._thens:
            then()


class ClientCallError(HubError):
    """The client answered our call with a JSON-RPC error."""

    def __init__(self, error: ErrorObject) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.code = error.code
        self.message = error.message
        self.data = error.data


class JsonRpcHandler(SubprotocolHandler):
    """Serves the hub's RPC table; subclasses add built-in methods (channels.v1)."""

    # Built-in methods: wire name -> the name of the handler's method that
    # serves it (a Builtin once bound). One table per class: a dict of bound
    # methods per connection cost ~0.85 KiB on channels.v1, idle ones included.
    builtins: ClassVar[dict[str, str]] = {
        "rpc.discover": "_discover",
        "rpc.refresh": "_refresh",
    }

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session
        self.hub = hub
        self.context = CallContext(hub, session.id, session.subprotocol, session.identity)
        # Made at the first request that needs them: an idle connection
        # (many, on a busy hub) carries neither (~0.3 KiB).
        self._tasks: set[asyncio.Task[None]] | None = None
        # Bytes of encoded replies held for batches not yet sent.
        self.reserved = 0
        self._slots: asyncio.Semaphore | None = None
        # Tasks holding a slot, counted here: Semaphore.locked() costs a
        # generator per call, and the inline path asks on every request.
        self._max_running = hub.config.limits.max_concurrent_requests
        # Read once: an attribute of a pydantic model costs a __getattr__ hook.
        self._max_batch = hub.config.limits.max_batch_size
        self._max_depth = hub.config.limits.max_json_depth
        # Made at the first invalid message (most connections send none).
        self._invalid: InvalidBudget | None = None
        self._running = 0
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
            await self._count_invalid(1)
            return
        max_batch = self._max_batch
        max_depth = self._max_depth
        try:
            value = codec.parse(message, max_batch=max_batch)
            if len(message) >= SPLIT_FROM:
                await yield_behind_io()
            # The common case, a plain call of a method that cannot suspend,
            # is answered before any message object is built.
            call = codec.plain_call(message, value, max_depth)
            if call is not None and await self._answer_inline(*call):
                return
            # A plain call is known to nest no deeper than max_depth: not counted again.
            incoming = codec.classify(
                message, value, max_batch=max_batch, max_depth=max_depth, shallow=call is not None
            )
        except JsonRpcDecodeError as exc:
            self._send(codec.encode_error(None, exc.code, exc.message, exc.data))
            await self._count_invalid(1)
            return
        if not incoming.is_batch:
            item = incoming.messages[0]
            # Answers to our own calls never wait for a slot: the methods holding
            # every slot may be awaiting exactly these answers.
            if isinstance(item, Response):
                self._resolve_call(item)
                return
            # Nothing to run: its error is the answer, sent without a task.
            if isinstance(item, Invalid):
                error = item.error
                self._send(codec.encode_error(item.id, error.code, error.message, error.data))
                await self._count_invalid(1)
                return
            # (A plain call was offered to the inline path already.)
            if (
                call is None
                and isinstance(item, Request)
                and await self._answer_inline(item.id, item.method, item.params)
            ):
                return
            # Reading waits for a free slot: a client flooding requests is slowed
            # by TCP backpressure instead of growing our task set.
            await self._request_slots().acquire()
            self._spawn(self._run_single(item))
            return
        await self._run_batch(incoming.messages)
        invalid = sum(isinstance(item, Invalid) for item in incoming.messages)
        if invalid:
            await self._count_invalid(invalid)

    async def _count_invalid(self, count: int) -> None:
        """Spend ``count`` of the invalid-message budget (its errors already sent);
        past it, close the connection (hub.limits.InvalidBudget)."""
        budget = self._invalid
        if budget is None:
            limits = self.hub.config.limits
            if not limits.invalid_message_burst:
                return
            budget = self._invalid = InvalidBudget(
                limits.invalid_message_rate, limits.invalid_message_burst
            )
        if not budget.spend(count):
            await self.session.close(CloseCode.POLICY_VIOLATION, INVALID_CLOSE_REASON)

    async def _run_batch(self, messages: list[codec.Message]) -> None:
        """Each element is a unit of work: a rate token and a slot of its own.

        The server took the message's token for the first element; the others
        take theirs here, and one over the rate is answered RATE_LIMITED like a
        request of its own. Replies come back as one array (JSON-RPC 2.0, 6).
        """
        batch = _BatchReply(self)
        clock = perf_counter
        slice_ends = clock() + BATCH_SLICE
        for index, item in enumerate(messages):
            if index and not self.work.take():
                if self.work.flooding:
                    await self.session.close(CloseCode.POLICY_VIOLATION, "message rate exceeded")
                    return
                if isinstance(item, Response):
                    self._resolve_call(item)
                elif isinstance(item, Request) and not item.is_notification:
                    data = {"message_rate": self.hub.config.limits.message_rate}
                    batch.refused(
                        codec.encode_error(item.id, RATE_LIMITED, "Rate limit exceeded", data)
                    )
                continue
            if isinstance(item, Response):
                self._resolve_call(item)
                continue
            await self._request_slots().acquire()
            batch.started()
            self._spawn(self._run_element(item, batch))
            # Starting an element runs it up to its first await: let the others in.
            if clock() >= slice_ends:
                await yield_behind_io()
                slice_ends = clock() + BATCH_SLICE
        batch.seal()

    async def _run_element(self, message: codec.Message, batch: _BatchReply) -> None:
        reply, then = await self._answer(message)
        batch.finished(reply, then)

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Over the message rate: requests get RATE_LIMITED, notifications are dropped.

        Answers to the hub's own calls still resolve them: refusing those would
        strand a server-side ``hub.call`` until its timeout. Frames that do not
        decode are dropped unanswered, as is anything else cheap to ignore.
        Each element of a refused batch after the first is refused on its own
        (the server counted the first), as when the batch runs: a client
        sending refused batches is closed after a burst's worth of elements,
        not of batches, each of which costs a decode and a reply.
        """
        # Without an "id" key (nor an escape that could spell one) there is no
        # request to refuse and no answer to resolve: not worth parsing.
        if isinstance(message, bytes) or ('"id"' not in message and "\\u" not in message):
            return
        try:
            incoming = codec.decode(message)
        except JsonRpcDecodeError:
            return
        data = {"message_rate": self.hub.config.limits.message_rate}
        refusals = []
        for index, item in enumerate(incoming.messages):
            if index:
                # A token if one came back meanwhile, else one more refusal.
                self.work.take()
                if self.work.flooding:
                    await self.session.close(CloseCode.POLICY_VIOLATION, "message rate exceeded")
                    return
            if isinstance(item, Response):
                self._resolve_call(item)
            elif isinstance(item, Request) and not item.is_notification:
                refusals.append(
                    codec.encode_error(item.id, RATE_LIMITED, "Rate limit exceeded", data)
                )
        if refusals:
            self._send(codec.encode_batch(refusals) if incoming.is_batch else refusals[0])

    def _request_slots(self) -> asyncio.Semaphore:
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self._max_running)
        return slots

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # Eager on 3.12+: the request may already be answered (and the task
        # done) here; _task_done still runs, from the loop, and frees the slot.
        self._running += 1
        task = start_task(coroutine)
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # Both exist: a task is spawned after its slot is taken.
        assert self._tasks is not None
        assert self._slots is not None
        self._tasks.discard(task)
        self._running -= 1
        self._slots.release()

    async def _run_single(self, message: codec.Message) -> None:
        reply, then = await self._answer(message)
        if reply is not None:
            self._send(reply)
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
        started = perf_counter()
        then = None
        undo = None
        try:
            result = await self.dispatch(request.method, request.params)
            if isinstance(result, AfterReply):
                result, then, undo = result.result, result.then, result.undo
            try:
                reply = None if request.is_notification else codec.encode_result(request.id, result)
            except EncodeError:
                if undo is not None:
                    await undo()
                raise
            if reply is not None and len(reply) > self.reply_room():
                if undo is not None:
                    await undo()
                self._calls_error.inc()
                return codec.encode_error(
                    request.id,
                    REPLY_TOO_LARGE,
                    "reply too large for the connection's outbound budget",
                    {"bytes": len(reply), "limit": "limits.max_outbound_bytes"},
                ), None
        except (Exception, EncodeError) as exc:
            return self._error_reply(request.id, request.method, exc), None
        self._charge(reply)
        self._calls_ok.inc()
        self._latency.observe(perf_counter() - started)
        return reply, then

    def _charge(self, reply: bytes | None) -> None:
        """A reply that goes out costs a rate token per KiB past its first (the request's own)."""
        if reply is not None and len(reply) > REPLY_BYTES_PER_TOKEN:
            self.work.charge(len(reply) / REPLY_BYTES_PER_TOKEN - 1)

    async def _answer_inline(self, call_id: Any, name: str, params: Any) -> bool:
        """Answer a call to a method that cannot suspend, with no task; False: not one.

        Such a method (hub.inline) runs start to end in this step, so a task
        would only add a trip through the event loop. It is awaited, never
        suspending: stepping its coroutine by hand would raise and catch a
        StopIteration per call. Anything that might wait
        takes the usual path: built-ins, ``on_call`` hooks, a refusal (its
        error is worded there), no free slot (the reader must wait for one).
        ``call_id`` is NO_ID for a notification.
        """
        hub = self.hub
        method = hub.methods.inline.get(name)
        if (
            method is None
            or name in self.builtins
            or hub.hooks.call
            or self._running >= self._max_running
        ):
            return False
        context = self.context
        permissions = hub.rpc_permissions
        if permissions.guarded and not permissions.admits(name, context.identity):
            return False
        started = perf_counter()
        try:
            result = await method.invoke(params, context)
            if call_id is NO_ID:
                reply = None
            else:
                reply = codec.encode_result(call_id, result)
                # reply_room(), inlined.
                if len(reply) > self.session.outbound_room() - self.reserved:
                    self._calls_error.value += 1
                    reply = codec.encode_error(
                        call_id,
                        REPLY_TOO_LARGE,
                        "reply too large for the connection's outbound budget",
                        {"bytes": len(reply), "limit": "limits.max_outbound_bytes"},
                    )
                    self._send(reply)
                    return True
        except (Exception, EncodeError) as exc:
            reply = self._error_reply(call_id, name, exc)
        else:
            if reply is not None and len(reply) > REPLY_BYTES_PER_TOKEN:
                self._charge(reply)
            self._calls_ok.value += 1
            self._latency.observe(perf_counter() - started)
        if reply is not None:
            self.session.send(reply, text=True)
        return True

    def _error_reply(self, call_id: Any, name: str, exc: BaseException) -> bytes | None:
        """The error a call's failure answers (None for a notification), counted."""
        if isinstance(exc, RpcError):
            self._calls_error.inc()
            if call_id is NO_ID:
                return None
            return codec.encode_error(call_id, exc.code, exc.message, exc.data)
        if isinstance(exc, ChannelError):
            self._calls_error.inc()
            if call_id is NO_ID:
                return None
            code = CHANNEL_ERROR_CODES.get(type(exc), PERMISSION_DENIED)
            return codec.encode_error(call_id, code, exc.message)
        self._calls_failed.inc()
        # The traceback stays in the server log; the client learns only that
        # something failed, and where to look (the session id).
        logger.error("session %s: method %r failed", self.session.id, name, exc_info=exc)
        if call_id is NO_ID:
            return None
        return codec.encode_error(
            call_id, INTERNAL_ERROR, "Internal error", {"session": self.session.id}
        )

    async def dispatch(self, name: str, params: Any) -> Any:
        """Run a built-in or a hub RPC method by name."""
        attribute = self.builtins.get(name)
        builtin: Builtin | None = None if attribute is None else getattr(self, attribute)
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

    def reply_room(self) -> int:
        """Bytes a reply may take now: the outbound budget less batch replies held."""
        return self.session.outbound_room() - self.reserved

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
        for task in list(self._tasks or ()):
            task.cancel()
