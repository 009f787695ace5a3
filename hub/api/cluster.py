"""Server API commands that reach every node: a control channel between hubs.

Acting on a user (subscribe, unsubscribe, disconnect, revoke) must reach that
user's connections wherever they are, and ``info``/``channels`` want every
node's figures. The hub already has the means: the engine's broker reaches
every node (one process on the memory engine, every hub on Redis), and the node
bus answers one node. A command is published once on :data:`CONTROL_CHANNEL`,
a name no client can subscribe to (its first level starts with "$" and holds a
NUL, which client names may not), and every node applies it; a gather is
answered over the node bus to the node that asked.

Nodes learn of each other from a ``hello`` at start; one that does not answer
a gather and that the bus says is gone is forgotten.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hub.engine import ChannelEngine, Publication
from hub.errors import EngineUnavailable

logger = logging.getLogger(__name__)

CONTROL_CHANNEL = "$\x00wshub/control"
_GATHERED = "api.gathered"
_HELLO = "api.hello"
# Nodes remembered at most (a cluster is a handful; this bounds a flood of hellos).
MAX_NODES = 1024

Action = Callable[[dict[str, Any]], Awaitable[None]]
Gatherer = Callable[[dict[str, Any]], Awaitable[Any]]


class ClusterControl:
    """Runs commands on every node, and gathers figures from every node."""

    def __init__(self, engine: ChannelEngine, *, gather_timeout: float) -> None:
        self._engine = engine
        self.node_id = engine.node_id
        self._timeout = gather_timeout
        self._actions: dict[str, Action] = {}
        self._gatherers: dict[str, Gatherer] = {}
        self._nodes: set[str] = {self.node_id}
        self._ids = itertools.count(1)
        self._gathering: dict[int, tuple[dict[str, Any], asyncio.Event, set[str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    def on_action(self, name: str, action: Action) -> None:
        self._actions[name] = action

    def on_gather(self, name: str, gatherer: Gatherer) -> None:
        self._gatherers[name] = gatherer

    @property
    def nodes(self) -> set[str]:
        return set(self._nodes)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        bus = self._engine.bus
        bus.on(_GATHERED, self._on_gathered)
        bus.on(_HELLO, self._on_hello)
        await self._engine.listen(CONTROL_CHANNEL, self._on_control)
        try:
            await self._publish({"op": "hello"})
        except EngineUnavailable:
            # Redis away at start: the others learn of this node from its
            # answers to their gathers instead.
            logger.info("server API: could not greet the other nodes (engine unavailable)")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- sending ---------------------------------------------------------------

    async def run(self, action: str, body: dict[str, Any]) -> None:
        """Apply ``action`` on every node (this one included)."""
        await self._publish({"op": "action", "action": action, "body": body})

    async def gather(self, what: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Every node's answer by node id, and whether some node did not answer in time."""
        request_id = next(self._ids)
        answers: dict[str, Any] = {}
        done = asyncio.Event()
        expected = set(self._nodes)
        self._gathering[request_id] = (answers, done, expected)
        try:
            await self._publish({"op": "gather", "what": what, "id": request_id, "body": body})
            try:
                async with asyncio.timeout(self._timeout):
                    await done.wait()
            except TimeoutError:
                pass
        finally:
            self._gathering.pop(request_id, None)
        missing = expected - answers.keys()
        for node in missing:
            # Gone for good (the bus says so): forget it; else it was only slow.
            if not await self._engine.bus.alive(node):
                self._nodes.discard(node)
                missing = missing - {node}
        return answers, bool(missing)

    async def _publish(self, message: dict[str, Any]) -> None:
        message["from"] = self.node_id
        publication = Publication(CONTROL_CHANNEL, message, origin=self.node_id)
        await self._engine.broker.publish(publication)

    # -- receiving -------------------------------------------------------------

    def _on_control(self, publication: Publication) -> None:
        message = publication.data
        if not isinstance(message, dict):
            return
        sender = message.get("from")
        if isinstance(sender, str):
            self._learn(sender)
        op = message.get("op")
        if op == "hello" and sender != self.node_id and isinstance(sender, str):
            self._spawn(self._engine.bus.send(sender, _HELLO, None))
        elif op == "action":
            action = self._actions.get(message.get("action", ""))
            if action is not None:
                self._spawn(action(message.get("body") or {}))
        elif op == "gather" and isinstance(sender, str):
            self._spawn(self._answer(sender, message))

    async def _answer(self, sender: str, message: dict[str, Any]) -> None:
        gatherer = self._gatherers.get(message.get("what", ""))
        if gatherer is None:
            return
        body = await gatherer(message.get("body") or {})
        reply = {"id": message.get("id"), "body": body}
        if sender == self.node_id:
            self._on_gathered(sender, reply)
        else:
            await self._engine.bus.send(sender, _GATHERED, reply)

    def _on_gathered(self, sender: str, reply: Any) -> None:
        self._learn(sender)
        if not isinstance(reply, dict) or not isinstance(reply.get("id"), int):
            return
        entry = self._gathering.get(reply["id"])
        if entry is None:
            return
        answers, done, expected = entry
        answers[sender] = reply.get("body")
        expected.add(sender)
        if expected <= answers.keys():
            done.set()

    def _on_hello(self, sender: str, body: Any) -> None:
        self._learn(sender)

    def _learn(self, node: str) -> None:
        if node not in self._nodes and len(self._nodes) < MAX_NODES:
            self._nodes.add(node)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except Exception:
                logger.exception("server API: a cluster command failed on this node")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
