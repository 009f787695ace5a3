"""The ``wshub`` command: config errors without tracebacks, --check, serving and signals."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.wshub_process import running_wshub

BIN = Path(sys.executable).parent
LAUNCHERS = {
    "python -m hub": [sys.executable, "-m", "hub"],
    "wshub script": [str(BIN / "wshub")],
}
LISTENING = re.compile(r"wshub listening on (ws://\S+?),")


@pytest.fixture(params=sorted(LAUNCHERS))
def launcher(request: pytest.FixtureRequest) -> list[str]:
    return LAUNCHERS[request.param]


def write_service(tmp_path: Path) -> Path:
    """A config naming a module of @rpc functions that lives beside it under lib/."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "cli_service.py").write_text(
        textwrap.dedent(
            """
            from hub import rpc

            @rpc("greet.hello")
            def hello(name: str, punctuation: str = "!") -> str:
                return f"hello {name}{punctuation}"
            """
        )
    )
    config = tmp_path / "hub.toml"
    config.write_text('[rpc]\nmodules = ["cli_service"]\npaths = ["lib"]\n')
    return config


async def run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def assert_one_paragraph_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.startswith("wshub: ")
    assert "\n\n" not in stderr.strip()


async def test_bad_config_exits_2_with_a_readable_message(tmp_path: Path, launcher) -> None:
    """A typo in the config exits 2 with one paragraph on stderr naming the key, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 1\n")
    code, stdout, stderr = await run([*launcher, "--config", str(bad)], tmp_path)
    assert code == 2
    assert_one_paragraph_error(stderr)
    assert "bad.toml" in stderr
    assert "server.prot: unknown key" in stderr
    assert stdout == ""


async def test_invalid_toml_exits_2(tmp_path: Path) -> None:
    """A config that is not TOML exits 2 naming the file and the line."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    code, _, stderr = await run([*LAUNCHERS["wshub script"], "-c", str(bad)], tmp_path)
    assert code == 2
    assert_one_paragraph_error(stderr)
    assert "invalid TOML" in stderr
    assert "line 1" in stderr


async def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """A config path that does not exist exits 2 with the path, no traceback."""
    code, _, stderr = await run([*LAUNCHERS["wshub script"], "--config", "absent.toml"], tmp_path)
    assert code == 2
    assert_one_paragraph_error(stderr)
    assert "absent.toml" in stderr


async def test_unimportable_rpc_module_exits_2(tmp_path: Path) -> None:
    """A module in ``[rpc] modules`` not found exits 2 naming its key and the import roots tried."""
    (tmp_path / "lib").mkdir()
    config = tmp_path / "hub.toml"
    config.write_text('[rpc]\npaths = ["lib", "gone"]\nmodules = ["no_such_module_here"]\n')
    code, _, stderr = await run([*LAUNCHERS["wshub script"], "--config", str(config)], tmp_path)
    assert code == 2
    assert_one_paragraph_error(stderr)
    assert 'rpc.modules[0] = "no_such_module_here": no module' in stderr
    assert f"{tmp_path / 'lib'}, " in stderr
    assert f"{tmp_path / 'gone'} (does not exist)" in stderr
    assert "site-packages" in stderr


async def test_failing_rpc_module_exits_2_with_the_reason(tmp_path: Path) -> None:
    """A module found but failing to import exits 2 naming its key and the error, no traceback."""
    (tmp_path / "broken.py").write_text("import not_installed_dependency\n")
    config = tmp_path / "hub.toml"
    config.write_text('[rpc]\npaths = ["."]\nmodules = ["broken"]\n')
    code, _, stderr = await run([*LAUNCHERS["wshub script"], "--config", str(config)], tmp_path)
    assert code == 2
    assert_one_paragraph_error(stderr)
    assert 'rpc.modules[0] = "broken": loading it failed: ModuleNotFoundError' in stderr
    assert "not_installed_dependency" in stderr


async def test_check_refuses_wrong_types(tmp_path: Path) -> None:
    """``--check`` exits 2 listing every wrongly typed or misspelt key with what was expected."""
    config = tmp_path / "hub.toml"
    config.write_text(
        '[server]\nport = true\nhots = "0.0.0.0"\n[websocket]\ncompression = "no"\n'
        'ping_interval = "5"\n'
    )
    code, stdout, stderr = await run(
        [*LAUNCHERS["wshub script"], "--config", str(config), "--check"], tmp_path
    )
    assert code == 2
    assert stdout == ""
    assert_one_paragraph_error(stderr)
    assert f"{config}: 4 problem(s)" in stderr
    assert "server.port: expected an integer, got the boolean true" in stderr
    assert "server.hots: unknown key; did you mean `host`?" in stderr
    assert 'websocket.compression: expected true or false, got the string "no"' in stderr
    assert 'websocket.ping_interval: expected a number, got the string "5"' in stderr


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ('[server]\ndefault_subprotocol = "jsonrpc2"\n', "server.default_subprotocol"),
        ('[server.paths]\nstomp = "/stomp"\n', "server.paths: 'stomp'"),
    ],
    ids=["default_subprotocol", "paths"],
)
async def test_unserved_protocol_names_exit_2(tmp_path: Path, setting: str, named: str) -> None:
    """A default or path pin naming a protocol that is not served fails at start."""
    config = tmp_path / "hub.toml"
    config.write_text(setting)
    code, _, stderr = await run([*LAUNCHERS["wshub script"], "--config", str(config)], tmp_path)
    assert code == 2
    assert_one_paragraph_error(stderr)
    assert named in stderr
    assert "this server speaks jsonrpc.2.0" in stderr


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
async def test_bad_port_option_exits_2(tmp_path: Path, port: str) -> None:
    """``--port`` outside 0-65535 or not a number exits 2 with usage, no traceback."""
    code, _, stderr = await run([*LAUNCHERS["wshub script"], "--port", port], tmp_path)
    assert code == 2
    assert "Traceback" not in stderr
    assert "usage: wshub" in stderr
    assert "argument --port" in stderr


async def test_port_in_use_exits_1(tmp_path: Path) -> None:
    """A port already taken exits 1 with "cannot listen", no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, stderr = await run([*LAUNCHERS["wshub script"], "--port", port], tmp_path)
    assert code == 1
    assert "Traceback" not in stderr
    assert "wshub: cannot listen" in stderr


async def test_check_validates_a_good_config(tmp_path: Path, launcher) -> None:
    """``--check`` loads the config and its RPC modules, reports them and exits 0."""
    config = write_service(tmp_path)
    code, stdout, stderr = await run([*launcher, "--config", str(config), "--check"], tmp_path)
    assert code == 0, stderr
    assert "configuration OK, 1 RPC method(s)" in stdout


@pytest.mark.parametrize(
    ("launcher_name", "signum"),
    [("python -m hub", signal.SIGTERM), ("wshub script", signal.SIGINT)],
    ids=["python -m hub-SIGTERM", "wshub script-SIGINT"],
)
async def test_serves_config_methods_and_stops_on_signal(
    tmp_path: Path, launcher_name: str, signum: signal.Signals
) -> None:
    """The CLI serves the config's RPC module; a signal closes clients with 1001 and exits 0."""
    config = write_service(tmp_path)
    process = await asyncio.create_subprocess_exec(
        *LAUNCHERS[launcher_name],
        "--config",
        str(config),
        "--port",
        "0",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(15):
            while not (match := LISTENING.search(log[-1] if log else "")):
                line = await process.stderr.readline()
                assert line, f"wshub exited early: {''.join(log)}"
                log.append(line.decode())
        url = match.group(1)
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/", url)
        async with asyncio.timeout(10), connect(url, subprotocols=None) as ws:
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "greet.hello", "params": ["ada"]})
            )
            assert json.loads(await ws.recv()) == {
                "jsonrpc": "2.0",
                "id": 1,
                "result": "hello ada!",
            }
            process.send_signal(signum)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
        async with asyncio.timeout(10):
            rest = await process.stderr.read()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = "".join(log) + rest.decode()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "shutting down" in stderr


async def test_start_message_names_the_page_and_how_to_stop(tmp_path: Path) -> None:
    """The start message gives the ws:// URL, the http:// page on that port and Ctrl+C."""
    async with running_wshub(cwd=tmp_path) as hub:
        ws_port = hub.url.removeprefix("ws://127.0.0.1:").rstrip("/")
        assert hub.page == f"http://127.0.0.1:{ws_port}/"
        assert "(the chat demo); stop with Ctrl+C" in hub.log[-1]
        page = await asyncio.to_thread(fetch, hub.page)
        assert "<html" in page.lower()
        code, log = await hub.stop()
    assert code == 0, log


async def test_start_message_names_the_static_dir(tmp_path: Path) -> None:
    """With ``server.static_dir`` the page to open is that directory's."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html>my own page</html>")
    config = tmp_path / "hub.toml"
    config.write_text('[server]\nstatic_dir = "site"\n')
    async with running_wshub("--config", str(config), cwd=tmp_path) as hub:
        assert f"(files of {tmp_path / 'site'})" in hub.log[-1]
        assert await asyncio.to_thread(fetch, hub.page) == "<html>my own page</html>"


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()
