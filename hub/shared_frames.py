"""One serialized WebSocket frame per fan-out, written as is to every connection.

A server does not mask its frames, so a message sent without compression is
the same bytes on every connection. Handlers already hand every subscriber the
same message object; the frame around it is built once here and written to
each transport, instead of websockets building and serializing a frame per
connection (about a fifth of a fan-out's cost, docs/benchmarks.md).

Only connections that negotiated no extension may share a frame: with
permessage-deflate each connection compresses with a context of its own.
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode


class FrameCache:
    """The frame of the last message; the same object sent again reuses it.

    Used from the event loop's thread only (sessions hop there before sending).
    Holding the message keeps its identity from being reused by another object.
    """

    __slots__ = ("_frame", "_message", "_text")

    def __init__(self) -> None:
        self._message: str | bytes | None = None
        self._text: bool | None = None
        self._frame = b""

    def frame(self, message: str | bytes, text: bool | None) -> bytes:
        """The unmasked frame for ``message``, typed as :func:`websockets.broadcast` does."""
        if message is self._message and text is self._text:
            return self._frame
        if isinstance(message, str):
            opcode = Opcode.BINARY if text is False else Opcode.TEXT
            data = message.encode()
        else:
            opcode = Opcode.TEXT if text is True else Opcode.BINARY
            data = message
        frame = Frame(opcode, data).serialize(mask=False, extensions=[])
        self._message, self._text, self._frame = message, text, frame
        return frame


shared_frames = FrameCache()
