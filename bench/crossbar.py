"""A private Crossbar.io router, installed on first use into its own venv.

Crossbar.io pins its own Autobahn, Twisted and much more (~380 MB), so it does
not go into the project's venv: ``bench/.crossbar-venv`` (git-ignored) is
created the first time the WAMP workload runs. Each run gets a fresh node
directory with a generated config: one router worker, realm ``realm1`` open to
anonymous clients, a WebSocket transport on a free loopback port, JSON only.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.processes import ROOT, Server, free_port, running, wait_for_port

VENV = ROOT / "bench" / ".crossbar-venv"
CROSSBAR = VENV / "bin" / "crossbar"
# The version the figures in docs/benchmarks.md were measured with.
REQUIREMENT = "crossbar==26.10.1"


def ensure_crossbar() -> Path:
    if CROSSBAR.exists():
        return CROSSBAR
    print(f"installing {REQUIREMENT} into {VENV} (first use)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "--quiet", REQUIREMENT], check=True, timeout=1800
    )
    return CROSSBAR


def node_config(port: int) -> dict[str, object]:
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": [
                    {
                        "name": "realm1",
                        "roles": [
                            {
                                "name": "anonymous",
                                "permissions": [
                                    {
                                        "uri": "",
                                        "match": "prefix",
                                        "allow": everything,
                                        "disclose": {"caller": False, "publisher": False},
                                        "cache": True,
                                    }
                                ],
                            }
                        ],
                    }
                ],
                "transports": [
                    {
                        "type": "websocket",
                        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                        "serializers": ["json"],
                    }
                ],
            }
        ],
    }


@contextlib.contextmanager
def crossbar() -> Iterator[Server]:
    executable = ensure_crossbar()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cbdir = Path(tmp) / ".crossbar"
        cbdir.mkdir()
        (cbdir / "config.json").write_text(json.dumps(node_config(port), indent=2))
        args = [str(executable), "start", "--cbdir", str(cbdir), "--loglevel", "warn"]
        with running(
            args, "crossbar", cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as process:
            wait_for_port(port, process, "crossbar", timeout=90)
            yield Server(f"ws://127.0.0.1:{port}/", process.pid)
