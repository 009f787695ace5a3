"""A protocol's codec imports alone: no server, no handler, no engine backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODECS = [
    "protocols.mqtt.codec",
    "protocols.mqtt.codec5",
    "protocols.wamp.codec",
    "protocols.wamp.serializers",
    "protocols.jsonrpc.codec",
    "protocols.channels.codec",
]

# Modules a codec must not pull in.
SERVER = ["hub.app", "hub.server", "hub.config", "hub.engine.select"]
HANDLERS = [
    "protocols.mqtt.handler",
    "protocols.wamp.handler",
    "protocols.jsonrpc.handler",
    "protocols.channels.handler",
]


@pytest.mark.parametrize("module", CODECS)
def test_a_codec_imports_without_the_server(module: str) -> None:
    """Importing the codec loads neither the hub's server nor any protocol handler."""
    probe = (
        f"import sys, {module}; "
        f"print(','.join(m for m in {SERVER + HANDLERS!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_the_lazy_names_still_import() -> None:
    """`from hub import Hub` and the handlers' names on the protocol packages still work."""
    probe = (
        "from hub import Hub, HubConfig, rpc; "
        "from protocols.mqtt import MqttHandler; "
        "from protocols.wamp import WampHandler, WampCraUser, wamp_router; "
        "from protocols.channels import ChannelsHandler; "
        "from protocols.jsonrpc import JsonRpcHandler, ClientCallError; "
        "import protocols.mqtt as m; print(hasattr(m, 'nothing_here'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_hub_imports_its_handlers_at_start_not_at_construction() -> None:
    """Hub() imports no handler (`wshub --check` stays light); start() imports every
    served protocol's, so no first connection pays the import (10-30 ms, stalling all)."""
    probe = (
        "import asyncio, sys\n"
        "from hub import Hub\n"
        f"HANDLERS = {HANDLERS!r}\n"
        "def loaded():\n"
        "    return ','.join(m for m in HANDLERS if m in sys.modules)\n"
        "async def main():\n"
        "    hub = Hub()\n"
        "    print(loaded())\n"
        "    await hub.start(port=0)\n"
        "    print(loaded())\n"
        "    await hub.stop()\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    constructed, started = result.stdout.split("\n")[:2]
    assert constructed == ""
    assert started.split(",") == HANDLERS
