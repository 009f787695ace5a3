"""Hub lifecycle: port 0, graceful stop with 1001, a handler crash staying local."""

from __future__ import annotations

import logging
import re

import pytest
from websockets.exceptions import ConnectionClosed

from hub import Hub, HubConfig
from hub.registry import ProtocolRegistry
from hub.tls import TlsError
from protocols.jsonrpc import PROTOCOL as JSONRPC
from tests.conftest import HubFactory
from tests.hub._protocols import BOOM


async def test_start_binds_port_0_and_reports_url(hub: Hub) -> None:
    """Port 0 binds an ephemeral port; ``hub.port`` and ``hub.url`` report it."""
    assert hub.port > 0
    assert hub.url == f"ws://127.0.0.1:{hub.port}/"


async def test_async_context_manager_starts_and_stops(connect) -> None:
    """``async with Hub(config)`` serves inside the block and is stopped after it."""
    config = HubConfig.model_validate({"server": {"port": 0}})
    async with Hub(config) as hub:
        ws = await connect(hub)
        assert ws.subprotocol is None
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    with pytest.raises(RuntimeError, match="not running"):
        _ = hub.port


async def test_stop_closes_clients_with_1001(hub: Hub, jsonrpc) -> None:
    """``await hub.stop()`` closes every client with 1001 (going away) and forgets sessions."""
    first, second = await jsonrpc(hub), await jsonrpc(hub, "jsonrpc")
    await hub.stop()
    for peer in (first, second):
        with pytest.raises(ConnectionClosed):
            await peer.ws.recv()
        assert peer.ws.close_code == 1001
        assert peer.ws.close_reason == "server shutting down"
    assert hub.session_ids == []
    await hub.stop()  # stopping twice is harmless


async def test_handler_crash_closes_only_its_connection(
    make_hub, connect, jsonrpc, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler raising in on_message closes its client with 1011, logged; others go on."""
    hub = await make_hub(registry=ProtocolRegistry([JSONRPC, BOOM]))

    @hub.rpc("ping")
    async def ping() -> str:
        return "pong"

    victim, bystander = await connect(hub, "boom.v1"), await connect(hub, "boom.v1")
    peer = await jsonrpc(hub)
    victim_id = str(await victim.recv()).removeprefix("session ")
    bystander_id = str(await bystander.recv()).removeprefix("session ")

    with caplog.at_level(logging.ERROR, logger="hub.server"):
        await victim.send("anything but ping")
        with pytest.raises(ConnectionClosed):
            await victim.recv()
    assert victim.close_code == 1011
    assert victim.close_reason == "internal error"

    await bystander.send("ping")
    assert await bystander.recv() == "pong"
    assert await peer.call("ping") == "pong"
    assert victim_id not in hub.session_ids
    assert bystander_id in hub.session_ids

    [record] = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert re.search(rf"session {re.escape(victim_id)} \(boom\.v1\)", record.getMessage())
    assert record.exc_info is not None
    assert "third-party handler bug" in str(record.exc_info[1])
    errors = hub.metrics.registry.get_sample_value(
        "wshub_handler_errors_total", {"subprotocol": "boom.v1"}
    )
    assert errors == 1


async def test_url_names_the_address_really_bound() -> None:
    """Hub.url reflects the host given to start(), including IPv6, not only the config."""
    hub = Hub()
    await hub.start(host="127.0.0.2", port=0)
    try:
        assert hub.url == f"ws://127.0.0.2:{hub.port}/"
    finally:
        await hub.stop()
    hub = Hub()
    await hub.start(host="::1", port=0)
    try:
        assert hub.url == f"ws://[::1]:{hub.port}/"
    finally:
        await hub.stop()


async def test_a_failed_reload_logs_one_line_or_a_traceback(
    make_hub: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A HubError (a bad file) is logged in one line, the error named; anything
    else is a bug in the reloader and comes with its traceback."""
    hub = await make_hub()

    def bad_file() -> None:
        raise TlsError("server.tls: cert.pem: no such file")

    def bug() -> None:
        raise KeyError("oops")

    hub.add_reloader("certificate", bad_file)
    hub.add_reloader("keys", bug)
    with caplog.at_level(logging.ERROR, logger="hub.app"):
        problems = hub.reload()
    assert len(problems) == 2
    first, second = (r for r in caplog.records if "keeping the previous one" in r.getMessage())
    assert first.getMessage().endswith(": server.tls: cert.pem: no such file")
    assert not first.exc_info
    assert second.exc_info
    assert second.exc_info[0] is KeyError
