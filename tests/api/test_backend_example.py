"""examples/backend.py and examples/backend.toml work together as documented."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from typing import Any

from aiohttp import web

from hub import HubConfig
from hub.client import ApiClient
from tests.conftest import HubFactory
from tests.ports import listening_socket
from tests.protocols.channels.conftest import PeerFactory as ChannelsFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_module() -> Any:
    spec = importlib.util.spec_from_file_location("example_backend", EXAMPLES / "backend.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["example_backend"] = module
    spec.loader.exec_module(module)
    return module


def example_config(backend_port: int) -> HubConfig:
    """examples/backend.toml with the backend on ``backend_port`` and the API on a free one."""
    text = (EXAMPLES / "backend.toml").read_text()
    text = text.replace("127.0.0.1:9000", f"127.0.0.1:{backend_port}")
    text = text.replace("[api]\n", "[api]\nport = 0\n")
    return HubConfig.model_validate(tomllib.loads(text))


async def test_example_backend(make_hub: HubFactory, channels: ChannelsFactory) -> None:
    """The example refuses admin/ channels, serves shop.price and greets joiners via the API."""
    backend = example_module()
    # Bound before the hub is told the port, so nothing can take it meanwhile.
    sock = listening_socket()
    hub = await make_hub(example_config(sock.getsockname()[1]))
    assert hub.api is not None
    config = hub.config
    async with ApiClient(hub.api.url, config.api.keys[0]) as api:
        app = backend.make_app(api, (config.webhooks.secret or "").encode())
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            peer = await channels(hub)
            assert (await peer.error("subscribe", {"channel": "admin/x"}))["code"] == -32011
            assert await peer.call("shop.price", {"sku": "b1"}) == {"sku": "b1", "eur": 9.5}
            await peer.subscribe("lobby", presence=True)
            await peer.notification("join")
            greeting = await peer.notification("message")
            assert greeting["data"]["text"].startswith("welcome, ")
            assert [event["event"] for event in app[backend.EVENTS]] == ["join"]
        finally:
            await runner.cleanup()
