"""``wshub call`` / ``subscribe`` / ``publish``: the real commands against a real ``wshub``."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.wshub_process import LISTENING, WSHUB, WshubProcess, running_wshub, wshub_command

SERVICE = """
    from hub import CallContext, RpcError, rpc

    @rpc("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    @rpc("greet")
    async def greet(ctx: CallContext, name: str) -> str:
        ctx.notify("greeting", {"to": name})      # a notification before the result
        await ctx.call("client.version", timeout=1) if name == "caller" else None
        return f"hello {name}"

    @rpc("fail")
    def fail() -> None:
        raise RpcError(4001, "out of cheese", {"shelf": 3})
"""


@pytest.fixture
async def wshub(tmp_path: Path) -> AsyncIterator[WshubProcess]:
    """A wshub process serving SERVICE, with its config at tmp_path/hub.toml."""
    (tmp_path / "service.py").write_text(textwrap.dedent(SERVICE))
    config = tmp_path / "hub.toml"
    config.write_text('[rpc]\npaths = ["."]\nmodules = ["service"]\n')
    async with running_wshub("--config", str(config), cwd=tmp_path) as hub:
        yield hub


async def test_call_prints_the_result(wshub: WshubProcess) -> None:
    """``wshub call METHOD PARAMS`` prints the result as one JSON line and exits 0."""
    code, out, err = await wshub_command("call", "math.add", "[1, 2]", "--url", wshub.url)
    assert (code, out, err) == (0, "3\n", "")
    code, out, _ = await wshub_command("call", "math.add", '{"a": 40, "b": 2}', "--url", wshub.url)
    assert (code, out) == (0, "42\n")


async def test_call_without_params(wshub: WshubProcess) -> None:
    """PARAMS may be left out: the request then carries none (rpc.discover)."""
    code, out, _ = await wshub_command("call", "rpc.discover", "--url", wshub.url)
    assert code == 0
    assert {m["name"] for m in json.loads(out)["methods"]} >= {"math.add", "greet", "fail"}


async def test_call_skips_notifications_and_refuses_server_calls(wshub: WshubProcess) -> None:
    """Notifications before the result are skipped; a server-to-client call gets -32601."""
    code, out, _ = await wshub_command("call", "greet", '["ada"]', "--url", wshub.url)
    assert (code, out) == (0, '"hello ada"\n')
    code, out, err = await wshub_command("call", "greet", '["caller"]', "--url", wshub.url)
    # The method's own call to the client failed with the client's "Method not found".
    assert code == 1
    assert out == ""
    assert "error -32603: Internal error" in err


async def test_call_error_object_exits_1(wshub: WshubProcess) -> None:
    """An error object goes to stderr with code, message and data, and exits 1."""
    code, out, err = await wshub_command("call", "fail", "--url", wshub.url)
    assert (code, out) == (1, "")
    assert err == 'wshub call: error 4001: out of cheese {"shelf": 3}\n'
    code, _, err = await wshub_command("call", "no.such", "[]", "--url", wshub.url)
    assert code == 1
    assert 'error -32601: Method not found {"method": "no.such"}' in err


@pytest.mark.parametrize(
    ("params", "message"),
    [("{bad", "argument params: not JSON"), ("5", "params must be a JSON array or object")],
    ids=["not-json", "scalar"],
)
async def test_call_with_bad_params_exits_2(tmp_path: Path, params: str, message: str) -> None:
    """PARAMS that are not a JSON array or object are a usage error (exit 2), nothing sent."""
    code, out, err = await wshub_command("call", "math.add", params, "--url", "ws://127.0.0.1:9/")
    assert (code, out) == (2, "")
    assert "usage: wshub call" in err
    assert message in err


async def test_call_to_no_hub_exits_1() -> None:
    """No hub listening: exit 1 naming the URL, no traceback."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{unused.getsockname()[1]}/"
    code, _, err = await wshub_command("call", "math.add", "[1, 2]", "--url", url)
    assert code == 1
    assert err.startswith(f"wshub call: cannot reach the hub at {url}")
    assert "Traceback" not in err


async def test_wshub_url_environment_variable(wshub: WshubProcess) -> None:
    """Without --url, $WSHUB_URL names the hub."""
    code, out, err = await wshub_command("call", "math.add", "[2, 3]", env={"WSHUB_URL": wshub.url})
    assert (code, out, err) == (0, "5\n", "")


async def test_config_finds_the_hub(tmp_path: Path) -> None:
    """``--config`` reaches the hub that config describes (its host and port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "hub.toml"
    config.write_text(f'[server]\nhost = "0.0.0.0"\nport = {port}\n')
    # running_wshub adds --port 0 after the config; here the config's port must hold.
    process = await asyncio.create_subprocess_exec(
        WSHUB, "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    hub = WshubProcess(process)
    try:
        await hub.read_until(LISTENING)
        code, out, err = await wshub_command("call", "rpc.discover", "--config", str(config))
        assert code == 0, err
        assert json.loads(out)["openrpc"]
    finally:
        await hub.stop()


async def test_subscribe_prints_messages_and_stops_after_count(wshub: WshubProcess) -> None:
    """``wshub subscribe CHANNEL --count 2`` prints two messages as JSON lines, then exits 0."""
    subscriber = await asyncio.create_subprocess_exec(
        WSHUB,
        "subscribe",
        "chat/#",
        "--count",
        "2",
        "--url",
        wshub.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert subscriber.stderr is not None
    assert subscriber.stdout is not None
    try:
        async with asyncio.timeout(20):
            ready = await subscriber.stderr.readline()
        assert ready == b"wshub subscribe: subscribed to chat/#\n"
        code, out, _ = await wshub_command(
            "publish", "chat/lobby", '{"text": "hi"}', "--url", wshub.url
        )
        assert code == 0
        assert json.loads(out)["offset"] == 1
        await wshub_command("publish", "chat/other", '"two"', "--url", wshub.url)
        await wshub_command("publish", "chat/third", '"not read"', "--url", wshub.url)
        async with asyncio.timeout(20):
            out_bytes, _ = await subscriber.communicate()
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
            await subscriber.wait()
    assert subscriber.returncode == 0
    lines = [json.loads(line) for line in out_bytes.decode().splitlines()]
    assert [(m["channel"], m["data"]) for m in lines] == [
        ("chat/lobby", {"text": "hi"}),
        ("chat/other", "two"),
    ]
    assert lines[0]["subscription"] == "chat/#"


async def test_subscribe_refused_exits_1(wshub: WshubProcess) -> None:
    """A subscribe the hub refuses (an invalid pattern) exits 1 with its error."""
    code, out, err = await wshub_command("subscribe", "a/#/b", "--url", wshub.url)
    assert (code, out) == (1, "")
    assert err.startswith("wshub subscribe: error -32010")


async def test_subscribe_count_must_be_positive() -> None:
    """``--count 0`` is a usage error."""
    code, _, err = await wshub_command("subscribe", "a", "--count", "0")
    assert code == 2
    assert "not a positive count" in err
