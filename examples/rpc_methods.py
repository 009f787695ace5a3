"""RPC methods served by `wshub --config examples/hub.toml`.

Each `@rpc` function is callable over jsonrpc.2.0, channels.v1 and WAMP.
Parameters are validated from the type hints; a `ctx: CallContext` parameter
receives the calling session.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from hub import CallContext, Hub, RpcError, rpc
from hub.engine import Publication
from hub.errors import PermissionDenied


class Point(BaseModel):
    x: float
    y: float


@rpc("math.add")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@rpc("math.midpoint")
def midpoint(p: Point, q: Point) -> Point:
    """A sync method: runs in a worker thread, takes and returns pydantic models."""
    return Point(x=(p.x + q.x) / 2, y=(p.y + q.y) / 2)


@rpc("math.divide")
async def divide(a: float, b: float) -> float:
    """Application errors reach the client as JSON-RPC error objects."""
    if b == 0:
        raise RpcError(1001, "division by zero", {"a": a})
    return a / b


@rpc("session.whoami")
async def whoami(ctx: CallContext) -> dict[str, object]:
    """The calling session, and a notification pushed to it."""
    ctx.notify("greeting", {"text": "hello from the hub"})
    user = ctx.identity.user_id if ctx.identity else None
    return {"session": ctx.session_id, "subprotocol": ctx.subprotocol, "user": user}


@rpc("clock.now")
async def now(ctx: CallContext) -> float:
    """Publishes the time on the `clock` channel too."""
    stamp = time.time()
    await ctx.hub.publish("clock", {"now": stamp})
    return stamp


def setup(hub: Hub) -> None:
    """Called once when the hub loads this module: register hooks here."""

    @hub.on_publish("chat/#")
    async def clean_chat_message(ctx: CallContext, publication: Publication) -> object:
        """Chat messages are {"text": ...}: refuse anything else, trim long text."""
        data = publication.data
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise PermissionDenied('chat messages look like {"text": "..."}')
        return {**data, "text": data["text"].strip()[:500]}
