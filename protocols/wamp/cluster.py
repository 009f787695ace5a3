"""WAMP calls across nodes: a CALL on one node reaches a callee connected to another.

With the Redis engine every node announces its callees' registrations in the
cluster's directory (:mod:`hub.engine.redis.directory`). A CALL no local
registration or hub method serves is looked up there, and travels over the
node bus (:mod:`hub.engine.bus`) to the node holding the callee:

- ``wamp.call`` (a request): the callee's node routes it through its own
  dealer as if the caller were local (:class:`RemoteCaller` stands for it) and
  answers at once whether it was accepted;
- ``wamp.result`` / ``wamp.error``: the callee's answers, progressive results
  included, sent back in order;
- ``wamp.cancel``: the caller canceled, or left.

Call timeouts run on the callee's node, as for a local call. The caller's node
watches the callee's node: if it dies (its heartbeat lapses) the caller gets
``wamp.error.canceled``, if Redis is away ``wamp.error.network_failure``,
never silence. Hub RPC methods are always served by the caller's own node.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hub.engine.bus import NodeBus, NodeGone
from hub.engine.directory import Entry, RegistrationDirectory
from hub.errors import EngineUnavailable
from hub.rpc import CallContext
from protocols.wamp.errors import (
    CANCELED,
    INVALID_PAYLOAD,
    NETWORK_FAILURE,
    NO_SUCH_PROCEDURE,
    PROCEDURE_ALREADY_EXISTS,
    WampError,
)
from protocols.wamp.messages import Call, Cancel, Error, Message, MessageType, Result
from protocols.wamp.peer import Peer
from protocols.wamp.registrations import Registration, pattern_matches, pattern_precedence
from protocols.wamp.serializers import JSON, Serializer

if TYPE_CHECKING:
    from hub.app import Hub
    from protocols.wamp.router import WampRouter

logger = logging.getLogger(__name__)

CALL: Final = "wamp.call"
RESULT: Final = "wamp.result"
ERROR: Final = "wamp.error"
CANCEL: Final = "wamp.cancel"

# Seconds the callee's node has to accept a call.
ACCEPT_TIMEOUT: Final = 3.0
# Seconds between checks that the callee's nodes of calls in flight are alive.
WATCH_INTERVAL: Final = 1.0
# Seconds between announcements of this node's registrations (Redis may lose them).
ANNOUNCE_INTERVAL: Final = 5.0

_CALL_TYPE: Final = MessageType.CALL.value


def wamp_cluster(hub: Hub, router: WampRouter) -> WampCluster | None:
    """The cluster side of the router when the backend has a directory; None on one node."""
    directory = hub.backend.directory()
    if directory is None:
        return None
    return WampCluster(hub, router, directory, hub.engine.bus)


@dataclass(eq=False, slots=True)
class _Outgoing:
    """A call of a local caller to a callee on another node."""

    caller: Peer
    request: int
    node: str
    # The callee's node took the call: a CANCEL sent earlier could overtake it.
    accepted: bool = False
    cancel_mode: str | None = None


class RemoteCaller:
    """A caller on another node, as the callee's node's dealer sees it (a Peer)."""

    def __init__(
        self, cluster: WampCluster, origin: str, call_id: int, realm: str, who: dict[str, Any]
    ) -> None:
        self.cluster = cluster
        self.origin = origin
        self.call_id = call_id
        self.realm = realm
        self._session_id = int(who.get("session", 0))
        self._authid = str(who.get("authid", ""))
        self._authrole = str(who.get("authrole", ""))
        self._context = CallContext(
            cluster.hub, f"{origin}/{self._session_id}", "wamp.2.json", None
        )

    @property
    def session_id(self) -> int:
        return self._session_id

    @property
    def authid(self) -> str:
        return self._authid

    @property
    def authrole(self) -> str:
        return self._authrole

    @property
    def serializer(self) -> Serializer:
        return JSON

    @property
    def context(self) -> CallContext:
        return self._context

    def send(self, message: Message) -> bool:
        """The dealer answers the caller: the answer goes back to the caller's node."""
        if isinstance(message, Result):
            body = [self.call_id, message.details, message.args, message.kwargs]
            self.cluster.post(self.origin, RESULT, body)
            if message.details.get("progress") is not True:
                self.cluster.served_done(self)
        elif isinstance(message, Error):
            body = [self.call_id, message.error, message.args, message.kwargs]
            self.cluster.post(self.origin, ERROR, body)
            self.cluster.served_done(self)
        return True

    def send_frame(self, frame: bytes) -> None:
        """Callers receive no events through the dealer."""

    def supports(self, role: str, feature: str) -> bool:
        return False

    def next_request_id(self) -> int:
        return 0

    def details(self) -> dict[str, Any]:
        return {"session": self._session_id, "authid": self._authid, "authrole": self._authrole}

    async def kill(self, reason: str, message: str | None) -> None:
        """Never in a realm's sessions (those are this node's): nothing to end here."""


class WampCluster:
    def __init__(
        self, hub: Hub, router: WampRouter, directory: RegistrationDirectory, bus: NodeBus
    ) -> None:
        self.hub = hub
        self._router = router
        self._directory = directory
        self._bus = bus
        self.node_id = bus.node_id
        self._call_ids = itertools.count(1)
        # Calls of local callers served on other nodes.
        self._outgoing: dict[int, _Outgoing] = {}
        self._by_caller: dict[tuple[Peer, int], int] = {}
        # Calls of other nodes' callers served here.
        self._served: dict[tuple[str, int], RemoteCaller] = {}
        # This node's registrations, announced in the directory: (realm, id) -> it.
        self._mine: dict[tuple[str, int], tuple[str, Registration]] = {}
        # Answers to other nodes, sent in order (progressive results keep theirs).
        self._outbox: deque[tuple[str, str, Any]] = deque()
        self._outbox_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        bus.on_request(CALL, self._on_call)
        bus.on(RESULT, self._on_result)
        bus.on(ERROR, self._on_error)
        bus.on(CANCEL, self._on_cancel)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._spawn(self._announce_loop())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for call_id in list(self._outgoing):
            self._fail(call_id, CANCELED, "the router is shutting down")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- registrations -------------------------------------------------------------

    async def claim(self, realm: str, registration: Registration) -> None:
        """Announce a new registration; WampError if another live node holds the name."""
        try:
            holder = await self._directory.claim(
                realm, registration.match, registration.procedure, registration.id
            )
        except EngineUnavailable:
            # Served to this node's callers now, announced once Redis is back.
            logger.warning("WAMP: %r registered while Redis is away", registration.procedure)
            holder = None
        if holder is not None:
            raise WampError(
                PROCEDURE_ALREADY_EXISTS,
                f"{registration.procedure!r} is already registered (on node {holder})",
            )
        self._mine[(realm, registration.id)] = (realm, registration)

    def release(self, realm: str, registration: Registration) -> None:
        if self._mine.pop((realm, registration.id), None) is None:
            return

        async def release() -> None:
            with contextlib.suppress(EngineUnavailable):  # its node's heartbeat decides then
                await self._directory.release(
                    realm, registration.match, registration.procedure, registration.id
                )

        self._spawn(release())

    async def _announce_loop(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_INTERVAL)
            for realm, registration in list(self._mine.values()):
                try:
                    holder = await self._directory.claim(
                        realm, registration.match, registration.procedure, registration.id
                    )
                except EngineUnavailable:
                    break  # the next round tries again
                if holder is not None:
                    logger.warning(
                        "WAMP: %r is registered on node %s too; its callers go there",
                        registration.procedure,
                        holder,
                    )

    # -- the caller's node ---------------------------------------------------------

    async def forward(
        self,
        realm: str,
        caller: Peer,
        request: Call,
        timeout: float | None,
        local: Registration | None,
    ) -> bool:
        """Send the call to another node's callee if one serves it better; True if sent.

        ``local`` is this node's best pattern registration for it (an exact
        registration elsewhere beats it, and so does a better pattern).
        """
        try:
            entry = await self._route(realm, request.procedure, local)
        except EngineUnavailable:
            if local is not None:
                return False  # served here; another node might have served it better
            raise WampError(NETWORK_FAILURE, "the cluster's registrations cannot be read") from None
        if entry is None:
            return False
        call_id = next(self._call_ids)
        self._outgoing[call_id] = _Outgoing(caller, request.request, entry.node)
        self._by_caller[(caller, request.request)] = call_id
        options = dict(request.options)
        if timeout:
            options["timeout"] = round(timeout * 1000)
        body = {
            "realm": realm,
            "call": call_id,
            "procedure": request.procedure,
            "options": options,
            "args": request.args,
            "kwargs": request.kwargs,
            "caller": {
                "session": caller.session_id,
                "authid": caller.authid,
                "authrole": caller.authrole,
            },
        }
        self._spawn(self._send_call(call_id, entry.node, body))
        self._watch()
        return True

    async def _route(self, realm: str, procedure: str, local: Registration | None) -> Entry | None:
        exact = await self._directory.exact(realm, procedure)
        if exact is not None and exact.node != self.node_id:
            return exact
        candidates = [
            entry
            for entry in await self._directory.patterns(realm)
            if entry.node != self.node_id
            and pattern_matches(entry.match, entry.procedure, procedure)
        ]
        if not candidates:
            return None
        best = max(candidates, key=lambda entry: pattern_precedence(entry.match, entry.procedure))
        if local is not None and pattern_precedence(
            local.match, local.procedure
        ) >= pattern_precedence(best.match, best.procedure):
            return None
        return best

    async def _send_call(self, call_id: int, node: str, body: dict[str, Any]) -> None:
        try:
            refused = await self._bus.request(node, CALL, body, timeout=ACCEPT_TIMEOUT)
        except NodeGone:
            self._fail(call_id, CANCELED, "the callee's node did not take the call")
            return
        except EngineUnavailable:
            self._fail(call_id, NETWORK_FAILURE, "the call cannot reach the callee's node")
            return
        if refused is not None:
            uri, message = refused
            self._fail(call_id, str(uri), str(message))
            return
        outgoing = self._outgoing.get(call_id)
        if outgoing is None:  # the caller left meanwhile
            self.post(node, CANCEL, [call_id, "killnowait"])
            return
        outgoing.accepted = True
        if outgoing.cancel_mode is not None:
            self.post(node, CANCEL, [call_id, outgoing.cancel_mode])

    def cancel(self, caller: Peer, request: int, mode: str) -> bool:
        """The caller cancels a call served elsewhere; False if it is not one."""
        call_id = self._by_caller.get((caller, request))
        if call_id is None:
            return False
        outgoing = self._outgoing[call_id]
        # The callee's node answers with the ERROR (at once for skip and killnowait).
        if outgoing.accepted:
            self.post(outgoing.node, CANCEL, [call_id, mode])
        else:
            outgoing.cancel_mode = mode  # sent once the call is taken
        return True

    def leave(self, caller: Peer) -> None:
        """A caller left: its calls served elsewhere are interrupted there."""
        for (peer, _), call_id in list(self._by_caller.items()):
            if peer is caller:
                outgoing = self._forget(call_id)
                # Not taken yet: the CANCEL follows the acceptance (see _send_call).
                if outgoing is not None and outgoing.accepted:
                    self.post(outgoing.node, CANCEL, [call_id, "killnowait"])

    def _on_result(self, sender: str, body: Any) -> None:
        call_id, details, args, kwargs = body
        outgoing = self._outgoing.get(call_id)
        if outgoing is None or outgoing.node != sender:
            return
        progress = isinstance(details, dict) and details.get("progress") is True
        if not progress:
            self._forget(call_id)
        result = Result(outgoing.request, {"progress": True} if progress else {}, args, kwargs)
        if not outgoing.caller.send(result):
            if progress:
                self._forget(call_id)
                self.post(sender, CANCEL, [call_id, "killnowait"])
            self._send_error(outgoing, INVALID_PAYLOAD, ["the result cannot be serialized"])

    def _on_error(self, sender: str, body: Any) -> None:
        call_id, uri, args, kwargs = body
        outgoing = self._outgoing.get(call_id)
        if outgoing is None or outgoing.node != sender:
            return
        self._forget(call_id)
        self._send_error(outgoing, str(uri), args, kwargs)

    def _fail(self, call_id: int, uri: str, message: str) -> None:
        outgoing = self._forget(call_id)
        if outgoing is not None:
            self._send_error(outgoing, uri, [message])

    @staticmethod
    def _send_error(
        outgoing: _Outgoing,
        uri: str,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        caller = outgoing.caller
        if not caller.send(Error(_CALL_TYPE, outgoing.request, {}, uri, args, kwargs)):
            reason = ["the error's payload cannot be serialized"]
            caller.send(Error(_CALL_TYPE, outgoing.request, {}, INVALID_PAYLOAD, reason))

    def _forget(self, call_id: int) -> _Outgoing | None:
        outgoing = self._outgoing.pop(call_id, None)
        if outgoing is not None:
            self._by_caller.pop((outgoing.caller, outgoing.request), None)
        return outgoing

    def _watch(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = self._spawn(self._watch_loop())

    async def _watch_loop(self) -> None:
        """Fail the calls whose callee's node died, or all of them if Redis is away."""
        while self._outgoing:
            await asyncio.sleep(WATCH_INTERVAL)
            for node in {outgoing.node for outgoing in self._outgoing.values()}:
                try:
                    alive = await self._bus.alive(node)
                except EngineUnavailable:
                    for call_id in list(self._outgoing):
                        self._fail(call_id, NETWORK_FAILURE, "lost the link to the cluster")
                    return
                if not alive:
                    for call_id, outgoing in list(self._outgoing.items()):
                        if outgoing.node == node:
                            self._fail(call_id, CANCELED, "the callee's node is gone")

    # -- the callee's node ------------------------------------------------------------

    async def _on_call(self, sender: str, body: Any) -> Any:
        """Route another node's call to a local callee; None, or [uri, message] if refused."""
        realm = self._router.realms.get(body["realm"])
        procedure = body["procedure"]
        if realm is None:
            return [NO_SUCH_PROCEDURE, f"no realm {body['realm']!r} on node {self.node_id}"]
        dealer = realm.dealer
        registration = dealer.registrations.find(procedure, "exact")
        if registration is None:
            registration = dealer.registrations.route(procedure)
        if registration is None:
            return [NO_SUCH_PROCEDURE, f"no procedure {procedure!r} on node {self.node_id}"]
        call_id = int(body["call"])
        caller = RemoteCaller(self, sender, call_id, realm.name, body["caller"])
        options = dict(body["options"])
        timeout = options.get("timeout")
        request = Call(call_id, options, procedure, body["args"], body["kwargs"])
        self._served[(sender, call_id)] = caller
        try:
            dealer.invoke(caller, request, registration, timeout / 1000 if timeout else None)
        except WampError as exc:
            self._served.pop((sender, call_id), None)
            message = exc.payload_args[0] if exc.payload_args else exc.uri
            return [exc.uri, message]
        return None

    def _on_cancel(self, sender: str, body: Any) -> None:
        call_id, mode = body
        caller = self._served.get((sender, call_id))
        if caller is None:
            return
        realm = self._router.realms.get(caller.realm)
        if realm is not None:
            realm.dealer.cancel(caller, Cancel(call_id, {"mode": mode}))

    def served_done(self, caller: RemoteCaller) -> None:
        self._served.pop((caller.origin, caller.call_id), None)

    # -- answers to other nodes, in order -------------------------------------------------

    def post(self, node: str, kind: str, body: Any) -> None:
        self._outbox.append((node, kind, body))
        self._outbox_ready.set()
        if self._sender is None or self._sender.done():
            self._sender = self._spawn(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            node, kind, body = self._outbox.popleft()
            try:
                await self._bus.send(node, kind, body)
            except EngineUnavailable:
                # The caller's node fails the call itself once it sees Redis away.
                logger.warning("WAMP: %s for node %s lost, Redis is away", kind, node)
