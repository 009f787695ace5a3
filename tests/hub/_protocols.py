"""Small third-party protocols for tests: what a package outside wshub would write."""

from __future__ import annotations

from typing import Any

from hub import Hub, ProtocolSpec, Session, SubprotocolHandler


class EchoHandler(SubprotocolHandler):
    """Sends every message back unchanged, prefixed with the session's protocol name."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.session.send(message)
        else:
            self.session.send(f"{self.session.subprotocol}:{message}")

    def notify(self, method: str, params: Any = None) -> None:
        self.session.send(f"{method} {params}")


class BoomHandler(SubprotocolHandler):
    """Raises on every message except ``ping``: a buggy third-party handler."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session

    async def on_message(self, message: str | bytes) -> None:
        if message == "ping":
            self.session.send("pong")
            return
        raise RuntimeError("boom: third-party handler bug")


ECHO = ProtocolSpec(name="echo.v1", aliases=("echo",), factory=EchoHandler)
BOOM = ProtocolSpec(name="boom.v1", factory=BoomHandler)
