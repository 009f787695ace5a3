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
    """Says its session id, then raises on every message but ``ping``: a buggy handler."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session

    async def on_open(self) -> None:
        self.session.send(f"session {self.session.id}")

    async def on_message(self, message: str | bytes) -> None:
        if message == "ping":
            self.session.send("pong")
            return
        raise RuntimeError("boom: third-party handler bug")


ECHO = ProtocolSpec(name="echo.v1", aliases=("echo",), factory=EchoHandler)
BOOM = ProtocolSpec(name="boom.v1", factory=BoomHandler)


class IntroducingHandler(EchoHandler):
    """An echo handler that first tells the client its session id."""

    async def on_open(self) -> None:
        self.session.send(f"session {self.session.id}")


# Like MQTT: a protocol with its own keepalive that opts out of WebSocket pings.
QUIET = ProtocolSpec(name="quiet.v1", factory=IntroducingHandler, websocket_pings=False)
