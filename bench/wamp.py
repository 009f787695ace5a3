"""WAMP RPC and pub/sub: the hub's router against Crossbar.io's, same AutobahnJS load.

RPC: one AutobahnJS session registers ``bench.echo``, K others call it (one
call in flight each), so both routers do the same dealer work. Pub/sub: N
subscribers of ``bench``, one publisher with ``acknowledge: true``.
"""

from __future__ import annotations

from bench.crossbar import crossbar
from bench.fanout import best_fanout, fanout_rows
from bench.processes import hub_server
from bench.report import Row
from bench.rpc import best_rpc, rpc_rows

BASELINE = "Crossbar.io 26.10"


def wamp_rpc_workload(clients: int, seconds: float, rounds: int) -> list[Row]:
    with hub_server() as hub_at, crossbar() as router_at:
        hub, router = best_rpc(rounds, (hub_at, "wamp"), (router_at, "wamp"), clients, seconds)
    ahead = hub["rate"] > router["rate"]
    return rpc_rows(f"WAMP RPC, {clients} callers", hub, router, BASELINE, "> 1.00x", ahead)


def wamp_pubsub_workload(
    subscribers: int, seconds: float, rounds: int, size: int = 100
) -> list[Row]:
    with hub_server() as hub_at, crossbar() as router_at:
        hub, router = best_fanout(
            rounds, (hub_at, "wamp"), (router_at, "wamp"), subscribers, seconds, size
        )
    ahead = hub.deliveries_per_s > router.deliveries_per_s
    return fanout_rows(
        f"WAMP pub/sub, {subscribers} subscribers", hub, router, BASELINE, ("> 1.00x", ahead)
    )
