"""WAMP callers calling the hub's own Python methods (``@hub.rpc``).

Each CALL runs in its own task, so a slow method never holds up the caller's
other messages; a caller has at most ``limits.max_concurrent_requests`` of them
running, and reading its next message waits for a free slot. CANCEL, the call
timeout and the caller leaving cancel the task.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from hub.errors import ChannelError
from hub.rpc import RpcError, RpcMethod
from hub.tasks import start_task
from protocols.wamp.errors import CANCELED, INVALID_PAYLOAD, RUNTIME_ERROR, TIMEOUT, WampError
from protocols.wamp.messages import Call, Error, MessageType, Result
from protocols.wamp.peer import Peer
from protocols.wamp.rpcmap import channel_error, hub_params, plain_result, rpc_error

logger = logging.getLogger(__name__)

_CALL: Final = MessageType.CALL.value


class _Running:
    __slots__ = ("caller", "reason", "request", "task")

    def __init__(self, caller: Peer, request: int) -> None:
        self.caller = caller
        self.request = request
        # Why the task was cancelled: an ERROR URI, or None to answer nothing.
        self.reason: str | None = CANCELED
        self.task: asyncio.Task[None] | None = None


class HubCalls:
    def __init__(self, max_concurrent: int) -> None:
        self._max_concurrent = max_concurrent
        self._running: dict[tuple[Peer, int], _Running] = {}
        self._slots: dict[Peer, asyncio.Semaphore] = {}

    def __contains__(self, key: tuple[Peer, int]) -> bool:
        return key in self._running

    async def call(
        self, caller: Peer, request: Call, method: RpcMethod, timeout: float | None
    ) -> None:
        slots = self._slots.setdefault(caller, asyncio.Semaphore(self._max_concurrent))
        await slots.acquire()
        key = (caller, request.request)
        running = _Running(caller, request.request)
        # Registered first: on 3.12+ the task runs its first step (often the
        # whole call) inside start_task.
        self._running[key] = running
        task = start_task(self._run(running, request, method, timeout))
        running.task = task

        def done(_: asyncio.Task[None]) -> None:
            slots.release()
            if self._running.get(key) is running:
                del self._running[key]

        task.add_done_callback(done)

    def cancel(self, caller: Peer, request: int) -> bool:
        """Cancel a running call; False if there is none."""
        running = self._running.get((caller, request))
        if running is None or running.task is None:
            return False
        running.task.cancel()
        return True

    async def leave(self, caller: Peer) -> None:
        """Cancel the calls of a caller that left, and wait for them to end."""
        tasks = []
        for running in list(self._running.values()):
            if running.caller is caller and running.task is not None:
                running.reason = None  # nobody is left to answer
                running.task.cancel()
                tasks.append(running.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._slots.pop(caller, None)

    async def _run(
        self, running: _Running, request: Call, method: RpcMethod, timeout: float | None
    ) -> None:
        caller = running.caller
        try:
            async with asyncio.timeout(timeout):
                params = hub_params(method, request.args, request.kwargs)
                result = await method.invoke(params, caller.context)
        except TimeoutError:
            error = WampError(TIMEOUT, f"no result within {timeout} s")
        except asyncio.CancelledError:
            if running.reason is None:
                raise
            error = WampError(running.reason, "canceled by the caller")
        except RpcError as exc:
            error = rpc_error(exc)
        except ChannelError as exc:
            error = channel_error(exc)
        except Exception:
            logger.exception("WAMP session %s: method %r failed", caller.session_id, method.name)
            error = WampError(
                RUNTIME_ERROR,
                "internal error",
                payload_kwargs={"session": caller.context.session_id},
            )
        else:
            if caller.send(Result(request.request, {}, [plain_result(result)])):
                return
            error = WampError(INVALID_PAYLOAD, "the result cannot be serialized")
        caller.send(
            Error(_CALL, request.request, {}, error.uri, error.payload_args, error.payload_kwargs)
        )
