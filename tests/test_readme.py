"""The README's snippets work as written: its python, toml and sh blocks, run for real.

Blocks are found by language and by what they hold, never by line number, so
the README may be edited freely:

- a python or toml block whose first line is ``# <file name>`` is that file;
  files are written to one directory, as a reader following along would;
- every python block compiles and its ``from X import a, b`` names exist; the
  embedding example (a block that builds a ``Hub(`` and ends in
  ``asyncio.run``) is executed and its hub served and used by real clients;
- every toml block (and every file a sh block writes with ``printf ... >``)
  passes ``wshub --config FILE --check``; absolute paths of key and certificate
  files are replaced by files made for the test;
- every sh block is valid shell and runs the venv's ``wshub``, never a bare one;
- sh blocks written as a transcript (``$ command`` lines, each followed by the
  output it prints, ``...`` matching anything) are run against the hub the
  README starts with ``.venv/bin/wshub --config <file>``, in a directory where
  ``.venv`` is this test run's venv. A ``$ command &`` runs in the background,
  ready once it writes its first line to stderr; lines no foreground command
  printed must come from the background ones.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import ClientConnection, connect

from tests.auth_helpers import KeyPair
from tests.wshub_process import WSHUB, running_wshub

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILE_HEADER = re.compile(r"#\s*([\w.-]+\.(?:py|toml))\s*$")
PRINTF_TO_FILE = re.compile(r"^printf\s.*>\s*([\w.-]+)\s*$", re.MULTILINE)
BARE_WSHUB = re.compile(r"(?:^|[\s;&|(`])wshub\b(?!\.)", re.MULTILINE)
VENV = Path(sys.executable).parent.parent


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int

    @property
    def file_name(self) -> str | None:
        match = FILE_HEADER.fullmatch(self.text.splitlines()[0]) if self.text.strip() else None
        return match.group(1) if match else None

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks(*languages: str) -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1)
        for match in FENCE.finditer(text)
        if match.group(1) in languages
    ]


def ids(blocks: list[Block]) -> list[str]:
    return [block.where for block in blocks]


def written_files() -> list[tuple[str, str, str]]:
    """(file name, content, where) of every file the README writes."""
    files = [
        (block.file_name, block.text, block.where)
        for block in readme_blocks("python", "toml")
        if block.file_name is not None
    ]
    for block in readme_blocks("sh"):
        for match in PRINTF_TO_FILE.finditer(block.text):
            files.append((match.group(1), printed_file(match.group(0)), block.where))
    return files


def printed_file(line: str) -> str:
    """What a ``printf ... > FILE`` line of the README writes, by running it."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["bash", "-c", line], cwd=scratch, check=True, capture_output=True)
        [written] = [p for p in Path(scratch).iterdir() if p.suffix == ".toml"]
        return written.read_text(encoding="utf-8")


def write_readme_files(directory: Path) -> None:
    for name, content, _ in written_files():
        (directory / name).write_text(content, encoding="utf-8")


# --- every block, statically ---------------------------------------------------------


@pytest.mark.parametrize("block", readme_blocks("python"), ids=ids(readme_blocks("python")))
def test_python_block_compiles_and_its_imports_exist(block: Block) -> None:
    """A python block compiles, and every name it imports from a module exists."""
    tree = ast.parse(block.text, filename=block.where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.where}: {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


def test_readme_files_have_distinct_names() -> None:
    """No file the README writes overwrites another it wrote (hub.toml twice, say)."""
    names = [(name, where) for name, _, where in written_files()]
    assert len(names) >= 3  # rpc_methods.py, hub.toml, the Redis hubs' config
    seen: dict[str, str] = {}
    for name, where in names:
        assert name not in seen, f"{where} overwrites {name} written at {seen[name]}"
        seen[name] = where


@pytest.mark.parametrize("block", readme_blocks("sh"), ids=ids(readme_blocks("sh")))
def test_sh_block_is_valid_and_runs_the_venvs_wshub(block: Block) -> None:
    """A sh block is valid shell and runs ``.venv/bin/wshub``, not a ``wshub`` off PATH."""
    script = "\n".join(line.removeprefix("$ ") for line in commands_of(block))
    result = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, f"{block.where}: {result.stderr}"
    bare = [line for line in script.splitlines() if BARE_WSHUB.search(line.split("#")[0])]
    assert bare == [], f"{block.where}: a bare wshub is not on PATH after make run: {bare}"


def commands_of(block: Block) -> list[str]:
    """The shell lines of a block: all of them, or a transcript's ``$`` lines."""
    lines = block.text.splitlines()
    if any(line.startswith("$ ") for line in lines):
        return [line for line in lines if line.startswith("$ ")]
    return lines


# --- toml: wshub --check -------------------------------------------------------------


def toml_cases() -> list[tuple[str, str, str]]:
    """(where, file name, content) of every toml block and toml file the README writes."""
    cases = {where: (name, content) for name, content, where in written_files()}
    for block in readme_blocks("toml"):
        cases.setdefault(block.where, (block.file_name or "snippet.toml", block.text))
    return [
        (where, name, content)
        for where, (name, content) in sorted(cases.items())
        if name.endswith(".toml")
    ]


@pytest.mark.parametrize(
    ("where", "name", "content"), toml_cases(), ids=[f"{w}-{n}" for w, n, _ in toml_cases()]
)
async def test_toml_passes_check(where: str, name: str, content: str, tmp_path: Path) -> None:
    """A README config passes ``wshub --config FILE --check`` (in the README's directory)."""
    write_readme_files(tmp_path)
    config = tmp_path / f"check-{name}"
    config.write_text(with_test_files(content, tmp_path), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        WSHUB,
        "--config",
        str(config),
        "--check",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, f"{where}: {stderr.decode()}"
    assert "configuration OK" in stdout.decode()


def with_test_files(content: str, directory: Path) -> str:
    """The config with each absolute file path replaced by a file made for the test."""
    for key, path in absolute_paths(tomllib.loads(content)):
        content = content.replace(json.dumps(path), json.dumps(str(make_file(key, directory))))
    return content


def absolute_paths(data: Any) -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and key.endswith("_file") and value.startswith("/"):
                yield key, value
            else:
                yield from absolute_paths(value)


def make_file(key: str, directory: Path) -> Path:
    if key in ("cert_file", "key_file"):
        cert, private = directory / "test-cert.pem", directory / "test-key.pem"
        if not cert.exists():  # one pair: the key must be the certificate's
            leaf = trustme.CA().issue_cert("127.0.0.1")
            cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
            private.write_bytes(leaf.private_key_pem.bytes())
        return cert if key == "cert_file" else private
    if key == "public_key_file":
        return KeyPair.rsa().write_pem(directory / "test-public-key.pem")
    raise AssertionError(f"teach test_readme.make_file to make a {key}")


# --- the RPC example: served by wshub, called by the README's transcript --------------


def hub_command() -> list[str]:
    """The README's ``.venv/bin/wshub --config <file>`` line that starts its example hub."""
    names = {name for name, _, _ in written_files()}
    for block in readme_blocks("sh"):
        for line in commands_of(block):
            argv = shlex.split(line.removeprefix("$ "))
            if argv[:2] == [".venv/bin/wshub", "--config"] and argv[2] in names:
                return argv
    raise AssertionError("the README starts no hub with .venv/bin/wshub --config <its file>")


async def test_rpc_example_is_served_and_the_transcripts_hold(tmp_path: Path) -> None:
    """The README's RPC module and config, served by wshub, answer its shell transcripts."""
    write_readme_files(tmp_path)
    (tmp_path / ".venv").symlink_to(VENV)
    transcripts = [b for b in readme_blocks("sh") if b.text.startswith("$ ")]
    assert transcripts, "the README shows no client transcript"
    argv = hub_command()
    async with running_wshub(*argv[1:], cwd=tmp_path) as hub:
        env = {**os.environ, "WSHUB_URL": hub.url}
        for block in transcripts:
            await run_transcript(block, tmp_path, env)


async def run_transcript(block: Block, cwd: Path, env: dict[str, str]) -> None:
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line.removeprefix("$ "), []))
        elif line.strip():
            steps[-1][1].append(line)
    background: list[Background] = []
    try:
        for command, expected in steps:
            if command.rstrip().endswith("&"):
                background.append(await Background.start(command.rstrip()[:-1], cwd, env))
                assert not expected, f"{block.where}: write a background command's output later"
                continue
            result = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-c", command],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            printed = (result.stdout + result.stderr).splitlines()
            rest = match_in_order(expected, printed, f"{block.where}: $ {command}")
            for line in rest:
                await expect_from_background(background, line, f"{block.where}: $ {command}")
        for process in background:
            assert await process.finished() == 0, f"{block.where}: {process.command}"
    finally:
        for process in background:
            process.kill()


def pattern_of(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.split("...")))


def match_in_order(expected: list[str], printed: list[str], where: str) -> list[str]:
    """Printed lines match expected ones in order; the expected lines left are the background's."""
    done = 0
    rest: list[str] = []
    for line in expected:
        if done < len(printed) and pattern_of(line).fullmatch(printed[done]):
            done += 1
        else:
            rest.append(line)
    assert done == len(printed), f"{where}: printed {printed[done:]}, the README shows {expected}"
    return rest


@dataclass
class Background:
    command: str
    process: asyncio.subprocess.Process

    @classmethod
    async def start(cls, command: str, cwd: Path, env: dict[str, str]) -> Background:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            f"exec {command}",
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        async with asyncio.timeout(20):
            ready = await process.stderr.readline()
        assert ready, f"{command} ended before it was ready"
        return cls(command, process)

    async def next_line(self) -> str:
        assert self.process.stdout is not None
        return (await self.process.stdout.readline()).decode().rstrip("\n")

    async def finished(self) -> int:
        async with asyncio.timeout(20):
            return await self.process.wait()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def expect_from_background(background: list[Background], line: str, where: str) -> None:
    assert background, f"{where}: {line!r} was not printed"
    pattern = pattern_of(line)
    for process in background:
        async with asyncio.timeout(20):
            printed = await process.next_line()
        if pattern.fullmatch(printed):
            return
        raise AssertionError(f"{where}: {process.command} printed {printed!r}, not {line!r}")


# --- the embedding example, run ----------------------------------------------------------


def embedding_block() -> Block:
    [block] = [
        b
        for b in readme_blocks("python")
        if b.file_name is None and "Hub(" in b.text and "asyncio.run(" in b.text
    ]
    return block


async def test_embedding_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedding example serves its method, its hook refuses spam, it calls clients back."""
    block = embedding_block()
    mains: list[Coroutine[Any, Any, Any]] = []
    monkeypatch.setattr(asyncio, "run", mains.append)  # keep main() to run it on our loop
    namespace: dict[str, Any] = {"__name__": "readme_embedding"}
    exec(compile(block.text, block.where, "exec"), namespace)
    hub = namespace["hub"]
    start = hub.start
    monkeypatch.setattr(hub, "start", lambda: start(port=0))  # not the README's port 8765
    [main] = mains
    serving = asyncio.create_task(main)
    try:
        async with asyncio.timeout(10):
            while not running(hub):  # noqa: ASYNC110 - main() starts it, no event to await
                await asyncio.sleep(0.01)
        await use_embedded_hub(hub)
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    assert not running(hub)


def running(hub: Any) -> bool:
    try:
        return bool(hub.port)
    except RuntimeError:
        return False


async def use_embedded_hub(hub: Any) -> None:
    history = await hub.history("news")
    assert [p.data for p in history.publications] == [{"headline": "hello"}]
    async with connect(hub.url, subprotocols=["channels.v1"]) as ws:  # type: ignore[list-item]
        refused = await request(ws, "publish", {"channel": "chat/x", "data": {"text": "spam!"}})
        assert refused["error"]["code"] == -32011
        assert "no spam here" in json.dumps(refused["error"])
        accepted = await request(ws, "publish", {"channel": "chat/x", "data": {"text": "hi"}})
        assert accepted["result"]["offset"] == 1
    async with connect(hub.url) as ws:
        assert (await request(ws, "math.add", [1, 2]))["result"] == 3
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "client.hello"}))
        call = json.loads(await ws.recv())
        assert call["method"] == "client.version"
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": call["id"], "result": "1.0"}))
        welcome = json.loads(await ws.recv())
        assert welcome == {"jsonrpc": "2.0", "method": "welcome", "params": {"version": "1.0"}}
        assert json.loads(await ws.recv())["result"] == "hello, client 1.0"


async def request(ws: ClientConnection, method: str, params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    async with asyncio.timeout(5):
        reply: dict[str, Any] = json.loads(await ws.recv())
    return reply
