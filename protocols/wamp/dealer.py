"""The dealer of one realm: REGISTER, CALL -> INVOCATION -> YIELD -> RESULT.

A CALL goes to an exact registration, else to a hub method of the same name
(``@hub.rpc``, run by :mod:`protocols.wamp.hubcalls`), else to the best pattern
registration. Exact registrations in a realm that shares the hub's namespace are
also served to JSON-RPC and channels clients through the hub's method table.

Everything here is synchronous except what waits on the hub: a CALL becomes an
INVOCATION before the caller's next message is read, so calls from one caller to
one callee arrive in order, and so do their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hub.errors import PermissionDenied
from hub.payloads import to_json_value
from hub.rpc import METHOD_NOT_FOUND, CallContext, RpcError
from protocols.wamp.config import WampConfig
from protocols.wamp.errors import (
    CANCELED,
    INVALID_ARGUMENT,
    INVALID_PAYLOAD,
    INVALID_URI,
    NO_SUCH_PROCEDURE,
    NO_SUCH_REGISTRATION,
    OPTION_NOT_ALLOWED,
    PROCEDURE_ALREADY_EXISTS,
    TIMEOUT,
    ProtocolViolation,
    WampError,
)
from protocols.wamp.hubcalls import HubCalls
from protocols.wamp.messages import (
    Call,
    Cancel,
    Error,
    Interrupt,
    Invocation,
    Message,
    MessageType,
    Register,
    Result,
    Unregister,
    Yield,
)
from protocols.wamp.payload import to_data
from protocols.wamp.peer import Peer
from protocols.wamp.registrations import Registration, RegistrationTable
from protocols.wamp.rpcmap import callee_error, channel_error
from protocols.wamp.uri import MATCH_POLICIES, is_reserved_uri, is_valid_uri

if TYPE_CHECKING:
    from hub.app import Hub
    from protocols.wamp.cluster import WampCluster
    from protocols.wamp.realm import Realm

_CALL: Final = MessageType.CALL.value
CANCEL_MODES: Final = ("skip", "kill", "killnowait")
# CANCEL without a mode: the caller gets its answer now, the callee is told.
DEFAULT_CANCEL_MODE: Final = "killnowait"


@dataclass(eq=False, slots=True)
class PendingCall:
    """One call in flight to a WAMP callee."""

    invocation: int  # INVOCATION.Request, in the callee's id space
    registration: Registration
    # A WAMP caller and its CALL.Request, or a hub-side caller's future.
    caller: Peer | None
    request: int
    future: asyncio.Future[tuple[Any, Any]] | None = None
    progress: bool = False
    timer: asyncio.TimerHandle | None = None
    # CANCEL mode "kill" sent INTERRUPT: the callee's answer ends the call.
    killing: bool = False

    @property
    def callee(self) -> Peer:
        return self.registration.callee


class Dealer:
    def __init__(self, realm: Realm, hub: Hub) -> None:
        self._realm = realm
        self._hub = hub
        self.registrations = RegistrationTable()
        self._by_invocation: dict[tuple[Peer, int], PendingCall] = {}
        self._by_call: dict[tuple[Peer, int], PendingCall] = {}
        self._hub_calls = HubCalls(hub.config.limits.max_concurrent_requests)
        self._disclose = hub.config.section(WampConfig).disclose_caller
        # Callees on other nodes (the Redis engine): set by the router, else None.
        self.cluster: WampCluster | None = None

    # -- registrations -----------------------------------------------------------

    async def register(self, callee: Peer, request: Register) -> int:
        procedure, options = request.procedure, request.options
        match = options.get("match", "exact")
        if match not in MATCH_POLICIES:
            raise WampError(INVALID_ARGUMENT, f"unknown match policy {match!r}")
        try:
            self._hub.authorize_register(callee.context, procedure, match)
        except PermissionDenied as exc:
            raise channel_error(exc) from None
        if options.get("invoke", "single") != "single":
            raise WampError(OPTION_NOT_ALLOWED, "shared registrations are not supported")
        if not _valid_procedure(procedure, match):
            raise WampError(INVALID_URI, f"invalid procedure {procedure!r} for match {match!r}")
        if is_reserved_uri(procedure):
            raise WampError(INVALID_URI, f"procedure {procedure!r} is reserved for the router")
        hub_methods = self._hub.methods
        taken = self.registrations.find(procedure, match) is not None or (
            match == "exact" and hub_methods.local(procedure) is not None
        )
        # Realms sharing the hub's namespace share its procedure names too.
        if match == "exact" and self._realm.shares_hub and procedure in hub_methods:
            taken = True
        if taken:
            raise WampError(PROCEDURE_ALREADY_EXISTS, f"{procedure!r} is already registered")
        registration = Registration(
            procedure, match, callee, disclose_caller=options.get("disclose_caller") is True
        )
        if self.cluster is not None:
            # Names are unique in the cluster; registered here meanwhile, it is taken.
            await self.cluster.claim(self._realm.name, registration)
            if self.registrations.find(procedure, match) is not None:
                self.cluster.release(self._realm.name, registration)
                raise WampError(PROCEDURE_ALREADY_EXISTS, f"{procedure!r} is already registered")
        if match == "exact" and self._realm.shares_hub:
            forward = functools.partial(self._forward, registration)
            # A name the method table reserves stays callable over WAMP only.
            with contextlib.suppress(ValueError):
                registration.remote = hub_methods.add_remote(procedure, forward)
        self.registrations.add(registration)
        return registration.id

    def unregister(self, callee: Peer, request: Unregister) -> None:
        registration = self.registrations.get(request.registration)
        if registration is None or registration.callee is not callee:
            raise WampError(NO_SUCH_REGISTRATION, f"no registration {request.registration}")
        self._drop(registration)

    def _drop(self, registration: Registration) -> None:
        self.registrations.remove(registration)
        if self.cluster is not None:
            self.cluster.release(self._realm.name, registration)
        if registration.remote is not None:
            self._hub.methods.remove_remote(registration.remote)

    # -- calls from WAMP callers -------------------------------------------------

    async def call(self, caller: Peer, request: Call) -> None:
        """Route a CALL; answers go to the caller later. Raises WampError to refuse it."""
        key = (caller, request.request)
        if key in self._by_call or key in self._hub_calls:
            raise ProtocolViolation(f"CALL request id {request.request} is already in flight")
        procedure = request.procedure
        if not is_valid_uri(procedure):
            raise WampError(INVALID_URI, f"invalid procedure {procedure!r}")
        timeout = _timeout(request.options)
        # Before routing, so a refusal tells nothing about which procedures exist;
        # the session meta API (wamp.session.*) is covered too.
        try:
            await self._hub.authorize_call(caller.context, procedure)
        except PermissionDenied as exc:
            raise channel_error(exc) from None
        if is_reserved_uri(procedure):
            args = await self._realm.meta_call(caller, procedure, request.args, request.kwargs)
            caller.send(Result(request.request, {}, args))
            return
        registration = self.registrations.find(procedure, "exact")
        if registration is None:
            method = self._hub.methods.local(procedure)
            if method is not None:
                await self._hub_calls.call(caller, request, method, timeout)
                return
            registration = self.registrations.route(procedure)
            # A callee on another node, if it serves the call better (docs/scaling.md).
            if self.cluster is not None and await self.cluster.forward(
                self._realm.name, caller, request, timeout, registration
            ):
                return
        if registration is None:
            raise WampError(NO_SUCH_PROCEDURE, f"no procedure {procedure!r}")
        self.invoke(caller, request, registration, timeout)

    def invoke(
        self, caller: Peer, request: Call, registration: Registration, timeout: float | None
    ) -> None:
        """Send the INVOCATION for a routed CALL; WampError if it cannot be sent."""
        callee = registration.callee
        pending = PendingCall(
            callee.next_request_id(),
            registration,
            caller,
            request.request,
            progress=request.options.get("receive_progress") is True
            and callee.supports("callee", "progressive_call_results"),
        )
        details: dict[str, Any] = {}
        if registration.match != "exact":
            details["procedure"] = request.procedure
        if pending.progress:
            details["receive_progress"] = True
        if (
            request.options.get("disclose_me") is True
            or registration.disclose_caller
            or self._disclose
        ):
            details.update(
                caller=caller.session_id,
                caller_authid=caller.authid,
                caller_authrole=caller.authrole,
            )
        invocation = Invocation(
            pending.invocation, registration.id, details, request.args, request.kwargs
        )
        if not callee.send(invocation):
            raise WampError(INVALID_PAYLOAD, "the callee's serializer cannot carry the arguments")
        self._track(pending, timeout)

    def cancel(self, caller: Peer, request: Cancel) -> None:
        mode = request.options.get("mode", DEFAULT_CANCEL_MODE)
        if mode not in CANCEL_MODES:
            mode = DEFAULT_CANCEL_MODE
        if self._hub_calls.cancel(caller, request.request):
            return
        if self.cluster is not None and self.cluster.cancel(caller, request.request, mode):
            return
        pending = self._by_call.get((caller, request.request))
        if pending is None or pending.killing:
            return  # answered already, or canceled once
        # A callee that cannot be interrupted is skipped, as the spec says.
        if not pending.callee.supports("callee", "call_canceling"):
            mode = "skip"
        if mode == "kill":
            pending.killing = True
            self._interrupt(pending, "kill", CANCELED)
            return
        self._finish(pending)
        if mode == "killnowait":
            self._interrupt(pending, "killnowait", CANCELED)
        self._fail(pending, CANCELED, "canceled by the caller")

    # -- answers from callees ----------------------------------------------------

    def yield_(self, callee: Peer, message: Yield) -> None:
        pending = self._by_invocation.get((callee, message.request))
        if pending is None:
            return  # canceled or timed out: the spec discards the late answer
        if message.options.get("progress") is True:
            # Progress for a caller that did not ask for it is dropped.
            if pending.progress and pending.caller is not None:
                result = Result(pending.request, {"progress": True}, message.args, message.kwargs)
                if not pending.caller.send(result):
                    self._finish(pending)
                    self._interrupt(pending, "killnowait", CANCELED)
                    self._fail(pending, INVALID_PAYLOAD, "the result cannot be serialized")
            return
        self._finish(pending)
        if pending.future is not None:
            if not pending.future.done():
                pending.future.set_result((message.args, message.kwargs))
        elif pending.caller is not None:
            result = Result(pending.request, {}, message.args, message.kwargs)
            if not pending.caller.send(result):
                self._fail(pending, INVALID_PAYLOAD, "the result cannot be serialized")

    def error(self, callee: Peer, message: Error) -> None:
        if message.request_type != MessageType.INVOCATION:
            raise ProtocolViolation("a client may send ERROR only in answer to an INVOCATION")
        pending = self._by_invocation.get((callee, message.request))
        if pending is None:
            return
        self._finish(pending)
        self._fail(pending, message.error, payload_args=message.args, kwargs=message.kwargs)

    # -- sessions leaving ----------------------------------------------------------

    async def leave(self, peer: Peer) -> None:
        for registration in self.registrations.of_callee(peer):
            self._drop(registration)
        for pending in list(self._by_invocation.values()):
            if pending.callee is peer:
                self._finish(pending)
                self._fail(pending, CANCELED, "the callee left")
            elif pending.caller is peer:
                self._finish(pending)
                self._interrupt(pending, "killnowait", CANCELED)
        await self._hub_calls.leave(peer)
        if self.cluster is not None:
            self.cluster.leave(peer)

    # -- hub-side callers (JSON-RPC, channels) -------------------------------------

    async def _forward(self, registration: Registration, params: Any, context: CallContext) -> Any:
        """Serve a WAMP registration as a hub method: the RemoteMethod's forwarder."""
        if self.registrations.get(registration.id) is not registration:
            raise RpcError(METHOD_NOT_FOUND, "Method not found", {"method": registration.procedure})
        if isinstance(params, list):
            args, kwargs = params, None
        elif isinstance(params, dict):
            args, kwargs = None, params
        else:
            args, kwargs = ([] if params is None else [params]), None
        callee = registration.callee
        future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        pending = PendingCall(callee.next_request_id(), registration, None, 0, future=future)
        details: dict[str, Any] = {}
        if registration.disclose_caller or self._disclose:
            identity = context.identity
            details["caller_authid"] = identity.user_id if identity else context.session_id
        if not callee.send(Invocation(pending.invocation, registration.id, details, args, kwargs)):
            raise callee_error(INVALID_PAYLOAD, ["the callee cannot receive these params"], None)
        self._track(pending, None)
        try:
            async with asyncio.timeout(self._hub.config.rpc.call_timeout):
                result_args, result_kwargs = await future
        except WampError as exc:
            raise callee_error(exc.uri, exc.payload_args, exc.payload_kwargs) from None
        except TimeoutError:
            self._abandon(pending, TIMEOUT)
            raise callee_error(TIMEOUT, ["the callee did not answer in time"], None) from None
        except asyncio.CancelledError:
            self._abandon(pending, CANCELED)
            raise
        return to_json_value(to_data(result_args, result_kwargs))

    # -- bookkeeping ---------------------------------------------------------------

    def _track(self, pending: PendingCall, timeout: float | None) -> None:
        self._by_invocation[(pending.callee, pending.invocation)] = pending
        if pending.caller is not None:
            self._by_call[(pending.caller, pending.request)] = pending
        if timeout:
            loop = asyncio.get_running_loop()
            pending.timer = loop.call_later(timeout, self._timed_out, pending)

    def _finish(self, pending: PendingCall) -> None:
        self._by_invocation.pop((pending.callee, pending.invocation), None)
        if pending.caller is not None:
            self._by_call.pop((pending.caller, pending.request), None)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _timed_out(self, pending: PendingCall) -> None:
        # Dealer-initiated timeout: killnowait, as the spec has it.
        if self._by_invocation.get((pending.callee, pending.invocation)) is not pending:
            return
        self._abandon(pending, TIMEOUT)
        self._fail(pending, TIMEOUT, "no result within the call's timeout")

    def _abandon(self, pending: PendingCall, reason: str) -> None:
        if self._by_invocation.get((pending.callee, pending.invocation)) is pending:
            self._finish(pending)
            self._interrupt(pending, "killnowait", reason)

    @staticmethod
    def _interrupt(pending: PendingCall, mode: str, reason: str) -> None:
        if pending.callee.supports("callee", "call_canceling"):
            pending.callee.send(Interrupt(pending.invocation, {"mode": mode, "reason": reason}))

    @staticmethod
    def _fail(
        pending: PendingCall,
        uri: str,
        message: str | None = None,
        *,
        payload_args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        if message is not None:
            payload_args = [message]
        if pending.future is not None:
            if not pending.future.done():
                error = WampError(uri, payload_args=payload_args, payload_kwargs=kwargs)
                pending.future.set_exception(error)
            return
        caller = pending.caller
        if caller is None:
            return
        reply: Message = Error(_CALL, pending.request, {}, uri, payload_args, kwargs)
        if not caller.send(reply):
            reason = ["the error's payload cannot be serialized"]
            caller.send(Error(_CALL, pending.request, {}, INVALID_PAYLOAD, reason))


def _valid_procedure(procedure: str, match: str) -> bool:
    if match == "wildcard":
        return is_valid_uri(procedure, allow_empty=True)
    if match == "prefix" and procedure.endswith("."):
        return is_valid_uri(procedure[:-1])
    return is_valid_uri(procedure)


def _timeout(options: Mapping[str, Any]) -> float | None:
    """CALL.Options.timeout in seconds; None (or 0) for none."""
    timeout = options.get("timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise WampError(INVALID_ARGUMENT, "CALL.Options.timeout must be milliseconds >= 0")
    return timeout / 1000 if timeout else None
