"""What an open, idle connection keeps (memory per idle connection, docs/benchmarks.md):
nothing of its handshake but the path, no keepalive task between pings, no
per-connection table of built-in methods, no request task set before a request."""

from __future__ import annotations

import json

from hub import Hub


async def test_an_idle_connection_keeps_only_what_it_needs(hub: Hub, connect) -> None:
    ws = await connect(hub, "channels.v1", additional_headers={"Cookie": "session=" + "x" * 2000})
    [session_id] = hub.session_ids
    [(session, handler)] = hub.user_sessions(session_id)
    connection = session._connection  # type: ignore[attr-defined]
    # The handshake: its headers and the server's subprotocol closure are gone.
    assert connection.request.path == "/"
    assert len(connection.request.headers) == 0
    assert connection.response is None
    assert "select_subprotocol" not in vars(connection.protocol)
    # Pings wait on a timer; websockets' drain waiters are a list, not a deque.
    assert connection.keepalive_task is None
    assert connection._next_ping is not None
    assert isinstance(connection.drain_waiters, list)
    # Built-ins are looked up in the class's table; tasks and slots come with requests.
    assert "builtins" not in vars(handler)
    assert handler._tasks is None
    assert handler._slots is None

    await ws.send(json.dumps({"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}))
    reply = json.loads(await ws.recv())
    assert "methods" in reply["result"]
    subscribe = {"jsonrpc": "2.0", "method": "subscribe", "params": {"channel": "news"}, "id": 2}
    await ws.send(json.dumps(subscribe))
    reply = json.loads(await ws.recv())
    assert reply["id"] == 2
    assert "error" not in reply
    assert isinstance(handler._tasks, set)
