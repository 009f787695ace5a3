"""Replies are bounded by the connection's outbound budget before they are built.

Issue 13: a batch of ``history`` calls on a channel of 100 x 60 KB messages cost
+1.7 GiB for 100 requests. Now a history reply carries at most
channels.max_history_reply_bytes of publications and never more than the
connection's free outbound budget, and a batch's replies count against that
budget while they wait: the hub's peak memory is measured in a real ``wshub``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.security.hub_process import open_ws, wshub

MESSAGE = "x" * 60_000
MIB = 1024 * 1024


def request(request_id: int, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


async def test_a_batch_of_history_calls_stays_within_the_outbound_budget(
    tmp_path: Path,
) -> None:
    """100 history calls on 100 x 60 KB: one array under 4 MiB, hub peak RSS +64 MiB at most."""
    async with wshub(tmp_path) as hub:
        ws = await open_ws(hub, "channels.v1")
        for i in range(100):
            await ws.send(json.dumps(request(i, "publish", {"channel": "big", "data": MESSAGE})))
            assert "result" in json.loads(await ws.recv())
        hub.reset_peak()
        before = hub.rss()
        await ws.send(json.dumps([request(i, "history", {"channel": "big"}) for i in range(100)]))
        raw = await ws.recv()
        growth = hub.peak_rss() - before
        replies = json.loads(raw)
        assert len(replies) == 100
        assert len(raw) <= 4 * MIB  # limits.max_outbound_bytes
        # Each reply's bytes cost rate tokens too: once the burst is spent the
        # rest of the batch is refused (-32029) instead of built.
        results = [r["result"] for r in replies if "result" in r]
        assert {r["error"]["code"] for r in replies if "error" in r} <= {-32029}
        kept = sum(len(r["publications"]) for r in results)
        assert 0 < kept < 100 * 100
        assert all(r["truncated"] for r in results)
        assert growth < 64 * MIB, f"hub grew {growth / MIB:.0f} MiB"
        await ws.close()


async def test_one_history_reply_is_bounded_in_bytes(tmp_path: Path) -> None:
    """history on 100 x 60 KB with max_history_reply_bytes 256 KiB: the newest 4, truncated."""
    config = {"channels": {"max_history_reply_bytes": 256 * 1024}}
    async with wshub(tmp_path, config) as hub:
        ws = await open_ws(hub, "channels.v1")
        for i in range(100):
            data = {"n": i, "text": MESSAGE}
            await ws.send(json.dumps(request(i, "publish", {"channel": "big", "data": data})))
            await ws.recv()
        await ws.send(json.dumps(request(1, "history", {"channel": "big"})))
        result = json.loads(await ws.recv())["result"]
        assert result["truncated"] is True
        assert [p["data"]["n"] for p in result["publications"]] == [96, 97, 98, 99]
        # A recovery continues from the oldest kept and says it is not complete.
        since = {"offset": 10, "epoch": result["epoch"]}
        await ws.send(json.dumps(request(2, "history", {"channel": "big", "since": since})))
        result = json.loads(await ws.recv())["result"]
        assert [p["data"]["n"] for p in result["publications"]] == [10, 11, 12, 13]
        assert result["recovered"] is False
        # A recovering subscribe too big for one reply is not recovered at all.
        await ws.send(json.dumps(request(3, "subscribe", {"channel": "big", "since": since})))
        result = json.loads(await ws.recv())["result"]
        assert (result["recovered"], result["publications"]) == (False, [])
        await ws.close()
