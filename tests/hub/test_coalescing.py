"""Frames bound for one connection in one loop iteration leave in one write (hub.session)."""

from __future__ import annotations

import struct

from hub import CallContext, Hub


def frames_in(chunk: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every whole unmasked frame at the start of ``chunk``."""
    frames = []
    while len(chunk) >= 2:
        opcode, length = chunk[0] & 0x0F, chunk[1] & 0x7F
        start = 2
        if length == 126:
            (length,) = struct.unpack("!H", chunk[2:4])
            start = 4
        elif length == 127:
            (length,) = struct.unpack("!Q", chunk[2:10])
            start = 10
        if len(chunk) < start + length:
            break
        frames.append((opcode, chunk[start : start + length]))
        chunk = chunk[start + length :]
    return frames


async def test_a_burst_to_one_connection_takes_two_writes(hub: Hub, jsonrpc) -> None:
    """Twenty notifications and a reply in one step: the first alone, the others in one write."""
    writes: list[bytes] = []

    @hub.rpc("burst")
    async def burst(ctx: CallContext, n: int) -> int:
        transport = hub.session(ctx.session_id)._connection.transport  # type: ignore[attr-defined]
        if not writes:
            write = transport.write

            def counting(data: bytes) -> None:
                writes.append(bytes(data))
                write(data)

            transport.write = counting
        for i in range(n):
            ctx.notify("tick", {"i": i})
        return n

    # Without permessage-deflate: compressed connections are written by websockets.
    peer = await jsonrpc(hub, compression=None)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "burst", "params": [20]})
    got = [await peer.recv() for _ in range(21)]
    assert [m["params"]["i"] for m in got[:20]] == list(range(20))
    assert got[20] == {"jsonrpc": "2.0", "id": 1, "result": 20}
    assert [len(frames_in(data)) for data in writes] == [1, 20]


async def test_frames_sent_before_a_close_arrive_before_the_close_frame(hub: Hub, jsonrpc) -> None:
    """A method that notifies and then closes its session: the notification is not lost."""

    @hub.rpc("bye")
    async def bye(ctx: CallContext) -> None:
        ctx.notify("last", {"words": "goodbye"})
        await hub.session(ctx.session_id).close(4000, "done")

    peer = await jsonrpc(hub, compression=None)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "bye"})
    assert await peer.recv() == {"jsonrpc": "2.0", "method": "last", "params": {"words": "goodbye"}}
    await peer.ws.wait_closed()
    assert peer.ws.close_code == 4000


async def test_a_burst_over_the_flush_size_is_delivered_whole_and_in_order(
    hub: Hub, jsonrpc
) -> None:
    """A burst of several times the coalescing size (64 KiB) arrives complete, in order."""

    @hub.rpc("big_burst")
    async def big_burst(ctx: CallContext) -> int:
        for i in range(40):
            ctx.notify("chunk", {"i": i, "pad": "x" * 10_000})
        return 40

    peer = await jsonrpc(hub, compression=None)
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "big_burst"})
    got = [await peer.recv() for _ in range(41)]
    assert [m["params"]["i"] for m in got[:40]] == list(range(40))
    assert got[40] == {"jsonrpc": "2.0", "id": 1, "result": 40}
