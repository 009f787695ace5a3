"""One serialized frame per fan-out for uncompressed connections (hub.shared_frames)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode

from hub import Hub
from hub.shared_frames import FrameCache
from tests.conftest import PeerFactory


@pytest.mark.parametrize(
    ("message", "text", "opcode", "data"),
    [
        ("héllo", None, Opcode.TEXT, "héllo".encode()),
        ("héllo", False, Opcode.BINARY, "héllo".encode()),
        (b"\x00\x01", None, Opcode.BINARY, b"\x00\x01"),
        (b'{"a":1}', True, Opcode.TEXT, b'{"a":1}'),
        (b"x" * 70_000, None, Opcode.BINARY, b"x" * 70_000),
    ],
)
def test_frame_is_what_websockets_serializes(
    message: str | bytes, text: bool | None, opcode: Opcode, data: bytes
) -> None:
    """The shared frame is byte for byte websockets' unmasked frame, typed like broadcast()."""
    expected = Frame(opcode, data).serialize(mask=False, extensions=[])
    assert FrameCache().frame(message, text) == expected


def test_same_message_reuses_the_frame_and_another_does_not() -> None:
    """The same message object gets the same frame object; a new message a new frame."""
    cache = FrameCache()
    message = b'{"n":1}'
    first = cache.frame(message, True)
    assert cache.frame(message, True) is first
    assert cache.frame(message, False) != first  # binary, not text
    assert cache.frame(b'{"n":2}', True) == Frame(Opcode.TEXT, b'{"n":2}').serialize(mask=False)


async def test_fan_out_reaches_compressed_and_plain_subscribers(
    hub: Hub, jsonrpc: PeerFactory
) -> None:
    """One publication reaches subscribers with and without permessage-deflate intact."""
    plain = [await jsonrpc(hub, "channels.v1", compression=None) for _ in range(3)]
    deflated = [await jsonrpc(hub, "channels.v1") for _ in range(2)]
    for peer in plain + deflated:
        await peer.call("subscribe", {"channel": "news"})
    for n in range(3):
        await hub.publish("news", {"n": n, "text": "é" * 200})
    for peer in plain + deflated:
        got = [await peer.recv() for _ in range(3)]
        assert [m["params"]["data"] for m in got] == [{"n": n, "text": "é" * 200} for n in range(3)]
    # Connections keep working afterwards (no frame left half-written).
    await asyncio.gather(*(peer.call("unsubscribe", {"channel": "news"}) for peer in plain))
