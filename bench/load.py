"""Load generators, one process each; they print one JSON line of results.

rpc URL CLIENTS SECONDS MODE        MODE: hub (JSON-RPC call) or echo (raw echo)
subscribe URL CONNECTIONS MODE      waits, counts deliveries until stdin closes
publish URL SECONDS MODE SIZE       publishes one message at a time for SECONDS
idle URL CONNECTIONS MODE           opens idle connections until stdin closes
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

STAMP = re.compile(rb'"t":(\d+)')


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_connection(url: str, mode: str, compression: bool = True) -> ClientConnection:
    subprotocols = {"hub": [Subprotocol("jsonrpc.2.0")], "channels": [Subprotocol("channels.v1")]}
    return await connect(
        url,
        subprotocols=subprotocols.get(mode),
        compression="deflate" if compression else None,
        open_timeout=30,
        max_size=2**22,
        ping_interval=None,
    )


async def rpc(url: str, clients: int, seconds: float, mode: str) -> dict[str, Any]:
    connections = [await open_connection(url, mode) for _ in range(clients)]
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    counts = [0] * clients

    async def run(index: int, ws: ClientConnection) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            request = orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "echo", "params": [n]})
            started = time.perf_counter()
            await ws.send(request.decode())
            reply = await ws.recv()
            latencies.append(time.perf_counter() - started)
            if mode == "hub" and b'"result"' not in (
                reply if isinstance(reply, bytes) else reply.encode()
            ):
                raise RuntimeError(f"unexpected reply {reply!r}")
            counts[index] += 1

    started = time.monotonic()
    await asyncio.gather(*(run(i, ws) for i, ws in enumerate(connections)))
    elapsed = time.monotonic() - started
    for ws in connections:
        await ws.close()
    return {
        "calls": sum(counts),
        "seconds": elapsed,
        "rate": sum(counts) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def _wait_stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def subscribe(url: str, connections: int, mode: str) -> dict[str, Any]:
    sockets: list[ClientConnection] = []
    sub_url = url.rstrip("/") + ("/sub" if mode == "broadcast" else "/")
    for _ in range(connections):
        ws = await open_connection(sub_url, mode)
        if mode == "channels":
            await ws.send(
                '{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"channel":"bench"}}'
            )
            await ws.recv()
        sockets.append(ws)
    received = 0
    latencies: list[float] = []

    async def drain(index: int, ws: ClientConnection) -> None:
        nonlocal received
        # Frames stay bytes (no UTF-8 decoding) and one connection in eight
        # samples latency: the load generator must not be the bottleneck.
        sampling = index % 8 == 0
        while True:
            data = await ws.recv(decode=False)
            received += 1
            if sampling:
                match = STAMP.search(data)
                if match:
                    latencies.append((time.monotonic_ns() - int(match.group(1))) / 1e6)

    print("ready", flush=True)
    tasks = [asyncio.create_task(drain(i, ws)) for i, ws in enumerate(sockets)]
    await _wait_stdin_closed()
    for task in tasks:
        task.cancel()
    return {
        "received": received,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


async def publish(url: str, seconds: float, mode: str, size: int) -> dict[str, Any]:
    pub_url = url.rstrip("/") + ("/pub" if mode == "broadcast" else "/")
    ws = await open_connection(pub_url, mode)
    pad = "x" * size
    published = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        data = {"t": time.monotonic_ns(), "pad": pad}
        if mode == "broadcast":
            await ws.send(orjson.dumps(data).decode())
        else:
            await ws.send(
                orjson.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": published,
                        "method": "publish",
                        "params": {"channel": "bench", "data": data},
                    }
                ).decode()
            )
        await ws.recv()
        published += 1
    elapsed = time.monotonic() - started
    await ws.close()
    return {"published": published, "seconds": elapsed}


async def idle(url: str, connections: int, mode: str) -> dict[str, Any]:
    sockets = []
    started = time.monotonic()
    for _ in range(connections):
        sockets.append(await open_connection(url, mode, compression=mode != "plain-nodeflate"))
    elapsed = time.monotonic() - started
    print(orjson.dumps({"opened": len(sockets), "seconds": elapsed}).decode(), flush=True)
    await _wait_stdin_closed()
    for ws in sockets:
        ws.transport.abort()
    return {}


def main() -> None:
    command, url, *rest = sys.argv[1:]
    if command == "rpc":
        result = asyncio.run(rpc(url, int(rest[0]), float(rest[1]), rest[2]))
    elif command == "subscribe":
        result = asyncio.run(subscribe(url, int(rest[0]), rest[1]))
    elif command == "publish":
        result = asyncio.run(publish(url, float(rest[0]), rest[1], int(rest[2])))
    elif command == "idle":
        result = asyncio.run(idle(url, int(rest[0]), rest[1]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
