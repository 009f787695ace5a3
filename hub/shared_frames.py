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

import struct

from websockets.frames import Opcode


class FrameCache:
    """The frame of the last message; the same object sent again reuses it.

    Holding the message keeps its identity from being reused by another object.
    The three are kept in one tuple, replaced in one assignment, so hubs running
    event loops in different threads of one process never pair a message with
    another's frame.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[str | bytes | None, bool | None, bytes] = (None, None, b"")

    def frame(self, message: str | bytes, text: bool | None) -> bytes:
        """The unmasked frame for ``message``, typed as :func:`websockets.broadcast` does."""
        last_message, last_text, last_frame = self._last
        if message is last_message and text is last_text:
            return last_frame
        if isinstance(message, str):
            opcode = Opcode.BINARY if text is False else Opcode.TEXT
            data = message.encode()
        else:
            opcode = Opcode.TEXT if text is True else Opcode.BINARY
            data = message
        if len(data) < 126:
            # unmasked_frame's first case, without the call (every RPC reply).
            frame = _SHORT_HEADERS[opcode][len(data)] + data
        else:
            frame = unmasked_frame(opcode, data)
        self._last = (message, text, frame)
        return frame


def unmasked_frame(opcode: Opcode, data: bytes) -> bytes:
    """A final, unmasked frame with no extension: what ``Frame.serialize`` writes
    for a server (RFC 6455 5.2), with the header packed here at a fifth of its cost."""
    length = len(data)
    if length < 126:
        return _SHORT_HEADERS[opcode][length] + data
    first = 0x80 | opcode.value
    if length < 65536:
        return _HEADER_16.pack(first, 126, length) + data
    return _HEADER_64.pack(first, 127, length) + data


_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
# The two-byte headers of every payload length under 126, per opcode: most
# replies and publications are that short, and indexing beats building them.
_SHORT_HEADERS = {
    opcode: [bytes((0x80 | opcode.value, n)) for n in range(126)] for opcode in Opcode
}


shared_frames = FrameCache()
