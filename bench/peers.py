"""Real peers the hub is compared with, each a private instance on a free port:
Mosquitto with its websockets and TCP listeners, and Crossbar.io (bench/crossbar.py).
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.processes import Server, free_port, running, wait_for_port


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: run scripts/bootstrap")
    return found


MOSQUITTO_CONFIG = """\
# Mosquitto 2.0.x refuses to start with only a websockets listener
# (eclipse-mosquitto/mosquitto#2284): an MQTT listener on loopback comes along.
listener {tcp_port} 127.0.0.1
listener {ws_port}
protocol websockets
allow_anonymous true
user {user}
persistence false
log_dest file {directory}/mosquitto.log
log_type error
log_type warning
"""


@contextlib.contextmanager
def mosquitto(nodelay: bool = False) -> Iterator[Server]:
    """A private Mosquitto whose websockets listener is the server under test.

    ``nodelay``: ``set_tcp_nodelay true`` (its default keeps Nagle's algorithm).

    Its libwebsockets listener ignores a bind address (it listens on every
    interface, eclipse-mosquitto/mosquitto#3045); the bench connects on loopback.
    """
    ws_port = free_port()
    tcp_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            MOSQUITTO_CONFIG.format(
                tcp_port=tcp_port, ws_port=ws_port, user=getpass.getuser(), directory=tmp
            )
            + ("set_tcp_nodelay true\n" if nodelay else "")
        )
        args = [mosquitto_binary(), "-c", str(config)]
        with running(args, "mosquitto", stderr=subprocess.DEVNULL) as process:
            wait_for_port(ws_port, process, "mosquitto")
            wait_for_port(tcp_port, process, "mosquitto")
            yield Server(
                f"ws://127.0.0.1:{ws_port}/mqtt",
                process.pid,
                mqtt_url=f"mqtt://127.0.0.1:{tcp_port}",
            )
