"""``wshub publish`` and ``wshub presence`` through the server API, against a real ``wshub``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import KEY, result
from tests.ports import free_port
from tests.test_client_cli import wshub_command
from tests.wshub_process import WshubProcess, running_wshub

API_LISTENING = re.compile(r"server API listening on (http://\S+:(\d+))/api/")


@pytest.fixture
async def api_wshub(tmp_path: Path) -> AsyncIterator[tuple[WshubProcess, Path, str]]:
    """A wshub with the API on a free port: (process, its config, the API's URL).

    The API binds port 0 and logs the port it got: a port picked beforehand
    could be taken by another process before the hub binds it. The config is
    then rewritten with that port, for the CLI's ``--config``.
    """
    config = tmp_path / "hub.toml"
    config.write_text(f'[api]\nkeys = ["{KEY}"]\nport = 0\n')
    async with running_wshub("--config", str(config), "--port", "0", cwd=tmp_path) as hub:
        found = next(
            (match for line in hub.log if (match := API_LISTENING.search(line))), None
        ) or await hub.read_until(API_LISTENING)
        config.write_text(f'[api]\nkeys = ["{KEY}"]\nport = {found.group(2)}\n')
        yield hub, config, found.group(1)


async def test_publish_through_the_api(api_wshub: tuple[WshubProcess, Path, str]) -> None:
    """With --api-key, publish goes through the API; an idempotency key publishes once."""
    _, _, api = api_wshub
    args = ("publish", "news", '{"n": 1}', "--api", api, "--api-key", KEY)
    code, out, err = await wshub_command(*args, "--idempotency-key", "k1")
    assert code == 0, err
    first = json.loads(out)
    assert first["offset"] == 1
    code, out, _ = await wshub_command(*args, "--idempotency-key", "k1")
    assert json.loads(out) == first
    code, out, _ = await wshub_command(*args, env={"WSHUB_API_KEY": KEY})
    assert json.loads(out)["offset"] == 2


async def test_publish_meta_through_the_api(api_wshub: tuple[WshubProcess, Path, str]) -> None:
    """--meta reaches the publication (history shows it); an invalid one exits 1 saying why."""
    _, _, api = api_wshub
    meta = {"content_type": "application/json", "user_properties": [["unit", "C"]]}
    args = ("publish", "temp", "21", "--api", api, "--api-key", KEY)
    code, _, err = await wshub_command(*args, "--meta", json.dumps(meta))
    assert code == 0, err
    history = await result(api, "history", {"channel": "temp"})
    assert history["publications"][0]["meta"] == meta
    code, out, err = await wshub_command(*args, "--meta", '{"payload_format": 9}')
    assert (code, out) == (1, "")
    assert "meta.payload_format must be 0 or 1" in err


async def test_config_names_the_api(api_wshub: tuple[WshubProcess, Path, str]) -> None:
    """--config supplies the API's port and key: presence prints the members (none)."""
    _, config, _ = api_wshub
    code, out, err = await wshub_command("presence", "room", "--config", str(config))
    assert (code, out) == (0, "{}\n"), err


async def test_presence_over_websocket_without_key(
    api_wshub: tuple[WshubProcess, Path, str],
) -> None:
    """Without a key, presence asks over channels.v1 instead."""
    hub, _, _ = api_wshub
    code, out, err = await wshub_command("presence", "room", "--url", hub.url)
    assert (code, out) == (0, "{}\n"), err


async def test_wrong_key_exits_1(api_wshub: tuple[WshubProcess, Path, str]) -> None:
    """A wrong key: exit 1, the API's refusal on stderr."""
    _, _, api = api_wshub
    code, out, err = await wshub_command(
        "publish", "news", "1", "--api", api, "--api-key", "wrong-key-0123456789"
    )
    assert (code, out) == (1, "")
    assert "401" in err


async def test_no_api_exits_1() -> None:
    """No API listening: exit 1 saying it cannot be reached."""
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await wshub_command("publish", "news", "1", "--api", url, "--api-key", KEY)
    assert code == 1
    assert "cannot reach the server API" in err
