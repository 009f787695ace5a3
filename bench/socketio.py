"""The hub against python-socketio (bench/socketio_server.py), driven by socket.io-client.

The Python peer a user would otherwise pick, in the same run: fan-out to N
subscribers of one room (a channel on the hub), an acknowledged emit as RPC
(a JSON-RPC call on the hub), and RSS per idle connection. python-socketio is
in the ``[bench]`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from bench import processes
from bench.connections import measure_idle
from bench.fanout import best_fanout, fanout_rows
from bench.processes import ROOT, Server, free_port, hub_server, running
from bench.report import Row
from bench.rpc import best_rpc, rpc_rows

PEER = "python-socketio 5 (aiohttp)"


@contextlib.contextmanager
def socketio_server() -> Iterator[Server]:
    port = free_port()
    args = [processes.PYTHON, "-m", "bench.socketio_server", str(port)]
    with running(args, "python-socketio", cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("python-socketio did not start: pip install -e '.[bench]'")
        yield Server(f"ws://127.0.0.1:{port}/", process.pid)


def socketio_workload(
    subscribers: int, clients: int, idle: int, seconds: float, rounds: int
) -> list[Row]:
    rows: list[Row] = []
    with hub_server(compression=False) as hub_at, socketio_server() as peer_at:
        hub, peer = best_fanout(
            rounds, (hub_at, "channels"), (peer_at, "socketio"), subscribers, seconds, 100
        )
        ahead = hub.deliveries_per_s > peer.deliveries_per_s
        rows += fanout_rows(
            f"Fan-out vs Socket.IO, {subscribers} subscribers", hub, peer, PEER, ("> 1x", ahead)
        )
    # Fresh servers for each workload: python-socketio is slow to let 1,000
    # subscribers go, and that would be measured as RPC.
    with hub_server(compression=False) as hub_at, socketio_server() as peer_at:
        hub_rpc, peer_rpc = best_rpc(
            rounds, (hub_at, "jsonrpc"), (peer_at, "socketio"), clients, seconds
        )
        ahead = hub_rpc["rate"] > peer_rpc["rate"]
        rows += rpc_rows(
            f"RPC vs Socket.IO ack, {clients} clients", hub_rpc, peer_rpc, PEER, "> 1x", ahead
        )
    # Fresh servers: RSS growth from a process that has not served the above.
    with hub_server(compression=False) as hub_at:
        hub_kib, hub_rate = measure_idle(hub_at, "channels", idle, False)
    with socketio_server() as peer_at:
        peer_kib, peer_rate = measure_idle(peer_at, "socketio", idle, False)
    name = f"Idle connections vs Socket.IO ({idle}), deflate off"
    rows += [
        Row(name, "KiB RSS / connection", hub_kib, peer_kib, PEER, "< 1x", hub_kib < peer_kib),
        Row(name, "handshakes/s", hub_rate, peer_rate, PEER),
    ]
    return rows
