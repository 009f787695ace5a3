"""Pure encodings of the fallback transports: SSE events, NDJSON lines, stream
positions in ``Last-Event-ID``, and the token naming a session across nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hub.engine import StreamPosition
from hub.errors import HubError

SSE_CONTENT_TYPE = "text/event-stream"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
SSE_PING = b": ping\n\n"
NDJSON_PING = b"\n"
# Positions of at most this many channels are read from a Last-Event-ID.
MAX_POSITIONS = 256


def sse_event(data: bytes, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event. ``data`` is one line of JSON (orjson never writes a raw newline)."""
    head = b""
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


def ndjson_line(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


def close_body(code: int, reason: str) -> dict[str, Any]:
    return {"code": code, "reason": reason}


# -- stream positions (Last-Event-ID, ?since=) ----------------------------------


class BadPosition(HubError, ValueError):
    """A Last-Event-ID or ``since`` that is not ``{"channel": [offset, epoch], ...}``."""


def encode_positions(positions: dict[str, StreamPosition]) -> str:
    """Every channel's position as one line: the SSE id a reconnect sends back."""
    return orjson.dumps({c: [p.offset, p.epoch] for c, p in positions.items()}).decode()


def decode_positions(text: str) -> dict[str, StreamPosition]:
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadPosition("not JSON") from None
    if not isinstance(raw, dict) or len(raw) > MAX_POSITIONS:
        raise BadPosition(f"not an object of at most {MAX_POSITIONS} channels")
    positions = {}
    for channel, value in raw.items():
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not isinstance(value[0], int)
            or isinstance(value[0], bool)
            or value[0] < 0
            or not isinstance(value[1], str)
        ):
            raise BadPosition(f"the position of {channel!r} is not [offset, epoch]")
        positions[channel] = StreamPosition(value[0], value[1])
    return positions


# -- session tokens ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionToken:
    """``node.session.secret``: which node holds the session, which one, and proof."""

    node: str
    session: str
    secret: str

    def __str__(self) -> str:
        return f"{self.node}.{self.session}.{self.secret}"

    @classmethod
    def parse(cls, text: str) -> SessionToken | None:
        parts = text.split(".")
        if len(parts) != 3 or not all(parts) or len(text) > 200:
            return None
        return cls(*parts)
