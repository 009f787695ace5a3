"""docs/plugins.md's echo plug-in, built from the page, installed with pip, served by wshub."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.wshub_process import running_wshub

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"^```\w+\n# ([\w.-]+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def page_files() -> dict[str, str]:
    """The files docs/plugins.md shows, by the name on their first line."""
    return {name: f"# {name}\n{body}" for name, body in FILE_BLOCK.findall(PAGE.read_text("utf-8"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's package, installed by pip into a directory of its own."""
    files = page_files()
    source = tmp_path_factory.mktemp("wshub-echo")
    for name in ("pyproject.toml", "wshub_echo.py"):
        (source / name).write_text(files[name], encoding="utf-8")
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip, "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert list(target.glob("wshub_echo-1.0.dist-info/entry_points.txt"))
    return target


async def test_installed_plugin_is_negotiated(installed: Path, tmp_path: Path) -> None:
    """A hub naming echo.v1 (the page's hub.toml) negotiates it: text and bytes echoed back."""
    config = tmp_path / "hub.toml"
    config.write_text(page_files()["hub.toml"], encoding="utf-8")
    env = {"PYTHONPATH": str(installed)}
    async with running_wshub("--config", str(config), cwd=tmp_path, env=env) as hub:
        assert "echo.v1" in hub.log[-2]  # "wshub listening on ..., subprotocols: ..."
        async with asyncio.timeout(10), connect(hub.url, subprotocols=["echo.v1"]) as ws:
            assert ws.subprotocol == "echo.v1"
            # The greeting of the page's [echo] table.
            assert (await ws.recv()).startswith("welcome ")
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
        # The built-in protocols it lists are still served.
        async with connect(hub.url, subprotocols=["jsonrpc.2.0"]) as ws:
            assert ws.subprotocol == "jsonrpc.2.0"


async def test_installed_plugin_is_not_served_unless_named(installed: Path, tmp_path: Path) -> None:
    """The same environment, a hub on its defaults: echo.v1 is refused in the handshake (400)."""
    async with running_wshub(cwd=tmp_path, env={"PYTHONPATH": str(installed)}) as hub:
        assert "echo.v1" not in hub.log[-2]
        with pytest.raises(InvalidStatus) as refused:
            await connect(hub.url, subprotocols=["echo.v1"])
        assert refused.value.response.status_code == 400


async def test_check_lists_installed_plugins_for_an_unknown_name(
    installed: Path, tmp_path: Path
) -> None:
    """Naming a protocol nobody provides fails ``--check``, listing the installed plug-ins."""
    config = tmp_path / "hub.toml"
    config.write_text('[server]\nsubprotocols = ["jsonrpc.2.0", "echo.v2"]\n')
    code, message = await check(installed, config)
    assert code == 2
    assert "unknown subprotocol(s) echo.v2" in message
    assert "installed plug-ins (wshub.protocols entry points): echo.v1" in message


async def check(installed: Path, config: Path) -> tuple[int | None, str]:
    """``wshub --config <config> --check`` with the page's package installed."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "wshub"),
        "--config",
        str(config),
        "--check",
        env={"PYTHONPATH": str(installed), "PATH": ""},
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    return process.returncode, stderr.decode()


async def test_check_validates_the_plugins_table(installed: Path, tmp_path: Path) -> None:
    """The page's [echo] with a typo fails ``--check`` with the key path and the closest key."""
    config = tmp_path / "hub.toml"
    page = page_files()["hub.toml"]
    config.write_text(page.replace("greeting =", "greting ="), encoding="utf-8")
    code, message = await check(installed, config)
    assert code == 2
    assert "echo.greting: unknown key; did you mean `greeting`?" in message
    # The same table on a hub that does not serve the plug-in is an unknown table.
    config.write_text('[echo]\ngreeting = "hi"\n', encoding="utf-8")
    code, message = await check(installed, config)
    assert code == 2
    assert "echo: unknown key" in message
    config.write_text(page, encoding="utf-8")
    assert (await check(installed, config))[0] == 0
