"""The wheel is the product: built from the sdist of a copy of the checkout, installed into
a fresh venv with the locked runtime dependencies, run from a directory outside the checkout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.wshub_process import LISTENING

ROOT = Path(__file__).resolve().parent.parent
# What a fresh clone does not have: venvs, caches, node modules, build output.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".fuzz",
    ".ci-tools",
    ".python-venvs",
    ".crossbar-venv",
    "artifacts",
    "results",
)
SERVED = {
    "/": ROOT / "examples/chat/index.html",
    "/chat.js": ROOT / "examples/chat/chat.js",
    "/chat.css": ROOT / "examples/chat/chat.css",
    "/wshub.js": ROOT / "js-client/wshub.js",
    "/wshub.d.ts": ROOT / "js-client/wshub.d.ts",
}

pytestmark = pytest.mark.timeout(600)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory outside the checkout

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel from a clean copy of the sources and install it into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    dist = tmp / "dist"
    # The wheel is built from the sdist, as `python -m build` does for a release:
    # that proves MANIFEST.in brings what the build step copies.
    run(sys.executable, "-c", "from setuptools import build_meta; build_meta.build_sdist('sdist')",
        cwd=source)  # fmt: skip
    (sdist,) = (source / "sdist").glob("wshub-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    # The locked setuptools of the running venv builds it (no build isolation, offline).
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, ".",
        cwd=unpacked)  # fmt: skip
    (wheel,) = dist.glob("wshub-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q")
    run(*pip, "--require-hashes", "-r", ROOT / "requirements" / "runtime.txt")
    run(*pip, "--no-deps", wheel)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel, venv, elsewhere)


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            headers = {k.lower(): v for k, v in answer.headers.items()}
            return answer.status, headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {}, error.read()


@pytest.fixture
def serving(installed: Installed) -> Iterator[Callable[..., str]]:
    """Start a command of the installed venv on port 0; stop it with SIGTERM after.

    The port is read from the start message: a port picked beforehand could be
    taken by another process on a shared machine before the hub binds it.
    """
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> str:
        # Nothing of the checkout on the path: only the venv's site-packages.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        process = subprocess.Popen(
            [*argv, "--port", "0"],
            cwd=installed.elsewhere,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        log = []
        for line in process.stdout:  # the test's own timeout bounds this
            log.append(line)
            if match := LISTENING.search(line):
                base = "http://" + match.group(1).split("://", 1)[1].rstrip("/")
                assert fetch(base + "/healthz")[0] == 200
                return base
        raise AssertionError(f"{argv} exited before listening:\n{''.join(log)}")

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=15)[0]
        assert process.returncode == 0, output


def test_wheel_carries_the_client_and_the_demo(installed: Installed) -> None:
    """The wheel holds wshub.js, its .d.ts, the chat demo and the admin page, nothing else of
    js-client/."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {
        "hub/static/client/wshub.js",
        "hub/static/client/wshub.d.ts",
        "hub/static/chat/index.html",
        "hub/static/chat/chat.js",
        "hub/static/chat/chat.css",
        # The admin page, served as it is (no build step).
        "hub/admin/static/index.html",
        "hub/admin/static/admin.js",
        "hub/admin/static/admin.css",
    } <= names
    assert not [n for n in names if "test" in n.split("/")[-1] and n.startswith("hub/static")]
    assert not [n for n in names if n.startswith(("js-client/", "examples/", "tests/"))]


def test_installed_hub_is_the_wheel(installed: Installed) -> None:
    """From outside the checkout, ``import hub`` is the venv's copy, not the sources."""
    where = run(installed.bin / "python", "-c", "import hub; print(hub.__file__)",
                cwd=installed.elsewhere)  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed.venv)


def test_wshub_serves_the_demo_and_the_client(
    installed: Installed, serving: Callable[..., str]
) -> None:
    """The installed ``wshub`` serves /, the demo's files, /wshub.js, /wshub.d.ts and /healthz."""
    base = serving(str(installed.bin / "wshub"))
    for path, source in SERVED.items():
        status, _, body = fetch(base + path)
        assert status == 200, path
        assert body == source.read_bytes(), path
    assert fetch(base + "/wshub.js")[1]["access-control-allow-origin"] == "*"
    status, _, body = fetch(base + "/healthz")
    assert (status, body) == (200, b'{"status":"ok","sessions":0}')


def test_python_m_hub_serves_too(installed: Installed, serving: Callable[..., str]) -> None:
    """``python -m hub`` of the installed wheel starts and serves the demo and the client."""
    base = serving(str(installed.bin / "python"), "-m", "hub")
    for path in ("/", "/wshub.js", "/healthz"):
        assert fetch(base + path)[0] == 200, path
