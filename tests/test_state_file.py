"""The memory engine's history survives a graceful restart through engine.state_file."""

from __future__ import annotations

from pathlib import Path

from hub import Hub, HubConfig
from tests.conftest import PeerFactory
from tests.wshub_process import wshub_command


def _config(state_file: Path) -> HubConfig:
    return HubConfig.model_validate({"engine": {"state_file": str(state_file)}})


async def test_client_recovers_across_a_restart(tmp_path: Path, jsonrpc: PeerFactory) -> None:
    """A client resubscribing with its old position after a restart gets exactly what it missed."""
    state_file = tmp_path / "state.json"
    first = Hub(_config(state_file))
    await first.start(port=0)
    peer = await jsonrpc(first, "channels.v1")
    await peer.call("publish", {"channel": "news", "data": "one"})
    seen = await peer.call("history", {"channel": "news"})
    position = {"offset": seen["offset"], "epoch": seen["epoch"]}
    await first.stop()
    assert state_file.exists()

    second = Hub(_config(state_file))
    await second.start(port=0)
    try:
        await second.publish("news", "two")
        await second.publish("news", {"three": b"\x00\xff".hex()})
        peer = await jsonrpc(second, "channels.v1")
        result = await peer.call("subscribe", {"channel": "news", "since": position})
        assert result["recovered"] is True
        assert result["epoch"] == position["epoch"]
        assert [p["data"] for p in result["publications"]] == ["two", {"three": "00ff"}]
        assert [p["offset"] for p in result["publications"]] == [2, 3]
    finally:
        await second.stop()


async def test_without_state_file_a_restart_is_a_gap(jsonrpc: PeerFactory) -> None:
    """With no state file the epoch changes, so the client is told it cannot recover."""
    first = Hub()
    await first.start(port=0)
    peer = await jsonrpc(first, "channels.v1")
    published = await peer.call("publish", {"channel": "news", "data": "one"})
    await first.stop()

    second = Hub()
    await second.start(port=0)
    try:
        peer = await jsonrpc(second, "channels.v1")
        result = await peer.call("subscribe", {"channel": "news", "since": published})
        assert result["recovered"] is False
        assert result["publications"] == []
    finally:
        await second.stop()


async def test_bytes_payloads_and_expiry_survive(tmp_path: Path) -> None:
    """Binary payloads round-trip through the state file with their offsets."""
    state_file = tmp_path / "state.json"
    first = Hub(_config(state_file))
    await first.start(port=0)
    await first.channels.publish("raw", b"\x00\x01binary")
    await first.stop()

    second = Hub(_config(state_file))
    await second.start(port=0)
    try:
        history = await second.history("raw")
        assert [p.data for p in history.publications] == [b"\x00\x01binary"]
        assert history.position.offset == 1
    finally:
        await second.stop()


async def test_damaged_state_file_is_ignored(tmp_path: Path) -> None:
    """A corrupt state file is logged and ignored; the hub starts with empty history."""
    state_file = tmp_path / "state.json"
    state_file.write_text("{not json")
    hub = Hub(_config(state_file))
    await hub.start(port=0)
    try:
        history = await hub.history("anything")
        assert history.publications == []
        assert history.position.offset == 0
    finally:
        await hub.stop()


async def test_check_refuses_a_state_file_on_redis(tmp_path: Path) -> None:
    """``engine.state_file`` with the Redis engine: ``--check`` names the backends that use it."""
    config = tmp_path / "hub.toml"
    config.write_text('[engine]\nbackend = "redis"\nstate_file = "state.json"\n')
    code, _, err = await wshub_command("--config", str(config), "--check")
    assert code != 0
    assert (
        'engine.state_file: not a setting when backend = "redis" '
        '(only when backend = "memory" or "sqlite")'
    ) in err
